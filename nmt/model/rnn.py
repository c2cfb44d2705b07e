"""dynamic_rnn and bidirectional_dynamic_rnn with TF1 semantics, for any `nmt.model.cells` cell.

Past a sequence's length, outputs are zeros and the state is copied through, so the final
state is the state after the last valid step. The loop is a `tf.while_loop` over a dynamic
number of steps: one trace serves every batch and time size, it compiles under XLA
(`jit_compile=True`), and it is differentiable. `cell.prepare_inputs` runs once before the
loop (the input matmuls of the whole sequence, and the sequence's noise: dropout masks,
see `nmt.model.cells`); each iteration only runs `cell.step` on its time slice. When training,
an LSTM's recurrent kernel gets its gradient after the loop, in one matmul (`nmt.model.deferred`):
`loop` is the one recurrent loop with that bookkeeping, shared with the decoder.
`training` must be a Python bool.
"""
import tensorflow as tf

from nmt.model import deferred as deferred_lib


def _swap_batch_time(tensor):
    """[a, b, ...] -> [b, a, ...]."""
    perm = [1, 0] + list(range(2, tensor.shape.rank))
    return tf.transpose(tensor, perm)


def _output_array(size, dtype, num_steps):
    """A TensorArray for num_steps outputs of shape [batch, size]."""
    element_shape = tf.TensorShape([None]).concatenate(tf.TensorShape(size))
    return tf.TensorArray(dtype, size=num_steps, element_shape=element_shape)


def step_slices(prepared, num_steps):
    """Prepared inputs (leaves [batch, time, ...]) -> what `read_step` reads each step:
    a TensorArray per leaf, or for a leaf with a static time of 1 (a variational dropout
    mask) its one slice, which serves every step. A TensorArray keeps the backward pass
    per step too; slicing a captured [batch, time, ...] tensor inside the loop would add
    a whole zero-padded [batch, time, ...] gradient at every step."""
    return tf.nest.map_structure(
        lambda t: t[:, 0] if t.shape[1] == 1 else
        tf.TensorArray(t.dtype, size=num_steps).unstack(_swap_batch_time(t)),
        prepared)


def read_step(slices, t):
    """Step t of `step_slices`: leaves [batch, ...]."""
    return tf.nest.map_structure(
        lambda ta: ta.read(t) if isinstance(ta, tf.TensorArray) else ta, slices)


def _where(valid, new, old):
    """Per-leaf select: new where valid ([batch, 1] bool), else old."""
    return tf.nest.map_structure(lambda n, o: tf.where(valid, n, o), new, old)


def _deferred(cell, training, dtype, num_steps, batch_size):
    """nmt.model.deferred.DeferredMatmuls for the cell's recurrent kernel when training and the
    cell can defer it (LSTM layers), else None. Its gradient runs on the cell's device
    if the cell is a DeviceWrapper."""
    if not training:
        return None
    deferrable = cell.deferrable_kernels(0, tf.zeros([], dtype))
    if not deferrable:
        return None
    return deferred_lib.DeferredMatmuls(deferrable.kernels, num_steps, batch_size,
                                        device=getattr(cell, "device", None),
                                        owner=deferrable.owner)


def loop(step, state, num_steps, arrays, deferrals=()):
    """Runs `step(t, state) -> (outputs, next_state)` for t < num_steps in one
    `tf.while_loop` and writes each step's outputs (a nest like `arrays`) into `arrays`
    (TensorArrays) -> (arrays, final state).

    deferrals: nmt.model.deferred objects (`DeferredMatmuls`, `DeferredMemory`) whose steps
    are active around `step`; their records are carried through the loop and handed
    back after it, so the weights' gradients run once, after the loop."""
    records = [deferral.records() for deferral in deferrals]

    def body(t, state, arrays, records):
        steps = [deferral.step(t) for deferral in deferrals]
        with deferred_lib.activated(deferrals, steps):
            outputs, state = step(t, state)
        records = [d.write(r, t, s) for d, r, s in zip(deferrals, records, steps)]
        arrays = tf.nest.map_structure(lambda ta, o: ta.write(t, o), arrays, outputs)
        return t + 1, state, arrays, records

    _, state, arrays, records = tf.while_loop(
        lambda t, *_: t < num_steps, body, (tf.constant(0), state, arrays, records),
        maximum_iterations=num_steps)
    for deferral, recorded in zip(deferrals, records):
        deferral.finish(recorded)
    return arrays, state


