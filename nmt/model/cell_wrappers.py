"""Cell wrappers: stacking (MultiRNNCell), dropout, residual connections and device
placement, each keeping the `nmt.model.rnn_cell` contract of the cell it wraps.
"""
import collections

import tensorflow as tf

from nmt.model import deferred as deferred_lib
from nmt.model import devices
from nmt.model.rnn_cell import (LSTMStateTuple, RNNCell, full_input_size, prepare_cell, step_cell)


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
                                      full_input_size(inputs, late_size), training=True)
        noise = noise or ((),) * len(self.cells)
        return MultiPrepared(prepare_cell(self.cells[0], inputs, training, noise[0], late_size),
                             tuple(noise[1:]))

    def deferrable_kernels(self, late_size, like):
        """Layer 0's."""
        return self.cells[0].deferrable_kernels(late_size, like)

    def step(self, prepared_t, state, training=False, late_inputs=None):
        output, first = step_cell(self.cells[0], prepared_t.first, state[0], training, late_inputs)
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
        def mask(keep):
            return lambda size: self._mask(batch_size, num_steps, size, keep)

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
            return _DropoutPrepared(prepare_cell(self.cell, inputs, False, None, late_size),
                                    (), (), ())
        if noise is None:
            first = tf.nest.flatten(inputs)[0]
            noise = self.sample_noise(tf.shape(first)[0], tf.shape(first)[1],
                                      full_input_size(inputs, late_size), training=True)
        noise = noise or _DropoutNoise((), (), (), ())  # given (): no masks
        input_masks, late_mask = noise.inputs, ()
        if late_size and tf.nest.flatten(input_masks):  # one mask over [inputs, late inputs]
            input_masks, late_mask = input_masks[..., :-late_size], input_masks[..., -late_size:]
        if tf.nest.flatten(input_masks):
            inputs = tf.nest.map_structure(
                lambda x, m: x * tf.cast(m, x.dtype), inputs, input_masks)
        inner = prepare_cell(self.cell, inputs, True, noise.inner, late_size)
        return _DropoutPrepared(inner, noise.output, noise.state, late_mask)

    def step(self, prepared_t, state, training=False, late_inputs=None):
        if late_inputs is not None and tf.nest.flatten(prepared_t.late_mask):
            late_inputs = late_inputs * tf.cast(prepared_t.late_mask, late_inputs.dtype)
        output, next_state = step_cell(self.cell, prepared_t.inner, state, training, late_inputs)
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
        return (prepare_cell(self.cell, inputs, training, noise), inputs)

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
                self.device, lambda x: prepare_cell(self.cell, x, training, None, late_size),
                inputs)
        return devices.call_on(
            self.device, lambda x, n: prepare_cell(self.cell, x, training, n, late_size),
            inputs, noise)

    def deferrable_kernels(self, late_size, like):
        with tf.device(self.device):
            return self.cell.deferrable_kernels(late_size, like)

    def step(self, prepared_t, state, training=False, late_inputs=None):
        late = {} if late_inputs is None else {"late": late_inputs}  # needs a gradient: an argument
        return deferred_lib.call_on(
            self.device, lambda p, s, e: step_cell(self.cell, p, s, training, e.get("late")),
            prepared_t, state, late)
