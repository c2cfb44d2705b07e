"""The least time a training step's matmuls take on this machine, against the real step.

    python -m bench.training_floor                  # the bench preset
    python -m bench.training_floor --peer=onmt      # and a peer's training, in the same run
    python -m bench.training_floor --size=w1024     # a size of bench/bench_sizes.py
    python -m bench.training_floor --num_units=512  # any recipes/multi30k.py flag

Every training step multiplies the same matrices whatever the implementation: each
forward matmul of the model (listed from the config and each batch's shape) and its two
gradient matmuls (with respect to its input and to its weight). This tool times every
distinct shape alone, at its best (run alone, or as several independent copies at once so
that both cores stay busy, whichever is faster; the median of repeats) and adds them up
over batches spread through an epoch, counting real positions only, as if padding cost
nothing. That is a floor for the step: a step that did nothing but these matmuls at these
speeds, one after another with no gaps, no loop, no gate nonlinearities, no softmax. The
gradient clipping and Adam update, timed alone on the model's variables, are added for a
second floor. Both are given as target pieces/s (the batches' real pieces, EOS excluded,
per step), beside nmt's own train step timed on the same batches and, with --peer, the
peer's training throughput from the harness.

bench/step_matmuls.py lists the matmuls ("chain": once per time step, a row per
sentence; "bulk": once per batch) for any LSTM or GRU config the toolkit builds.
"""
import collections
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from bench import bench_peers, bench_sizes, benchmark
from bench import flops as flops_lib
from bench.step_matmuls import flops, shape_key, step_matmuls  # noqa: F401
from nmt.data import batching as batching_lib
from nmt.training.updates import apply_clipped_gradients

FLAGS = flags.FLAGS

