"""The RNNCell family on `tf.Module`, with the TF1 `tf.compat.v1.nn.rnn_cell` names.

Every cell, built-in or user-defined, keeps one contract:

    output, next_state = cell(inputs, state, training=False)
    cell.state_size, cell.output_size      # ints or nested tuples of ints
    cell.zero_state(batch_size, dtype)
    cell.state_dtype(dtype)                # state leaf dtypes when computing in dtype

Mixed precision (nmt.precision): a cell computes in the dtype of its inputs and reads its
float32 variables in that dtype; LSTMCell keeps its memory c in float32.

and a fast path used by `nmt.rnn.dynamic_rnn` and the decoders:

    prepared = cell.prepare_inputs(inputs, training)  # [batch, time, depth] -> [batch, time, ...]
    output, next_state = cell.step(prepared_t, state, training)  # prepared_t: time axis removed

`prepare_inputs` runs once per sequence, outside the recurrent loop: the built-in cells
do their input matmul there for the whole sequence, and wrappers put every dropout mask
there, so `step` is deterministic given its arguments. `cell(x, s)` is literally
`step` on the one-step `prepare_inputs` of `x`, so both paths agree.

Randomness is separate from input preparation, so a caller that can only feed one step at
a time (a stacked cell's upper layers, an attention decoder) still gets one mask per
sequence where the cell asks for it (variational dropout, Gal & Ghahramani 2016):

    noise = cell.sample_noise(batch_size, num_steps, input_size, training)  # once per sequence
    prepared = cell.prepare_inputs(inputs, training, noise=noise)              # whole sequence, or
    output, next_state = cell(x_t, state, training, noise=noise_at(noise, t))  # one step

Noise is a nest of [batch, time, ...] tensors whose time axis is num_steps, or a static 1
for noise that is the same at every step; `noise_at` slices either. A cell without
randomness returns () (the default), and so does every cell when training=False.
`prepare_inputs` without `noise` samples its own for the sequence it is given.

Late inputs: an attention decoder with input feeding knows its embedded targets ahead but
the fed-back attentional vector only at each step. `prepare_inputs(x, late_size=k)` takes
inputs without their last k features and prepares the rest for the whole sequence (the
built-in cells multiply them by the first rows of the input kernel there); `step(prepared_t,
state, late_inputs=z_t)` then adds those k features at each step. It equals preparing
`concat([x_t, z_t])`, dropout masks included. Cells whose `prepare_inputs` takes no
`late_size` (ResidualWrapper, user cells that override it) cannot take late inputs.

Deferred weight gradients: a loop that owns its steps (`nmt.rnn.dynamic_rnn`, the attention
decoder) may ask `cell.deferrable_kernels(late_size, like)` for kernels whose gradients it
computes after the loop (`nmt.deferred`), and then passes `step(..., deferred=d)`: the
cell multiplies by `d.kernels` (under stop_gradient), adds `d.zeros` to the same sum and
records the matmul inputs in `d.inputs`. LSTMCell defers its recurrent kernel and the late
inputs' rows (with layer_norm, the recurrent kernel only); wrappers pass it on, MultiRNNCell
to layer 0. Other cells return None.

Variables are created in `build(input_size)`, either eagerly when the constructor gets
`input_size=`, or on the first `prepare_inputs` / call from the static last dimension of
the inputs (under `tf.init_scope`, so a first call inside `tf.function` works).
"""
import collections
import inspect

import tensorflow as tf

from nmt import devices
from nmt.precision import read

LSTMStateTuple = collections.namedtuple("LSTMStateTuple", ("c", "h"))
LSTMStateTuple.__doc__ = "LSTM state: c [batch, num_units] (memory), h [batch, h_size] (output)."


def glorot_uniform(shape, dtype=tf.float32):
    """Glorot & Bengio (2010) uniform init for a [fan_in, fan_out] (or [n]) shape."""
    fan_in, fan_out = (shape[0], shape[-1]) if len(shape) > 1 else (shape[0], shape[0])
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    return tf.random.uniform(shape, -limit, limit, dtype=dtype)


