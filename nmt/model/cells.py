"""The RNNCell family: Elman RNN, GRU and LSTM, with the TF1 `tf.compat.v1.nn.rnn_cell`
names. The contract every cell keeps (prepared inputs, noise, late inputs, deferred
weight gradients) is `nmt.model.rnn_cell`'s; the wrappers (stacking, dropout, residual,
device) are `nmt.model.cell_wrappers`'. Both are re-exported here, so `nmt.model.cells` names
every cell.
"""
import tensorflow as tf

from nmt.model import deferred as deferred_lib
from nmt.model.cell_wrappers import (DeviceWrapper, DropoutWrapper, MultiPrepared,  # noqa: F401
                               MultiRNNCell, ResidualWrapper)
from nmt.model.precision import read
from nmt.model.rnn_cell import (LSTMStateTuple, RNNCell, glorot_uniform, noise_at,  # noqa: F401
                          static_depth)


def _input_projection(cell, inputs, late_size):
    """The affine part of a built-in cell's step for a whole sequence: inputs [batch, time,
    depth] @ the input kernel's first `depth` rows + bias (the other `late_size` rows meet
    the late inputs in `_late_projection`)."""
    cell._maybe_build(static_depth(inputs) + late_size)
    kernel = cell.input_kernel[:-late_size] if late_size else cell.input_kernel
    return _sequence_matmul(inputs, kernel, cell.bias)


def _late_projection(cell, prepared_t, late_inputs):
    """prepared_t + late_inputs [batch, k] @ the input kernel's last k rows."""
    if late_inputs is None:
        return prepared_t
    kernel = read(cell.input_kernel, late_inputs)[-late_inputs.shape[-1]:]
    return prepared_t + tf.matmul(late_inputs, kernel)


def _sequence_matmul(inputs, kernel, bias):
    """inputs [batch, time, depth] @ kernel [depth, n] + bias [n] (None: none) ->
    [batch, time, n], in the dtype of the inputs."""
    batch_time = tf.shape(inputs)[:2]
    flat = tf.reshape(inputs, [-1, inputs.shape[-1]])  # [batch * time, depth]
    out = tf.matmul(flat, read(kernel, flat))  # [batch * time, n]
    if bias is not None:
        out += read(bias, flat)
    return tf.reshape(out, tf.concat([batch_time, [kernel.shape[-1]]], 0))


class BasicRNNCell(RNNCell):
    """Elman RNN: h' = activation(x W_x + h W_h + b); output = state = h' [batch, num_units]."""

    def __init__(self, num_units, activation=tf.tanh, input_size=None, name=None):
        self.num_units = num_units
        self._activation = activation
        super().__init__(input_size=input_size, name=name)

    @property
    def state_size(self):
        return self.num_units

    @property
    def output_size(self):
        return self.num_units

    def build(self, input_size):
        n = self.num_units
        self.input_kernel = tf.Variable(glorot_uniform([input_size, n]), name="input_kernel")
        self.recurrent_kernel = tf.Variable(glorot_uniform([n, n]), name="recurrent_kernel")
        self.bias = tf.Variable(tf.zeros([n]), name="bias")

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        return _input_projection(self, inputs, late_size)  # [batch, time, n]

    def step(self, prepared_t, state, training=False, late_inputs=None):
        x = _late_projection(self, prepared_t, late_inputs)
        h = self._activation(x + tf.matmul(state, read(self.recurrent_kernel, state)))
        return h, h


