"""Seq2Seq: the loss, shared embeddings, translation, and a tiny model that learns."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ModelConfig, TrainConfig
from nmt.data.batching import Batch
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.decode import search
from nmt.model.seq2seq import build_model, smoothed_cross_entropy
from nmt.training.trainer import make_train_step

SRC_VOCAB, TGT_VOCAB, UNITS = 19, 23, 16
FIRST_WORD = EOS_ID + 1  # ids below are PAD, UNK, BOS, EOS


def _model(seed=0, src_vocab=SRC_VOCAB, tgt_vocab=TGT_VOCAB, **fields):
    defaults = dict(num_encoder_layers=2, num_decoder_layers=2, num_units=UNITS,
                    embedding_size=UNITS, dropout=0.0)
    tf.random.set_seed(seed)
    return build_model(ModelConfig(**{**defaults, **fields}), src_vocab, tgt_vocab)


def _widen(model, seed=0, eos_bias=None):
    """Wide random weights: peaked next-token distributions, so no near-ties in search.
    eos_bias sets the output bias of EOS, which decides how soon sentences end."""
    generator = tf.random.Generator.from_seed(seed)
    for v in model.trainable_variables:
        v.assign(generator.uniform(v.shape, -0.5, 0.5))
    if eos_bias is not None:
        bias = model.decoder.output_layer.bias
        bias.assign(tf.tensor_scatter_nd_update(bias, [[EOS_ID]], [eos_bias]))
    return model


def _pairs(seed, src_lens, tgt_lens):
    rng = np.random.default_rng(seed)
    return [(rng.integers(FIRST_WORD, SRC_VOCAB, n), rng.integers(FIRST_WORD, TGT_VOCAB, m))
            for n, m in zip(src_lens, tgt_lens)]


def _batch(pairs, src_time=None, tgt_time=None, seed=0):
    """Pairs of id arrays -> Batch; time dims padded with random word ids (not PAD)."""
    rng = np.random.default_rng(seed)
    src_time = src_time or max(len(s) for s, _ in pairs)
    tgt_time = tgt_time or max(len(t) for _, t in pairs) + 1
    src = rng.integers(FIRST_WORD, SRC_VOCAB, (len(pairs), src_time)).astype(np.int32)
    tgt_in = rng.integers(FIRST_WORD, TGT_VOCAB, (len(pairs), tgt_time)).astype(np.int32)
    tgt_out = rng.integers(FIRST_WORD, TGT_VOCAB, (len(pairs), tgt_time)).astype(np.int32)
    for b, (s, t) in enumerate(pairs):
        src[b, :len(s)] = s
        tgt_in[b, :len(t) + 1] = np.concatenate([[BOS_ID], t])
        tgt_out[b, :len(t) + 1] = np.concatenate([t, [EOS_ID]])
    lens = lambda side: np.array([len(p[side]) for p in pairs], np.int32)  # noqa: E731
    return Batch(*map(tf.constant, (src, lens(0), tgt_in, tgt_out, lens(1) + 1)))


# ----------------------------------------------------------------------------
# Loss.

def test_smoothed_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype(np.float32) * 3.0
    labels = rng.integers(0, 7, size=(2, 3)).astype(np.int32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    eps = 0.2
    smoothed, plain = smoothed_cross_entropy(tf.constant(logits), tf.constant(labels), eps)
    np.testing.assert_allclose(plain.numpy(), nll, rtol=1e-5)
    np.testing.assert_allclose(smoothed.numpy(), (1 - eps) * nll + eps * (-log_p).mean(-1),
                               rtol=1e-5)

    smoothed, plain = smoothed_cross_entropy(tf.constant(logits), tf.constant(labels), 0.0)
    np.testing.assert_allclose(smoothed.numpy(), nll, rtol=1e-5)
    np.testing.assert_allclose(plain.numpy(), nll, rtol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("unlikely_target", [False, True])
def test_smoothed_cross_entropy_gradient_matches_tensorflow_ops(eps, unlikely_target):
    """The hand-written gradient equals autodiff through TensorFlow's own ops, for any
    upstream of both outputs, and with the NLL output unused (as when training);
    also when a target's probability is too small for -log p (about 1e-44 here)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 9)).astype(np.float32) * 3.0
    labels = rng.integers(0, 9, size=(3, 4)).astype(np.int32)
    if unlikely_target:
        logits[1, 2, labels[1, 2]] -= 100.0
    logits, labels = tf.constant(logits), tf.constant(labels)
    up_smoothed, up_nll = (tf.constant(rng.normal(size=(3, 4)).astype(np.float32))
                           for _ in range(2))

    def reference(lg):
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=lg)
        return (1 - eps) * nll + eps * tf.reduce_mean(-tf.nn.log_softmax(lg), -1), nll

    @tf.function
    def gradients(loss_fn):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(logits)
            smoothed, nll = loss_fn(logits)
            both = tf.reduce_sum(smoothed * up_smoothed + nll * up_nll)
            smoothed_only = tf.reduce_sum(smoothed * up_smoothed)
        return tape.gradient(both, logits), tape.gradient(smoothed_only, logits)

    want = gradients(reference)
    got = gradients(lambda lg: smoothed_cross_entropy(lg, labels, eps))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    for g, w in zip(smoothed_cross_entropy(logits, labels, eps), reference(logits)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5)