def _first_step(structure):
    """[batch, 1, ...] leaves -> [batch, ...] leaves."""
    return tf.nest.map_structure(lambda t: t[:, 0], structure)


def noise_at(noise, t):
    """Step t of a `sample_noise` nest: leaves [batch, time, ...] -> [batch, ...]; leaves
    with a static time of 1 are the same at every step."""
    return tf.nest.map_structure(lambda n: n[:, 0] if n.shape[1] == 1 else n[:, t], noise)


def _input_size(inputs):
    """Nested depths of [batch, time, depth] inputs (static where known)."""
    return tf.nest.map_structure(
        lambda x: x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1], inputs)


def _prepare(cell, inputs, training, noise, late_size=0):
    """cell.prepare_inputs with `noise` (None: the cell samples its own) and `late_size`.
    Empty noise is left out for user cells whose prepare_inputs takes no `noise` argument."""
    kwargs = {}
    if late_size:
        if not _takes_argument(cell, "prepare_inputs", "late_size"):
            raise ValueError(f"{type(cell).__name__} cannot take late inputs "
                             "(its prepare_inputs has no late_size)")
        kwargs["late_size"] = late_size
    if noise is not None and (tf.nest.flatten(noise)
                              or _takes_argument(cell, "prepare_inputs", "noise")):
        kwargs["noise"] = noise
    return cell.prepare_inputs(inputs, training=training, **kwargs)


def _step(cell, prepared_t, state, training, late_inputs=None, deferred=None):
    """cell.step, passing `late_inputs` and `deferred` only when there are some."""
    kwargs = {}
    if late_inputs is not None:
        kwargs["late_inputs"] = late_inputs
    if deferred is not None:
        kwargs["deferred"] = deferred
    return cell.step(prepared_t, state, training=training, **kwargs)


def _input_projection(cell, inputs, late_size):
    """The affine part of a built-in cell's step for a whole sequence: inputs [batch, time,
    depth] @ the input kernel's first `depth` rows + bias (the other `late_size` rows meet
    the late inputs in `_late_projection`)."""
    cell._maybe_build(_static_depth(inputs) + late_size)
    kernel = cell.input_kernel[:-late_size] if late_size else cell.input_kernel
    return _sequence_matmul(inputs, kernel, cell.bias)


def _late_projection(cell, prepared_t, late_inputs):
    """prepared_t + late_inputs [batch, k] @ the input kernel's last k rows."""
    if late_inputs is None:
        return prepared_t
    kernel = read(cell.input_kernel, late_inputs)[-late_inputs.shape[-1]:]
    return prepared_t + tf.matmul(late_inputs, kernel)


def _full_input_size(inputs, late_size):
    """`_input_size` counting `late_size` late features (single-tensor inputs only)."""
    if not late_size:
        return _input_size(inputs)
    if tf.nest.is_nested(inputs):
        raise ValueError("late inputs need a single input tensor, not a nest")
    return _input_size(inputs) + late_size


def _takes_argument(cell, method, argument):
    """Whether cell.<method> accepts `argument` (by name or **kwargs): user cells may
    leave out `noise` and `training`. Cached in the instance dict, untracked by tf.Module."""
    key = f"_{method}_takes_{argument}"
    takes = cell.__dict__.get(key)
    if takes is None:
        params = inspect.signature(getattr(cell, method)).parameters.values()
        takes = any(p.name == argument or p.kind == p.VAR_KEYWORD for p in params)
        cell.__dict__[key] = takes
    return takes


def _static_depth(inputs):
    """The static last dimension of the first input tensor (needed to build variables)."""
    depth = tf.nest.flatten(inputs)[0].shape[-1]
    if depth is None:
        raise ValueError("Cell inputs need a static last dimension (got shape "
                         f"{tf.nest.flatten(inputs)[0].shape}); or pass input_size=.")
    return int(depth)


