"""Tests for nmt.model.cells: NumPy references of each cell, the prepare/step contract, wrappers."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.model import cells
from nmt.model.rnn import dynamic_rnn

BATCH, DEPTH, UNITS = 3, 5, 4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _randomise(cell, seed=0):
    """Gives every variable (biases too) random values so each term shows up."""
    rng = np.random.default_rng(seed)
    for var in cell.trainable_variables:
        var.assign(rng.normal(0.0, 0.5, var.shape).astype(np.float32))


def _inputs(batch=BATCH, depth=DEPTH, seed=1):
    return tf.constant(np.random.default_rng(seed).normal(size=(batch, depth)), tf.float32)


def _random_state(cell, seed=2):
    rng = np.random.default_rng(seed)
    return tf.nest.map_structure(
        lambda n: tf.constant(rng.normal(size=(BATCH, n)), tf.float32), cell.state_size)


class IdentityCell(cells.RNNCell):
    """User cell: output = next state = inputs; no variables, no training kwarg."""

    def __init__(self, depth):
        self.depth = depth
        super().__init__()

    state_size = property(lambda self: self.depth)
    output_size = property(lambda self: self.depth)

    def call(self, inputs, state):
        return inputs, inputs


class AccumulateCell(cells.RNNCell):
    """User cell with a variable: h' = h + x W; output h' (doubled when training)."""

    def __init__(self, units, input_size=None):
        self.units = units
        super().__init__(input_size=input_size)

    state_size = property(lambda self: self.units)
    output_size = property(lambda self: self.units)

    def build(self, input_size):
        self.kernel = tf.Variable(tf.random.normal([input_size, self.units]), name="kernel")

    def call(self, inputs, state, training=False):
        new = state + tf.matmul(inputs, self.kernel)
        return (2.0 * new if training else new), new


# --- NumPy references -------------------------------------------------------------------

def test_basic_rnn_matches_numpy():
    cell = cells.BasicRNNCell(UNITS, input_size=DEPTH)
    _randomise(cell)
    x, h = _inputs(), _random_state(cell)
    out, state = cell(x, h)
    want = np.tanh(x.numpy() @ cell.input_kernel.numpy() + h.numpy() @ cell.recurrent_kernel.numpy()
                   + cell.bias.numpy())
    np.testing.assert_allclose(out, want, atol=1e-5)
    np.testing.assert_allclose(state, want, atol=1e-5)


def test_gru_matches_numpy_and_gate_bias_starts_at_one():
    cell = cells.GRUCell(UNITS, input_size=DEPTH)
    np.testing.assert_array_equal(cell.bias.numpy()[:2 * UNITS], 1.0)
    np.testing.assert_array_equal(cell.bias.numpy()[2 * UNITS:], 0.0)
    _randomise(cell)
    x, h = _inputs().numpy(), _random_state(cell).numpy()
    w_x, b = cell.input_kernel.numpy(), cell.bias.numpy()
    xw = x @ w_x + b
    gates = _sigmoid(xw[:, :2 * UNITS] + h @ cell.gate_kernel.numpy())
    r, u = gates[:, :UNITS], gates[:, UNITS:]
    c = np.tanh(xw[:, 2 * UNITS:] + (r * h) @ cell.candidate_kernel.numpy())
    want = u * h + (1 - u) * c
    out, state = cell(tf.constant(x), tf.constant(h))
    np.testing.assert_allclose(out, want, atol=1e-5)
    np.testing.assert_allclose(state, want, atol=1e-5)


def _lstm_numpy(cell, x, state, peepholes, cell_clip, proj_clip, forget_bias):
    c, h = (s.numpy() for s in state)
    gates = x @ cell.input_kernel.numpy() + h @ cell.recurrent_kernel.numpy() + cell.bias.numpy()
    i, j, f, o = np.split(gates, 4, axis=1)
    if peepholes:
        i, f = i + cell.w_i_diag.numpy() * c, f + cell.w_f_diag.numpy() * c
    c = _sigmoid(f + forget_bias) * c + _sigmoid(i) * np.tanh(j)
    if cell_clip:
        c = np.clip(c, -cell_clip, cell_clip)
    if peepholes:
        o = o + cell.w_o_diag.numpy() * c
    h = _sigmoid(o) * np.tanh(c)
    if cell.num_proj:
        h = h @ cell.proj_kernel.numpy()
        if proj_clip:
            h = np.clip(h, -proj_clip, proj_clip)
    return c, h


@pytest.mark.parametrize("kwargs", [
    {},
    {"use_peepholes": True},
    {"cell_clip": 0.3},
    {"num_proj": 3, "proj_clip": 0.2},
    {"forget_bias": 0.25},
    {"use_peepholes": True, "cell_clip": 0.5, "num_proj": 2, "forget_bias": 0.0},
])
def test_lstm_matches_numpy(kwargs):
    cell = cells.LSTMCell(UNITS, input_size=DEPTH, **kwargs)
    _randomise(cell)
    x, state = _inputs(), _random_state(cell)
    out, next_state = cell(x, state)
    c, h = _lstm_numpy(cell, x.numpy(), state, kwargs.get("use_peepholes", False),
                       kwargs.get("cell_clip"), kwargs.get("proj_clip"),
                       kwargs.get("forget_bias", 1.0))
    assert isinstance(next_state, cells.LSTMStateTuple)
    np.testing.assert_allclose(next_state.c, c, atol=1e-5)
    np.testing.assert_allclose(next_state.h, h, atol=1e-5)
    np.testing.assert_allclose(out, h, atol=1e-5)


def _layer_norm_numpy(x, gain):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * gain


@pytest.mark.parametrize("peepholes", [False, True])
def test_layer_norm_lstm_matches_numpy(peepholes):
    """Ba et al. (2016): gates LN(x W_x) g_x + LN(h W_h) g_h + b; h = o * tanh(LN(c) g_c + b_c)."""
    cell = cells.LSTMCell(UNITS, use_peepholes=peepholes, layer_norm=True, input_size=DEPTH)
    _randomise(cell)
    x, state = _inputs(), _random_state(cell)
    out, next_state = cell(x, state)
    c, h = (s.numpy() for s in state)
    gates = (_layer_norm_numpy(x.numpy() @ cell.input_kernel.numpy(), cell.input_gain.numpy())
             + _layer_norm_numpy(h @ cell.recurrent_kernel.numpy(), cell.recurrent_gain.numpy())
             + cell.bias.numpy())
    i, j, f, o = np.split(gates, 4, axis=1)
    if peepholes:
        i, f = i + cell.w_i_diag.numpy() * c, f + cell.w_f_diag.numpy() * c
    c = _sigmoid(f + 1.0) * c + _sigmoid(i) * np.tanh(j)
    if peepholes:
        o = o + cell.w_o_diag.numpy() * c
    h = _sigmoid(o) * np.tanh(_layer_norm_numpy(c, cell.memory_gain.numpy())
                              + cell.memory_shift.numpy())
    np.testing.assert_allclose(next_state.c, c, atol=1e-5)
    np.testing.assert_allclose(out, h, atol=1e-5)
    plain = cells.LSTMCell(UNITS, use_peepholes=peepholes, input_size=DEPTH)
    for name in ("input_kernel", "recurrent_kernel", "bias"):
        getattr(plain, name).assign(getattr(cell, name))
    assert not np.allclose(plain(x, state)[0], out, atol=1e-3)  # the normalisation shows


def test_layer_norm_lstm_output_ignores_the_scale_of_its_inputs():
    """With zero state, LN makes the gates (and so h) invariant to scaling the inputs."""
    cell = cells.LSTMCell(UNITS, layer_norm=True, input_size=DEPTH)
    _randomise(cell)
    zero = cell.zero_state(BATCH)
    np.testing.assert_allclose(cell(_inputs(), zero)[0], cell(7.0 * _inputs(), zero)[0],
                               atol=1e-4)


def test_lstm_cell_clip_bounds_memory():
    cell = cells.LSTMCell(UNITS, cell_clip=0.1, input_size=DEPTH)
    _randomise(cell)
    _, state = cell(10.0 * _inputs(), _random_state(cell))
    assert np.abs(state.c.numpy()).max() <= 0.1 + 1e-7
    assert np.isclose(np.abs(state.c.numpy()).max(), 0.1)  # the clip was actually hit


def test_lstm_num_proj_sets_output_and_state_sizes():
    cell = cells.LSTMCell(UNITS, num_proj=2)
    assert cell.output_size == 2 and cell.state_size == cells.LSTMStateTuple(UNITS, 2)
    out, state = cell(_inputs(), cell.zero_state(BATCH))
    assert out.shape == (BATCH, 2) and state.c.shape == (BATCH, UNITS)


def test_lstm_peepholes_and_forget_bias_change_the_result():
    peep = cells.LSTMCell(UNITS, use_peepholes=True, input_size=DEPTH)
    plain = cells.LSTMCell(UNITS, input_size=DEPTH)
    _randomise(peep)
    for name in ("input_kernel", "recurrent_kernel", "bias"):
        getattr(plain, name).assign(getattr(peep, name))
    x, state = _inputs(), _random_state(plain)
    assert not np.allclose(peep(x, state)[0], plain(x, state)[0], atol=1e-4)
    other_bias = cells.LSTMCell(UNITS, forget_bias=0.0, input_size=DEPTH)
    for a, b in zip(other_bias.trainable_variables, plain.trainable_variables):
        a.assign(b)
    assert not np.allclose(other_bias(x, state)[1].c, plain(x, state)[1].c, atol=1e-4)


def test_initializer_is_used():
    cell = cells.LSTMCell(UNITS, initializer=tf.keras.initializers.Constant(0.5),
                          num_proj=2, input_size=DEPTH)
    for var in (cell.input_kernel, cell.recurrent_kernel, cell.proj_kernel):
        np.testing.assert_array_equal(var.numpy(), 0.5)


# --- the prepare_inputs / step contract ---------------------------------------------------

def _all_cells():
    return [
        cells.BasicRNNCell(UNITS),
        cells.GRUCell(UNITS),
        cells.LSTMCell(UNITS, use_peepholes=True, num_proj=3, cell_clip=1.0),
        cells.LSTMCell(UNITS, layer_norm=True, name="layer_norm_lstm"),
        cells.MultiRNNCell([cells.LSTMCell(UNITS), cells.GRUCell(UNITS)]),
        cells.DropoutWrapper(cells.LSTMCell(UNITS), 0.5, 0.5, 0.5, variational_recurrent=True),
        cells.ResidualWrapper(cells.GRUCell(DEPTH)),
        cells.DeviceWrapper(AccumulateCell(UNITS), "/device:CPU:1"),
    ]


@pytest.mark.parametrize("cell", _all_cells(), ids=lambda c: type(c).__name__)
def test_call_equals_step_on_one_step_prepare(cell):
    x = _inputs()
    state = cell.zero_state(BATCH)
    for training in (False, True):
        prepared = cell.prepare_inputs(x[:, None], training=training)
        prepared_t = tf.nest.map_structure(lambda t: t[:, 0], prepared)
        out_a, state_a = cell.step(prepared_t, state, training=training)
        out_b, state_b = cell.step(prepared_t, state, training=training)  # deterministic
        tf.nest.map_structure(np.testing.assert_array_equal, (out_a, state_a), (out_b, state_b))
    out_call, state_call = cell(x, state, training=False)
    prepared = cell.prepare_inputs(x[:, None], training=False)
    out_step, state_step = cell.step(
        tf.nest.map_structure(lambda t: t[:, 0], prepared), state, training=False)
    tf.nest.map_structure(np.testing.assert_allclose,
                          (out_call, state_call), (out_step, state_step))


LATE = 2  # the last LATE input features arrive per step, as an attention decoder's feed


def _late_cells():
    return [
        cells.BasicRNNCell(UNITS),
        cells.GRUCell(UNITS),
        cells.LSTMCell(UNITS, use_peepholes=True, num_proj=3, cell_clip=1.0),
        cells.DropoutWrapper(cells.LSTMCell(UNITS, layer_norm=True), 0.5, 0.5, 0.5),
        cells.MultiRNNCell([cells.DropoutWrapper(cells.LSTMCell(UNITS), 0.5, 0.5, 0.5),
                            cells.DropoutWrapper(cells.GRUCell(UNITS), 0.5)]),
        cells.DropoutWrapper(cells.LSTMCell(UNITS), 0.5, 0.5, 0.5, variational_recurrent=True),
        cells.DeviceWrapper(cells.DropoutWrapper(cells.GRUCell(UNITS), 0.5), "/device:CPU:1"),
        AccumulateCell(UNITS),  # a user cell: the default prepare_inputs and step
    ]


@pytest.mark.parametrize("cell", _late_cells(), ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("training", [False, True])
def test_late_inputs_equal_preparing_the_whole_input(cell, training):
    """prepare_inputs(x[..., :-k], late_size=k) and step(late_inputs=x_t[..., -k:]) give
    what prepare_inputs(x) and step give, dropout masks included (same noise)."""
    steps = 4
    x = tf.constant(np.random.default_rng(5).normal(size=(BATCH, steps, DEPTH)), tf.float32)
    _ = cell(x[:, 0], cell.zero_state(BATCH))  # build
    _randomise(cell)
    noise = cell.sample_noise(BATCH, steps, DEPTH, training)
    whole = cell.prepare_inputs(x, training=training, noise=noise)
    split = cell.prepare_inputs(x[..., :-LATE], training=training, noise=noise, late_size=LATE)
    state_a = state_b = cell.zero_state(BATCH)
    for t in range(steps):
        out_a, state_a = cell.step(cells.noise_at(whole, t), state_a, training=training)
        out_b, state_b = cell.step(cells.noise_at(split, t), state_b, training=training,
                                   late_inputs=x[:, t, -LATE:])
        tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                              (out_a, state_a), (out_b, state_b))
    if training and tf.nest.flatten(noise):  # the masks matter: other noise, other outputs
        other = cell.sample_noise(BATCH, steps, DEPTH, training)
        prepared = cell.prepare_inputs(x, training=True, noise=other)
        out_c, _ = cell.step(cells.noise_at(prepared, 0), cell.zero_state(BATCH), training=True)
        first = cell.step(cells.noise_at(split, 0), cell.zero_state(BATCH), training=True,
                          late_inputs=x[:, 0, -LATE:])[0]
        assert not np.allclose(out_c, first)


def test_late_inputs_are_refused_where_they_cannot_be_taken():
    x = tf.ones([BATCH, 3, DEPTH])
    with pytest.raises(ValueError, match="ResidualWrapper cannot take late inputs"):
        cells.MultiRNNCell([cells.ResidualWrapper(cells.GRUCell(DEPTH + LATE))]).prepare_inputs(
            x, late_size=LATE)
    with pytest.raises(ValueError, match="late inputs need a single input tensor"):
        cells.MultiRNNCell([cells.GRUCell(UNITS)]).prepare_inputs(
            (x, x), training=True, late_size=LATE)


def test_variables_built_at_construction_with_input_size_or_on_first_call():
    eager = cells.LSTMCell(UNITS, input_size=DEPTH)
    assert eager.input_kernel.shape == (DEPTH, 4 * UNITS)
    lazy = cells.LSTMCell(UNITS)
    assert not lazy.trainable_variables

    @tf.function
    def run(x):
        return lazy(x, lazy.zero_state(BATCH))[0]

    assert run(_inputs()).shape == (BATCH, UNITS)
    assert lazy.input_kernel.shape == (DEPTH, 4 * UNITS)


# --- user-defined cells --------------------------------------------------------------------

def test_user_cell_gets_training_only_if_it_accepts_it():
    acc = AccumulateCell(UNITS, input_size=DEPTH)
    x, state = _inputs(), tf.zeros([BATCH, UNITS])
    out_eval, new_eval = acc(x, state, training=False)
    out_train, new_train = acc(x, state, training=True)
    np.testing.assert_allclose(out_train, 2.0 * out_eval.numpy())
    np.testing.assert_allclose(new_train, new_eval)
    out, _ = IdentityCell(DEPTH)(x, tf.zeros([BATCH, DEPTH]), training=True)  # no kwarg
    np.testing.assert_array_equal(out, x)


def test_user_cell_in_dynamic_rnn_wrappers_and_multi_cell():
    x = tf.random.normal([BATCH, 6, DEPTH])
    acc = AccumulateCell(UNITS)
    outputs, final = dynamic_rnn(acc, x)
    np.testing.assert_allclose(final, tf.einsum("btd,du->bu", x, acc.kernel), atol=1e-4)
    np.testing.assert_allclose(outputs[:, -1], final)
    stack = cells.MultiRNNCell([
        cells.DropoutWrapper(IdentityCell(DEPTH), output_keep_prob=0.5),
        cells.ResidualWrapper(AccumulateCell(DEPTH))])
    outputs, final = dynamic_rnn(stack, x, training=True)
    assert outputs.shape == (BATCH, 6, DEPTH) and len(final) == 2
    outputs, _ = dynamic_rnn(stack, x, training=False)
    top = stack.cells[1].cell
    np.testing.assert_allclose(outputs, x + tf.cumsum(x, axis=1) @ top.kernel, atol=1e-4)


# --- DropoutWrapper ------------------------------------------------------------------------

def test_dropout_is_off_when_not_training():
    inner = cells.LSTMCell(UNITS, input_size=DEPTH)
    wrapped = cells.DropoutWrapper(inner, 0.5, 0.5, 0.5, seed=3)
    x, state = _inputs(), _random_state(inner)
    tf.nest.map_structure(np.testing.assert_array_equal, wrapped(x, state), inner(x, state))


@pytest.mark.parametrize("arg", ["input_keep_prob", "output_keep_prob", "state_keep_prob"])
def test_dropout_keep_fraction_and_scaling(arg):
    keep, shape = 0.7, [64, 30, 16]
    cell = cells.DropoutWrapper(IdentityCell(16), **{arg: keep}, seed=4)
    outputs, final = dynamic_rnn(cell, tf.ones(shape), training=True)
    values = (final if arg == "state_keep_prob" else outputs).numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1.0 / keep)}
    assert abs((values != 0).mean() - keep) < 0.03
    if arg == "state_keep_prob":  # output untouched, only the state is dropped
        np.testing.assert_array_equal(outputs, 1.0)


def test_state_dropout_touches_lstm_h_only():
    inner = cells.LSTMCell(UNITS, input_size=DEPTH)
    wrapped = cells.DropoutWrapper(inner, state_keep_prob=0.5, seed=5)
    x = tf.random.normal([32, DEPTH])
    state = inner.zero_state(32)
    _, dropped = wrapped(x, state, training=True)
    _, clean = inner(x, state)
    np.testing.assert_array_equal(dropped.c, clean.c)
    kept = dropped.h.numpy() != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(dropped.h.numpy()[kept], 2.0 * clean.h.numpy()[kept], rtol=1e-6)


def test_variational_masks_repeat_over_time_and_differ_across_batch():
    wrapped = cells.DropoutWrapper(IdentityCell(DEPTH), input_keep_prob=0.5,
                                   variational_recurrent=True, seed=6)
    outputs, _ = dynamic_rnn(wrapped, tf.ones([8, 10, DEPTH]), training=True)
    outputs = outputs.numpy()
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:, :1], outputs.shape))
    assert len({row.tobytes() for row in outputs[:, 0]}) > 1
    plain = cells.DropoutWrapper(IdentityCell(DEPTH), input_keep_prob=0.5, seed=6)
    outputs, _ = dynamic_rnn(plain, tf.ones([8, 10, DEPTH]), training=True)
    assert not np.array_equal(outputs[:, 0], outputs[:, 1])


def _dropout_on_layer_2(variational):
    """[Identity, Dropout(Identity)]: on all-ones inputs the output is layer 2's input mask."""
    return cells.MultiRNNCell([IdentityCell(DEPTH), cells.DropoutWrapper(
        IdentityCell(DEPTH), input_keep_prob=0.5, variational_recurrent=variational, seed=8)])


