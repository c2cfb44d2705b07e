"""An exponential moving average of the weights (Polyak averaging), to translate with.

Each update moves the weights by one batch's noisy gradient; a moving average
of them usually translates better than the last weights alone (Polyak and
Juditsky 1992; Marian's exponential smoothing). The trainer keeps the average
beside the weights and swaps the two around every evaluation and save, so a
checkpoint's model holds the averaged weights, and every tool that loads one
(translation, checkpoint averaging, scoring) uses them without knowing; the
training weights are saved beside them, for resuming.
"""
import tensorflow as tf


class WeightAverage(tf.Module):
    """average_t = d_t * average_{t-1} + (1 - d_t) * w_t with d_t = min(decay, (1+t)/(10+t)),
    so the first steps do not keep the initial weights for long (step t counts from 1)."""

    def __init__(self, variables, decay):
        super().__init__(name="weight_average")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1) (got {decay})")
        self.decay = decay
        # While swapped (in a saved checkpoint), these hold the training weights.
        self.values = [tf.Variable(v.read_value(), trainable=False,
                                   name=v.name.split(":")[0].replace("/", "_"))
                       for v in variables]

    def decay_at(self, step):
        step = tf.cast(step, tf.float32)
        return tf.minimum(self.decay, (1.0 + step) / (10.0 + step))

    def update(self, variables, step):
        """Moves the average towards `variables` after update number `step`."""
        keep = self.decay_at(step)
        for average, v in zip(self.values, variables):
            average.assign_sub((1.0 - keep) * (average - v))

    def reset(self, variables):
        """Starts the average at the values of `variables`."""
        for average, v in zip(self.values, variables):
            average.assign(v)

    def swap(self, variables):
        """Exchanges the values of `variables` and the average (twice: a no-op)."""
        for average, v in zip(self.values, variables):
            held = tf.identity(v.read_value())
            v.assign(average)
            average.assign(held)