class RNNCell(tf.Module):
    """Base class. Subclass it: declare `state_size`/`output_size`, implement
    `call(inputs, state)` or `call(inputs, state, training)`, and create variables in
    `build(input_size)`. If you pass `input_size=` to this constructor, set the
    attributes `build` needs before calling `super().__init__`."""

    def __init__(self, input_size=None, name=None):
        super().__init__(name=name)
        self.built = False
        if input_size is not None:
            self._maybe_build(int(input_size))

    @property
    def state_size(self):
        raise NotImplementedError("RNNCell subclasses must define state_size")

    @property
    def output_size(self):
        raise NotImplementedError("RNNCell subclasses must define output_size")

    def build(self, input_size):
        """Creates the variables for inputs of depth `input_size`. Default: none."""

    def call(self, inputs, state):
        raise NotImplementedError("RNNCell subclasses must implement call or step")

    def _maybe_build(self, input_size):
        if self.built:
            return
        with tf.init_scope(), self.name_scope:
            self.build(input_size)
        self.built = True

    def state_dtype(self, dtype):
        """The dtypes of the state, shaped like `state_size`, when computing in `dtype`.
        Default: `dtype` everywhere (LSTMCell keeps its memory c in float32)."""
        return tf.nest.map_structure(lambda _: dtype, self.state_size)

    def zero_state(self, batch_size, dtype=tf.float32):
        """Zeros shaped like `state_size`, each leaf [batch_size, size] (`state_dtype`)."""
        return tf.nest.map_structure(
            lambda size, leaf_dtype: tf.zeros([batch_size, size], leaf_dtype),
            self.state_size, self.state_dtype(dtype))

    def sample_noise(self, batch_size, num_steps, input_size, training=False):
        """The randomness of one sequence (see the module doc). Default: none, ()."""
        return ()

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        """[batch, time, depth] -> per-sequence precomputation. Default: identity."""
        self._maybe_build(_static_depth(inputs) + late_size)
        return inputs

    def deferrable_kernels(self, late_size, like):
        """{name: kernel} whose gradients `step(..., deferred=)` can leave to
        `nmt.deferred` (read in the dtype of `like`), or None. Default: None."""
        return None

    def step(self, prepared_t, state, training=False, late_inputs=None):
        """One time step on a time slice of `prepare_inputs`. Default: `call` (on the
        inputs with the late ones appended)."""
        if late_inputs is not None:
            prepared_t = tf.concat([prepared_t, late_inputs], -1)
        if _takes_argument(self, "call", "training"):
            return self.call(prepared_t, state, training=training)
        return self.call(prepared_t, state)

    def __call__(self, inputs, state, training=False, noise=None):
        """inputs [batch, depth], state -> (output [batch, output_size], next_state).
        noise: one step of `sample_noise` (`noise_at`); None draws fresh noise."""
        expand = lambda t: tf.expand_dims(t, 1)  # [batch, ...] -> [batch, 1, ...]
        inputs_seq = tf.nest.map_structure(expand, inputs)
        if noise is not None:
            noise = tf.nest.map_structure(expand, noise)
        prepared = _prepare(self, inputs_seq, training, noise)
        return self.step(_first_step(prepared), state, training=training)


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
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * activation(j);  h' = sigmoid(o) * activation(c')
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
        self._maybe_build(_static_depth(inputs) + late_size)
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
        return kernels

    def step(self, prepared_t, state, training=False, late_inputs=None, deferred=None):
        c_prev, h_prev = state
        if self.layer_norm:
            gates = self._normalised_gates(prepared_t, h_prev, late_inputs, deferred)
        elif deferred is None:
            gates = (_late_projection(self, prepared_t, late_inputs)
                     + tf.matmul(h_prev, read(self.recurrent_kernel, h_prev)))  # [batch, 4n]
        else:  # nmt.deferred: the kernels' gradients are computed after the loop
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
        else:  # nmt.deferred: the recurrent kernel's gradient is computed after the loop
            recurrent = deferred.zeros + tf.matmul(h_prev, deferred.kernels["recurrent"])
            deferred.inputs["recurrent"] = h_prev
        return from_inputs + layer_norm(recurrent, self.recurrent_gain) + self.bias


