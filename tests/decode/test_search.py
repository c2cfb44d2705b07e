"""Greedy and beam search on hand-built language models (tables of log-probs by prefix)."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from nmt.decode import beam, search

EOS, BOS = 0, 1


class PrefixLM:
    """A fake decoder: log_probs[sentence, prefix code, vocab], the prefix read from the state.

    The state carries the code of the prefix fed so far, the step and the sentence
    index, so a state that does not follow its hypothesis (or leaks across
    sentences) changes the log-probs, and the scores stop matching `log_prob`.
    With `src_time`, the state also holds fake alignments: token t attends to
    source position t - 2 (bos and eos attend nowhere).
    """

    def __init__(self, log_probs, src_time=None):
        self.table = np.asarray(log_probs, np.float32)  # [sentences, codes, vocab]
        self.vocab = self.table.shape[-1]
        self.src_time = src_time

    def code(self, prefix):
        code = 0
        for token in prefix:
            code = code * (self.vocab + 1) + token + 1
        return code

    def log_prob(self, sentence, tokens):
        """Sum of the log-probs of `tokens` (eos included if present)."""
        return sum(float(self.table[sentence, self.code(tokens[:i]), t])
                   for i, t in enumerate(tokens))

    def initial_state(self, sentences):
        batch = len(sentences)
        state = {"code": tf.zeros([batch], tf.int32), "step": tf.zeros([batch], tf.int32),
                 "sentence": tf.constant(sentences, tf.int32)}
        if self.src_time:
            state[search.ALIGNMENTS_KEY] = tf.zeros([batch, self.src_time])
        return state

    def step_fn(self, ids, state):
        assert ids.dtype == tf.int32 and ids.shape.rank == 1
        code = tf.where(state["step"] == 0, 0, state["code"] * (self.vocab + 1) + ids + 1)
        log_probs = tf.gather_nd(tf.constant(self.table), tf.stack([state["sentence"], code], -1))
        new_state = {"code": code, "step": state["step"] + 1, "sentence": state["sentence"]}
        if self.src_time:
            new_state[search.ALIGNMENTS_KEY] = tf.one_hot(ids - 2, self.src_time)
        return log_probs, new_state


def num_codes(vocab, max_length):
    return (vocab + 1) ** (max_length - 1)


def spec_table(vocab, max_length, spec, default):
    """Log-prob table [1, codes, vocab]: spec maps a prefix to {token: prob}; other
    tokens share the rest of the mass; unlisted prefixes use `default`."""
    lm = PrefixLM(np.zeros([1, 1, vocab]))
    table = np.tile(np.asarray(_distribution(vocab, default)), [num_codes(vocab, max_length), 1])
    for prefix, probs in spec.items():
        table[lm.code(prefix)] = _distribution(vocab, probs)
    return np.log(table)[None]


def _distribution(vocab, probs):
    rest = [t for t in range(vocab) if t not in probs]
    left = (1.0 - sum(probs.values())) / max(len(rest), 1)
    dist = np.array([probs.get(t, left) for t in range(vocab)]) + 1e-4
    return dist / dist.sum()


def random_table(num_sentences, vocab, max_length, eos_bias, seed):
    rng = np.random.RandomState(seed)
    logits = rng.normal(size=[num_sentences, num_codes(vocab, max_length), vocab]) * 2.0
    logits[..., EOS] += eos_bias
    return tf.nn.log_softmax(logits).numpy()


def run_beam(lm, sentences, **kwargs):
    result = search.beam_search(lm.step_fn, lm.initial_state(sentences), len(sentences),
                                BOS, EOS, **kwargs)
    return tuple(t.numpy() for t in result)


def run_greedy(lm, sentences, max_length):
    result = search.greedy_search(lm.step_fn, lm.initial_state(sentences), len(sentences),
                                  BOS, EOS, max_length)
    return tuple(t.numpy() for t in result)


def lp(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def brute_force(lm, sentence, max_length, alpha, n):
    """The n best finished hypotheses by exhaustive enumeration: [(score, tokens)]."""
    found = []
    for length in range(max_length):
        for body in itertools.product([t for t in range(lm.vocab) if t != EOS], repeat=length):
            tokens = body + (EOS,)
            found.append((lm.log_prob(sentence, tokens) / lp(length, alpha), tokens))
    return sorted(found, key=lambda x: -x[0])[:n]


def hypothesis(ids, lengths, b, k):
    """Tokens of hypothesis k of sentence b with its eos (if finished)."""
    return tuple(int(t) for t in ids[b, k, :lengths[b, k] + 1])


# A greedy trap: 2 is the likelier first token but everything after it is poor.
TRAP = spec_table(5, 6, {(): {2: 0.6, 3: 0.4}, (2,): {EOS: 0.3, 2: 0.25, 3: 0.25, 4: 0.2},
                         (3,): {EOS: 0.9}}, default={EOS: 0.5})


def test_tile_batch_is_batch_major():
    tiled = search.tile_batch({"x": tf.constant([[1], [2]]), "y": (tf.constant([3, 4]),)}, 3)
    np.testing.assert_array_equal(tiled["x"][:, 0], [1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(tiled["y"][0], [3, 3, 3, 4, 4, 4])


def test_beam_finds_sequence_greedy_misses():
    lm = PrefixLM(TRAP)
    g_ids, g_scores, g_lengths = run_greedy(lm, [0], max_length=6)
    b_ids, b_scores, b_lengths = run_beam(lm, [0], beam_size=2, max_length=6)
    assert g_ids.shape == b_ids.shape == (1, 1, 6)
    assert hypothesis(g_ids, g_lengths, 0, 0) == (2, EOS)
    assert hypothesis(b_ids, b_lengths, 0, 0) == (3, EOS)
    np.testing.assert_array_equal(b_ids[0, 0], [3, EOS, EOS, EOS, EOS, EOS])
    assert b_scores[0, 0] > g_scores[0, 0]
    np.testing.assert_allclose(b_scores[0, 0], lm.log_prob(0, (3, EOS)), rtol=1e-5)


def test_search_stops_early():
    lm = PrefixLM(TRAP)
    calls = tf.Variable(0)

    def counting_step(ids, state):
        calls.assign_add(1)
        return lm.step_fn(ids, state)

    search.beam_search(counting_step, lm.initial_state([0]), 1, BOS, EOS, beam_size=2,
                       max_length=6)
    assert int(calls.numpy()) == 2  # step 1 finishes "3 eos"; nothing alive can beat it
    calls.assign(0)
    search.greedy_search(counting_step, lm.initial_state([0]), 1, BOS, EOS, max_length=6)
    assert int(calls.numpy()) == 2


def test_beam_one_equals_greedy():
    max_length = 5
    lm = PrefixLM(random_table(6, 5, max_length, eos_bias=0.5, seed=1))
    sentences = list(range(6))
    greedy = run_greedy(lm, sentences, max_length)
    beam = run_beam(lm, sentences, beam_size=1, max_length=max_length)
    for g, b in zip(greedy, beam):
        np.testing.assert_array_equal(g, b)
    lengths = greedy[2][:, 0]
    assert (lengths == max_length).any() and (lengths < max_length).any()  # both cases seen


def test_nbest_exact_against_brute_force():
    max_length = 4  # 3 non-eos tokens: at most 27 alive prefixes, beam 128 is exhaustive
    lm = PrefixLM(random_table(1, 4, max_length, eos_bias=0.0, seed=2))
    ids, scores, lengths = run_beam(lm, [0], beam_size=128, max_length=max_length,
                                    num_hypotheses=5, length_penalty=0.7)
    expected = brute_force(lm, 0, max_length, alpha=0.7, n=5)
    assert [hypothesis(ids, lengths, 0, k) for k in range(5)] == [h for _, h in expected]
    np.testing.assert_allclose(scores[0], [s for s, _ in expected], rtol=1e-5)


def test_nbest_distinct_sorted_and_states_follow_hypotheses():
    max_length = 6
    lm = PrefixLM(random_table(3, 5, max_length, eos_bias=1.0, seed=3))
    ids, scores, lengths = run_beam(lm, [0, 1, 2], beam_size=4, max_length=max_length,
                                    num_hypotheses=4)
    assert ids.shape == (3, 4, max_length) and ids.dtype == np.int32
    assert scores.shape == lengths.shape == (3, 4)
    for b in range(3):
        hyps = [hypothesis(ids, lengths, b, k) for k in range(4)]
        assert len(set(hyps)) == 4
        assert all(h[-1] == EOS for h in hyps)
        assert np.all(np.diff(scores[b]) <= 0)
        # The prefix code in the state picks the log-probs: a state that did not
        # follow its hypothesis would give scores that do not rescore.
        np.testing.assert_allclose(scores[b], [lm.log_prob(b, h) for h in hyps], rtol=1e-5)
        assert np.all(ids[b, np.arange(max_length)[None] > lengths[b][:, None]] == EOS)


def test_length_penalty_flips_ranking():
    spec = {(): {2: 0.55, 3: 0.45}, (2,): {EOS: 0.5}, (3,): {3: 0.9}, (3, 3): {3: 0.9},
            (3, 3, 3): {EOS: 0.6}}
    lm = PrefixLM(spec_table(5, 6, spec, default={EOS: 0.5}))
    short, long = (2, EOS), (3, 3, 3, EOS)
    ids, scores, lengths = run_beam(lm, [0], beam_size=3, max_length=6)
    assert hypothesis(ids, lengths, 0, 0) == short
    ids, scores, lengths = run_beam(lm, [0], beam_size=3, max_length=6, length_penalty=1.0)
    assert hypothesis(ids, lengths, 0, 0) == long and lengths[0, 0] == 3
    np.testing.assert_allclose(scores[0, 0], lm.log_prob(0, long) / lp(3, 1.0), rtol=1e-5)
    assert brute_force(lm, 0, 6, alpha=1.0, n=1)[0][1] == long


def test_coverage_penalty_prefers_covering_hypotheses():
    spec = {(): {2: 0.9}, (2,): {EOS: 0.6, 3: 0.3}, (2, 3): {4: 0.9}, (2, 3, 4): {EOS: 0.9}}
    lm = PrefixLM(spec_table(6, 6, spec, default={EOS: 0.5}), src_time=4)
    short, covering = (2, EOS), (2, 3, 4, EOS)  # covering attends to source 0, 1, 2
    kwargs = dict(beam_size=3, max_length=6)
    ids, scores, lengths = run_beam(lm, [0], **kwargs)
    assert hypothesis(ids, lengths, 0, 0) == short
    beta, length = 0.2, tf.constant([3])
    ids, scores, lengths = search.beam_search(
        lm.step_fn, lm.initial_state([0]), 1, BOS, EOS, coverage_penalty=beta,
        source_length=length, num_hypotheses=2, **kwargs)
    assert hypothesis(ids, lengths.numpy(), 0, 0) == covering
    # Every real source position covered, the pad (position 3) not penalised: cp = 0.
    np.testing.assert_allclose(scores[0, 0], lm.log_prob(0, covering), rtol=1e-5)
    assert scores[0, 1] < scores[0, 0]
    # Without source lengths the never-attended position 3 counts too.
    ids, scores, lengths = run_beam(lm, [0], coverage_penalty=beta, **kwargs)
    assert hypothesis(ids, lengths, 0, 0) == covering
    expected = lm.log_prob(0, covering) + beta * np.log(search.COVERAGE_FLOOR)
    np.testing.assert_allclose(scores[0, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("seed", [7, 9])
def test_coverage_follows_its_hypothesis(seed):
    """Every returned score rescores from its ids, coverage penalty included."""
    max_length, beta, alpha = 6, 0.3, 0.5
    lm = PrefixLM(random_table(3, 6, max_length, eos_bias=0.5, seed=seed), src_time=4)
    source_length = [4, 2, 3]
    ids, scores, lengths = search.beam_search(
        lm.step_fn, lm.initial_state([0, 1, 2]), 3, BOS, EOS, beam_size=4,
        max_length=max_length, length_penalty=alpha, coverage_penalty=beta,
        num_hypotheses=3, source_length=tf.constant(source_length))
    for b in range(3):
        for k in range(3):
            tokens = hypothesis(ids.numpy(), lengths.numpy(), b, k)
            coverage = np.zeros(4)
            for fed in (BOS,) + tokens[:-1]:  # the step's input picks its fake alignment
                if 2 <= fed < 6:
                    coverage[fed - 2] += 1.0
            log_cov = np.log(np.clip(coverage, search.COVERAGE_FLOOR, 1.0))[:source_length[b]]
            expected = (lm.log_prob(b, tokens) / lp(int(lengths[b, k]), alpha)
                        + beta * log_cov.sum())
            np.testing.assert_allclose(scores[b, k], expected, rtol=1e-5)


def test_coverage_penalty_needs_alignments():
    lm = PrefixLM(TRAP)
    with pytest.raises(ValueError, match="alignments"):
        run_beam(lm, [0], beam_size=2, max_length=4, coverage_penalty=0.2)


def test_batch_equals_sentences_alone():
    max_length = 6
    lm = PrefixLM(random_table(3, 5, max_length, eos_bias=0.5, seed=4))
    kwargs = dict(beam_size=3, max_length=max_length, num_hypotheses=2, length_penalty=0.6)
    batched = run_beam(lm, [0, 1, 2], **kwargs)
    for b in range(3):
        alone = run_beam(lm, [b], **kwargs)
        for got, want in zip(batched, alone):
            np.testing.assert_allclose(got[b], want[0], rtol=1e-6)
    assert len(set(batched[2][:, 0])) > 1  # sentences finished at different steps


def test_unfinished_hypothesis_fills_missing_slots():
    # Only "2 eos" finishes within 2 steps; the second slot takes the best unfinished.
    lm = PrefixLM(spec_table(5, 3, {(): {2: 0.5, 3: 0.4}, (2,): {EOS: 0.6}},
                             default={EOS: 0.01}))
    ids, scores, lengths = run_beam(lm, [0], beam_size=2, max_length=2, num_hypotheses=2)
    assert hypothesis(ids, lengths, 0, 0) == (2, EOS)
    assert lengths[0, 1] == 2 and ids[0, 1, 0] == 3 and ids[0, 1, 1] != EOS
    unfinished = tuple(ids[0, 1])
    np.testing.assert_allclose(scores[0], [lm.log_prob(0, (2, EOS)), lm.log_prob(0, unfinished)],
                               rtol=1e-5)


@pytest.mark.parametrize("jit_compile,compact", [(False, True), (False, False), (True, False)])
def test_inside_tf_function(jit_compile, compact):
    # XLA cannot carry shrinking loop tensors, so it runs the searches uncompacted.
    max_length = 5
    lm = PrefixLM(random_table(3, 6, max_length, eos_bias=0.5, seed=5), src_time=4)
    kwargs = dict(beam_size=3, max_length=max_length, num_hypotheses=2, length_penalty=0.6,
                  coverage_penalty=0.1)

    @tf.function(jit_compile=jit_compile)
    def decode(state, source_length):
        beam = search.beam_search(lm.step_fn, state, 3, BOS, EOS,
                                  source_length=source_length, compact=compact, **kwargs)
        greedy = search.greedy_search(lm.step_fn, state, 3, BOS, EOS, max_length,
                                      compact=compact)
        return beam, greedy

    source_length = tf.constant([4, 2, 3])
    beam, greedy = decode(lm.initial_state([0, 1, 2]), source_length)
    want_beam = search.beam_search(lm.step_fn, lm.initial_state([0, 1, 2]), 3, BOS, EOS,
                                   source_length=source_length, **kwargs)
    want_greedy = run_greedy(lm, [0, 1, 2], max_length)
    for got, want in zip(beam + greedy, tuple(want_beam) + want_greedy):
        np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-5)


@pytest.mark.parametrize("rows,n,k", [(3, 700, 10), (5, 40_000, 10), (2, 9_999, 6), (4, 640, 1),
                                        (2, 7_919, 10)])  # 7919 is prime: padded chunks
def test_chunked_top_k_equals_tf_top_k(rows, n, k):
    rng = np.random.default_rng(n)
    values = rng.integers(-50, 50, size=(rows, n)).astype(np.float32)  # many ties
    values[0, : n // 2] = -np.inf  # a dead beam's block, as at step 0
    values[-1, :] = -1e9  # an all-equal row (forced eos)
    got = search.top_k(tf.constant(values), k)
    want = tf.math.top_k(tf.constant(values), k)
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())


class RandomRNNLM:
    """A fake decoder with a large vocabulary: h' = tanh(h U + E[id]), log_softmax(h W)."""

    def __init__(self, vocab, depth=8, seed=0):
        rng = np.random.default_rng(seed)
        self.w = tf.constant(rng.normal(size=(depth, vocab)).astype(np.float32) * 2)
        self.u = tf.constant(rng.normal(size=(depth, depth)).astype(np.float32))
        self.e = tf.constant(rng.normal(size=(vocab, depth)).astype(np.float32))
        self.h0 = tf.constant(rng.normal(size=(4, depth)).astype(np.float32))

    def step_fn(self, ids, state):
        h = tf.tanh(tf.matmul(state["h"], self.u) + tf.gather(self.e, ids))
        return tf.nn.log_softmax(tf.matmul(h, self.w)), {"h": h}