class GRUCell(RNNCell):
    """Gated recurrent unit (Cho et al. 2014), TF1 equations:
    r, u = sigmoid(W_g [x, h] + b_g)   (b_g initialised to 1.0)
    c = activation(W_c [x, r * h] + b_c);   h' = u * h + (1 - u) * c.
    Output and state: [batch, num_units]."""

    def __init__(self, num_units, activation=tf.tanh, kernel_initializer=None,
                 input_size=None, name=None):
        self.num_units = num_units
        self._activation = activation
        self._init = kernel_initializer or glorot_uniform
        super().__init__(input_size=input_size, name=name)

    @property
    def state_size(self):
        return self.num_units

    @property
    def output_size(self):
        return self.num_units

    def build(self, input_size):
        n, init = self.num_units, self._init
        # Input parts of the gate (r, u) and candidate kernels, fused: [input_size, 3n].
        self.input_kernel = tf.Variable(init([input_size, 3 * n], tf.float32), name="input_kernel")
        self.gate_kernel = tf.Variable(init([n, 2 * n], tf.float32), name="gate_kernel")
        self.candidate_kernel = tf.Variable(init([n, n], tf.float32), name="candidate_kernel")
        self.bias = tf.Variable(tf.concat([tf.ones([2 * n]), tf.zeros([n])], 0), name="bias")

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        return _input_projection(self, inputs, late_size)  # [batch, time, 3n]

    def step(self, prepared_t, state, training=False, late_inputs=None):
        n = self.num_units
        prepared_t = _late_projection(self, prepared_t, late_inputs)
        x_gates, x_candidate = prepared_t[:, :2 * n], prepared_t[:, 2 * n:]
        gates = tf.sigmoid(x_gates + tf.matmul(state, read(self.gate_kernel, state)))  # [batch, 2n]
        r, u = gates[:, :n], gates[:, n:]
        c = self._activation(x_candidate + tf.matmul(r * state, read(self.candidate_kernel, state)))
        h = u * state + (1.0 - u) * c
        return h, h