def layer_norm(x, gain, epsilon=1e-5):
    """(x - mean) / sqrt(variance + epsilon) * gain over the last axis, in float32."""
    x = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gain


MultiPrepared = collections.namedtuple("MultiPrepared", ("first", "upper_noise"))
MultiPrepared.__doc__ = ("MultiRNNCell.prepare_inputs: layer 0's prepared inputs and the upper "
                         "layers' noise (a tuple, one per layer).")


class MultiRNNCell(RNNCell):
    """Stacked cells: layer k feeds layer k+1. State: tuple of the layers' states.
    Noise: tuple of the layers' noise. `prepare_inputs` prepares layer 0 and carries the
    upper layers' noise, drawn once per sequence; upper layers run their own one-step
    `__call__` inside `step` on their slice of that noise."""

    def __init__(self, cells, name=None):
        if not cells:
            raise ValueError("MultiRNNCell needs at least one cell")
        self.cells = list(cells)
        super().__init__(name=name)

    @property
    def state_size(self):
        return tuple(cell.state_size for cell in self.cells)

    @property
    def output_size(self):
        return self.cells[-1].output_size

    def state_dtype(self, dtype):
        return tuple(cell.state_dtype(dtype) for cell in self.cells)

    def zero_state(self, batch_size, dtype=tf.float32):
        return tuple(cell.zero_state(batch_size, dtype) for cell in self.cells)

    def sample_noise(self, batch_size, num_steps, input_size, training=False):
        sizes = [input_size] + [cell.output_size for cell in self.cells[:-1]]
        return tuple(cell.sample_noise(batch_size, num_steps, size, training)
                     for cell, size in zip(self.cells, sizes))

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        if noise is None and training:
            first = tf.nest.flatten(inputs)[0]
            noise = self.sample_noise(tf.shape(first)[0], tf.shape(first)[1],
                                      _full_input_size(inputs, late_size), training=True)
        noise = noise or ((),) * len(self.cells)
        return MultiPrepared(_prepare(self.cells[0], inputs, training, noise[0], late_size),
                             tuple(noise[1:]))

    def deferrable_kernels(self, late_size, like):
        """Layer 0's."""
        return self.cells[0].deferrable_kernels(late_size, like)

    def step(self, prepared_t, state, training=False, late_inputs=None, deferred=None):
        output, first = _step(self.cells[0], prepared_t.first, state[0], training, late_inputs,
                              deferred)
        next_states = [first]
        for cell, layer_state, noise in zip(self.cells[1:], state[1:], prepared_t.upper_noise):
            output, layer_next = cell(output, layer_state, training=training, noise=noise)
            next_states.append(layer_next)
        return output, tuple(next_states)


class _Wrapper(RNNCell):
    """A cell around `cell` with the same state and output (unless overridden)."""

    def __init__(self, cell, name=None):
        self.cell = cell
        super().__init__(name=name)

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return self.cell.output_size

    def state_dtype(self, dtype):
        return self.cell.state_dtype(dtype)

    def zero_state(self, batch_size, dtype=tf.float32):
        return self.cell.zero_state(batch_size, dtype)

    def sample_noise(self, batch_size, num_steps, input_size, training=False):
        return self.cell.sample_noise(batch_size, num_steps, input_size, training)

    def deferrable_kernels(self, late_size, like):
        return self.cell.deferrable_kernels(late_size, like)


_DropoutNoise = collections.namedtuple("_DropoutNoise", ("inputs", "output", "state", "inner"))
_DropoutPrepared = collections.namedtuple(
    "_DropoutPrepared", ("inner", "output_mask", "state_masks", "late_mask"))


