"""What greedy and beam search share (`nmt.decode.search` describes the contract): the rows
they carry and drop, the loop, the step function's calling convention, and top_k."""
import collections
import inspect
import math

import tensorflow as tf

SearchResult = collections.namedtuple("SearchResult", ["ids", "scores", "lengths"])
# ids [batch, num_hypotheses, max_length] int32; scores [batch, num_hypotheses]
# float32; lengths [batch, num_hypotheses] int32

# A search drops done sentences' rows once the unfinished ones fill at most this
# fraction of the rows it carries: each drop copies the context (the encoder
# memory) once, about what one attention step reads, so it waits for a share.
COMPACT_WHEN_LIVE_AT_MOST = 0.75

NEG_INF = float("-inf")


def tile_batch(nested, multiplier):
    """Repeats every `[batch, ...]` tensor batch-major to `[batch * multiplier, ...]`.

    Row `b * multiplier + k` of the result is row `b` of the input, the layout
    beam search uses for N.
    """
    return tf.nest.map_structure(lambda t: tf.repeat(t, multiplier, axis=0), nested)


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
        values = tf.pad(values, [[0, 0], [0, num_chunks * chunk - n]], constant_values=NEG_INF)
    chunks = tf.reshape(values, [rows, num_chunks, chunk])
    _, best = tf.math.top_k(tf.reduce_max(chunks, axis=-1), k=k)  # [rows, k]
    best = tf.sort(best, axis=-1)  # index order, for the ties
    candidates = tf.reshape(tf.gather(chunks, best, batch_dims=1), [rows, k * chunk])
    top, position = tf.math.top_k(candidates, k=k)
    index = tf.gather(best, position // chunk, batch_dims=1) * chunk + position % chunk
    return top, index


def scoring_step(step_fn, has_context):
    """step_fn as `(ids, state, rows, context) -> (logits[rows], new_state)`, whether
    step_fn takes rows or not; context is passed on only when the search has one."""
    try:
        parameters = inspect.signature(step_fn).parameters
    except (TypeError, ValueError):  # a callable without an inspectable signature
        parameters = {}
    check(not has_context or "context" in parameters,
           "a search given a context needs a step_fn with a `context` parameter")

    def step(ids, state, rows, context):
        kwargs = {"context": context} if has_context else {}
        if "rows" in parameters:
            return step_fn(ids, state, rows=rows, **kwargs)
        logits, state = step_fn(ids, state, **kwargs)
        return tf.gather(logits, rows), state

    return step


Carried = collections.namedtuple("Carried", ["slots", "ids", "state", "context"])
# What a search carries per row: slots [A] int32, the sentence (batch index) of
# each carried sentence; ids [A*beam]; state and context nested [A*beam, ...].


def compact_rows(carried, sentence_live, beam_size):
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
        return Carried(tf.gather(carried.slots, keep), take(carried.ids),
                        tf.nest.map_structure(take, carried.state),
                        tf.nest.map_structure(take, carried.context))

    return tf.cond(worth_it, drop_done, lambda: carried)


def run_loop(cond, body, loop, max_length, compact):
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


def probability_of(logits, tokens):
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


def run_as_graph(search, *args):
    """Runs `search(*args)` as one graph: traced into a tf.function when eager."""
    if tf.executing_eagerly():
        return tf.function(search)(*args)
    return search(*args)


def check(condition, message):
    if not condition:
        raise ValueError(message)
