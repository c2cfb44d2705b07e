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


def matmul(x, w, transpose_b=False, input_dtype=None):
    """x `[..., depth]` @ w `[depth, units]` (w `[units, depth]` if transpose_b) -> `[..., units]`.

    input_dtype: if given (bfloat16), the forward pass and the two gradient matmuls (dx,
    dw) read x and w rounded to it, and every result comes out in x's dtype. The forward
    pass accumulates and returns in x's dtype, so bf16 training gets float32 logits
    (bf16-rounded ones cost dev loss) at bf16 speed (`mixed_precision_matmul`)."""
    rows = x if x.shape.rank == 2 else tf.reshape(x, [-1, tf.shape(x)[-1]])
    if input_dtype is None or input_dtype == x.dtype:
        y = tf.matmul(rows, w, transpose_b=transpose_b)
    else:
        y = _matmul_with_inputs_in(rows, tf.convert_to_tensor(w), transpose_b, input_dtype)
    if x.shape.rank == 2:
        return y
    units = y.shape[-1]
    y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], tf.shape(y)[-1:]], 0))
    if x.shape.rank is not None:
        y.set_shape(x.shape[:-1].concatenate([units]))
    return y


# XLA compiles once per shape; rows padded to a multiple of this keep the shapes few
# (a batch's target token count varies) at a few percent of padding.
XLA_ROW_MULTIPLE = 64


@tf.function(jit_compile=True)
def _xla_matmul(x, w, transpose_b, output_dtype):
    return tf.linalg.matmul(x, w, transpose_b=transpose_b, output_type=output_dtype)


def mixed_precision_matmul(x, w, transpose_b=False, output_dtype=tf.float32):
    """2-D x @ w for bf16 x and w, accumulated and returned in `output_dtype`.
    TensorFlow's CPU MatMul kernels have no bf16-in, float32-out form (a bf16 MatMul
    rounds its result to bf16), XLA's has: on an AMX CPU it runs a [1,100, 256] x
    [256, 8,000] projection in 11 ms against float32's 31 ms. Rows are padded to a
    multiple of XLA_ROW_MULTIPLE so that XLA compiles for few shapes (40 ms each)."""
    rows = tf.shape(x)[0]
    padding = -rows % XLA_ROW_MULTIPLE
    y = _xla_matmul(tf.pad(x, [[0, padding], [0, 0]]), w, transpose_b, output_dtype)
    return y[:rows]


def _matmul_with_inputs_in(x, w, transpose_b, dtype):
    """2-D `matmul` whose three matmuls read their inputs in `dtype`."""
    @tf.custom_gradient
    def forward(x, w):
        x_low, w_low = tf.cast(x, dtype), tf.cast(w, dtype)

        def grad(dy):
            dy_low = tf.cast(dy, dtype)
            dx = tf.matmul(dy_low, w_low, transpose_b=not transpose_b)  # dy @ w^T
            dw = (tf.matmul(dy_low, x_low, transpose_a=True) if transpose_b  # [units, depth]
                  else tf.matmul(x_low, dy_low, transpose_a=True))  # [depth, units]
            return tf.cast(dx, x.dtype), tf.cast(dw, w.dtype)

        return mixed_precision_matmul(x_low, w_low, transpose_b, x.dtype), grad

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

    def __call__(self, x, input_dtype=None):
        """input_dtype: the dtype the matmuls read x and the kernel in (`matmul`; None: x's)."""
        y = matmul(x, read(self.kernel, x), input_dtype=input_dtype)
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