def _state_dropout_filter(state_size):
    """Flat booleans over the leaves of `state_size`: False for the c of an LSTMStateTuple.
    (TF1's default dropout_state_filter_visitor: memory cells are never dropped.)"""
    if isinstance(state_size, LSTMStateTuple):
        return [False] * len(tf.nest.flatten(state_size.c)) + _state_dropout_filter(state_size.h)
    if isinstance(state_size, dict):
        return [f for key in sorted(state_size) for f in _state_dropout_filter(state_size[key])]
    if tf.nest.is_nested(state_size):
        return [f for part in state_size for f in _state_dropout_filter(part)]
    return [True]


class DropoutWrapper(_Wrapper):
    """Inverted dropout on a cell's inputs, outputs and states (Zaremba et al. 2014), only
    when training=True. State dropout hits the new state returned by each step, except the
    memory c of LSTM states (only h is dropped). With `variational_recurrent=True` one mask
    per sequence is reused at every time step (Gal & Ghahramani 2016); otherwise masks are
    drawn independently per step. All masks are drawn by `sample_noise` from a
    `tf.random.Generator` (seeded by `seed` if given), once per sequence: by
    `prepare_inputs` unless it is given them, so `step` is deterministic. Variational
    masks are [batch, 1, depth], so one mask serves every step of `noise_at`."""

    def __init__(self, cell, input_keep_prob=1.0, output_keep_prob=1.0, state_keep_prob=1.0,
                 variational_recurrent=False, seed=None, name=None):
        for arg, keep in (("input_keep_prob", input_keep_prob),
                          ("output_keep_prob", output_keep_prob),
                          ("state_keep_prob", state_keep_prob)):
            if not 0.0 < float(keep) <= 1.0:
                raise ValueError(f"{arg} must be in (0, 1] (got {keep})")
        self.input_keep_prob = float(input_keep_prob)
        self.output_keep_prob = float(output_keep_prob)
        self.state_keep_prob = float(state_keep_prob)
        self.variational_recurrent = variational_recurrent
        with tf.init_scope():
            self.generator = (tf.random.Generator.from_seed(seed) if seed is not None
                              else tf.random.Generator.from_non_deterministic_state())
        super().__init__(cell, name=name)

    def _mask(self, batch, steps, depth, keep):
        """A [batch, steps, depth] mask of 0 and 1/keep; [batch, 1, depth] if variational."""
        shape = [batch, 1 if self.variational_recurrent else steps, depth]
        return tf.cast(self.generator.uniform(shape) < keep, tf.float32) / keep

    def sample_noise(self, batch_size, num_steps, input_size, training=False):
        """_DropoutNoise(inputs, output, state masks, inner cell's noise); () if not training."""
        if not training:
            return ()
        mask = lambda keep: lambda size: self._mask(batch_size, num_steps, size, keep)
        inputs = output = state = ()
        if self.input_keep_prob < 1.0:
            inputs = tf.nest.map_structure(mask(self.input_keep_prob), input_size)
        if self.output_keep_prob < 1.0:
            output = tf.nest.map_structure(mask(self.output_keep_prob), self.output_size)
        if self.state_keep_prob < 1.0:
            sizes = tf.nest.flatten(self.state_size)
            state = tuple(mask(self.state_keep_prob)(size) if drop else ()
                          for size, drop in zip(sizes, _state_dropout_filter(self.state_size)))
        inner = self.cell.sample_noise(batch_size, num_steps, input_size, training)
        return _DropoutNoise(inputs, output, state, inner)

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        if not training:
            return _DropoutPrepared(_prepare(self.cell, inputs, False, None, late_size),
                                    (), (), ())
        if noise is None:
            first = tf.nest.flatten(inputs)[0]
            noise = self.sample_noise(tf.shape(first)[0], tf.shape(first)[1],
                                      _full_input_size(inputs, late_size), training=True)
        noise = noise or _DropoutNoise((), (), (), ())  # given (): no masks
        input_masks, late_mask = noise.inputs, ()
        if late_size and tf.nest.flatten(input_masks):  # one mask over [inputs, late inputs]
            input_masks, late_mask = input_masks[..., :-late_size], input_masks[..., -late_size:]
        if tf.nest.flatten(input_masks):
            inputs = tf.nest.map_structure(
                lambda x, m: x * tf.cast(m, x.dtype), inputs, input_masks)
        inner = _prepare(self.cell, inputs, True, noise.inner, late_size)
        return _DropoutPrepared(inner, noise.output, noise.state, late_mask)

    def step(self, prepared_t, state, training=False, late_inputs=None, deferred=None):
        if late_inputs is not None and tf.nest.flatten(prepared_t.late_mask):
            late_inputs = late_inputs * tf.cast(prepared_t.late_mask, late_inputs.dtype)
        output, next_state = _step(self.cell, prepared_t.inner, state, training, late_inputs,
                                   deferred)
        if tf.nest.flatten(prepared_t.output_mask):
            output = tf.nest.map_structure(
                lambda o, m: o * tf.cast(m, o.dtype), output, prepared_t.output_mask)
        if tf.nest.flatten(prepared_t.state_masks):
            flat = [s if isinstance(m, tuple) else s * tf.cast(m, s.dtype)
                    for s, m in zip(tf.nest.flatten(next_state), prepared_t.state_masks)]
            next_state = tf.nest.pack_sequence_as(next_state, flat)
        return output, next_state


