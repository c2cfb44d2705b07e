"""Beam search with GNMT length and coverage penalties over a step function
(Wu et al. 2016 §7); `nmt.decode.search` describes the contract.

Each step ranks the 2 * beam_size best extensions of a sentence by summed
log-probability. Eos extensions ranked inside the top beam_size move to a
separate finished set of num_hypotheses slots per sentence (scored with
both penalties), so alive beams cannot crowd them out; the beam_size best
non-eos extensions stay alive. With beam_size = 1 and both penalties 0
this is exactly greedy search (same ids, lengths and scores); with
penalties, beam 1 may search on past greedy's eos (see the bound below).

Stopping rule: a sentence is done when its finished set is full and no
alive hypothesis can beat the worst finished score: best alive log-prob
/ lp(L) <= worst finished score, where L is the longest length the
sentence can return: max_length, or its max_lengths entry if smaller.
Log-probs (<= 0) only decrease, lp grows with length and the coverage
penalty is <= 0, so this bound (as in GNMT / tensor2tensor) is tight
without penalties and safe with them.
The loop stops when every sentence is done, or after max_length steps
(eos step counted).
"""
import collections
import collections.abc

import tensorflow as tf

from nmt.decode.search_loop import (NEG_INF, Carried, SearchResult, check, compact_rows,
                             probability_of, run_as_graph, run_loop, scoring_step, top_k)
from nmt.decode.search_penalties import ALIGNMENTS_KEY, gnmt_coverage_penalty, gnmt_length_penalty

_BeamLoop = collections.namedtuple("_BeamLoop", [
    "step", "carried", "alive_log_prob", "alive_coverage", "alive_candidate",
    "finished_scores", "finished_lengths", "finished_candidate", "history"])
# step []; carried Carried with A <= batch sentences, so A*beam rows (A before
# step 0, and beam reads 1 in the shapes here); alive_log_prob [batch, beam];
# alive_coverage [batch, beam, src_time] (src_time 1
# and unused without coverage); alive_candidate [batch, beam]: the candidate of
# the last step each alive hypothesis is; finished_scores [batch, F] (-inf = empty
# slot, sorted best first); finished_lengths [batch, F], which is also the step
# that wrote the eos; finished_candidate [batch, F]: the candidate of that step;
# F = num_hypotheses. Hypotheses are not stored as token sequences, which would
# cost a [batch, 2*beam, max_length] gather per step: `history` keeps each
# step's candidates and _backtrack spells out the returned ones at the end.

_History = collections.namedtuple("_History", ["tokens", "origins", "keep"])
# TensorArrays over the steps: tokens [batch, 2*beam], each candidate's last token;
# origins [batch, 2*beam], the alive hypothesis (of the step before) it extends;
# keep [batch, beam], the candidates that stayed alive.

_BeamConfig = collections.namedtuple("_BeamConfig", [
    "batch_size", "beam_size", "num_hypotheses", "max_length", "bos_id", "eos_id",
    "alpha", "beta"])