def test_loss_sums_valid_target_tokens():
    model = _model()
    batch = _batch(_pairs(0, [5, 2, 4], [3, 6, 1]), src_time=8, tgt_time=10)
    out = model.loss(batch, label_smoothing=0.0)
    log_p = tf.nn.log_softmax(model.logits(batch.src, batch.src_len, batch.tgt_in)).numpy()
    want = -sum(log_p[b, t, batch.tgt_out[b, t]] for b in range(3)
                for t in range(batch.tgt_len[b]))
    np.testing.assert_allclose(out.nll_sum.numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(out.loss_sum.numpy(), out.nll_sum.numpy(), rtol=1e-6)
    assert out.num_tokens.numpy() == np.sum(batch.tgt_len)


@pytest.mark.parametrize("encoder_type,layer_norm", [("bi", False), ("gnmt", False),
                                                      ("bi", True)])
def test_loss_is_padding_invariant(encoder_type, layer_norm):
    """A padded batch's loss is the sum of its sentences' losses computed alone."""
    model = _model(encoder_type=encoder_type, attention="bahdanau", layer_norm=layer_norm)
    pairs = _pairs(1, [5, 2, 4], [3, 6, 1])
    out = model.loss(_batch(pairs, src_time=9, tgt_time=11), label_smoothing=0.1)
    alone = [model.loss(_batch([p]), label_smoothing=0.1) for p in pairs]
    for field in ("loss_sum", "nll_sum", "num_tokens"):
        want = sum(getattr(a, field).numpy() for a in alone)
        np.testing.assert_allclose(getattr(out, field).numpy(), want, rtol=1e-5)


def test_share_embeddings_shares_the_variable():
    shared = _model(share_embeddings=True, src_vocab=TGT_VOCAB)
    separate = _model(src_vocab=TGT_VOCAB)
    assert shared.src_embedding is shared.tgt_embedding
    assert len(separate.trainable_variables) - len(shared.trainable_variables) == 1
    table = shared.src_embedding.table
    assert sum(v is table for v in shared.trainable_variables) == 1
    # The one table gets gradient from both sides: rows only seen in the source too.
    batch = _batch([(np.array([20, 21, 22]), np.array([4, 5]))])
    with tf.GradientTape() as tape:
        loss = shared.loss(batch).loss_sum
    grad = tf.convert_to_tensor(tape.gradient(loss, table)).numpy()
    assert np.all(np.abs(grad[[20, 21, 22]]).sum(-1) > 0.0)


# ----------------------------------------------------------------------------
# Translation.

SRC = tf.constant([[5, 6, 7, 8, 9, 10], [11, 12, 13, 9, 9, 9], [14, 9, 9, 9, 9, 9]], tf.int32)
SRC_LEN = tf.constant([6, 3, 1], tf.int32)


def _greedy_by_hand(model, max_length):
    memory, state = model.decoder.initial_state(model.encode(SRC, SRC_LEN))
    ids = tf.fill([3], BOS_ID)
    out, done = [], np.zeros(3, bool)
    for _ in range(max_length):
        log_probs, state = model.decoder.step(ids, state, memory)
        ids = tf.where(done, EOS_ID, tf.argmax(log_probs, -1, output_type=tf.int32))
        out.append(ids.numpy())
        done |= ids.numpy() == EOS_ID
        if done.all():
            break
    out = np.stack(out, 1)
    lengths = [int(np.argmax(row == EOS_ID)) if (row == EOS_ID).any() else max_length
               for row in out]
    return out, lengths


def _sequence_log_prob(model, src_row, hyp):
    """log p(hyp + EOS | src) by teacher forcing."""
    tgt_in = tf.constant([[BOS_ID] + list(hyp)], tf.int32)
    log_p = tf.nn.log_softmax(model.logits(SRC[src_row:src_row + 1], SRC_LEN[src_row:src_row + 1],
                                           tgt_in)).numpy()[0]
    labels = list(hyp) + [EOS_ID]
    return sum(log_p[t, label] for t, label in enumerate(labels))


def test_greedy_translate_is_argmax_decoding_and_beam_one():
    model = _widen(_model(), seed=1, eos_bias=0.5)  # some sentences end, one does not
    max_length = 12
    greedy = model.translate(SRC, SRC_LEN, beam_size=1, max_length=max_length)
    ids, lengths = _greedy_by_hand(model, max_length)
    np.testing.assert_array_equal(greedy.lengths.numpy()[:, 0], lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(greedy.ids.numpy()[b, 0, :n], ids[b, :n])
    assert min(lengths) < max_length == max(lengths), "want finished and unfinished sentences"

    step_fn, state, memory = model.search_inputs(SRC, SRC_LEN)
    beam = search.beam_search(step_fn, state, 3, BOS_ID, EOS_ID, 1, max_length,
                              length_penalty=0.0, source_length=SRC_LEN, context=memory)
    np.testing.assert_array_equal(beam.ids.numpy(), greedy.ids.numpy())
    np.testing.assert_array_equal(beam.lengths.numpy(), greedy.lengths.numpy())
    np.testing.assert_allclose(beam.scores.numpy(), greedy.scores.numpy(), rtol=1e-5)


def test_beam_search_returns_distinct_sorted_hypotheses():
    model = _widen(_model(), seed=0, eos_bias=0.4)
    max_length = 15
    result = model.translate(SRC, SRC_LEN, beam_size=4, num_hypotheses=3, max_length=max_length)
    ids, scores, lengths = (t.numpy() for t in result)
    assert ids.shape == (3, 3, max_length) and scores.shape == lengths.shape == (3, 3)
    checked = 0
    for b in range(3):
        hyps = [tuple(ids[b, k, :lengths[b, k]]) for k in range(3)]
        assert len(set(hyps)) == 3, f"duplicate hypotheses {hyps}"
        assert np.all(np.diff(scores[b]) <= 0.0), f"scores not sorted: {scores[b]}"
        for k, hyp in enumerate(hyps):
            if lengths[b, k] < max_length:  # finished: the score is log p(hyp + EOS)
                assert ids[b, k, lengths[b, k]] == EOS_ID
                np.testing.assert_allclose(scores[b, k], _sequence_log_prob(model, b, hyp),
                                           rtol=1e-4, atol=1e-4)
                checked += len(hyp) > 1
    assert checked, "want finished hypotheses longer than one token"


@pytest.mark.parametrize("seed,eos_bias,search_kwargs", [
    (4, 0.75, dict(beam_size=1)),
    (6, 0.6, dict(beam_size=4, num_hypotheses=3, length_penalty=0.6, coverage_penalty=0.1,
                  max_length_ratio=1.5))], ids=["greedy", "beam"])
def test_dropping_done_sentences_changes_no_translation(seed, eos_bias, search_kwargs):
    # Eight sentences end at different steps (the seed and EOS bias are picked for
    # that), so the search drops rows (and their encoder memory) several times.
    model = _widen(_model(), seed=seed, eos_bias=eos_bias)
    rng = np.random.default_rng(0)
    src_len = tf.constant([9, 1, 7, 3, 8, 2, 5, 4], tf.int32)
    src = tf.constant(rng.integers(FIRST_WORD, SRC_VOCAB, size=[8, 9]) * (
        np.arange(9)[None, :] < src_len.numpy()[:, None]), tf.int32)
    got = model.translate(src, src_len, max_length=20, **search_kwargs)
    want = model.translate(src, src_len, max_length=20, compact=False, **search_kwargs)
    assert len(set(got.lengths.numpy()[:, 0])) > 3, "want sentences that end at different steps"
    np.testing.assert_array_equal(got.ids.numpy(), want.ids.numpy())
    np.testing.assert_array_equal(got.lengths.numpy(), want.lengths.numpy())
    np.testing.assert_allclose(got.scores.numpy(), want.scores.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_max_length_ratio_forces_eos(beam_size):
    model = _widen(_model(), seed=2, eos_bias=-40.0)  # EOS is never chosen freely
    ratio, max_length = 1.5, 40
    never = model.translate(SRC, SRC_LEN, beam_size=beam_size, max_length=max_length)
    assert np.all(never.lengths.numpy() == max_length)

    result = model.translate(SRC, SRC_LEN, beam_size=beam_size, max_length=max_length,
                             max_length_ratio=ratio)
    # At most ratio * src_len + 10 steps, the EOS step counted: the last one is EOS.
    steps = np.floor(ratio * SRC_LEN.numpy()).astype(int) + 10
    lengths = result.lengths.numpy()
    np.testing.assert_array_equal(lengths, np.repeat(steps[:, None] - 1, lengths.shape[1], 1))
    for b in range(3):
        assert np.all(result.ids.numpy()[b, :, steps[b] - 1] == EOS_ID)


def test_max_length_ratio_bounds_an_untrained_model():
    model = _model(seed=3)
    ratio = 0.5
    result = model.translate(SRC, SRC_LEN, beam_size=2, max_length=30, max_length_ratio=ratio)
    limit = np.floor(ratio * SRC_LEN.numpy()).astype(int) + 10
    assert np.all(result.lengths.numpy() + 1 <= limit[:, None])


# ----------------------------------------------------------------------------
# A tiny bi-encoder attention model learns to copy and to reverse.

NUM_SYMBOLS, MIN_LEN, MAX_LEN = 20, 3, 12
TASK_VOCAB = FIRST_WORD + NUM_SYMBOLS
TRAIN_STEPS, BATCH_SIZE, TEST_SIZE = 300, 128, 500
LEARNER_UNITS, LEARNER_EMBEDDING, LEARNING_RATE = 128, 64, 1e-2


def _task_batch(rng, size, task):
    """Random sequences of MIN_LEN..MAX_LEN symbols -> Batch (fixed time dims: one trace)."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size)
    src = np.zeros((size, MAX_LEN), np.int32)
    tgt_in = np.zeros((size, MAX_LEN + 1), np.int32)
    tgt_out = np.zeros((size, MAX_LEN + 1), np.int32)
    tgt_in[:, 0] = BOS_ID
    for b, n in enumerate(lengths):
        seq = rng.integers(FIRST_WORD, TASK_VOCAB, n)
        tgt = seq if task == "copy" else seq[::-1]
        src[b, :n], tgt_in[b, 1:n + 1], tgt_out[b, :n], tgt_out[b, n] = seq, tgt, tgt, EOS_ID
    return Batch(src, lengths.astype(np.int32), tgt_in, tgt_out, (lengths + 1).astype(np.int32))


class Learner:
    """One model and one compiled train step, re-initialised for each task."""

    def __init__(self):
        tf.random.set_seed(0)
        config = ModelConfig(encoder_type="bi", num_encoder_layers=1, num_decoder_layers=1,
                             num_units=LEARNER_UNITS, embedding_size=LEARNER_EMBEDDING,
                             attention="luong", dropout=0.0)
        self.model = build_model(config, TASK_VOCAB, TASK_VOCAB)
        self.initial = [v.numpy() for v in self.model.trainable_variables]
        schedule = tf.keras.optimizers.schedules.CosineDecay(LEARNING_RATE, TRAIN_STEPS, alpha=0.02)
        self.optimizer = tf.keras.optimizers.Adam(schedule)
        train_config = TrainConfig(label_smoothing=0.0, num_train_steps=TRAIN_STEPS,
                                   jit_compile=True)
        self.train_step = make_train_step(self.model, self.optimizer, train_config)

    def accuracy_after_training(self, task):
        for v, value in zip(self.model.trainable_variables, self.initial):
            v.assign(value)
        for v in self.optimizer.variables:  # step counter and Adam moments
            v.assign(tf.zeros_like(v))
        rng = np.random.default_rng(0)
        for _ in range(TRAIN_STEPS):
            self.train_step(Batch(*map(tf.constant, _task_batch(rng, BATCH_SIZE, task))))
        test = _task_batch(np.random.default_rng(1), TEST_SIZE, task)
        result = self.model.translate(tf.constant(test.src), tf.constant(test.src_len),
                                      max_length=MAX_LEN + 2)
        ids, lengths = result.ids.numpy()[:, 0], result.lengths.numpy()[:, 0]
        correct = [lengths[b] == n and np.array_equal(ids[b, :n], test.tgt_out[b, :n])
                   for b, n in enumerate(test.src_len)]
        return np.mean(correct)


@pytest.fixture(scope="module")
def learner():
    return Learner()


@pytest.mark.parametrize("task", ["copy", pytest.param("reverse", marks=pytest.mark.slow)])
def test_tiny_model_learns(learner, task):
    accuracy = learner.accuracy_after_training(task)
    assert accuracy >= 0.99, f"{task}: greedy exact match {accuracy:.3f}"