class ResidualWrapper(_Wrapper):
    """output = cell output + inputs (He et al. 2016; Wu et al. 2016 §3 for stacked NMT).
    Needs input depth == cell.output_size."""

    def prepare_inputs(self, inputs, training=False, noise=None):
        depth = tf.nest.flatten(inputs)[0].shape[-1]
        if depth != self.cell.output_size:
            raise ValueError("ResidualWrapper needs input size == output size "
                             f"(got {depth} and {self.cell.output_size})")
        return (_prepare(self.cell, inputs, training, noise), inputs)

    def deferrable_kernels(self, late_size, like):
        return None

    def step(self, prepared_t, state, training=False):
        inner, inputs = prepared_t  # inputs: [batch, depth], the raw residual
        output, next_state = self.cell.step(inner, state, training=training)
        return output + inputs, next_state


class DeviceWrapper(_Wrapper):
    """Runs `cell` (prepare_inputs, step, zero_state) under `tf.device(device)`.
    Its variables are created there too, provided the cell is not built yet.
    Checkpoints see through it: the cell's variables are saved where an unplaced
    model has them, so a placed run's checkpoints translate and resume anywhere."""

    def __init__(self, cell, device, name=None):
        self.device = device
        super().__init__(cell, name=name)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        return self.cell._trackable_children(save_type, **kwargs)

    def zero_state(self, batch_size, dtype=tf.float32):
        with tf.device(self.device):
            return self.cell.zero_state(batch_size, dtype)

    def sample_noise(self, batch_size, num_steps, input_size, training=False):
        with tf.device(self.device):
            return self.cell.sample_noise(batch_size, num_steps, input_size, training)

    def prepare_inputs(self, inputs, training=False, noise=None, late_size=0):
        if noise is None:  # the cell samples its own
            return devices.call_on(
                self.device, lambda x: _prepare(self.cell, x, training, None, late_size), inputs)
        return devices.call_on(
            self.device, lambda x, n: _prepare(self.cell, x, training, n, late_size),
            inputs, noise)

    def deferrable_kernels(self, late_size, like):
        with tf.device(self.device):
            return self.cell.deferrable_kernels(late_size, like)

    def step(self, prepared_t, state, training=False, late_inputs=None, deferred=None):
        extra = {}  # what needs a gradient goes through call_on's arguments
        if late_inputs is not None:
            extra["late"] = late_inputs
        if deferred is not None:
            extra["zeros"] = deferred.zeros

        def placed_step(p, s, e):
            placed_deferred = deferred and deferred._replace(zeros=e["zeros"])
            return _step(self.cell, p, s, training, e.get("late"), placed_deferred)
        return devices.call_on(self.device, placed_step, prepared_t, state, extra)