def test_beam_search_on_a_large_vocabulary_matches_plain_top_k(monkeypatch):
    lm = RandomRNNLM(vocab=3000)
    kwargs = dict(beam_size=4, max_length=7, num_hypotheses=3, length_penalty=0.6)
    fast = search.beam_search(lm.step_fn, {"h": lm.h0}, 4, BOS, EOS, **kwargs)
    monkeypatch.setattr(beam, "top_k", lambda values, k: tf.math.top_k(values, k=k))
    plain = search.beam_search(lm.step_fn, {"h": lm.h0}, 4, BOS, EOS, **kwargs)
    for got, want in zip(fast, plain):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_chunked_top_k_compiles_with_xla():
    values = tf.constant(np.random.default_rng(1).normal(size=(3, 5000)).astype(np.float32))
    got = tf.function(lambda v: search.top_k(v, 8), jit_compile=True)(values)
    want = tf.math.top_k(values, 8)
    np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())


class CountingContextLM(PrefixLM):
    """PrefixLM that reads each row's sentence from the search's context, not the state,
    and counts the rows its step runs on (the carried rows)."""

    def __init__(self, log_probs, src_time=None):
        super().__init__(log_probs, src_time)
        self.rows_run = tf.Variable(0)

    def initial_state(self, sentences):
        state = super().initial_state(sentences)
        del state["sentence"]
        return state

    def step_fn(self, ids, state, context):
        self.rows_run.assign_add(tf.shape(ids)[0])
        log_probs, new_state = super().step_fn(ids, {**state, "sentence": context["sentence"]})
        del new_state["sentence"]
        return log_probs, new_state


