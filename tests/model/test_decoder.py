"""Bridge and attention decoder: teacher forcing equals stepping, architectures, tying."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ModelConfig
from nmt.data.vocab import BOS_ID
from nmt.model import cells as cells_lib
from nmt.model.seq2seq import build_model

SRC_VOCAB, TGT_VOCAB, UNITS = 19, 23, 8
SRC_LEN, TGT_LEN = [5, 3, 1], [4, 6, 2]


def _model(seed=0, **fields):
    defaults = dict(num_encoder_layers=2, num_decoder_layers=2, num_units=UNITS,
                    embedding_size=UNITS, dropout=0.0)
    tf.random.set_seed(seed)
    return build_model(ModelConfig(**{**defaults, **fields}), SRC_VOCAB, TGT_VOCAB)


def _inputs(seed=0):
    """src `[3, 6]`, src_len, tgt_in `[3, 6]` (BOS first); pads hold random ids."""
    rng = np.random.default_rng(seed)
    src = rng.integers(4, SRC_VOCAB, size=(3, 6)).astype(np.int32)
    tgt_in = rng.integers(4, TGT_VOCAB, size=(3, max(TGT_LEN))).astype(np.int32)
    tgt_in[:, 0] = BOS_ID
    return tf.constant(src), tf.constant(SRC_LEN, tf.int32), tf.constant(tgt_in)


def _teacher_forced_equals_steps(model):
    """Both inference step paths: embedding each step, and the prepared-embedding table."""
    src, src_len, tgt_in = _inputs()
    expected = model.logits(src, src_len, tgt_in).numpy()  # [batch, tgt_time, vocab]
    for inputs in (None, model.decoder.inference_inputs(tf.float32)):
        memory, state = model.decoder.initial_state(model.encode(src, src_len))
        for t in range(tgt_in.shape[1]):
            logits, state = model.decoder.step(tgt_in[:, t], state, memory, inputs=inputs)
            np.testing.assert_allclose(logits.numpy(), expected[:, t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fields", [
    dict(),
    dict(attention="bahdanau", input_feeding=False, bridge="copy"),
    dict(attention_architecture="gnmt", num_decoder_layers=3, residual=True, bridge="zero"),
    dict(unit_type="gru", encoder_type="gnmt", attention="normed_bahdanau", residual=True),
    dict(tie_output_embeddings=True, attention="scaled_luong"),
    dict(attention_layer_size=6, embedding_size=6, tie_output_embeddings=True),
    dict(layer_norm=True),
    dict(layer_norm=True, attention_architecture="gnmt", num_decoder_layers=2),
], ids=["standard", "no_input_feeding", "gnmt", "gru", "tied", "narrow_attentional_tied",
        "layer_norm", "layer_norm_gnmt"])
def test_teacher_forced_equals_step_by_step(fields):
    _teacher_forced_equals_steps(_model(**fields))


@pytest.mark.parametrize("input_table", [False, True])
def test_search_inputs_step_fn_is_the_decoder_step(input_table):
    model = _model()
    src, src_len, tgt_in = _inputs()
    expected = tf.nn.log_softmax(model.logits(src, src_len, tgt_in)).numpy()
    step_fn, state, memory = model.search_inputs(src, src_len, input_table=input_table)
    for t in range(tgt_in.shape[1]):
        logits, state = step_fn(tgt_in[:, t], state, context=memory)
        np.testing.assert_allclose(tf.nn.log_softmax(logits).numpy(), expected[:, t],
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("unit_type", ["lstm", "gru"])
@pytest.mark.parametrize("bridge", ["dense", "copy", "zero"])
def test_bridge_gives_the_decoder_state_structure(bridge, unit_type):
    model = _model(bridge=bridge, unit_type=unit_type)
    src, src_len, _ = _inputs()
    encoded = model.encode(src, src_len)
    _, state = model.decoder.initial_state(encoded)
    cell_state = state["cell"]
    tf.nest.assert_same_structure(cell_state, model.decoder.cell.state_size)
    sizes = tf.nest.flatten(model.decoder.cell.state_size)
    for leaf, size in zip(tf.nest.flatten(cell_state), sizes):
        assert leaf.shape == (3, size)
    flat = [t.numpy() for t in tf.nest.flatten(cell_state)]
    encoder_flat = [t.numpy() for t in tf.nest.flatten(encoded.thought_vector)]
    if bridge == "copy":
        for got, want in zip(flat, encoder_flat):
            np.testing.assert_array_equal(got, want)
    elif bridge == "zero":
        assert all(np.all(leaf == 0.0) for leaf in flat)
    else:
        dense = model.decoder.bridge.dense
        want = np.tanh(np.concatenate(encoder_flat, -1) @ dense.kernel.numpy() + dense.bias.numpy())
        np.testing.assert_allclose(np.concatenate(flat, -1), want, rtol=1e-5, atol=1e-6)


def test_copy_bridge_hands_over_lstm_state_tuples():
    model = _model(bridge="copy", encoder_type="bi")
    src, src_len, _ = _inputs()
    _, state = model.decoder.initial_state(model.encode(src, src_len))
    assert all(isinstance(s, cells_lib.LSTMStateTuple) for s in state["cell"])


def _first_alignments_and_logits(model):
    src, src_len, tgt_in = _inputs()
    memory, state = model.decoder.initial_state(model.encode(src, src_len))
    logits, state = model.decoder.step(tgt_in[:, 0], state, memory)
    return state["alignments"].numpy(), logits.numpy()


@pytest.mark.parametrize("architecture", ["standard", "gnmt"])
def test_gnmt_attention_is_queried_by_the_bottom_layer(architecture):
    """GNMT: the top layer does not change the attention weights; standard: it does."""
    model = _model(attention_architecture=architecture, bridge="dense")
    weights, logits = _first_alignments_and_logits(model)
    top = model.decoder.layers[-1]
    for v in top.trainable_variables:
        v.assign(v + tf.random.uniform(v.shape, -0.5, 0.5, seed=3))
    new_weights, new_logits = _first_alignments_and_logits(model)
    assert not np.allclose(new_logits, logits, atol=1e-4)
    if architecture == "gnmt":
        np.testing.assert_allclose(new_weights, weights, rtol=1e-6, atol=1e-7)
    else:
        assert not np.allclose(new_weights, weights, atol=1e-5)


def test_gnmt_architecture_differs_from_standard_and_trains():
    standard, gnmt = _model(), _model(attention_architecture="gnmt")
    assert gnmt.decoder.attention_layer is None and standard.decoder.attention_layer is not None
    # Layers above the bottom read [output; context]: twice as wide.
    assert gnmt.decoder.layers[1].input_kernel.shape[0] == 2 * UNITS
    assert standard.decoder.layers[1].input_kernel.shape[0] == UNITS
    src, src_len, tgt_in = _inputs()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(gnmt.logits(src, src_len, tgt_in) ** 2)
    grads = tape.gradient(loss, gnmt.trainable_variables)
    missing = [v.name for v, g in zip(gnmt.trainable_variables, grads) if g is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("input_feeding", [True, False])
def test_input_feeding_reads_the_previous_attentional_vector(input_feeding):
    model = _model(input_feeding=input_feeding)
    src, src_len, tgt_in = _inputs()
    memory, state = model.decoder.initial_state(model.encode(src, src_len))
    logits, _ = model.decoder.step(tgt_in[:, 0], state, memory)
    state["attention"] = tf.random.uniform(state["attention"].shape, -1.0, 1.0, seed=1)
    changed, _ = model.decoder.step(tgt_in[:, 0], state, memory)
    assert np.allclose(changed.numpy(), logits.numpy()) != input_feeding


def test_tied_output_embeddings_use_the_target_table():
    model = _model(tie_output_embeddings=True)
    decoder = model.decoder
    assert decoder.output_layer is None
    decoder.output_bias.assign(tf.random.uniform([TGT_VOCAB], -1.0, 1.0, seed=2))
    outputs = tf.random.normal([3, 4, UNITS], seed=1)
    want = outputs.numpy() @ model.tgt_embedding.table.numpy().T + decoder.output_bias.numpy()
    np.testing.assert_allclose(decoder.logits(outputs).numpy(), want, rtol=1e-5, atol=1e-5)

    # Target ids that are never decoder inputs get a gradient only through the softmax.
    src, src_len, tgt_in = _inputs()
    used = set(tgt_in.numpy().ravel())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.log_softmax(model.logits(src, src_len, tgt_in))[..., 5])
    grad = tf.convert_to_tensor(tape.gradient(loss, model.tgt_embedding.table)).numpy()
    unused = [i for i in range(TGT_VOCAB) if i not in used]
    assert unused and np.all(np.abs(grad[unused]).sum(-1) > 0.0)


@pytest.mark.parametrize("tied", [True, False])
def test_attention_layer_size_sets_the_attentional_vector_width(tied):
    """A wide LSTM (8) with a narrow attentional vector (6): what is fed back, projected
    onto the vocabulary and (tied) shared with the embeddings is 6 wide."""
    model = _model(attention_layer_size=6, embedding_size=6 if tied else UNITS,
                   tie_output_embeddings=tied)
    decoder = model.decoder
    kernels = [v.shape for v in decoder.layers[0].trainable_variables if "input_kernel" in v.name]
    assert kernels == [((6 if tied else UNITS) + 6, 4 * UNITS)]  # embedding + fed-back vector
    assert decoder.attention_layer.kernel.shape == (2 * UNITS, 6)
    src, src_len, tgt_in = _inputs()
    outputs = decoder.teacher_forced(model.encode(src, src_len), tgt_in)
    assert outputs.shape == (3, tgt_in.shape[1], 6)
    if tied:
        want = outputs.numpy() @ model.tgt_embedding.table.numpy().T
        np.testing.assert_allclose(decoder.logits(outputs).numpy(), want, rtol=1e-5, atol=1e-5)
    else:
        assert decoder.output_layer.kernel.shape == (6, TGT_VOCAB)


def test_untied_output_layer_is_separate():
    model = _model()
    src, src_len, tgt_in = _inputs()
    used = set(tgt_in.numpy().ravel())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model.logits(src, src_len, tgt_in))
    grad = tf.convert_to_tensor(tape.gradient(loss, model.tgt_embedding.table)).numpy()
    unused = [i for i in range(TGT_VOCAB) if i not in used]
    assert np.all(grad[unused] == 0.0)


class _InputSpy(cells_lib.RNNCell):
    """Wraps a cell and records the (dropped-out) inputs it is given: those prepared (every
    step at once for layer 0, one step at a time above it) and the late ones of each step."""

    def __init__(self, cell):
        self.cell, self.seen, self.late = cell, [], []
        super().__init__()

    state_size = property(lambda self: self.cell.state_size)
    output_size = property(lambda self: self.cell.output_size)

    def prepare_inputs(self, inputs, training=False, late_size=0):
        self.seen.append(np.swapaxes(inputs.numpy(), 0, 1))  # [time, batch, depth]
        return self.cell.prepare_inputs(inputs, training=training, late_size=late_size)

    def step(self, prepared_t, state, training=False, late_inputs=None):
        if late_inputs is not None:
            self.late.append(late_inputs.numpy())  # [batch, late_size]
        return self.cell.step(prepared_t, state, training=training, late_inputs=late_inputs)

    def inputs(self):
        """Every step's whole input, [time, batch, depth]."""
        seen = np.concatenate(self.seen, 0)
        return np.concatenate([seen, np.stack(self.late)], -1) if self.late else seen


