"""FLOPs: this machine's peak matmul FLOP/s and a model's FLOPs per target piece (the two
halves of the benchmark's MFU; docs/benchmark.md derives the count)."""
import statistics
import time

import tensorflow as tf

from bench import step_matmuls


def matmul_flops_per_s(size, dtype, repeats):
    """FLOP/s (2 n^3 per matmul) of a [size, size] matmul in a tf.function, median of repeats."""
    a = tf.cast(tf.random.uniform([size, size]), dtype)
    b = tf.cast(tf.random.uniform([size, size]), dtype)
    matmul = tf.function(tf.linalg.matmul)
    for _ in range(2):
        matmul(a, b).numpy()  # trace, warm the thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def training_flops_per_target_token(model, vocab_size, mean_src, mean_tgt):
    """Matmul FLOPs of one training step per target piece (EOS excluded), forward and
    both gradients, at the mean lengths (bench/step_matmuls.py lists the matmuls)."""
    return step_matmuls.training_flops_per_target_token(model, vocab_size, mean_src, mean_tgt)