@pytest.mark.parametrize("time_spec", [10, None], ids=["eager", "any_length_trace"])
def test_variational_masks_of_upper_stacked_layers_repeat_over_time(time_spec):
    stack = _dropout_on_layer_2(variational=True)
    run = tf.function(lambda x: dynamic_rnn(stack, x, training=True)[0],
                      input_signature=[tf.TensorSpec([8, time_spec, DEPTH])])
    masks = run(tf.ones([8, 10, DEPTH])).numpy()  # [batch, time, depth]
    assert set(np.unique(masks)) == {0.0, 2.0}
    np.testing.assert_array_equal(masks, np.broadcast_to(masks[:, :1], masks.shape))
    assert len({row.tobytes() for row in masks[:, 0]}) > 1  # one mask per sequence
    assert not np.array_equal(masks, run(tf.ones([8, 10, DEPTH])).numpy())  # fresh per call
    plain = dynamic_rnn(_dropout_on_layer_2(variational=False), tf.ones([8, 10, DEPTH]),
                        training=True)[0].numpy()
    assert not np.array_equal(plain[:, 0], plain[:, 1])  # non-variational: per step
    np.testing.assert_array_equal(dynamic_rnn(stack, tf.ones([8, 10, DEPTH]))[0], 1.0)


@pytest.mark.parametrize("variational", [True, False])
def test_one_step_calls_with_sampled_noise_follow_the_sequence_masks(variational):
    """A decoder-style loop: noise sampled once, the cell called one step at a time."""
    stack = _dropout_on_layer_2(variational)
    num_steps, x = 6, tf.ones([8, DEPTH])
    noise = stack.sample_noise(8, num_steps, DEPTH, training=True)
    state = stack.zero_state(8)
    masks = []
    for t in range(num_steps):
        out, state = stack(x, state, training=True, noise=cells.noise_at(noise, t))
        masks.append(out.numpy())
    same = all(np.array_equal(m, masks[0]) for m in masks)
    assert same == variational and len({row.tobytes() for row in masks[0]}) > 1
    assert stack.sample_noise(8, num_steps, DEPTH, training=False) == ((), ())
    np.testing.assert_array_equal(stack(x, state, training=False)[0], 1.0)


