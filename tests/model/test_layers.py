"""Dense and Embedding against NumPy; seeded initialisation."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.model.layers import Dense, Embedding, add_bias, matmul


def test_dense_matches_numpy_for_any_rank():
    tf.random.set_seed(0)
    dense = Dense(4, 3, activation=tf.tanh)
    dense.bias.assign([0.5, -1.0, 2.0])
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    want = np.tanh(x @ dense.kernel.numpy() + dense.bias.numpy())
    np.testing.assert_allclose(dense(tf.constant(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense(tf.constant(x[0])).numpy(), want[0], rtol=1e-5, atol=1e-6)
    assert Dense(4, 3, use_bias=False).bias is None


def test_initialisation_follows_the_tf_seed():
    """tf.random.set_seed alone reproduces every weight (the trainer relies on it)."""
    def weights():
        tf.random.set_seed(7)
        return [v.numpy() for v in (Dense(6, 5).kernel, Embedding(9, 4).table)]
    first, second = weights(), weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    limit = np.sqrt(6.0 / (6 + 5))  # Glorot uniform
    assert np.all(np.abs(first[0]) <= limit) and first[0].std() > limit / 4


def test_embedding_lookup_and_dtype_cast():
    tf.random.set_seed(0)
    embedding = Embedding(9, 4)
    ids = np.array([[1, 8], [0, 1]], np.int32)
    np.testing.assert_array_equal(embedding(tf.constant(ids)).numpy(), embedding.table.numpy()[ids])
    dense = Dense(4, 2)
    assert dense(tf.ones([1, 4], tf.float16)).dtype == tf.float16


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7)])
def test_add_bias_gradient_equals_the_broadcast_add_gradient(shape):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    bias = tf.constant(rng.normal(size=shape[-1:]).astype(np.float32))
    upstream = tf.constant(rng.normal(size=shape).astype(np.float32))

    def gradients(plain):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, bias])
                y = x + bias if plain else add_bias(x, bias)
                loss = tf.reduce_sum(y * upstream)
            return (y,) + tuple(tape.gradient(loss, [x, bias]))
        return run()

    for got, want in zip(gradients(plain=False), gradients(plain=True)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("transpose_b", [False, True])
@pytest.mark.parametrize("rank", [2, 3])
def test_matmul_with_bf16_gradients_keeps_a_float32_forward_pass(transpose_b, rank):
    """The forward pass equals float32's bit for bit; the gradients match the exact ones
    to bf16 rounding, and differ from float32's (the bf16 matmuls really ran)."""
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(2, 6, 16)[-rank:]).astype(np.float32)
    w_np = rng.normal(size=(16, 12)).astype(np.float32)
    upstream_np = rng.normal(size=x_np.shape[:-1] + (12,)).astype(np.float32)
    x, upstream = tf.constant(x_np), tf.constant(upstream_np)
    w = tf.Variable(w_np.T if transpose_b else w_np)

    def run(gradient_dtype):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = matmul(x, w, transpose_b=transpose_b, gradient_dtype=gradient_dtype)
            loss = tf.reduce_sum(y * upstream)
        return [y] + tape.gradient(loss, [x, w])

    y32, dx32, dw32 = run(None)
    y, dx, dw = tf.function(run)(tf.bfloat16)
    np.testing.assert_array_equal(y.numpy(), y32.numpy())
    np.testing.assert_allclose(y.numpy(), x_np @ w_np, rtol=1e-5, atol=1e-5)
    rows, ups = x_np.reshape(-1, 16), upstream_np.reshape(-1, 12)
    dw_exact = rows.T @ ups
    for got, fp32, exact in ((dx, dx32, upstream_np @ w_np.T),
                             (dw, dw32, dw_exact.T if transpose_b else dw_exact)):
        assert got.dtype == tf.float32 and got.shape == exact.shape
        np.testing.assert_allclose(fp32.numpy(), exact, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got.numpy(), exact, rtol=0, atol=3e-2 * np.abs(exact).max())
        assert not np.array_equal(got.numpy(), fp32.numpy())
