"""Attention: every score function against its formula in NumPy, with the module's own weights."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ATTENTIONS, LUONG_ATTENTIONS
from nmt.model import attention as attention_lib

BATCH, SRC_TIME = 3, 6
LENGTHS = np.array([6, 4, 1], np.int32)


def _softmax_valid(scores, lengths):
    """Row-wise softmax over the first `length` entries, zeros after. `[batch, src_time]`."""
    weights = np.zeros_like(scores)
    for b, n in enumerate(lengths):
        e = np.exp(scores[b, :n] - scores[b, :n].max())
        weights[b, :n] = e / e.sum()
    return weights


def _reference_scores(att, query, values):
    """The paper's score of each (query, annotation) pair, float64 `[batch, src_time]`."""
    if isinstance(att, attention_lib.LuongAttention):
        keys = values if att.memory_layer is None else values @ att.memory_layer.kernel.numpy()
        scores = np.einsum("btm,bm->bt", keys, query)  # q . h_s or q . (W_a h_s)
        if att.key_scale is not None:  # scaled dot-product: / sqrt(query size)
            scores = scores / np.sqrt(query.shape[-1])
        return scores * (1.0 if att.scale is None else float(att.scale.numpy()))
    w = att.memory_layer.kernel.numpy().astype(np.float64)
    u = att.query_layer.kernel.numpy().astype(np.float64)
    v = att.v.numpy().astype(np.float64)
    hidden = values @ w + (query @ u)[:, None, :]  # [batch, src_time, units]
    if att.g is not None:
        hidden = hidden + att.b.numpy()
        v = float(att.g.numpy()) * v / np.linalg.norm(v)
    return np.tanh(hidden) @ v


def _make(kind, query_size, memory_size, sqrt_scaling=False):
    tf.random.set_seed(1)
    att = attention_lib.build_attention(kind, query_size, memory_size, sqrt_scaling=sqrt_scaling)
    # Move the extra parameters off their initial values so a missing term would show.
    if getattr(att, "scale", None) is not None:
        att.scale.assign(1.7)
    if getattr(att, "g", None) is not None:
        att.g.assign(2.3)
        att.b.assign(tf.random.uniform(att.b.shape, -1.0, 1.0))
    return att


KINDS = [(kind, False) for kind in ATTENTIONS] + [(kind, True) for kind in LUONG_ATTENTIONS]


@pytest.mark.parametrize("kind,sqrt_scaling", KINDS)
def test_attention_matches_numpy_reference(kind, sqrt_scaling):
    query_size, memory_size = (8, 8) if kind == "dot" else (5, 7)
    att = _make(kind, query_size, memory_size, sqrt_scaling)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(BATCH, SRC_TIME, memory_size)).astype(np.float32)
    query = rng.normal(size=(BATCH, query_size)).astype(np.float32)
    memory = att.prepare(tf.constant(values), tf.constant(LENGTHS))
    context, weights = att(tf.constant(query), memory)

    expected_weights = _softmax_valid(
        _reference_scores(att, query.astype(np.float64), values.astype(np.float64)), LENGTHS)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context.numpy(), np.einsum("bt,btm->bm", expected_weights, values),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,sqrt_scaling", KINDS)
def test_pads_get_zero_weight_and_rows_sum_to_one(kind, sqrt_scaling):
    att = _make(kind, 4, 4, sqrt_scaling)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(BATCH, SRC_TIME, 4)).astype(np.float32)
    query = rng.normal(size=(BATCH, 4)).astype(np.float32)
    memory = att.prepare(tf.constant(values), tf.constant(LENGTHS))
    context, weights = att(tf.constant(query), memory)
    weights = weights.numpy()
    for b, n in enumerate(LENGTHS):
        assert np.all(weights[b, n:] == 0.0), "pad positions must get exactly zero weight"
        assert np.all(weights[b, :n] > 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(context.numpy(), np.einsum("bt,btm->bm", weights, values),
                               rtol=1e-5, atol=1e-5)

    # Whatever sits in the pad positions does not reach the context.
    garbage = values.copy()
    for b, n in enumerate(LENGTHS):
        garbage[b, n:] = rng.normal(size=garbage[b, n:].shape) * 100.0
    context2, weights2 = att(tf.constant(query),
                             att.prepare(tf.constant(garbage), tf.constant(LENGTHS)))
    np.testing.assert_allclose(weights2.numpy(), weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(context2.numpy(), context.numpy(), rtol=1e-5, atol=1e-6)


def test_masked_softmax_is_exact_on_masked_positions():
    scores = tf.constant([[3.0, -1.0, 50.0], [0.0, 0.0, 0.0]])
    mask = tf.constant([[True, True, False], [True, False, False]])
    weights = attention_lib.masked_softmax(scores, mask).numpy()
    np.testing.assert_allclose(weights[0, :2], np.exp([3.0, -1.0]) / np.exp([3.0, -1.0]).sum(),
                               rtol=1e-6)
    assert weights[0, 2] == 0.0 and weights[1, 0] == 1.0 and np.all(weights[1, 1:] == 0.0)


def test_dot_needs_equal_sizes_and_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="query size == memory size"):
        attention_lib.build_attention("dot", 4, 6)
    with pytest.raises(ValueError, match="unknown attention 'cosine'"):
        attention_lib.build_attention("cosine", 4, 4)
    with pytest.raises(ValueError, match="not 'bahdanau'"):
        attention_lib.build_attention("bahdanau", 4, 4, sqrt_scaling=True)


def test_sqrt_scaling_divides_the_scores_by_the_square_root_of_the_query_size():
    """Against the same module unscaled: log-weights differ by scores * (1 - 1/sqrt(16))."""
    rng = np.random.default_rng(2)
    values = tf.constant(rng.normal(size=(BATCH, SRC_TIME, 16)).astype(np.float32))
    query = tf.constant(rng.normal(size=(BATCH, 16)).astype(np.float32))
    lengths = tf.constant(LENGTHS)
    plain = _make("luong", 16, 16)
    scaled = _make("luong", 16, 16, sqrt_scaling=True)
    scaled.memory_layer.kernel.assign(plain.memory_layer.kernel)
    scores = attention_lib._scores(plain.prepare(values, lengths).keys, query).numpy()
    _, weights = scaled(query, scaled.prepare(values, lengths))
    np.testing.assert_allclose(weights.numpy(), _softmax_valid(scores / 4.0, LENGTHS),
                               rtol=1e-5, atol=1e-7)


def test_the_model_config_reaches_the_decoders_attention():
    from nmt.config import ModelConfig
    from nmt.model.seq2seq import build_model
    config = ModelConfig(num_units=16, embedding_size=8, num_encoder_layers=1,
                         num_decoder_layers=1, attention_sqrt_scaling=True)
    assert build_model(config, 30, 30).decoder.attention.key_scale == pytest.approx(0.25)
    plain = build_model(ModelConfig(num_units=16, embedding_size=8, num_encoder_layers=1,
                                    num_decoder_layers=1), 30, 30)
    assert plain.decoder.attention.key_scale is None
