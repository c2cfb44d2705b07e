"""Greedy and beam search over a step function; imports no model code.

The model supplies `step_fn(ids, state[, rows]) -> (logits, new_state)`:
  ids       [N] int32, the previous token of each row (`bos_id` at step 0);
  logits    [N, vocab] float32, the next token's log-probabilities up to a
            constant per row: logits, or log-probabilities already normalised.
            The search normalises them itself (log p = logit - logsumexp), but
            only where it needs to: beam search takes each row's 2 * beam_size
            best logits first and normalises those, greedy search the argmax,
            so no [N, vocab] log-softmax is ever written;
  state     any nested structure (tuples, namedtuples, dicts) of tensors whose
            leading dimension is N; `new_state` has the same structure and shapes.
  rows      optional: if step_fn takes it, [M] int32 row indices, and logits
            is [M, vocab] for those rows only (the state still advances for all
            N). The searches pass the rows of unfinished sentences, so the
            output projection and the [N, vocab] passes skip finished ones
            (about 40 % of the rows in a length-sorted batch); a step_fn
            without it is called on all rows and its logits are gathered.
  context   passed (as a keyword) when the search is given a `context`: any
            nested structure of per-sentence tensors the step reads but does
            not change (the encoder memory). The search tiles it to N rows
            like the state, and moves it with the state when it drops rows.

Dropping finished sentences (`compact=True`, the default). N is the number of
rows the search carries, not a constant: once the unfinished sentences fill at
most COMPACT_WHEN_LIVE_AT_MOST of them, the search gathers the state, the ids
and the context down to the unfinished sentences' rows, so the decoder cell
and the attention stop running for sentences that are done. Within a beam
step, rows only ever move inside their sentence, so a row's state and context
stay together. XLA cannot carry loop tensors whose shape changes, and a search
compiled with `jit_compile=True` and compact=True silently returns wrong
hypotheses (tests/test_search.py found it): under XLA pass compact=False.

Layout of N (dropping rows keeps the carried sentences in this order). Greedy
search: N = batch, row b is sentence b. Beam search:
N = batch * beam_size, batch-major: row b * beam_size + k is beam k of sentence
b. Beam search runs step 0 on `initial_state` as given (N = batch: a sentence's
beams would all be the same hypothesis there), gathers the state to that
layout with that step's survivors, and after every step reorders it with one
`tf.gather` per tensor so each row's state follows its hypothesis. So a
step_fn reads per-sentence tensors through the state or the context, which
move with the rows, never by closing over a copy tiled to a fixed layout.

Both searches return `SearchResult(ids, scores, lengths)`:
  ids     [batch, num_hypotheses, max_length] int32, without bos, padded with
          eos_id (time is always max_length, so shapes are static);
  scores  [batch, num_hypotheses] float32, finished hypotheses best first;
  lengths [batch, num_hypotheses] int32, tokens before eos.
A score is the sum of the token log-probabilities, the eos step included,
divided by the GNMT length penalty lp = ((5 + length) / 6) ** alpha with
length = the returned length, plus the GNMT coverage penalty when it is used
(Wu et al. 2016 §7). Greedy search has num_hypotheses = 1 and alpha = 0.

`max_length` is the maximum number of steps, the eos step counted: a finished
hypothesis has at most max_length - 1 tokens. A hypothesis still unfinished
after max_length steps is returned as is only when a sentence has fewer than
num_hypotheses finished ones: length = max_length, no eos, score = its log-prob
sum divided by lp(max_length) plus its coverage penalty. Such fillers come
after every finished hypothesis of the sentence, best first among themselves.

Each search is one `tf.while_loop`; `tf.function(jit_compile=True)` around the
caller works with compact=False (XLA takes the per-step count of unfinished
rows as a dynamic size); the number of steps is dynamic. Called eagerly, the
search traces itself into a `tf.function`.
"""
import collections
import collections.abc
import inspect
import math

import tensorflow as tf

SearchResult = collections.namedtuple("SearchResult", ["ids", "scores", "lengths"])
# ids [batch, num_hypotheses, max_length] int32; scores [batch, num_hypotheses]
# float32; lengths [batch, num_hypotheses] int32

