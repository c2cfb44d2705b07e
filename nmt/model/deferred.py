"""Weight gradients of a recurrent loop's matmuls, computed once after the loop.

Backpropagating through a loop whose step computes x_t @ W adds x_t^T g_t to W's
gradient at every step: a small matmul per step (its inner dimension is the batch) and a
W-sized accumulation per step. `DeferredMatmuls` computes the same sum as one matmul,
X^T G over all steps at once ([time * batch] inner dimension):

- inside the loop the step multiplies by W under `stop_gradient`, so the loop's backward
  pass computes only the gradients of the x_t; it records each x_t, and adds `zeros`,
  step t of an all-zero tensor Z [time, batch, n], to the same sum as x_t @ W;
- Z's gradient is then G, the gradient of that sum at every step, and Z's custom
  gradient hands X^T G to W, X being the recorded inputs, stacked after the loop.

Z's gradient function reads X, which the loop computes after Z: gradients run after the
forward pass, when X exists. Several kernels may feed one sum (an LSTM's late-input and
recurrent kernels both feed its gates): they share Z and G.

`DeferredMemory` does the same for attention: per-sentence matrices that stay fixed over
the loop (keys, values [batch, src_time, depth]) multiply a new vector at every step,
and their gradient, a [batch, src_time, depth] outer product added at every step, is
computed after the loop as one batched matmul over all steps.

A loop step never receives its DeferredSteps as arguments: the loop runner
(`nmt.model.rnn.loop`) activates them around the step, keyed by their owner (a cell or
an attention), and the owner finds its own with `active(self)`. Device placement
(`call_on`) carries the active zeros across its gradient boundary.
"""
import collections
import contextlib
import threading

import tensorflow as tf

from nmt.model import devices

DeferredStep = collections.namedtuple("DeferredStep", ("kernels", "zeros", "inputs"))
DeferredStep.__doc__ = """What a loop step gets: `kernels` {name: W under stop_gradient}, `zeros`
[batch, n] to add to the sum (DeferredMemory: {name: zeros} for each product), and
`inputs`, a dict the step fills with {name: x_t}."""


Deferrable = collections.namedtuple("Deferrable", ("owner", "kernels"))
Deferrable.__doc__ = """What a cell offers to defer: the `owner` whose steps look the
kernels up (`active(owner)`) and the kernels {name: W [depth, n]}."""

_ACTIVE = threading.local()  # .steps: {id(owner): DeferredStep} of the step being traced


def active(owner):
    """The DeferredStep a running loop step defers for `owner`, or None."""
    return getattr(_ACTIVE, "steps", {}).get(id(owner))


@contextlib.contextmanager
def activated(deferrals, steps):
    """Makes each deferral's step visible to its owner (`active`) inside the block."""
    previous = getattr(_ACTIVE, "steps", {})
    _ACTIVE.steps = {**previous, **{id(d.owner): s for d, s in zip(deferrals, steps)}}
    try:
        yield
    finally:
        _ACTIVE.steps = previous


def call_on(device, fn, *args):
    """`devices.call_on` inside a deferring loop step: the active steps' zeros need
    gradients, and a closure's tensors get none across call_on's custom gradient, so
    they cross as arguments and are re-activated for fn."""
    steps = getattr(_ACTIVE, "steps", {})
    if device is None or not steps:
        return devices.call_on(device, fn, *args)
    keys = sorted(steps)

    def placed(fn_args, zeros):
        previous = _ACTIVE.steps
        _ACTIVE.steps = {key: steps[key]._replace(zeros=z) for key, z in zip(keys, zeros)}
        try:
            return fn(*fn_args)
        finally:
            _ACTIVE.steps = previous
    return devices.call_on(device, placed, args, [steps[key].zeros for key in keys])


class _Records:
    """What a deferral records: each step's inputs {name: [batch, depth]}, carried through
    the loop in TensorArrays and stacked after it ([time, batch, depth]) for the
    gradient. Subclasses set `names`, `_num_steps` and `_record_spec(name)`."""

    def records(self):
        """Empty per-step records for the loop to carry: {name: TensorArray}."""
        records = {}
        for name in self.names:
            dtype, element_shape = self._record_spec(name)
            records[name] = tf.TensorArray(dtype, size=self._num_steps,
                                           element_shape=element_shape)
        return records

    def write(self, records, t, step):
        """Records step t's inputs (after the step filled `step.inputs`)."""
        missing = set(self.names) - set(step.inputs)
        if missing:
            raise ValueError(f"the loop step did not record {sorted(missing)}")
        return {name: records[name].write(t, tf.stop_gradient(step.inputs[name]))
                for name in self.names}

    def finish(self, records):
        """After the loop: the recorded inputs for the gradient."""
        self._stacked = {name: records[name].stack() for name in self.names}


