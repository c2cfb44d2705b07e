"""Small building blocks on tf.Module: a dense projection and an embedding table."""
import tensorflow as tf

from nmt import devices
from nmt.cells import glorot_uniform
from nmt.precision import read


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

    def __call__(self, x):
        kernel = read(self.kernel, x)
        if x.shape.rank == 2:
            y = tf.matmul(x, kernel)
        else:
            y = tf.tensordot(x, kernel, axes=1)
        if self.bias is not None:
            y = add_bias(y, read(self.bias, y))
        return self.activation(y) if self.activation else y


class Embedding(tf.Module):
    """ids `[...]` int32 -> vectors `[..., size]` in the compute dtype `dtype` (the one
    place it enters the model, see nmt.precision); the table (float32) doubles as a tied
    softmax. With `device`, the table and the lookups live there (nmt.devices)."""

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
