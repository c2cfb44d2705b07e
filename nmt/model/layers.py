"""Small building blocks on tf.Module: a dense projection and an embedding table."""
import tensorflow as tf

from nmt.model import devices
from nmt.model.cells import glorot_uniform
from nmt.model.precision import read


@tf.custom_gradient
def add_bias(x, bias):
    """x `[..., units]` + bias `[units]`, whose gradient sums over the rows with one
    matmul (ones @ dy). TensorFlow's gradient of a broadcast add is a column
    reduction, about 5x slower on a CPU: 10 ms of a benchmark-model training step
    went to it for the [1,100, 8,000] logits alone."""
    def grad(dy):
        rows = tf.reshape(dy, [-1, tf.shape(dy)[-1]])
        ones = tf.ones([1, tf.shape(rows)[0]], dy.dtype)
        return dy, tf.reshape(tf.matmul(ones, rows), tf.shape(bias))

    return x + bias, grad


def matmul(x, w, transpose_b=False, gradient_dtype=None):
    """x `[..., depth]` @ w `[depth, units]` (w `[units, depth]` if transpose_b) -> `[..., units]`.

    gradient_dtype: if given, the backward pass's two matmuls (dx and dw) run in it and
    their results are cast back; the forward pass stays in x's dtype. bf16 training
    uses it for the output projection: float32 logits (bf16 ones cost dev loss), and
    bf16 speed for the two gradient matmuls, two thirds of the projection's work."""
    rows = x if x.shape.rank == 2 else tf.reshape(x, [-1, tf.shape(x)[-1]])
    if gradient_dtype is None or gradient_dtype == x.dtype:
        y = tf.matmul(rows, w, transpose_b=transpose_b)
    else:
        y = _matmul_with_gradient_in(rows, tf.convert_to_tensor(w), transpose_b, gradient_dtype)
    if x.shape.rank == 2:
        return y
    units = y.shape[-1]
    y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(y)[-1:]], 0))
    if x.shape.rank is not None:
        y.set_shape(x.shape[:-1].concatenate([units]))
    return y


def _matmul_with_gradient_in(x, w, transpose_b, dtype):
    """2-D `matmul` whose gradient matmuls run in `dtype`."""
    @tf.custom_gradient
    def forward(x, w):
        def grad(dy):
            dy_low, x_low, w_low = (tf.cast(t, dtype) for t in (dy, x, w))
            dx = tf.matmul(dy_low, w_low, transpose_b=not transpose_b)  # dy @ w^T
            dw = (tf.matmul(dy_low, x_low, transpose_a=True) if transpose_b  # [units, depth]
                  else tf.matmul(x_low, dy_low, transpose_a=True))  # [depth, units]
            return tf.cast(dx, x.dtype), tf.cast(dw, w.dtype)

        return tf.matmul(x, w, transpose_b=transpose_b), grad

    return forward(x, w)


class Dense(tf.Module):
    """y = activation(x @ kernel + bias); x `[..., input_size]` -> `[..., units]`, in x's dtype."""

    def __init__(self, input_size, units, use_bias=True, activation=None,
                 initializer="glorot_uniform", name=None):
        super().__init__(name=name)
        # Keras 3 initializers ignore tf.random.set_seed; the default draws from TF's RNG.
        init = (glorot_uniform if initializer == "glorot_uniform"
                else tf.keras.initializers.get(initializer))
        with self.name_scope:
            self.kernel = tf.Variable(init([input_size, units]), name="kernel")
            self.bias = tf.Variable(tf.zeros([units]), name="bias") if use_bias else None
        self.units = units
        self.activation = activation

    def __call__(self, x, gradient_dtype=None):
        """gradient_dtype: the dtype of the backward matmuls (`matmul`; None: x's)."""
        y = matmul(x, read(self.kernel, x), gradient_dtype=gradient_dtype)
        if self.bias is not None:
            y = add_bias(y, read(self.bias, y))
        return self.activation(y) if self.activation else y


class Embedding(tf.Module):
    """ids `[...]` int32 -> vectors `[..., size]` in the compute dtype `dtype` (the one
    place it enters the model, see nmt.model.precision); the table (float32) doubles as a tied
    softmax. With `device`, the table and the lookups live there (nmt.model.devices)."""

    def __init__(self, vocab_size, size, device=None, name=None):
        super().__init__(name=name)
        self.device = device
        with self.name_scope, devices.scope(device):
            self.table = tf.Variable(
                tf.random.uniform([vocab_size, size], -0.1, 0.1), name="table")
        self.vocab_size = vocab_size
        self.size = size

    def __call__(self, ids, dtype=tf.float32):
        with devices.scope(self.device):
            return tf.cast(tf.nn.embedding_lookup(self.table, ids), dtype)