def beam_search(step_fn, initial_state, batch_size, bos_id, eos_id, beam_size, max_length,
                length_penalty=0.0, coverage_penalty=0.0, num_hypotheses=1,
                source_length=None, context=None, compact=True, max_lengths=None):
    """Beam search with GNMT length and coverage penalties (Wu et al. 2016 §7).

    step_fn(ids [n] int32, state[, rows][, context]) -> (logits [n, vocab], state),
    rows batch-major (row a * beam_size + k is beam k of carried sentence a);
    `initial_state` and `context` have leading dimension batch. Step 0 runs on them
    as they are, one row per sentence (its beams would all be the same hypothesis),
    and its beam_size best extensions tile the state to beam_size rows.

    Ranking and the stopping rule: the module docstring.

    Args:
      length_penalty: alpha >= 0; scores are divided by ((5 + length) / 6) ** alpha.
      coverage_penalty: beta >= 0. When > 0, `state` must be a dict whose
        ALIGNMENTS_KEY ("alignments") entry holds the step's attention weights
        [N, src_time] (zeros at source pads; the initial value is ignored but
        must have that shape). The search accumulates them per hypothesis.
      num_hypotheses: n-best size, 1 <= num_hypotheses <= beam_size.
      source_length: optional [batch] int; coverage only penalises source
        positions i < source_length. None: every position counts.
      context: optional nested per-sentence tensors [batch, ...] for step_fn
        (see the module docstring).
      compact: drop done sentences' rows as they accumulate (module docstring).
      max_lengths: optional [batch] int, a bound on each sentence's returned
        length that step_fn guarantees (e.g. it forces eos after so many
        tokens). With length_penalty > 0 it tightens the stopping rule, so a
        sentence stops as soon as its result is settled instead of running
        its alive hypotheses out to their forced eos; the result is the same.

    Returns SearchResult: ids [batch, num_hypotheses, max_length] int32,
    scores [batch, num_hypotheses] float32, lengths [batch, num_hypotheses] int32.
    """
    config = _BeamConfig(batch_size, beam_size, num_hypotheses, max_length, bos_id, eos_id,
                         float(length_penalty), float(coverage_penalty))
    _check_config(config, initial_state)
    step = scoring_step(step_fn, context is not None)

    def search(state, source_length, context, max_lengths):
        source_mask = _source_mask(state, source_length, config)
        longest = (max_length if max_lengths is None
                   else tf.minimum(tf.cast(max_lengths, tf.int32), max_length))
        lp_longest = gnmt_length_penalty(longest, config.alpha)  # [] or [batch]
        loop = _initial_beam_loop(state, context, config)
        loop = _beam_step(loop, step, source_mask, config, compact, lp_longest, width=1)
        loop = run_loop(lambda loop: _beam_not_done(loop, config, lp_longest),
                        lambda loop: _beam_step(loop, step, source_mask, config, compact,
                                                lp_longest, width=beam_size),
                        loop, max_length - 1, compact)
        return _beam_result(loop, source_mask, config)

    return run_as_graph(search, initial_state, source_length,
                        () if context is None else context, max_lengths)


def _check_config(config, initial_state):
    """One-line errors for arguments beam search cannot run with."""
    max_length, beam_size = config.max_length, config.beam_size
    check(isinstance(max_length, int) and max_length >= 1,
          f"max_length must be a positive int (got {max_length!r})")
    check(isinstance(beam_size, int) and beam_size >= 1,
          f"beam_size must be a positive int (got {beam_size!r})")
    check(1 <= config.num_hypotheses <= beam_size,
          f"num_hypotheses must be in [1, beam_size={beam_size}] "
          f"(got {config.num_hypotheses})")
    check(config.alpha >= 0, f"length_penalty must be >= 0 (got {config.alpha})")
    check(config.beta >= 0, f"coverage_penalty must be >= 0 (got {config.beta})")
    if config.beta > 0:
        check(isinstance(initial_state, collections.abc.Mapping)
              and ALIGNMENTS_KEY in initial_state,
              f"coverage_penalty > 0 needs a dict state with an {ALIGNMENTS_KEY!r} "
              f"entry [batch, src_time]")


def _source_mask(state, source_length, config):
    """[batch, 1, src_time] bool (positions i < source length), or None."""
    if config.beta == 0 or source_length is None:
        return None
    src_time = tf.shape(state[ALIGNMENTS_KEY])[-1]
    return tf.sequence_mask(source_length, src_time)[:, None, :]


