"""Optimizers: Keras 3's, with Adam's per-variable update fused into one kernel.

Keras 3 writes Adam's update of each variable as about eighteen small ops (powers
of the betas, the bias correction, two moment updates, the step); a model with
dozens of variables then spends a fifth of a CPU training step dispatching them.
`FusedAdam` is `keras.optimizers.Adam` with the same slots, hyper-parameters and
checkpoints, whose update of each variable is TensorFlow's fused
`ResourceApplyAdam` kernel, the same arithmetic:

    m <- m + (g - m)(1 - b1);  v <- v + (g^2 - v)(1 - b2)
    w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

Under a tf.distribute strategy, and with amsgrad, it falls back to Keras's own
update (the slots are then distributed variables that Keras updates itself).
"""
import tensorflow as tf


class FusedAdam(tf.keras.optimizers.Adam):
    """keras.optimizers.Adam whose update of one variable is one fused kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy() or not isinstance(variable, tf.Variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype))
