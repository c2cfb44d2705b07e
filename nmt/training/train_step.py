"""The optimizer and the compiled training and evaluation steps."""
import tensorflow as tf

from nmt.data import batching as batching_lib
from nmt.model import precision
from nmt.training.optimizers import FusedAdam
from nmt.training.updates import apply_clipped_gradients

# Any batch size and time dims: one trace serves every batch, so that every process,
# fresh or resumed, computes each step with the same graph. A step traced for its
# first batch's shapes and then relaxed would compute a resumed run's first steps
# with another graph than an unbroken run's, and differ in the last bits.
_IDS, _LENGTHS = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)
TRAIN_BATCH_SIGNATURE = batching_lib.Batch(_IDS, _LENGTHS, _IDS, _IDS, _LENGTHS)


def make_optimizer(config):
    if config.optimizer == "adam":
        return FusedAdam(learning_rate=config.learning_rate)
    return tf.keras.optimizers.SGD(learning_rate=config.learning_rate)


def make_train_step(model, optimizer, config, loss_scale=None):
    """-> tf.function(batch) -> (LossOutput, gradient norm, applied?).

    A batch whose loss or gradients are not finite is not applied: weights and
    optimizer slots stay as they were, and the caller counts it. Builds the optimizer's
    slots (beside their variables) if it has none yet. The model computes
    in config.precision's dtype; loss_scale: a precision.DynamicLossScale (fp16).
    The step is traced once, for batches of any shape (TRAIN_BATCH_SIGNATURE), so
    that a resumed process computes every step with the graph an unbroken one uses.
    """
    variables = model.trainable_variables
    dtypes = precision.training_dtypes(config.precision)
    # Slots made here, eagerly, sit on their variables' devices; made in the first trace
    # they would all land on the default device (Keras lifts them out of the graph,
    # which drops the colocation), and a placed variable's fused update, whose kernel
    # needs the variable and its slots on one device, could not be placed.
    optimizer.build(variables)
    @tf.function(jit_compile=config.jit_compile, input_signature=[TRAIN_BATCH_SIGNATURE])
    def train_step(batch):
        with tf.GradientTape() as tape:
            out = model.loss(batch, config.label_smoothing, training=True, **dtypes)
            loss = out.loss_sum / tf.maximum(out.num_tokens, 1.0)
            scaled = loss if loss_scale is None else loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        grads = [tf.convert_to_tensor(g) for g in grads]  # dense embedding grads
        norm, applied = apply_clipped_gradients(optimizer, grads, variables,
                                                config.max_gradient_norm, loss, loss_scale)
        return out, norm, applied

    return train_step


def make_eval_step(model):
    @tf.function(reduce_retracing=True)
    def eval_step(batch):
        return model.loss(batch, 0.0, training=False)

    return eval_step
