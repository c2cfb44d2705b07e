"""The RNNCell contract and base class on `tf.Module` (TF1 `tf.compat.v1.nn.rnn_cell` names).

Every cell, built-in or user-defined, keeps one contract:

    output, next_state = cell(inputs, state, training=False)
    cell.state_size, cell.output_size      # ints or nested tuples of ints
    cell.zero_state(batch_size, dtype)
    cell.state_dtype(dtype)                # state leaf dtypes when computing in dtype

Mixed precision (nmt.model.precision): a cell computes in the dtype of its inputs and reads its
float32 variables in that dtype; LSTMCell keeps its memory c in float32.

and a fast path used by `nmt.model.rnn.dynamic_rnn` and the decoders:

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

Deferred weight gradients: the recurrent loop (`nmt.model.rnn.loop`) may ask
`cell.deferrable_kernels(late_size, like)` for kernels whose gradients it computes after
the loop (`nmt.model.deferred`). While such a loop runs, the owning cell finds its step with
`nmt.model.deferred.active(self)`: it multiplies by the step's kernels (under stop_gradient),
adds its zeros to the same sum and records the matmul inputs. LSTMCell defers its
recurrent kernel and the late inputs' rows (with layer_norm, the recurrent kernel only);
wrappers pass the question on, MultiRNNCell to layer 0. Other cells return None.

Variables are created in `build(input_size)`, either eagerly when the constructor gets
`input_size=`, or on the first `prepare_inputs` / call from the static last dimension of
the inputs (under `tf.init_scope`, so a first call inside `tf.function` works).
"""
import collections
import inspect

import tensorflow as tf

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


def prepare_cell(cell, inputs, training, noise, late_size=0):
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


def step_cell(cell, prepared_t, state, training, late_inputs=None):
    """cell.step, passing `late_inputs` only when there are some."""
    if late_inputs is None:
        return cell.step(prepared_t, state, training=training)
    return cell.step(prepared_t, state, training=training, late_inputs=late_inputs)


def full_input_size(inputs, late_size):
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


def static_depth(inputs):
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
        self._maybe_build(static_depth(inputs) + late_size)
        return inputs

    def deferrable_kernels(self, late_size, like):
        """nmt.model.deferred.Deferrable: the kernels whose gradients `step` can leave to
        `nmt.model.deferred` (read in the dtype of `like`), or None. Default: None."""
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
        def expand(t):  # [batch, ...] -> [batch, 1, ...]
            return tf.expand_dims(t, 1)

        inputs_seq = tf.nest.map_structure(expand, inputs)
        if noise is not None:
            noise = tf.nest.map_structure(expand, noise)
        prepared = prepare_cell(self, inputs_seq, training, noise)
        return self.step(_first_step(prepared), state, training=training)
