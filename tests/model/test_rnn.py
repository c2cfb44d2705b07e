"""Tests for nmt.model.rnn: padding semantics, tf.function / XLA, time_major, gradients, bidi."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.model import cells
from nmt.model.rnn import bidirectional_dynamic_rnn, dynamic_rnn

DEPTH, UNITS, MAX_TIME = 3, 4, 6
LENGTHS = [6, 2, 4, 0]


def _stacked_lstm():
    return cells.MultiRNNCell([cells.LSTMCell(UNITS, use_peepholes=True, input_size=DEPTH),
                               cells.GRUCell(UNITS)])


def _padded_inputs(seed=0):
    x = np.random.default_rng(seed).normal(size=(len(LENGTHS), MAX_TIME, DEPTH))
    return tf.constant(x, tf.float32)


def _assert_nested_close(a, b, atol=1e-5):
    tf.nest.map_structure(lambda u, v: np.testing.assert_allclose(u, v, atol=atol), a, b)


@pytest.mark.parametrize("make_cell", [lambda: cells.BasicRNNCell(UNITS), _stacked_lstm],
                         ids=["basic", "stacked"])
def test_padded_batch_matches_each_sequence_alone(make_cell):
    cell = make_cell()
    x = _padded_inputs()
    outputs, final = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    for b, length in enumerate(LENGTHS):
        alone_out, alone_final = dynamic_rnn(cell, x[b:b + 1, :length])
        np.testing.assert_allclose(outputs[b:b + 1, :length], alone_out, atol=1e-5)
        np.testing.assert_array_equal(outputs[b, length:], 0.0)
        _assert_nested_close(tf.nest.map_structure(lambda s: s[b:b + 1], final), alone_final)


def test_padding_values_do_not_matter_and_get_no_gradient():
    cell = cells.LSTMCell(UNITS)
    x = _padded_inputs()
    mask = tf.sequence_mask(LENGTHS, MAX_TIME, tf.float32)[:, :, None]
    noisy = x + 100.0 * (1.0 - mask) * _padded_inputs(seed=1)
    with tf.GradientTape() as tape:
        tape.watch(noisy)
        outputs, final = dynamic_rnn(cell, noisy, sequence_length=LENGTHS)
        loss = tf.reduce_sum(outputs) + tf.reduce_sum(final.c)
    clean = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    _assert_nested_close((outputs, final), clean)
    grads = tape.gradient(loss, [noisy, *cell.trainable_variables])
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
    assert all(np.abs(g.numpy()).sum() > 0 for g in grads)
    np.testing.assert_array_equal(grads[0] * (1.0 - mask), 0.0)


def test_padded_batch_gradients_are_the_sum_of_each_sequence_alone():
    cell = _stacked_lstm()
    x = _padded_inputs()

    def gradients(inputs, lengths=None):
        with tf.GradientTape() as tape:
            outputs, final = dynamic_rnn(cell, inputs, sequence_length=lengths)
            loss = tf.reduce_sum(outputs ** 2) + sum(tf.reduce_sum(s) for s in
                                                     tf.nest.flatten(final))
        return tape.gradient(loss, cell.trainable_variables)

    padded = gradients(x, LENGTHS)
    alone = [gradients(x[b:b + 1, :length]) for b, length in enumerate(LENGTHS)]
    for i, grad in enumerate(padded):
        np.testing.assert_allclose(grad, sum(g[i] for g in alone if g[i] is not None), atol=1e-5)


def test_initial_state_is_used():
    cell = cells.GRUCell(UNITS, input_size=DEPTH)
    x = _padded_inputs()
    start = tf.random.normal([len(LENGTHS), UNITS])
    _, final = dynamic_rnn(cell, x, sequence_length=LENGTHS, initial_state=start)
    np.testing.assert_array_equal(final[3], start[3])  # length 0 keeps the initial state
    _, from_zero = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    assert not np.allclose(final[0], from_zero[0])


def test_time_major_agrees_with_batch_major():
    cell = _stacked_lstm()
    x = _padded_inputs()
    batch_major = dynamic_rnn(cell, x, sequence_length=LENGTHS)
    out_tm, final_tm = dynamic_rnn(cell, tf.transpose(x, [1, 0, 2]),
                                   sequence_length=LENGTHS, time_major=True)
    _assert_nested_close(batch_major, (tf.transpose(out_tm, [1, 0, 2]), final_tm))


def test_one_trace_serves_any_length_and_xla_agrees():
    cell = _stacked_lstm()
    spec = [tf.TensorSpec([None, None, DEPTH]), tf.TensorSpec([None], tf.int32)]
    traces = []

    def run(x, lengths):
        traces.append(1)
        return dynamic_rnn(cell, x, sequence_length=lengths)

    graph_fn = tf.function(run, input_signature=spec)
    xla_fn = tf.function(run, input_signature=spec, jit_compile=True)
    for time in (MAX_TIME, 9):
        x = tf.random.normal([len(LENGTHS), time, DEPTH])
        eager = dynamic_rnn(cell, x, sequence_length=LENGTHS)
        _assert_nested_close(graph_fn(x, tf.constant(LENGTHS)), eager)
        _assert_nested_close(xla_fn(x, tf.constant(LENGTHS)), eager)
    x = tf.random.normal([2, 5, DEPTH])
    _assert_nested_close(graph_fn(x, tf.constant([5, 1])), dynamic_rnn(cell, x, [5, 1]))
    assert len(traces) == 2  # one per tf.function, whatever the batch and time sizes


def test_gradients_under_xla_training_with_dropout():
    cell = cells.MultiRNNCell([
        cells.DropoutWrapper(cells.LSTMCell(UNITS, input_size=DEPTH), 0.8, 0.8, 0.8,
                             variational_recurrent=True, seed=1),
        cells.ResidualWrapper(cells.GRUCell(UNITS))])

    @tf.function(jit_compile=True)
    def grads(x, lengths):
        with tf.GradientTape() as tape:
            outputs, _ = dynamic_rnn(cell, x, sequence_length=lengths, training=True)
            loss = tf.reduce_sum(outputs ** 2)
        return tape.gradient(loss, cell.trainable_variables)

    for g in grads(_padded_inputs(), tf.constant(LENGTHS)):
        assert g is not None and np.isfinite(g.numpy()).all() and np.abs(g.numpy()).sum() > 0


def _reverse_within(x, lengths):
    return np.stack([np.concatenate([row[:n][::-1], row[n:]]) for row, n in zip(x, lengths)])


def test_bidirectional_backward_is_forward_over_reversed_sequences():
    cell_fw, cell_bw = cells.LSTMCell(UNITS), cells.GRUCell(UNITS)
    x = _padded_inputs()
    (out_fw, out_bw), (state_fw, state_bw) = bidirectional_dynamic_rnn(
        cell_fw, cell_bw, x, sequence_length=LENGTHS)
    _assert_nested_close((out_fw, state_fw), dynamic_rnn(cell_fw, x, sequence_length=LENGTHS))
    reversed_x = tf.constant(_reverse_within(x.numpy(), LENGTHS))
    rev_out, rev_state = dynamic_rnn(cell_bw, reversed_x, sequence_length=LENGTHS)
    np.testing.assert_allclose(out_bw, _reverse_within(rev_out.numpy(), LENGTHS), atol=1e-5)
    np.testing.assert_allclose(state_bw, rev_state, atol=1e-5)
    # The last valid output of the backward pass saw only the last valid input.
    b, n = 2, LENGTHS[2]
    alone, _ = dynamic_rnn(cell_bw, x[b:b + 1, n - 1:n])
    np.testing.assert_allclose(out_bw[b, n - 1], alone[0, 0], atol=1e-5)


def test_bidirectional_time_major_and_no_lengths():
    cell_fw, cell_bw = cells.BasicRNNCell(UNITS), cells.BasicRNNCell(UNITS)
    x = _padded_inputs()
    (fw, bw), _ = bidirectional_dynamic_rnn(cell_fw, cell_bw, x)
    rev, _ = dynamic_rnn(cell_bw, x[:, ::-1])
    np.testing.assert_allclose(bw, rev[:, ::-1], atol=1e-5)
    (fw_tm, bw_tm), _ = bidirectional_dynamic_rnn(
        cell_fw, cell_bw, tf.transpose(x, [1, 0, 2]), time_major=True)
    np.testing.assert_allclose(tf.transpose(fw_tm, [1, 0, 2]), fw, atol=1e-5)
    np.testing.assert_allclose(tf.transpose(bw_tm, [1, 0, 2]), bw, atol=1e-5)
