"""One optimizer update: loss unscaling, global-norm clipping, and no update on a
non-finite loss or gradient."""
import tensorflow as tf


def apply_clipped_gradients(optimizer, grads, variables, max_gradient_norm, loss,
                            loss_scale=None):
    """Clips `grads` to max_gradient_norm (0: no clipping) and applies them unless
    `loss` or the gradient norm is not finite. -> (norm before clipping, applied?).

    loss_scale: a precision.DynamicLossScale when `grads` are gradients of the scaled
    loss; they are unscaled first (clipping and the norm see true gradients), and the
    scale is updated: lowered after a non-finite step, raised after a run of finite ones.
    """
    if loss_scale is not None:
        grads = loss_scale.unscale(grads)
    norm = tf.linalg.global_norm(grads)
    if max_gradient_norm > 0:
        grads, _ = tf.clip_by_global_norm(grads, max_gradient_norm, use_norm=norm)
    finite = tf.math.is_finite(loss) & tf.math.is_finite(norm)
    if loss_scale is not None:
        loss_scale.update(tf.math.is_finite(norm))

    def apply():
        optimizer.apply_gradients(zip(grads, variables))
        return tf.constant(True)

    return norm, tf.cond(finite, apply, lambda: tf.constant(False))
