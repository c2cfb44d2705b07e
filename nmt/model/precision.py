"""Mixed precision (TrainConfig.precision): fp32 master weights, a lower compute dtype,
and dynamic loss scaling for fp16 (Micikevicius et al. 2018).

Variables are always float32, so checkpoints do not depend on the precision. The
compute dtype enters once, where embeddings are looked up (`Embedding(ids, dtype)`);
every layer then reads its variables in the dtype of the activations it meets
(`read`), so matmuls run in that dtype while the weights and their gradients stay
float32 (the gradient of a cast is cast back). What needs the range or the precision
of float32 computes in float32: the attention softmax, the LSTM memory cell c, the
logits from the output projection on (log-softmax, loss, label smoothing).

    fp32   float32 compute
    bf16   bfloat16 compute (float32's range: no loss scaling); AMX CPUs, Ampere+ GPUs.
           When training, the output projection's forward pass computes in float32
           (`projection_dtype`), its gradients in bf16 (`projection_gradient_dtype`)
    fp16   float16 compute with a DynamicLossScale; GPUs with fp16 tensor cores
    bf16_output  float32 compute except the output projection (the largest matmuls, run
           once over all target positions, outside the recurrence), in bfloat16
"""
import tensorflow as tf

from nmt.config import PRECISIONS
_COMPUTE_DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16,
                   "bf16_output": tf.float32}


def compute_dtype(precision):
    """A PRECISIONS name -> the tf.DType activations and matmuls run in."""
    if precision not in _COMPUTE_DTYPES:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    return _COMPUTE_DTYPES[precision]


def projection_dtype(precision, training=False):
    """The dtype of the output projection: None (the compute dtype) except for bf16_output,
    and float32 when training in bf16. bf16 logits keep 8 bits of mantissa (a logit of 20
    is off by up to 0.06), which perturbs p - onehot, the loss gradient, most where the
    model is confident. Measured on the bench model at 1,200 steps: dev loss 3.82 with a
    bf16 projection, 3.61 with a float32 one, 3.50 in fp32 (at 3,200: 2.293 against
    fp32's 2.291), at about bf16's speed: the projection runs once per batch, outside
    the recurrence. A search ranks, so decoding keeps the bf16 projection (same BLEU;
    docs/distributed.md)."""
    compute_dtype(precision)  # validates
    if precision == "bf16_output":
        return tf.bfloat16
    return tf.float32 if training and precision == "bf16" else None


def projection_gradient_dtype(precision):
    """The dtype of the output projection's two gradient matmuls when training, if not
    that of its forward pass (`layers.matmul`): bfloat16 for bf16, whose float32
    logits (`projection_dtype`) then cost a third of the projection's work in float32,
    not all of it; None otherwise. Rounded gradients are noise, where rounded logits
    shift p - onehot. Measured on the bench model: 1.20x the step speed of float32
    gradients; val BLEU at 3,200 steps within 0.27 of fp32 over three seeds (one of
    them -1.87), but 0.92 behind with scaled attention in both precisions
    (docs/experiments.md)."""
    compute_dtype(precision)  # validates
    return tf.bfloat16 if precision == "bf16" else None


def training_dtypes(precision):
    """The dtypes a training step passes to `Seq2Seq.loss` for a PRECISIONS name:
    {compute_dtype, projection_dtype, projection_gradient_dtype}."""
    return {"compute_dtype": compute_dtype(precision),
            "projection_dtype": projection_dtype(precision, training=True),
            "projection_gradient_dtype": projection_gradient_dtype(precision)}


def read(variable, like):
    """A float32 variable in the dtype of the tensor `like` (the activations it meets);
    a no-op when they already agree, so float32 graphs carry no casts."""
    return tf.cast(variable, like.dtype)


class DynamicLossScale(tf.Module):
    """Dynamic loss scaling: the loss is multiplied by `scale` before the gradients so
    that small fp16 gradients do not flush to zero; the gradients are divided by it
    before clipping and the update. A step whose scaled gradients are not finite is
    skipped and halves the scale (never below 1); `growth_interval` finite steps in a
    row double it (never above `max_scale`). Its two variables are checkpointed."""

    def __init__(self, initial_scale=2.0 ** 15, growth_interval=2000, factor=2.0,
                 max_scale=2.0 ** 24, name="loss_scale"):
        super().__init__(name=name)
        self.growth_interval = growth_interval
        self.factor = factor
        self.max_scale = max_scale
        with self.name_scope:
            self.scale = tf.Variable(float(initial_scale), trainable=False, name="scale")
            self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def current(self):
        """The scale now, as a Python float (also for a mirrored variable)."""
        return float(tf.convert_to_tensor(self.scale))

    def scale_loss(self, loss):
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads):
        """Gradients of the scaled loss -> gradients of the loss (float32)."""
        inverse = 1.0 / self.scale
        return [g * tf.cast(inverse, g.dtype) for g in grads]

    def update(self, finite):
        """After a step: `finite` (bool tensor) says whether its gradients were finite."""
        good = tf.where(finite, self.good_steps + 1, tf.zeros([], tf.int64))
        grow = good >= self.growth_interval
        scale = tf.where(finite,
                         tf.where(grow, tf.minimum(self.scale * self.factor, self.max_scale),
                                  self.scale),
                         tf.maximum(self.scale / self.factor, 1.0))
        self.scale.assign(scale)
        self.good_steps.assign(tf.where(grow, tf.zeros([], tf.int64), good))