class LSTMCell(RNNCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), TF1 gate order i, j, f, o:
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * activation(j)
    h' = sigmoid(o) * activation(c')
    with optional diagonal peepholes from c into i, f and from c' into o (Gers et al. 2000),
    `cell_clip` on c', and a projection h' <- h' W_p clipped to `proj_clip` (Sak et al. 2014).
    State: LSTMStateTuple(c [batch, num_units], h [batch, num_proj or num_units]).
    The four gate matmuls are fused: input kernel [input_size, 4 units], recurrent kernel
    [h_size, 4 units]; `prepare_inputs` applies the input kernel to the whole sequence.

    layer_norm (Ba et al. 2016 §3.1): the gates are LN(x W_x) g_x + LN(h W_h) g_h + b, and
    the output reads LN(c') g_c + b_c, each LN over the units of one row with gains g
    (initialised to 1); c itself is not normalised. Without late inputs, LN(x W_x) is
    computed for the whole sequence in `prepare_inputs`; with them, after they are added."""

    def __init__(self, num_units, use_peepholes=False, cell_clip=None, initializer=None,
                 num_proj=None, proj_clip=None, forget_bias=1.0, activation=tf.tanh,
                 layer_norm=False, input_size=None, name=None):
        self.num_units = num_units
        self.layer_norm = layer_norm
        self.use_peepholes = use_peepholes
        self.cell_clip = cell_clip
        self.num_proj = num_proj
        self.proj_clip = proj_clip
        self.forget_bias = forget_bias
        self._activation = activation
        self._init = initializer or glorot_uniform
        super().__init__(input_size=input_size, name=name)

    @property
    def state_size(self):
        return LSTMStateTuple(self.num_units, self.output_size)

    @property
    def output_size(self):
        return self.num_proj or self.num_units

    def state_dtype(self, dtype):
        """The memory c accumulates over time steps: float32 whatever the compute dtype."""
        return LSTMStateTuple(tf.float32, dtype)

    def build(self, input_size):
        n, init, f32 = self.num_units, self._init, tf.float32
        self.input_kernel = tf.Variable(init([input_size, 4 * n], f32), name="input_kernel")
        self.recurrent_kernel = tf.Variable(
            init([self.output_size, 4 * n], f32), name="recurrent_kernel")
        self.bias = tf.Variable(tf.zeros([4 * n]), name="bias")
        if self.use_peepholes:
            self.w_i_diag = tf.Variable(init([n], f32), name="w_i_diag")
            self.w_f_diag = tf.Variable(init([n], f32), name="w_f_diag")
            self.w_o_diag = tf.Variable(init([n], f32), name="w_o_diag")
        if self.num_proj:
            self.proj_kernel = tf.Variable(init([n, self.num_proj], f32), name="proj_kernel")
        if self.layer_norm:
            self.input_gain = tf.Variable(tf.ones([4 * n]), name="input_gain")
            self.recurrent_gain = tf.Variable(tf.ones([4 * n]), name="recurrent_gain")
            self.memory_gain = tf.Variable(tf.ones([n]), name="memory_gain")
            self.memory_shift = tf.Variable(tf.zeros([n]), name="memory_shift")

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        if not self.layer_norm:
            return _input_projection(self, inputs, late_size)  # [batch, time, 4n]
        self._maybe_build(static_depth(inputs) + late_size)
        kernel = self.input_kernel[:-late_size] if late_size else self.input_kernel
        projected = _sequence_matmul(inputs, kernel, None)  # [batch, time, 4n], no bias
        if late_size:  # normalised in `step`, once the late inputs are added
            return projected
        return tf.cast(layer_norm(projected, self.input_gain), projected.dtype)

    def deferrable_kernels(self, late_size, like):
        """The recurrent kernel, and the late inputs' rows of the input kernel (not with
        layer_norm, whose two normalised sums cannot share one deferred sum)."""
        kernels = {"recurrent": read(self.recurrent_kernel, like)}
        if late_size and not self.layer_norm:
            kernels["late"] = read(self.input_kernel, like)[-late_size:]
        return deferred_lib.Deferrable(self, kernels)

    def step(self, prepared_t, state, training=False, late_inputs=None):
        c_prev, h_prev = state
        deferred = deferred_lib.active(self)  # inside a loop that defers this cell's kernels
        if self.layer_norm:
            gates = self._normalised_gates(prepared_t, h_prev, late_inputs, deferred)
        elif deferred is None:
            gates = (_late_projection(self, prepared_t, late_inputs)
                     + tf.matmul(h_prev, read(self.recurrent_kernel, h_prev)))  # [batch, 4n]
        else:  # nmt.model.deferred: the kernels' gradients are computed after the loop
            gates = prepared_t + deferred.zeros + tf.matmul(h_prev, deferred.kernels["recurrent"])
            deferred.inputs["recurrent"] = h_prev
            if late_inputs is not None:
                gates += tf.matmul(late_inputs, deferred.kernels["late"])
                deferred.inputs["late"] = late_inputs
        # The gates' nonlinearities and the memory update run in c's dtype (float32).
        i, j, f, o = tf.split(tf.cast(gates, c_prev.dtype), 4, axis=1)
        if self.use_peepholes:
            i += read(self.w_i_diag, c_prev) * c_prev
            f += read(self.w_f_diag, c_prev) * c_prev
        c = tf.sigmoid(f + self.forget_bias) * c_prev + tf.sigmoid(i) * self._activation(j)
        if self.cell_clip is not None:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        if self.use_peepholes:
            o += read(self.w_o_diag, c) * c
        memory = layer_norm(c, self.memory_gain) + self.memory_shift if self.layer_norm else c
        h = tf.cast(tf.sigmoid(o) * self._activation(memory), h_prev.dtype)  # [batch, num_units]
        if self.num_proj:
            h = tf.matmul(h, read(self.proj_kernel, h))  # [batch, num_proj]
            if self.proj_clip is not None:
                h = tf.clip_by_value(h, -self.proj_clip, self.proj_clip)
        return h, LSTMStateTuple(c, h)

    def _normalised_gates(self, prepared_t, h_prev, late_inputs, deferred):
        """layer_norm: LN(x W_x) g_x + LN(h W_h) g_h + b, float32 [batch, 4n]."""
        if late_inputs is None:  # normalised in prepare_inputs
            from_inputs = tf.cast(prepared_t, tf.float32)
        else:
            from_inputs = layer_norm(_late_projection(self, prepared_t, late_inputs),
                                     self.input_gain)
        if deferred is None:
            recurrent = tf.matmul(h_prev, read(self.recurrent_kernel, h_prev))
        else:  # nmt.model.deferred: the recurrent kernel's gradient is computed after the loop
            recurrent = deferred.zeros + tf.matmul(h_prev, deferred.kernels["recurrent"])
            deferred.inputs["recurrent"] = h_prev
        return from_inputs + layer_norm(recurrent, self.recurrent_gain) + self.bias


def layer_norm(x, gain, epsilon=1e-5):
    """(x - mean) / sqrt(variance + epsilon) * gain over the last axis, in float32."""
    x = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gain