def test_dropout_seed_reproduces_masks_and_rejects_bad_keep():
    runs = [dynamic_rnn(cells.DropoutWrapper(IdentityCell(DEPTH), 0.5, seed=7),
                        tf.ones([4, 3, DEPTH]), training=True)[0] for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    with pytest.raises(ValueError, match="output_keep_prob"):
        cells.DropoutWrapper(IdentityCell(DEPTH), output_keep_prob=0.0)


# --- ResidualWrapper, DeviceWrapper, composition ------------------------------------------

def test_residual_adds_inputs_and_checks_sizes():
    inner = cells.GRUCell(DEPTH, input_size=DEPTH)
    x, state = _inputs(), inner.zero_state(BATCH)
    out, new_state = cells.ResidualWrapper(inner)(x, state)
    inner_out, inner_state = inner(x, state)
    np.testing.assert_allclose(out, inner_out + x, atol=1e-6)
    np.testing.assert_allclose(new_state, inner_state)
    with pytest.raises(ValueError, match=r"input size == output size \(got 5 and 4\)"):
        cells.ResidualWrapper(cells.GRUCell(4))(x, tf.zeros([BATCH, 4]))


def test_device_wrapper_places_variables_and_ops():
    cell = cells.DeviceWrapper(cells.LSTMCell(UNITS), "/device:CPU:1")
    out, state = cell(_inputs(), cell.zero_state(BATCH))
    assert cell.trainable_variables
    assert all(v.device.endswith("CPU:1") for v in cell.trainable_variables)
    assert out.device.endswith("CPU:1") and state.c.device.endswith("CPU:1")
    graph = tf.function(lambda x: dynamic_rnn(cell, x)[0]).get_concrete_function(
        tf.TensorSpec([None, None, DEPTH])).graph
    matmuls = [op for op in graph.get_operations() if op.type == "MatMul"]
    assert matmuls and all(op.device.endswith("CPU:1") for op in matmuls)


def test_wrappers_compose_in_stacked_dynamic_rnn():
    def layer(device):
        lstm = cells.LSTMCell(DEPTH)
        return cells.DeviceWrapper(cells.ResidualWrapper(cells.DropoutWrapper(
            lstm, 0.8, 0.8, 0.8, variational_recurrent=True)), device)

    stack = cells.MultiRNNCell([layer("/device:CPU:1"), layer("/device:CPU:2")])
    outputs, final = dynamic_rnn(stack, tf.random.normal([BATCH, 7, DEPTH]),
                                 sequence_length=[7, 3, 1], training=True)
    assert outputs.shape == (BATCH, 7, DEPTH) and np.isfinite(outputs.numpy()).all()
    assert [s.h.shape for s in final] == [(BATCH, DEPTH)] * 2
    assert stack.cells[1].trainable_variables[0].device.endswith("CPU:2")


# --- training and checkpoints --------------------------------------------------------------

def test_keras_adam_updates_and_checkpoint_restores(tmp_path):
    cell = cells.MultiRNNCell([cells.LSTMCell(UNITS, input_size=DEPTH),
                               cells.DropoutWrapper(cells.GRUCell(UNITS), 0.9)])
    x = tf.random.normal([BATCH, 4, DEPTH])
    dynamic_rnn(cell, x)
    before = [v.numpy() for v in cell.trainable_variables]
    optimizer = tf.keras.optimizers.Adam(0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(dynamic_rnn(cell, x, training=True)[0] ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, cell.trainable_variables),
                                  cell.trainable_variables))
    assert all(not np.array_equal(b, v) for b, v in zip(before, cell.trainable_variables))
    path = tf.train.Checkpoint(cell=cell).save(str(tmp_path / "ckpt"))
    trained = [v.numpy() for v in cell.trainable_variables]
    for var in cell.trainable_variables:
        var.assign(tf.zeros_like(var))
    tf.train.Checkpoint(cell=cell).restore(path).assert_existing_objects_matched()
    for want, var in zip(trained, cell.trainable_variables):
        np.testing.assert_array_equal(var, want)