def seconds_per_matmul(batch, m, k, n, transpose_a, transpose_b, repeats):
    """Median seconds of one such fp32 matmul at its best: run alone, or as several
    independent copies at once (small shapes: the call's overhead is shared, and both
    cores can work on different copies), whichever is faster."""
    copies = int(min(64, max(4, 2e9 // (2 * batch * m * k * n))))  # ~10 ms a call
    return min(_call_seconds(batch, m, k, n, transpose_a, transpose_b, 1, repeats),
               _call_seconds(batch, m, k, n, transpose_a, transpose_b, copies, repeats) / copies)


def _call_seconds(batch, m, k, n, transpose_a, transpose_b, copies, repeats):
    """Median seconds of one tf.function call running `copies` such matmuls."""
    lead = [batch] if batch > 1 else []
    a_shape = lead + ([k, m] if transpose_a else [m, k])
    b_shape = lead + ([n, k] if transpose_b else [k, n])
    operands = [(tf.random.uniform(a_shape), tf.random.uniform(b_shape)) for _ in range(copies)]

    @tf.function
    def run():
        products = [tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
                    for a, b in operands]  # distinct inputs: nothing is merged
        return tf.add_n([tf.reshape(p, [-1])[0] for p in products])

    return benchmark.median_seconds(lambda _: run(), None, repeats)


def update_seconds(trainer, repeats):
    """Median seconds of the train step's clipping and Adam update on the model's variables."""
    variables = trainer.model.trainable_variables
    grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    clip = trainer.config.train.max_gradient_norm

    @tf.function
    def update():
        return apply_clipped_gradients(trainer.optimizer, grads, variables, clip,
                                       tf.constant(1.0))[0]

    return benchmark.median_seconds(lambda _: update(), None, repeats)


def floor(trainer, batches, repeats):
    """-> {part: ms per step}, {kind: ms per step}, {kind: GFLOP per step}: the step's
    matmuls at their measured speeds, means over `batches`."""
    model, vocab = trainer.config.model, trainer.tgt_vocab.size
    timed = {}
    per_part, per_kind, gflop = (collections.defaultdict(float) for _ in range(3))
    for batch in batches:
        b, s, t = batch.src.shape[0], batch.src.shape[1], batch.tgt_out.shape[1]
        positions = (int(tf.reduce_sum(batch.src_len)), int(tf.reduce_sum(batch.tgt_len)))
        for mm in step_matmuls(model, vocab, b, s, t, *positions):
            key = shape_key(mm)
            if key not in timed:
                timed[key] = seconds_per_matmul(*key, repeats)
            ms = 1000 * timed[key] * mm.count / len(batches)
            per_part[mm.part] += ms
            per_kind[mm.kind] += ms
            gflop[mm.kind] += flops(mm) / 1e9 / len(batches)
    return dict(per_part), dict(per_kind), dict(gflop)


def real_step_ms(trainer, batches, repeats):
    """Median ms of the trainer's own train step on each batch, averaged over batches."""
    return 1000 * float(np.mean([
        benchmark.median_seconds(trainer.train_step, batch, repeats)
        for batch in batches]))


def sample_batches(trainer, count):
    """`count` batches spread evenly over epoch 0 -> (them, the epoch's mean padded
    target time)."""
    epoch = [batching_lib.Batch(*b) for b in trainer.epoch_dataset(0)]
    stride = max(1, len(epoch) // count)
    return epoch[::stride][:count], float(np.mean([b.tgt_out.shape[1] for b in epoch]))


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    config = bench_sizes.size_config(FLAGS.size) if FLAGS.size else benchmark.bench_config()
    trainer = benchmark.make_trainer(config,
                                     tempfile.mkdtemp(prefix="training-floor-"), "train")
    batches, epoch_tgt_time = sample_batches(trainer, FLAGS.batches)
    pieces = np.mean([int(tf.reduce_sum(b.tgt_len)) - b.tgt_len.shape[0] for b in batches])
    per_part, per_kind, gflop = floor(trainer, batches, FLAGS.repeats)
    matmul_ms = sum(per_kind.values())
    step_ms = real_step_ms(trainer, batches, FLAGS.step_repeats)  # builds the variables
    update_ms = 1000 * update_seconds(trainer, FLAGS.repeats)
    peak = flops_lib.matmul_flops_per_s(2048, tf.float32, 10)
    peer = None
    if FLAGS.peer:
        harness = bench_peers.harness_dir(FLAGS.peers_dir)
        bench_peers.ensure_prepared(harness)
        peer = bench_peers.train_peer(harness, FLAGS.peer,
                                      FLAGS.peer_seconds)["train_tokens_per_s"]

    sample_tgt_time = np.mean([b.tgt_out.shape[1] for b in batches])
    print(f"{len(batches)} batches spread over epoch 0: {pieces:.0f} target pieces (EOS "
          f"excluded) and {sample_tgt_time:.1f} decoder steps per batch on average (the "
          f"epoch: {epoch_tgt_time:.1f}); fp32 2048² matmul {peak / 1e9:.0f} GFLOP/s\n")
    print("| matmuls of one step (forward, dX, dW) | ms per step at their best speed |")
    print("| --- | --- |")
    for part, ms in sorted(per_part.items(), key=lambda item: -item[1]):
        print(f"| {part} | {ms:.2f} |")
    for kind, ms in sorted(per_kind.items()):
        print(f"| all {kind} matmuls: {gflop[kind]:.2f} GFLOP at "
              f"{gflop[kind] / (ms / 1000):.0f} GFLOP/s | {ms:.2f} |")
    rows = [("matmuls alone (floor)", matmul_ms),
            ("matmuls + clipping and Adam (floor)", matmul_ms + update_ms),
            ("nmt's train step, measured", step_ms)]
    step_gflop = sum(gflop.values())  # real positions only: the MFU of a padding-free step
    print("\n| step | ms | target pieces/s | matmul GFLOP/s / fp32 peak |" +
          (f" × {FLAGS.peer} |" if peer else ""))
    print("| --- | --- | --- | --- |" + (" --- |" if peer else ""))
    for name, ms in rows:
        rate, share = pieces / (ms / 1000), step_gflop * 1e9 / (ms / 1000) / peak
        print(f"| {name} | {ms:.1f} | {rate:,.0f} | {share:.0%} |" +
              (f" {rate / peer:.2f} |" if peer else ""))
    if peer:
        print(f"| {FLAGS.peer}, measured (harness, {FLAGS.peer_seconds} s) | | {peer:,.0f} | "
              "| 1.00 |")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_enum("size", None, list(bench_sizes.SIZES), "A model size of "
                      "bench/bench_sizes.py, over the recipe's flags (default: those alone).")
    flags.DEFINE_integer("batches", 24, "Batches to count (their mean), spread over epoch 0.")
    flags.DEFINE_integer("repeats", 10, "Timed calls per matmul shape and for the update.")
    flags.DEFINE_integer("step_repeats", 5, "Timed train steps per batch.")
    flags.DEFINE_enum("peer", None, bench_peers.PEERS, "Also train this peer for "
                      "--peer_seconds (a bench/benchmark.py flag) and compare.")
    app.run(main)
