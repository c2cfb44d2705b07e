"""FusedAdam: Keras Adam's arithmetic, slots and checkpoints, in one kernel per variable."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.training.optimizers import FusedAdam


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=shape).astype(np.float32)) for shape in ([4, 3], [3], [])]


def _gradients(step):
    rng = np.random.default_rng(100 + step)
    return [tf.constant(rng.normal(size=shape).astype(np.float32)) for shape in ([4, 3], [3], [])]


@pytest.mark.parametrize("compiled", [False, True])
def test_fused_adam_follows_keras_adam(compiled):
    fused, reference = _variables(0), _variables(0)
    fused_opt = FusedAdam(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6)
    keras_opt = tf.keras.optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.95,
                                         epsilon=1e-6)

    def apply(optimizer, variables, grads):
        optimizer.apply_gradients(zip(grads, variables))

    fused_apply = tf.function(apply) if compiled else apply
    for step, rate in enumerate([0.01, 0.003, 0.02, 0.001, 0.01]):
        grads = _gradients(step)
        fused_opt.learning_rate.assign(rate)
        keras_opt.learning_rate.assign(rate)
        fused_apply(fused_opt, fused, grads)
        apply(keras_opt, reference, grads)
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    moved = np.abs(fused[0].numpy() - _variables(0)[0].numpy()).max()
    assert moved > 1e-3  # the updates were applied at all


def test_the_update_is_one_fused_kernel_per_variable():
    variables = _variables(1)
    optimizer = FusedAdam(learning_rate=0.01)
    optimizer.build(variables)

    @tf.function
    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    graph = apply.get_concrete_function(_gradients(0)).graph.as_graph_def()
    ops = [n.op for f in graph.library.function for n in f.node_def] + [n.op for n in graph.node]
    assert ops.count("ResourceApplyAdam") == len(variables)
    assert "Sqrt" not in ops  # Keras's own update computes sqrt(v) and sqrt(1 - b2^t) itself


def test_checkpoints_are_interchangeable_with_keras_adam(tmp_path):
    variables = _variables(2)
    keras_opt = tf.keras.optimizers.Adam(learning_rate=0.01)
    keras_opt.apply_gradients(zip(_gradients(0), variables))
    path = tf.train.Checkpoint(optimizer=keras_opt, v=variables).write(str(tmp_path / "ckpt"))
    restored_vars = _variables(3)
    fused_opt = FusedAdam(learning_rate=0.01)
    fused_opt.build(restored_vars)
    tf.train.Checkpoint(optimizer=fused_opt, v=restored_vars).read(path).assert_consumed()
    assert int(fused_opt.iterations) == 1
    for a, b in zip(fused_opt.variables, keras_opt.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