def _initial_beam_loop(state, context, config):
    """Before step 0: one alive hypothesis (bos) per sentence, one row each."""
    batch, beam, num_hyps = config.batch_size, config.beam_size, config.num_hypotheses
    if config.beta > 0:
        src_time = tf.shape(state[ALIGNMENTS_KEY])[-1]
    else:
        src_time = 1
    return _BeamLoop(
        step=tf.constant(0),
        carried=Carried(slots=tf.range(batch),
                        ids=tf.fill([batch], tf.constant(config.bos_id, tf.int32)),
                        state=state, context=context),
        alive_log_prob=tf.zeros([batch, 1], tf.float32),
        alive_coverage=tf.zeros([batch, 1, src_time], tf.float32),
        alive_candidate=tf.zeros([batch, 1], tf.int32),
        finished_scores=tf.fill([batch, num_hyps], NEG_INF),
        finished_lengths=tf.zeros([batch, num_hyps], tf.int32),
        finished_candidate=tf.zeros([batch, num_hyps], tf.int32),
        history=_History(*(tf.TensorArray(tf.int32, size=config.max_length,
                                          element_shape=tf.TensorShape([None, width]))
                           for width in (2 * beam, 2 * beam, beam))))


def _sentence_done(loop, config, lp_longest):
    """[batch] bool: no alive hypothesis can still enter the full finished set.

    Once true it stays true: alive log-probs only fall and the worst finished
    score only rises. A done sentence's finished set can no longer change, so
    its later steps are skipped (its candidates score -inf).
    """
    best_alive = tf.reduce_max(loop.alive_log_prob, axis=1)  # [batch]
    bound = best_alive / lp_longest  # lp of the longest length the sentence can return
    worst_finished = loop.finished_scores[:, -1]  # [batch], -inf while not full
    return bound <= worst_finished


def _beam_not_done(loop, config, lp_longest):
    """False once every sentence is done (see beam_search's stopping rule)."""
    return tf.logical_not(tf.reduce_all(_sentence_done(loop, config, lp_longest)))


def _beam_step(loop, step, source_mask, config, compact, lp_longest, width):
    """One search step over `width` carried rows per sentence (1 at step 0, then beam);
    the step leaves beam rows per sentence."""
    beam = config.beam_size
    carried = loop.carried
    live = tf.gather(~_sentence_done(loop, config, lp_longest), carried.slots)  # [A]
    live = tf.cast(tf.where(live)[:, 0], tf.int32)  # [m] carried sentences not done
    sentences = tf.gather(carried.slots, live)  # [m] their batch index
    rows = tf.reshape(live[:, None] * width + tf.range(width)[None, :], [-1])  # [m*width]
    logits, state = step(carried.ids, carried.state, rows, carried.context)  # [m*width, vocab]
    scores, origins, tokens = _candidates(logits, loop.alive_log_prob, sentences, width, config)
    coverage = loop.alive_coverage  # [batch, width, src_time]
    if config.beta > 0:
        alignments = tf.cast(state[ALIGNMENTS_KEY], tf.float32)  # [A*beam, src_time]
        coverage = tf.tensor_scatter_nd_add(
            coverage, carried.slots[:, None],
            tf.reshape(alignments, [-1, width, tf.shape(coverage)[-1]]))
    coverage = tf.gather(coverage, origins, batch_dims=1)  # [batch, 2*beam, src_time]
    is_eos = tf.equal(tokens, config.eos_id)

    # Alive: the beam best non-eos candidates; one gather per state tensor.
    alive_log_prob, keep = tf.math.top_k(tf.where(is_eos, NEG_INF, scores), k=beam)
    keep_origins = tf.gather(tf.gather(origins, keep, batch_dims=1), carried.slots)  # [A, beam]
    rows = tf.reshape(tf.range(tf.size(carried.slots))[:, None] * width + keep_origins,
                      [-1])  # [A*beam]
    state = tf.nest.map_structure(lambda t: tf.gather(t, rows), state)
    ids = tf.gather(tf.gather(tokens, keep, batch_dims=1), carried.slots)  # [A, beam]
    carried = carried._replace(ids=tf.reshape(ids, [-1]), state=state)
    if width != beam:  # step 0: each sentence's context goes to its beam rows
        carried = carried._replace(
            context=tf.nest.map_structure(lambda t: tf.gather(t, rows), carried.context))

    # Finished: eos candidates ranked inside the top beam, merged into the set.
    ranked_in = tf.range(2 * beam)[None, :] < beam
    new_finished = is_eos & ranked_in & (scores > NEG_INF)
    new_scores = _final_scores(scores, loop.step, coverage, source_mask, config)
    new_scores = tf.where(new_finished, new_scores, NEG_INF)
    finished = _merge_finished(loop, new_scores, config)

    history = loop.history
    loop = _BeamLoop(
        step=loop.step + 1, carried=carried,
        alive_log_prob=alive_log_prob,
        alive_coverage=tf.gather(coverage, keep, batch_dims=1),
        alive_candidate=keep,
        finished_scores=finished[0], finished_lengths=finished[1],
        finished_candidate=finished[2],
        history=_History(history.tokens.write(loop.step, tokens),
                         history.origins.write(loop.step, origins),
                         history.keep.write(loop.step, keep)))
    if compact:
        loop = loop._replace(carried=compact_rows(loop.carried,
                                              ~_sentence_done(loop, config, lp_longest), beam))
    return loop