class DeferredMatmuls(_Records):
    """The kernels one loop defers: {name: W [depth, n]}, read outside the loop (their
    gradients reach the variables through this object), all feeding one [batch, n] sum.
    device: where their gradient matmuls run (None: where the gradient is built);
    owner: whose steps use them (`active`)."""

    def __init__(self, kernels, num_steps, batch_size, device=None, owner=None):
        self.owner = owner
        self.names = sorted(kernels)
        values = [tf.convert_to_tensor(kernels[name]) for name in self.names]  # variables: read
        width = values[0].shape[-1]
        self._stacked = None  # {name: X [time, batch, depth]}, set by `finish`

        @tf.custom_gradient
        def zeros(*kernel_values):
            def grad(g):  # g: [time, batch, n], the gradients of the sum at every step
                with devices.scope(device):  # None keeps a replica's device scope
                    flat_g = tf.reshape(g, [-1, width])
                    return [tf.matmul(tf.reshape(self._stacked[name], [-1, w.shape[0]]),
                                      flat_g, transpose_a=True)
                            for name, w in zip(self.names, kernel_values)]
            return tf.zeros(tf.stack([num_steps, batch_size, width]), values[0].dtype), grad

        self._zeros = tf.TensorArray(values[0].dtype, size=num_steps).unstack(zeros(*values))
        self._kernels = {name: tf.stop_gradient(v) for name, v in zip(self.names, values)}
        self._num_steps = num_steps

    def step(self, t):
        """Step t's DeferredStep."""
        return DeferredStep(self._kernels, self._zeros.read(t), {})

    def _record_spec(self, name):
        kernel = self._kernels[name]
        return kernel.dtype, tf.TensorShape([None, kernel.shape[0]])


class DeferredMemory(_Records):
    """Loop-invariant per-sentence matrices {name: (M [batch, rows, cols], side)}, each
    multiplied at every step from its side:

        "left"   M @ x_t: x_t [batch, cols] -> [batch, rows]  (attention scores from keys)
        "right"  x_t @ M: x_t [batch, rows] -> [batch, cols]  (the context from values)

    A step reads `DeferredStep(kernels={name: M under stop_gradient}, zeros={name: z_t},
    inputs={})`, adds z_t to the product and records x_t in `inputs[name]`. After the
    loop, M's gradient is sum_t G_t (x) x_t as one batched matmul over the time axis.
    device: where those matmuls run (None: where the gradient is built); owner: whose
    steps use them (`active`)."""

    def __init__(self, matrices, num_steps, device=None, owner=None):
        self.owner = owner
        self.names = sorted(matrices)
        self._num_steps = num_steps
        self._stacked = None  # {name: X [time, batch, rows or cols]}, set by `finish`
        self._zeros, self._matrices = {}, {}
        for name in self.names:
            matrix, side = matrices[name]
            matrix = tf.convert_to_tensor(matrix)
            zeros = self._zeros_with_gradient(name, matrix, side, device)
            self._zeros[name] = tf.TensorArray(matrix.dtype, size=num_steps).unstack(zeros)
            self._matrices[name] = tf.stop_gradient(matrix)

    def _zeros_with_gradient(self, name, matrix, side, device):
        """Z [time, batch, width] of zeros whose gradient G hands M its gradient."""
        shape = tf.shape(matrix)
        width = shape[1] if side == "left" else shape[2]

        @tf.custom_gradient
        def zeros(m):
            def grad(g):  # [time, batch, width]: the product's gradient at every step
                with devices.scope(device):
                    x = self._stacked[name]
                    if side == "left":  # sum_t g_t[b, r] x_t[b, c]
                        return tf.einsum("tbr,tbc->brc", g, x)
                    return tf.einsum("tbr,tbc->brc", x, g)  # sum_t x_t[b, r] g_t[b, c]
            return tf.zeros(tf.stack([self._num_steps, shape[0], width]), m.dtype), grad

        return zeros(matrix)

    def step(self, t):
        """Step t's DeferredStep."""
        return DeferredStep(self._matrices, {name: self._zeros[name].read(t)
                                             for name in self.names}, {})

    def _record_spec(self, name):
        return self._matrices[name].dtype, tf.TensorShape([None, None])
