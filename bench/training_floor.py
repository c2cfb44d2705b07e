"""The least time a training step's matmuls take on this machine, against the real step.

    python -m bench.training_floor                  # the bench preset
    python -m bench.training_floor --peer=onmt      # and a peer's training, in the same run

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

Per-step matmuls ("chain": the encoder's recurrent kernels, the decoder LSTM's
recurrent and fed-back inputs, the attention's scores, context and output layer, each
with its input gradient) have a row per sentence and run once per time step; the rest ("bulk":
input projections over the whole sequence, attention keys, bridge, output projection,
and the weight gradients of the chain, which nmt computes after the loop) run once per
batch. LSTM cells, standard attention architecture, Luong or dot scores only.
"""
import collections
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from bench import bench_peers, benchmark
from bench import flops as flops_lib
from nmt import data as data_lib
from nmt.updates import apply_clipped_gradients

FLAGS = flags.FLAGS

Matmul = collections.namedtuple(
    "Matmul", ("part", "role", "kind", "batch", "m", "k", "n", "transpose_a", "transpose_b",
               "count"))
Matmul.__doc__ = """`count` matmuls of [batch,] m x k by k x n (transposed operands are
stored the other way round); role "forward", "dX" or "dW"; kind "chain" (once per time
step) or "bulk" (once per batch)."""


def flops(matmul):
    return 2 * matmul.batch * matmul.m * matmul.k * matmul.n * matmul.count


def shape_key(matmul):
    return matmul[3:9]


def _with_gradients(part, kind, batch, m, k, n, count=1):
    """x [m, k] @ w [k, n] (`count` times) and its gradients: dx = g @ w^T (same kind),
    and dw = x^T @ g, bulk: a chain's weight gradient summed over its steps is one matmul
    over all of them."""
    return [Matmul(part, "forward", kind, batch, m, k, n, False, False, count),
            Matmul(part, "dX", kind, batch, m, n, k, False, True, count),
            Matmul(part, "dW", "bulk", batch, k, round(m * count), n, True, False, 1)]


def step_matmuls(model, vocab_size, batch, src_time, tgt_time, src_positions=None,
                 tgt_positions=None):
    """The matmuls of one training step on a [batch, src_time] -> [batch, tgt_time] batch
    (tgt_time: decoder steps, EOS included), forward and backward.

    src_positions, tgt_positions: the batch's real (non-pad) positions, EOS included. When
    given, padding costs nothing: matmuls over whole sequences take only real positions,
    and each per-step matmul runs positions / batch times (a batch that shrinks as its
    sentences end, at the full batch's speed); attention scores stay [batch, src_time]."""
    if model.unit_type != "lstm" or model.attention_architecture != "standard" or \
            model.attention not in ("dot", "luong", "scaled_luong"):
        raise ValueError("training_floor: LSTM cells with standard Luong or dot attention only")
    E, H, V, B, S = model.embedding_size, model.num_units, vocab_size, batch, src_time
    src_positions, tgt_positions = src_positions or B * S, tgt_positions or B * tgt_time
    src_steps, tgt_steps = src_positions / B, tgt_positions / B
    out = []
    for i in range(model.num_encoder_layers):
        bi = model.encoder_type == "bi" or (model.encoder_type == "gnmt" and i == 0)
        units, inputs, directions = (H // 2 if bi else H), (E if i == 0 else H), (2 if bi else 1)
        out += _with_gradients(f"encoder {i} inputs", "bulk", 1, src_positions, inputs,
                               directions * 4 * units)  # both directions in one matmul
        for d in range(directions):
            out += _with_gradients(f"encoder {i}.{d} recurrent", "chain", 1, B, units, 4 * units,
                                   count=src_steps)
    if model.attention != "dot":
        out += _with_gradients("attention keys", "bulk", 1, src_positions, H, H)
    if model.bridge == "dense":
        out += _with_gradients("bridge", "bulk", 1, B, 2 * H * model.num_encoder_layers,
                               2 * H * model.num_decoder_layers)
    for i in range(model.num_decoder_layers):
        step_inputs = H + (H * model.input_feeding if i == 0 else H)  # recurrent, fed or lower
        if i == 0:
            out += _with_gradients("decoder 0 embeddings", "bulk", 1, tgt_positions, E, 4 * H)
        out += _with_gradients(f"decoder {i} step", "chain", 1, B, step_inputs, 4 * H,
                                count=tgt_steps)
    # Scores q K^T and context a V: per sentence, once per step; their memory-side
    # gradients (dK, dV) are summed over the steps in one batched matmul after the loop.
    out += _with_gradients("attention scores", "chain", B, 1, H, S, count=tgt_steps)
    out += _with_gradients("attention context", "chain", B, 1, S, H, count=tgt_steps)
    out += _with_gradients("attention layer", "chain", 1, B, 2 * H, H, count=tgt_steps)
    out += _with_gradients("output projection", "bulk", 1, tgt_positions, H, V)
    return out


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
    epoch = [data_lib.Batch(*b) for b in trainer.epoch_dataset(0)]
    stride = max(1, len(epoch) // count)
    return epoch[::stride][:count], float(np.mean([b.tgt_out.shape[1] for b in epoch]))


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    trainer = benchmark.make_trainer(benchmark.bench_config(),
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
    print("\n| step | ms | target pieces/s |" + (f" × {FLAGS.peer} |" if peer else ""))
    print("| --- | --- | --- |" + (" --- |" if peer else ""))
    for name, ms in rows:
        rate = pieces / (ms / 1000)
        print(f"| {name} | {ms:.1f} | {rate:,.0f} |" + (f" {rate / peer:.2f} |" if peer else ""))
    if peer:
        print(f"| {FLAGS.peer}, measured (harness, {FLAGS.peer_seconds} s) | | {peer:,.0f} "
              "| 1.00 |")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_integer("batches", 24, "Batches to count (their mean), spread over epoch 0.")
    flags.DEFINE_integer("repeats", 10, "Timed calls per matmul shape and for the update.")
    flags.DEFINE_integer("step_repeats", 5, "Timed train steps per batch.")
    flags.DEFINE_enum("peer", None, bench_peers.PEERS, "Also train this peer for "
                      "--peer_seconds (a bench/benchmark.py flag) and compare.")
    app.run(main)