def _candidates(logits, alive_log_prob, sentences, width, config):
    """Each live sentence's 2*beam best extensions, sorted -> (scores, origins, tokens),
    each [batch, 2*beam]: summed log-probs (-inf for done sentences), the alive row
    (< width) each extends, and its token. logits [m*width, vocab]; sentences [m]."""
    batch, beam = config.batch_size, config.beam_size
    vocab = logits.shape[-1]  # static when known
    check(vocab is None or vocab >= 2, f"beam search needs vocab >= 2 (got {vocab})")
    # A sentence's 2*beam best extensions are among its rows' 2*beam best each, and a
    # row's order is its logits' order: only those are normalised and ranked. Ties
    # still go to the lower beam, then the lower token, as over all beam * vocab.
    per_row = 2 * beam if vocab is None else min(2 * beam, vocab)
    row_best, row_tokens = top_k(logits, per_row)  # [m*beam, per_row]
    # logsumexp = a logit minus its log-probability, taken at the row's best token
    # (its probability is >= 1 / vocab, so the log is exact to float32 rounding).
    best_probability = probability_of(logits, row_tokens[:, 0])  # [m*beam]
    row_best -= row_best[:, :1] - tf.math.log(best_probability)[:, None]  # log-probs
    totals = (tf.gather(alive_log_prob, sentences)[:, :, None]
              + tf.reshape(row_best, [-1, width, per_row]))  # [m, width, per_row]
    sentence_scores, pick = _top_candidates(tf.reshape(totals, [-1, width * per_row]), 2 * beam)
    sentence_tokens = tf.gather(tf.reshape(row_tokens, [-1, width * per_row]), pick, batch_dims=1)
    scores = tf.tensor_scatter_nd_update(tf.fill([batch, 2 * beam], NEG_INF),
                                         sentences[:, None], sentence_scores)
    origins = tf.scatter_nd(sentences[:, None], pick // per_row, [batch, 2 * beam])
    tokens = tf.scatter_nd(sentences[:, None], sentence_tokens, [batch, 2 * beam])
    return scores, origins, tokens


def _top_candidates(totals, k):
    """top_k(totals [m, n], k) -> (values, indices), with -inf fillers when n < k (step 0
    over a vocabulary smaller than 2 * beam): index j >= n is j % n, the entry that beam
    j // n would have offered, all beams being the same hypothesis at step 0."""
    n = totals.shape[-1]
    if n is None or n >= k:
        return tf.math.top_k(totals, k=k)
    values, indices = tf.math.top_k(totals, k=n)
    rows = tf.shape(totals)[0]
    fillers = tf.tile((tf.range(n, k) % n)[None, :], [rows, 1])
    return (tf.concat([values, tf.fill([rows, k - n], NEG_INF)], 1),
            tf.concat([indices, fillers], 1))


def _final_scores(log_prob, length, coverage, source_mask, config):
    """log_prob / lp(length) + coverage penalty. [batch, k]"""
    scores = log_prob / gnmt_length_penalty(length, config.alpha)
    if config.beta > 0:
        scores += gnmt_coverage_penalty(coverage, config.beta, source_mask)
    return scores


def _merge_finished(loop, new_scores, config):
    """Keeps the num_hypotheses best of the old finished set and this step's candidates
    (new_scores [batch, 2*beam], -inf where not finished) -> (scores, lengths,
    candidates), each [batch, F]. Old entries come first, so ties keep the
    hypothesis found earlier."""
    scores = tf.concat([loop.finished_scores, new_scores], axis=1)  # [batch, F + 2*beam]
    best, pick = tf.math.top_k(scores, k=config.num_hypotheses)  # [batch, F]
    lengths = tf.concat([loop.finished_lengths, tf.fill(tf.shape(new_scores), loop.step)], 1)
    candidates = tf.concat([loop.finished_candidate,
                            tf.broadcast_to(tf.range(2 * config.beam_size),
                                            tf.shape(new_scores))], axis=1)
    return (best, tf.gather(lengths, pick, batch_dims=1),
            tf.gather(candidates, pick, batch_dims=1))


def _beam_result(loop, source_mask, config):
    """Finished hypotheses first, then unfinished alive ones to fill empty slots."""
    num_hyps = config.num_hypotheses
    alive_scores = _final_scores(loop.alive_log_prob, loop.step, loop.alive_coverage,
                                 source_mask, config)  # [batch, beam]
    alive_scores, alive_order = tf.math.top_k(alive_scores, k=config.beam_size)
    alive_candidate = tf.gather(loop.alive_candidate, alive_order, batch_dims=1)
    num_finished = tf.reduce_sum(
        tf.cast(loop.finished_scores > NEG_INF, tf.int32), axis=1, keepdims=True)  # [batch, 1]
    slot = tf.range(num_hyps)[None, :]  # [1, F]
    # Index into [finished (F) ; alive (beam)]: the valid finished ones, then alive.
    pick = tf.where(slot < num_finished, slot, num_hyps + slot - num_finished)  # [batch, F]
    scores = tf.concat([loop.finished_scores, alive_scores], axis=1)
    lengths = tf.concat([loop.finished_lengths,
                         tf.fill(tf.shape(alive_scores), loop.step)], axis=1)
    # The step of a hypothesis' last token: its eos, or the last step for alive ones.
    last_steps = tf.concat([loop.finished_lengths,
                            tf.fill(tf.shape(alive_scores), loop.step - 1)], axis=1)
    candidates = tf.concat([loop.finished_candidate, alive_candidate], axis=1)
    take = lambda t: tf.gather(t, pick, batch_dims=1)  # noqa: E731
    ids = _backtrack(loop.history, loop.step, take(last_steps), take(candidates), config)
    return SearchResult(ids=ids, scores=take(scores), lengths=take(lengths))


def _backtrack(history, num_steps, last_steps, candidates, config):
    """Spells out hypotheses from the history: the one ending at step last_steps[b, h]
    as candidates[b, h] of that step -> ids [batch, H, max_length], eos after it."""
    time = tf.range(config.max_length)

    def body(step, candidate, ids):
        candidate = tf.where(step == last_steps, candidates, candidate)  # starts here
        token = tf.gather(history.tokens.read(step), candidate, batch_dims=1)  # [batch, H]
        token = tf.where(step <= last_steps, token, config.eos_id)
        ids = tf.where(time == step, token[:, :, None], ids)
        parent = tf.gather(history.origins.read(step), candidate, batch_dims=1)  # at step - 1
        candidate = tf.gather(history.keep.read(tf.maximum(step - 1, 0)), parent, batch_dims=1)
        return step - 1, candidate, ids

    ids = tf.fill(tf.concat([tf.shape(last_steps), [config.max_length]], 0),
                  tf.constant(config.eos_id, tf.int32))
    _, _, ids = tf.while_loop(lambda step, *_: step >= 0, body,
                              (num_steps - 1, candidates, ids),
                              maximum_iterations=config.max_length)
    return tf.ensure_shape(ids, [None, config.num_hypotheses, config.max_length])