# Accumulated attention is clipped to [COVERAGE_FLOOR, 1] before the log, so a
# never-attended source position costs beta * log(1e-10) instead of -inf (which
# would tie every hypothesis that skipped a word).
COVERAGE_FLOOR = 1e-10
ALIGNMENTS_KEY = "alignments"

# A search drops done sentences' rows once the unfinished ones fill at most this
# fraction of the rows it carries: each drop copies the context (the encoder
# memory) once, about what one attention step reads, so it waits for a share.
COMPACT_WHEN_LIVE_AT_MOST = 0.75

_NEG_INF = float("-inf")


def tile_batch(nested, multiplier):
    """Repeats every `[batch, ...]` tensor batch-major to `[batch * multiplier, ...]`.

    Row `b * multiplier + k` of the result is row `b` of the input, the layout
    beam search uses for N.
    """
    return tf.nest.map_structure(lambda t: tf.repeat(t, multiplier, axis=0), nested)


def gnmt_length_penalty(length, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016 §7); 1 when alpha == 0."""
    if alpha == 0:
        return tf.ones_like(tf.cast(length, tf.float32))
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def gnmt_coverage_penalty(accumulated, beta, source_mask=None):
    """GNMT coverage penalty beta * sum_i log(min(sum_j p_ij, 1)) (Wu et al. 2016 §7).

    accumulated [..., src_time]: attention summed over the decoding steps;
    source_mask [..., src_time] bool or None: only True positions (i < source
    length) are penalised. Returns [...]. The sum is floored at COVERAGE_FLOOR.
    """
    log_coverage = tf.math.log(tf.clip_by_value(accumulated, COVERAGE_FLOOR, 1.0))
    if source_mask is not None:
        log_coverage = tf.where(source_mask, log_coverage, 0.0)
    return beta * tf.reduce_sum(log_coverage, axis=-1)


def top_k(values, k):
    """tf.math.top_k(values, k) over the last axis of [rows, n], exactly (the same values
    and indices, ties to the lower index), but fast for long rows and small k.

    TensorFlow's CPU TopK walks each row serially; a beam step's rows are beam x vocab
    long (40,000 for beam 5 and 8k pieces). Instead, the row is cut into chunks and
    only the k chunks with the largest maxima are searched: an element among the k
    largest has at most k - 1 elements above it, so at most k - 1 chunks have a
    larger maximum than its chunk's. The chosen chunks are searched in index order,
    so ties still go to the lower index. About 6x faster on [64, 40000], k = 10.
    """
    n = values.shape[-1]
    if n is None or n < 64 * k:
        return tf.math.top_k(values, k=k)
    chunk = _chunk_size(n, k)
    num_chunks = -(-n // chunk)
    rows = tf.shape(values)[0]
    if num_chunks * chunk > n:
        values = tf.pad(values, [[0, 0], [0, num_chunks * chunk - n]], constant_values=_NEG_INF)
    chunks = tf.reshape(values, [rows, num_chunks, chunk])
    _, best = tf.math.top_k(tf.reduce_max(chunks, axis=-1), k=k)  # [rows, k]
    best = tf.sort(best, axis=-1)  # index order, for the ties
    candidates = tf.reshape(tf.gather(chunks, best, batch_dims=1), [rows, k * chunk])
    top, position = tf.math.top_k(candidates, k=k)
    index = tf.gather(best, position // chunk, batch_dims=1) * chunk + position % chunk
    return top, index


def _scoring_step(step_fn, has_context):
    """step_fn as `(ids, state, rows, context) -> (logits[rows], new_state)`, whether
    step_fn takes rows or not; context is passed on only when the search has one."""
    try:
        parameters = inspect.signature(step_fn).parameters
    except (TypeError, ValueError):  # a callable without an inspectable signature
        parameters = {}
    _check(not has_context or "context" in parameters,
           "a search given a context needs a step_fn with a `context` parameter")

    def step(ids, state, rows, context):
        kwargs = {"context": context} if has_context else {}
        if "rows" in parameters:
            return step_fn(ids, state, rows=rows, **kwargs)
        logits, state = step_fn(ids, state, **kwargs)
        return tf.gather(logits, rows), state

    return step


_Carried = collections.namedtuple("_Carried", ["slots", "ids", "state", "context"])
# What a search carries per row: slots [A] int32, the sentence (batch index) of
# each carried sentence; ids [A*beam]; state and context nested [A*beam, ...].


def _compact(carried, sentence_live, beam_size):
    """Drops the rows of sentences no longer live (sentence_live [batch] bool) once the
    live ones fill at most COMPACT_WHEN_LIVE_AT_MOST of the carried rows."""
    live = tf.gather(sentence_live, carried.slots)  # [A]
    num_live = tf.reduce_sum(tf.cast(live, tf.int32))
    num_slots = tf.size(carried.slots)
    worth_it = (num_live > 0) & (tf.cast(num_live, tf.float32)
                                 <= COMPACT_WHEN_LIVE_AT_MOST * tf.cast(num_slots, tf.float32))

    def drop_done():
        keep = tf.cast(tf.where(live)[:, 0], tf.int32)
        rows = tf.reshape(keep[:, None] * beam_size + tf.range(beam_size)[None, :], [-1])
        take = lambda t: tf.gather(t, rows)  # noqa: E731
        return _Carried(tf.gather(carried.slots, keep), take(carried.ids),
                        tf.nest.map_structure(take, carried.state),
                        tf.nest.map_structure(take, carried.context))

    return tf.cond(worth_it, drop_done, lambda: carried)


def _while_loop(cond, body, loop, max_length, compact):
    """tf.while_loop over one namedtuple with a `carried` field, which may shrink when
    compact."""
    invariants = None
    if compact:
        relax = lambda t: (t.shape if t.shape.rank == 0  # noqa: E731
                           else tf.TensorShape([None]).concatenate(t.shape[1:]))
        invariants = tf.nest.map_structure(  # None: a TensorArray's own
            lambda t: t.shape if isinstance(t, tf.Tensor) else None, loop)
        invariants = invariants._replace(carried=tf.nest.map_structure(relax, loop.carried))
        invariants = (invariants,)
    return tf.while_loop(cond, lambda loop: (body(loop),), (loop,),
                         shape_invariants=invariants,
                         maximum_iterations=max_length)[0]


def _probability_of(logits, tokens):
    """softmax(logits)[row, tokens[row]]: logits [n, vocab], tokens [n] -> [n].

    One fused softmax pass (oneDNN's on CPU) costs about 40 % of the four passes
    of tf.reduce_logsumexp over a [320, 8000] block, so the searches normalise
    through it."""
    return tf.gather(tf.nn.softmax(logits), tokens[:, None], batch_dims=1)[:, 0]


def _chunk_size(n, k):
    """About sqrt(n / k) (balances top_k's two small calls), preferring a divisor of n
    within a factor 1.5 of it, so the row needs no padding copy (beam x vocab usually
    has one: 5 x 8000 -> 64)."""
    target = max(8.0, (n / k) ** 0.5)
    divisors = [d for d in range(max(8, int(target / 1.5)), int(target * 1.5) + 1) if n % d == 0]
    if divisors:
        return min(divisors, key=lambda d: abs(math.log(d / target)))
    return int(round(target))


def _run_as_graph(search, *args):
    """Runs `search(*args)` as one graph: traced into a tf.function when eager."""
    if tf.executing_eagerly():
        return tf.function(search)(*args)
    return search(*args)


def _check(condition, message):
    if not condition:
        raise ValueError(message)


# ----------------------------------------------------------------------------
# Greedy search.

_GreedyLoop = collections.namedtuple(
    "_GreedyLoop", ["step", "carried", "seq", "log_prob", "finished", "lengths"])
# step []; carried _Carried with rows [A] (A <= batch); seq [batch, max_length];
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
    _check(isinstance(max_length, int) and max_length >= 1,
           f"max_length must be a positive int (got {max_length!r})")

    step = _scoring_step(step_fn, context is not None)
    eos = tf.constant(eos_id, tf.int32)

    def search(state, context):
        time = tf.range(max_length)[None, :]  # [1, max_length]
        loop = _GreedyLoop(
            step=tf.constant(0),
            carried=_Carried(slots=tf.range(batch_size),
                             ids=tf.fill([batch_size], tf.constant(bos_id, tf.int32)),
                             state=state, context=context),
            seq=tf.fill([batch_size, max_length], eos),
            log_prob=tf.zeros([batch_size], tf.float32),
            finished=tf.zeros([batch_size], tf.bool),
            lengths=tf.zeros([batch_size], tf.int32))

        def body(loop):
            carried = loop.carried
            alive = tf.logical_not(loop.finished)  # [batch]
            rows = tf.cast(tf.where(tf.gather(alive, carried.slots))[:, 0], tf.int32)  # [m]
            sentences = tf.gather(carried.slots, rows)  # [m] their batch index
            logits, state = step(carried.ids, carried.state, rows, carried.context)  # [m, vocab]
            row_tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)  # [m]
            row_log_prob = tf.math.log(_probability_of(logits, row_tokens))  # [m]
            token_log_prob = tf.scatter_nd(  # [batch], 0 where finished
                sentences[:, None], row_log_prob, [batch_size])
            tokens = tf.tensor_scatter_nd_update(
                tf.fill([batch_size], eos), sentences[:, None], row_tokens)  # [batch]
            just_finished = alive & tf.equal(tokens, eos_id)
            finished = loop.finished | just_finished
            carried = carried._replace(ids=tf.gather(tokens, carried.slots), state=state)
            if compact:
                carried = _compact(carried, tf.logical_not(finished), 1)
            return _GreedyLoop(
                step=loop.step + 1, carried=carried,
                seq=tf.where(tf.equal(time, loop.step), tokens[:, None], loop.seq),
                log_prob=tf.where(alive, loop.log_prob + token_log_prob, loop.log_prob),
                finished=finished,
                lengths=tf.where(just_finished, loop.step, loop.lengths))

        def cond(loop):
            return (loop.step < max_length) & tf.logical_not(tf.reduce_all(loop.finished))

        loop = _while_loop(cond, body, loop, max_length, compact)
        lengths = tf.where(loop.finished, loop.lengths, loop.step)
        return SearchResult(ids=loop.seq[:, None, :], scores=loop.log_prob[:, None],
                            lengths=lengths[:, None])

    return _run_as_graph(search, initial_state, () if context is None else context)


# ----------------------------------------------------------------------------
# Beam search.

_BeamLoop = collections.namedtuple("_BeamLoop", [
    "step", "carried", "alive_log_prob", "alive_coverage", "alive_candidate",
    "finished_scores", "finished_lengths", "finished_candidate", "history"])
# step []; carried _Carried with A <= batch sentences, so A*beam rows (A before
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
    _check(isinstance(max_length, int) and max_length >= 1,
           f"max_length must be a positive int (got {max_length!r})")
    _check(isinstance(beam_size, int) and beam_size >= 1,
           f"beam_size must be a positive int (got {beam_size!r})")
    _check(1 <= num_hypotheses <= beam_size,
           f"num_hypotheses must be in [1, beam_size={beam_size}] (got {num_hypotheses})")
    _check(length_penalty >= 0, f"length_penalty must be >= 0 (got {length_penalty})")
    _check(coverage_penalty >= 0, f"coverage_penalty must be >= 0 (got {coverage_penalty})")
    if coverage_penalty > 0:
        _check(isinstance(initial_state, collections.abc.Mapping)
               and ALIGNMENTS_KEY in initial_state,
               f"coverage_penalty > 0 needs a dict state with an {ALIGNMENTS_KEY!r} "
               f"entry [batch, src_time]")
    config = _BeamConfig(batch_size, beam_size, num_hypotheses, max_length, bos_id, eos_id,
                         float(length_penalty), float(coverage_penalty))

    step = _scoring_step(step_fn, context is not None)

    def search(state, source_length, context, max_lengths):
        source_mask = _source_mask(state, source_length, config)
        longest = (max_length if max_lengths is None
                   else tf.minimum(tf.cast(max_lengths, tf.int32), max_length))
        lp_longest = gnmt_length_penalty(longest, config.alpha)  # [] or [batch]
        loop = _initial_beam_loop(state, context, config)
        loop = _beam_step(loop, step, source_mask, config, compact, lp_longest, width=1)
        loop = _while_loop(lambda loop: _beam_not_done(loop, config, lp_longest),
                           lambda loop: _beam_step(loop, step, source_mask, config, compact,
                                                   lp_longest, width=beam_size),
                           loop, max_length - 1, compact)
        return _beam_result(loop, source_mask, config)

    return _run_as_graph(search, initial_state, source_length,
                         () if context is None else context, max_lengths)


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
        carried=_Carried(slots=tf.range(batch),
                         ids=tf.fill([batch], tf.constant(config.bos_id, tf.int32)),
                         state=state, context=context),
        alive_log_prob=tf.zeros([batch, 1], tf.float32),
        alive_coverage=tf.zeros([batch, 1, src_time], tf.float32),
        alive_candidate=tf.zeros([batch, 1], tf.int32),
        finished_scores=tf.fill([batch, num_hyps], _NEG_INF),
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
    batch, beam = config.batch_size, config.beam_size
    carried = loop.carried
    live = tf.gather(~_sentence_done(loop, config, lp_longest), carried.slots)  # [A]
    live = tf.cast(tf.where(live)[:, 0], tf.int32)  # [m] carried sentences not done
    sentences = tf.gather(carried.slots, live)  # [m] their batch index
    rows = tf.reshape(live[:, None] * width + tf.range(width)[None, :], [-1])  # [m*width]
    logits, state = step(carried.ids, carried.state, rows, carried.context)  # [m*width, vocab]
    vocab = logits.shape[-1]  # static when known
    _check(vocab is None or vocab >= 2, f"beam search needs vocab >= 2 (got {vocab})")
    # A sentence's 2*beam best extensions are among its rows' 2*beam best each, and a
    # row's order is its logits' order: only those are normalised and ranked. Ties
    # still go to the lower beam, then the lower token, as over all beam * vocab.
    per_row = 2 * beam if vocab is None else min(2 * beam, vocab)
    row_best, row_tokens = top_k(logits, per_row)  # [m*beam, per_row]
    # logsumexp = a logit minus its log-probability, taken at the row's best token
    # (its probability is >= 1 / vocab, so the log is exact to float32 rounding).
    best_probability = _probability_of(logits, row_tokens[:, 0])  # [m*beam]
    row_best -= row_best[:, :1] - tf.math.log(best_probability)[:, None]  # log-probs
    totals = (tf.gather(loop.alive_log_prob, sentences)[:, :, None]
              + tf.reshape(row_best, [-1, width, per_row]))  # [m, width, per_row]
    # Candidates: the 2*beam best extensions, sorted; -inf for done sentences. [batch, 2*beam]
    sentence_scores, pick = _top_candidates(tf.reshape(totals, [-1, width * per_row]), 2 * beam)
    sentence_tokens = tf.gather(tf.reshape(row_tokens, [-1, width * per_row]), pick, batch_dims=1)
    scores = tf.tensor_scatter_nd_update(tf.fill([batch, 2 * beam], _NEG_INF),
                                         sentences[:, None], sentence_scores)
    origins = tf.scatter_nd(sentences[:, None], pick // per_row, [batch, 2 * beam])  # < width
    tokens = tf.scatter_nd(sentences[:, None], sentence_tokens, [batch, 2 * beam])
    coverage = loop.alive_coverage  # [batch, width, src_time]
    if config.beta > 0:
        alignments = tf.cast(state[ALIGNMENTS_KEY], tf.float32)  # [A*beam, src_time]
        coverage = tf.tensor_scatter_nd_add(
            coverage, carried.slots[:, None],
            tf.reshape(alignments, [-1, width, tf.shape(coverage)[-1]]))
    coverage = tf.gather(coverage, origins, batch_dims=1)  # [batch, 2*beam, src_time]
    is_eos = tf.equal(tokens, config.eos_id)

    # Alive: the beam best non-eos candidates; one gather per state tensor.
    alive_log_prob, keep = tf.math.top_k(tf.where(is_eos, _NEG_INF, scores), k=beam)
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
    new_finished = is_eos & ranked_in & (scores > _NEG_INF)
    new_scores = _final_scores(scores, loop.step, coverage, source_mask, config)
    new_scores = tf.where(new_finished, new_scores, _NEG_INF)
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
        loop = loop._replace(carried=_compact(loop.carried,
                                              ~_sentence_done(loop, config, lp_longest), beam))
    return loop


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
    return (tf.concat([values, tf.fill([rows, k - n], _NEG_INF)], 1),
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
        tf.cast(loop.finished_scores > _NEG_INF, tf.int32), axis=1, keepdims=True)  # [batch, 1]
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
