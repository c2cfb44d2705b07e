"""Greedy (argmax) search over a step function; `nmt.decode.search` describes the contract."""
import collections

import tensorflow as tf

from nmt.decode.search_loop import (Carried, SearchResult, check, compact_rows, probability_of,
                             run_as_graph, run_loop, scoring_step)

_GreedyLoop = collections.namedtuple(
    "_GreedyLoop", ["step", "carried", "seq", "log_prob", "finished", "lengths"])
# step []; carried Carried with rows [A] (A <= batch); seq [batch, max_length];
# log_prob [batch]; finished [batch] bool; lengths [batch]


def greedy_search(step_fn, initial_state, batch_size, bos_id, eos_id, max_length,
                  context=None, compact=True):
    """Picks the most probable token at every step (argmax decoding).

    step_fn(ids [n] int32, state[, rows][, context]) -> (logits [n, vocab], state);
    `initial_state` and `context` have leading dimension batch. A sentence
    finishes at its first eos (its score is then frozen and, with compact, its
    row is dropped once enough are done); the loop stops when every sentence
    has finished or after `max_length` steps (eos step counted). An unfinished
    sentence returns its max_length tokens, length max_length and the sum of
    their log-probabilities.

    Returns SearchResult: ids [batch, 1, max_length] int32 (eos padded),
    scores [batch, 1] float32 (log-prob sum, eos included), lengths [batch, 1] int32.
    """
    check(isinstance(max_length, int) and max_length >= 1,
          f"max_length must be a positive int (got {max_length!r})")

    step = scoring_step(step_fn, context is not None)
    eos = tf.constant(eos_id, tf.int32)

    def search(state, context):
        loop = _GreedyLoop(
            step=tf.constant(0),
            carried=Carried(slots=tf.range(batch_size),
                            ids=tf.fill([batch_size], tf.constant(bos_id, tf.int32)),
                            state=state, context=context),
            seq=tf.fill([batch_size, max_length], eos),
            log_prob=tf.zeros([batch_size], tf.float32),
            finished=tf.zeros([batch_size], tf.bool),
            lengths=tf.zeros([batch_size], tf.int32))

        def cond(loop):
            return (loop.step < max_length) & tf.logical_not(tf.reduce_all(loop.finished))

        loop = run_loop(cond, lambda loop: _greedy_step(loop, step, eos, compact, batch_size),
                        loop, max_length, compact)
        lengths = tf.where(loop.finished, loop.lengths, loop.step)
        return SearchResult(ids=loop.seq[:, None, :], scores=loop.log_prob[:, None],
                            lengths=lengths[:, None])

    return run_as_graph(search, initial_state, () if context is None else context)


def _greedy_step(loop, step, eos, compact, batch_size):
    """One step: each unfinished sentence takes its most probable next token."""
    carried = loop.carried
    alive = tf.logical_not(loop.finished)  # [batch]
    rows = tf.cast(tf.where(tf.gather(alive, carried.slots))[:, 0], tf.int32)  # [m]
    sentences = tf.gather(carried.slots, rows)  # [m] their batch index
    logits, state = step(carried.ids, carried.state, rows, carried.context)  # [m, vocab]
    row_tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [m]
    row_log_prob = tf.math.log(probability_of(logits, row_tokens))  # [m]
    token_log_prob = tf.scatter_nd(  # [batch], 0 where finished
        sentences[:, None], row_log_prob, [batch_size])
    tokens = tf.tensor_scatter_nd_update(
        tf.fill([batch_size], eos), sentences[:, None], row_tokens)  # [batch]
    just_finished = alive & tf.equal(tokens, eos)
    finished = loop.finished | just_finished
    carried = carried._replace(ids=tf.gather(tokens, carried.slots), state=state)
    if compact:
        carried = compact_rows(carried, tf.logical_not(finished), 1)
    time = tf.range(tf.shape(loop.seq)[1])[None, :]  # [1, max_length]
    return _GreedyLoop(
        step=loop.step + 1, carried=carried,
        seq=tf.where(tf.equal(time, loop.step), tokens[:, None], loop.seq),
        log_prob=tf.where(alive, loop.log_prob + token_log_prob, loop.log_prob),
        finished=finished,
        lengths=tf.where(just_finished, loop.step, loop.lengths))