def _spied_decoder_inputs(model, training):
    """Per layer, the inputs [tgt_time, batch, depth] its cell saw in teacher forcing."""
    spies = []
    for layer in model.decoder.layers:
        while not isinstance(layer, cells_lib.DropoutWrapper):
            layer = layer.cell
        layer.cell = _InputSpy(layer.cell)
        spies.append(layer.cell)
    src, src_len, tgt_in = _inputs()
    model.decoder.teacher_forced(model.encode(src, src_len), tgt_in, training=training)
    return [spy.inputs() for spy in spies]


@pytest.mark.parametrize("architecture", ["standard", "gnmt"])
def test_variational_dropout_keeps_each_layer_input_mask_over_decoder_steps(architecture):
    model = _model(dropout=0.5, variational_dropout=True, num_decoder_layers=3,
                   attention_architecture=architecture)
    for seen in _spied_decoder_inputs(model, training=True):
        dropped = seen[1:] == 0.0  # from step 1 on, every input unit is non-zero unless dropped
        assert seen.shape[0] == max(TGT_LEN) and 0.3 < dropped.mean() < 0.7
        np.testing.assert_array_equal(dropped, np.broadcast_to(dropped[:1], dropped.shape))
        assert len({row.tobytes() for row in dropped[0]}) > 1  # one mask per sentence
    for seen in _spied_decoder_inputs(_model(dropout=0.5, variational_dropout=True,
                                             attention_architecture=architecture), False):
        assert not (seen[1:] == 0.0).any()


def test_plain_dropout_draws_decoder_masks_per_step():
    model = _model(dropout=0.5, variational_dropout=False)
    for seen in _spied_decoder_inputs(model, training=True):
        dropped = seen[1:] == 0.0
        assert 0.3 < dropped.mean() < 0.7 and not np.array_equal(dropped[0], dropped[1])
