"""Random fixed-shape batches and a timed loop of train steps, for the device and worker benches.

Flagless, so that each bench keeps its own flags; TensorFlow is imported here, so a bench
imports this module only in the process that measures.
"""
import time

import numpy as np
import tensorflow as tf

from nmt.data.batching import Batch
from nmt.training import distribute


def synthetic_batches(strategy, batch_size, length, vocab, count):
    """An iterator over `count` copies of one random batch of [batch_size, length] ids,
    distributed by `strategy` (None: no strategy)."""
    rng = np.random.default_rng(0)
    shape = (batch_size, length)
    lengths = np.full([batch_size], length, np.int32)
    batch = Batch(*(tf.constant(x) for x in (
        rng.integers(3, vocab, shape, np.int32), lengths,
        rng.integers(3, vocab, shape, np.int32),
        rng.integers(3, vocab, shape, np.int32), lengths)))
    dataset = tf.data.Dataset.from_tensors(batch).repeat(count)
    return iter(distribute.distribute_dataset(strategy, dataset))


def time_steps(step, batches, warmup, steps):
    """Runs `warmup` untimed steps (tracing), then `steps` timed ones -> their seconds.

    Reading the gradient norm after the loop waits for the last step, so the time covers
    every step's work."""
    for _ in range(warmup):
        float(step(next(batches))[1])
    start = time.perf_counter()
    for _ in range(steps):
        _, norm, _ = step(next(batches))
    float(norm)
    return time.perf_counter() - start