@pytest.mark.parametrize("beam_size", [1, 3])
def test_dropping_done_sentences_runs_fewer_rows_with_the_same_result(beam_size):
    # Six sentences with eos made likelier for some, so they finish at different steps.
    max_length = 6
    table = random_table(6, 4, max_length, eos_bias=0.0, seed=11)
    table[:4, :, EOS] += 6.0
    lm = CountingContextLM(tf.nn.log_softmax(table).numpy(), src_time=5)
    sentences = list(range(6))
    context = {"sentence": tf.constant(sentences, tf.int32)}

    def run(compact):
        lm.rows_run.assign(0)
        if beam_size == 1:
            result = search.greedy_search(lm.step_fn, lm.initial_state(sentences), 6, BOS, EOS,
                                          max_length, context=context, compact=compact)
        else:
            result = search.beam_search(lm.step_fn, lm.initial_state(sentences), 6, BOS, EOS,
                                        beam_size, max_length, length_penalty=0.6,
                                        coverage_penalty=0.01, num_hypotheses=2,
                                        source_length=tf.constant([5, 4, 3, 5, 2, 1]),
                                        context=context, compact=compact)
        return [t.numpy() for t in result], int(lm.rows_run.numpy())

    (ids, scores, lengths), compact_rows = run(True)
    (want_ids, want_scores, want_lengths), full_rows = run(False)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(lengths, want_lengths)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    assert compact_rows < full_rows
    # The uncompacted run is checked against the table itself (the context is read).
    for b in sentences:
        for k in range(ids.shape[1]):
            tokens = tuple(int(t) for t in ids[b, k, :lengths[b, k] + 1])[:max_length]
            if beam_size == 1:
                np.testing.assert_allclose(scores[b, k], lm.log_prob(b, tokens), rtol=1e-5,
                                           atol=1e-6)


