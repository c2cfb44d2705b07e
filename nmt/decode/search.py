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
hypotheses (a test in tests/decode/test_search.py shows it): under XLA pass compact=False.

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
from nmt.decode.beam import beam_search  # noqa: F401
from nmt.decode.greedy import greedy_search  # noqa: F401
from nmt.decode.search_loop import (COMPACT_WHEN_LIVE_AT_MOST, SearchResult, tile_batch,  # noqa: F401
                             top_k)
from nmt.decode.search_penalties import (ALIGNMENTS_KEY, COVERAGE_FLOOR,  # noqa: F401
                                  gnmt_coverage_penalty, gnmt_length_penalty)
