"""Encoder layouts, padding invariance, residual connections."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ModelConfig
from nmt.model import cells as cells_lib
from nmt.model import rnn
from nmt.model.encoder import Encoder
from nmt.model.layers import Embedding

VOCAB, UNITS, EMB = 17, 8, 6
LENGTHS = [5, 2, 4]


def _config(**fields):
    defaults = dict(num_encoder_layers=3, num_units=UNITS, embedding_size=EMB, dropout=0.0)
    return ModelConfig(**{**defaults, **fields})


def _encoder(seed=0, **fields):
    tf.random.set_seed(seed)
    config = _config(**fields)
    return Encoder(config, Embedding(VOCAB, EMB))


def _copy_weights(src, dst):
    src_vars, dst_vars = src.trainable_variables, dst.trainable_variables
    assert [v.shape for v in src_vars] == [v.shape for v in dst_vars]
    for s, d in zip(src_vars, dst_vars):
        d.assign(s)


def _batch(seed=0, pad_time=7):
    """Random ids `[batch, pad_time]`; the pads hold random non-zero ids, not PAD."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(len(LENGTHS), pad_time)).astype(np.int32)
    return ids, np.array(LENGTHS, np.int32)


def _leaves(state):
    return [t.numpy() for t in tf.nest.flatten(state)]


@pytest.mark.parametrize("encoder_type", ["uni", "bi", "gnmt"])
@pytest.mark.parametrize("unit_type", ["lstm", "gru"])
def test_layout_shapes(encoder_type, unit_type):
    encoder = _encoder(encoder_type=encoder_type, unit_type=unit_type)
    ids, lengths = _batch()
    out = encoder(tf.constant(ids), tf.constant(lengths))
    assert out.annotations.shape == (len(LENGTHS), ids.shape[1], UNITS)
    assert len(out.thought_vector) == 3
    for state in out.thought_vector:
        if unit_type == "lstm":
            assert isinstance(state, cells_lib.LSTMStateTuple)
        for leaf in tf.nest.flatten(state):
            assert leaf.shape == (len(LENGTHS), UNITS)
    np.testing.assert_array_equal(out.lengths.numpy(), lengths)
    expected_bi = {"uni": [False] * 3, "bi": [True] * 3, "gnmt": [True, False, False]}
    assert encoder.bidirectional == expected_bi[encoder_type]


@pytest.mark.parametrize("encoder_type,unit_type,residual", [
    ("uni", "lstm", False), ("bi", "lstm", True), ("gnmt", "lstm", True), ("bi", "gru", False)])
def test_padding_invariance(encoder_type, unit_type, residual):
    """A padded batch gives each sentence's annotations (valid steps) and thought vector."""
    encoder = _encoder(encoder_type=encoder_type, unit_type=unit_type, residual=residual)
    ids, lengths = _batch()
    out = encoder(tf.constant(ids), tf.constant(lengths))
    annotations = out.annotations.numpy()
    for b, n in enumerate(lengths):
        alone = encoder(tf.constant(ids[b:b + 1, :n]), tf.constant([n]))
        np.testing.assert_allclose(annotations[b, :n], alone.annotations.numpy()[0],
                                   rtol=1e-5, atol=1e-6)
        batched_state = [leaf[b] for leaf in _leaves(out.thought_vector)]
        for got, want in zip(batched_state, _leaves(alone.thought_vector)):
            np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-6)
        assert np.all(annotations[b, n:] == 0.0), "annotations past the length must be zero"


def _layer_one_output(encoder, ids, lengths):
    """The first layer's outputs computed directly with its cells."""
    cell_fw, cell_bw, _ = encoder.layers[0]
    inputs = encoder.embedding(ids)
    if cell_bw is None:
        return rnn.dynamic_rnn(cell_fw, inputs, sequence_length=lengths)[0]
    (fw, bw), _ = rnn.bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=lengths)
    return tf.concat([fw, bw], -1)


@pytest.mark.parametrize("encoder_type", ["uni", "bi", "gnmt"])
def test_residual_adds_the_layer_input_from_layer_two(encoder_type):
    plain = _encoder(encoder_type=encoder_type, num_encoder_layers=2)
    residual = _encoder(seed=5, encoder_type=encoder_type, num_encoder_layers=2, residual=True)
    _copy_weights(plain, residual)
    ids, lengths = map(tf.constant, _batch())
    got = residual(ids, lengths).annotations.numpy()
    want_plain = plain(ids, lengths).annotations.numpy()
    assert not np.allclose(got, want_plain, atol=1e-3)
    # Layer 2 is the same cell in both: the residual output is its output plus layer 1's.
    np.testing.assert_allclose(got - want_plain, _layer_one_output(plain, ids, lengths).numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoder_type", ["uni", "bi"])
def test_residual_leaves_a_one_layer_encoder_alone(encoder_type):
    plain = _encoder(encoder_type=encoder_type, num_encoder_layers=1)
    residual = _encoder(seed=5, encoder_type=encoder_type, num_encoder_layers=1, residual=True)
    _copy_weights(plain, residual)
    ids, lengths = map(tf.constant, _batch())
    a, b = plain(ids, lengths), residual(ids, lengths)
    np.testing.assert_array_equal(a.annotations.numpy(), b.annotations.numpy())
    for x, y in zip(_leaves(a.thought_vector), _leaves(b.thought_vector)):
        np.testing.assert_array_equal(x, y)


def test_dropout_only_when_training():
    encoder = _encoder(encoder_type="bi", dropout=0.5)
    ids, lengths = map(tf.constant, _batch())
    eval1 = encoder(ids, lengths).annotations.numpy()
    np.testing.assert_array_equal(eval1, encoder(ids, lengths).annotations.numpy())
    train = encoder(ids, lengths, training=True).annotations.numpy()
    assert not np.allclose(train, eval1)