def test_a_context_needs_a_step_fn_that_takes_it():
    lm = PrefixLM(random_table(1, 4, 3, eos_bias=0.0, seed=0))
    with pytest.raises(ValueError, match="context"):
        search.greedy_search(lm.step_fn, lm.initial_state([0]), 1, BOS, EOS, 3,
                             context={"x": tf.zeros([1])})


def test_logits_need_not_be_normalised():
    # Shifting each row's log-probs by its own constant changes no hypothesis or score.
    max_length = 5
    lm = PrefixLM(random_table(3, 6, max_length, eos_bias=0.5, seed=7), src_time=4)

    def shifted_step_fn(ids, state):
        log_probs, new_state = lm.step_fn(ids, state)
        shift = tf.cast(new_state["code"] % 7, tf.float32) * 3.0 - 5.0  # [n], varies by row
        return log_probs + shift[:, None], new_state

    kwargs = dict(beam_size=3, max_length=max_length, num_hypotheses=2, length_penalty=0.6,
                  coverage_penalty=0.1, source_length=tf.constant([4, 2, 3]))
    for run in (lambda f: search.beam_search(f, lm.initial_state([0, 1, 2]), 3, BOS, EOS, **kwargs),
                lambda f: search.greedy_search(f, lm.initial_state([0, 1, 2]), 3, BOS, EOS,
                                               max_length)):
        got, want = run(shifted_step_fn), run(lm.step_fn)
        np.testing.assert_array_equal(got.ids.numpy(), want.ids.numpy())
        np.testing.assert_array_equal(got.lengths.numpy(), want.lengths.numpy())
        np.testing.assert_allclose(got.scores.numpy(), want.scores.numpy(), rtol=1e-5)


