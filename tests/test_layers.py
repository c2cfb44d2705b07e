"""Dense and Embedding against NumPy; seeded initialisation."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.layers import Dense, Embedding, add_bias


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
