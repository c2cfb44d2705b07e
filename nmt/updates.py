"""One optimizer update: global-norm clipping, and no update on a non-finite loss."""
import tensorflow as tf


def apply_clipped_gradients(optimizer, grads, variables, max_gradient_norm, loss):
    """Clips `grads` to max_gradient_norm (0: no clipping) and applies them unless
    `loss` or the gradient norm is not finite. -> (norm before clipping, applied?)."""
    norm = tf.linalg.global_norm(grads)
    if max_gradient_norm > 0:
        grads, _ = tf.clip_by_global_norm(grads, max_gradient_norm, use_norm=norm)
    finite = tf.math.is_finite(loss) & tf.math.is_finite(norm)

    def apply():
        optimizer.apply_gradients(zip(grads, variables))
        return tf.constant(True)

    return norm, tf.cond(finite, apply, lambda: tf.constant(False))