class ForcedEosLM(PrefixLM):
    """PrefixLM that forces eos once a hypothesis has limit[sentence] tokens, as the
    model does with max_length_ratio, and counts the steps it runs."""

    def __init__(self, log_probs, limits):
        super().__init__(log_probs)
        self.limits = tf.constant(limits, tf.int32)
        self.steps = tf.Variable(0)

    def step_fn(self, ids, state):
        self.steps.assign_add(1)
        log_probs, new_state = super().step_fn(ids, state)
        must_end = (state["step"] >= tf.gather(self.limits, state["sentence"]))[:, None]
        eos_only = tf.where(tf.range(self.vocab) == EOS, 0.0, -1e9)[None, :]
        return tf.where(must_end, eos_only, log_probs), new_state


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_per_sentence_length_bounds_stop_sooner_with_the_same_result(length_penalty):
    max_length, limits = 8, [5, 6, 7]
    lm = ForcedEosLM(random_table(3, 4, max_length, eos_bias=2.0, seed=19), limits)

    def run(max_lengths):
        lm.steps.assign(0)
        result = search.beam_search(lm.step_fn, lm.initial_state([0, 1, 2]), 3, BOS, EOS, 3,
                                    max_length, length_penalty=length_penalty,
                                    num_hypotheses=2, max_lengths=max_lengths)
        return [t.numpy() for t in result], int(lm.steps.numpy())

    (ids, scores, lengths), bounded_steps = run(tf.constant(limits))
    (want_ids, want_scores, want_lengths), steps = run(None)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(lengths, want_lengths)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
    assert lengths.max(axis=1).tolist() <= limits  # the bounds hold
    if length_penalty:  # lp(8) bounds more loosely than lp(limit): the loop ran on
        assert bounded_steps < steps
    else:  # without a length penalty the bound is already tight
        assert bounded_steps == steps