def dynamic_rnn(cell, inputs, sequence_length=None, initial_state=None, dtype=tf.float32,
                time_major=False, training=False):
    """Runs `cell` over `inputs` [batch, time, depth] ([time, batch, depth] if time_major).

    sequence_length: [batch] ints or None (all sequences full length).
    Returns (outputs [batch, time, output_size] (time-major if time_major), final_state).
    """
    if time_major:
        inputs = tf.nest.map_structure(_swap_batch_time, inputs)
    first = tf.nest.flatten(inputs)[0]
    batch_size, num_steps = tf.shape(first)[0], tf.shape(first)[1]
    state = cell.zero_state(batch_size, dtype) if initial_state is None else initial_state
    prepared = step_slices(cell.prepare_inputs(inputs, training=training), num_steps)
    out_dtype = first.dtype  # the compute dtype; a state may hold float32 parts (LSTM c)
    outputs = tf.nest.map_structure(
        lambda size: _output_array(size, out_dtype, num_steps), cell.output_size)
    valid = None
    if sequence_length is not None:
        valid = tf.sequence_mask(tf.cast(sequence_length, tf.int32), num_steps)  # [batch, time]
        valid = tf.TensorArray(tf.bool, size=num_steps).unstack(
            tf.transpose(valid)[:, :, None])  # each read: [batch, 1]

    def step(t, state):
        output, next_state = cell.step(read_step(prepared, t), state, training=training)
        if valid is None:
            return output, next_state
        valid_t = valid.read(t)
        output = tf.nest.map_structure(lambda o: tf.where(valid_t, o, tf.zeros([], o.dtype)),
                                       output)
        return output, _where(valid_t, next_state, state)

    deferred = _deferred(cell, training, first.dtype, num_steps, batch_size)
    outputs, final_state = loop(step, state, num_steps, outputs,
                                [deferred] if deferred is not None else [])
    outputs = tf.nest.map_structure(  # [time, batch, size]; reshape keeps rank if time == 0
        lambda ta, size: tf.reshape(ta.stack(), tf.concat(
            [[num_steps, batch_size], tf.TensorShape(size).as_list()], 0)),
        outputs, cell.output_size)
    if not time_major:
        outputs = tf.nest.map_structure(_swap_batch_time, outputs)
    return outputs, final_state


def _reverse(inputs, sequence_length):
    """Reverses each [batch, time, ...] sequence within its own length."""
    if sequence_length is None:
        return tf.nest.map_structure(lambda x: tf.reverse(x, axis=[1]), inputs)
    lengths = tf.cast(sequence_length, tf.int64)
    return tf.nest.map_structure(
        lambda x: tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0), inputs)


def bidirectional_dynamic_rnn(cell_fw, cell_bw, inputs, sequence_length=None,
                              initial_state_fw=None, initial_state_bw=None, dtype=tf.float32,
                              time_major=False, training=False):
    """Forward and backward `dynamic_rnn`; the backward cell reads each sequence reversed
    within its length, and its outputs are re-reversed to line up with the inputs.

    Returns ((outputs_fw, outputs_bw), (final_state_fw, final_state_bw)), outputs shaped
    like `dynamic_rnn`'s.
    """
    if time_major:
        inputs = tf.nest.map_structure(_swap_batch_time, inputs)
    out_fw, state_fw = dynamic_rnn(cell_fw, inputs, sequence_length, initial_state_fw,
                                   dtype, training=training)
    reversed_out, state_bw = dynamic_rnn(cell_bw, _reverse(inputs, sequence_length),
                                         sequence_length, initial_state_bw, dtype,
                                         training=training)
    out_bw = _reverse(reversed_out, sequence_length)
    if time_major:
        out_fw, out_bw = (tf.nest.map_structure(_swap_batch_time, o) for o in (out_fw, out_bw))
    return (out_fw, out_bw), (state_fw, state_bw)
