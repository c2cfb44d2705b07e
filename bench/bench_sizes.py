"""Speed as the model grows: training tokens/s, MFU (fp32, bf16), beam-5 sentences/s by size.

    python bench/bench_sizes.py                                    # every size, + OpenNMT-tf
    python bench/bench_sizes.py --sizes=bench,w512 --peer_sizes=   # nmt alone
    taskset -c 0 python bench/bench_sizes.py --window_seconds=10 --rounds=3

Each size is a set of overrides of the recipe's config (recipes/multi30k.py, bench
preset: same data, batch of 64 sentences, optimizer, dropout), so every size trains on
the same batches. Per size, one trainer per precision (fp32, and bf16 compute with fp32
master weights) trains in alternating windows of --window_seconds, --rounds each; the
median window counts. MFU is the model's matmul FLOPs per step (bench/step_matmuls.py,
real positions only) over the step's time, relative to the 2048x2048 matmul peak of
that dtype measured just before, once per round. Beam 5 translates the first --beam_sentences test
sentences with the fp32 model after its short training, untimed once, then timed.
OpenNMT-tf (bench/peer_sizes.py) trains and translates between nmt's first and later
rounds at the --peer_sizes it can express. docs/benchmark.md reads the table.
"""
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

import tensorflow as tf
from absl import app, flags, logging

from bench import bench_peers, benchmark, peer_sizes, step_matmuls
from bench import flops as flops_lib
from nmt import config as config_lib
from nmt.data import corpus as corpus_lib
from nmt.data.vocab import EOS_ID
from nmt.decode.translate import Translator

FLAGS = flags.FLAGS

_DEEP = {"model.num_encoder_layers": 2, "model.num_decoder_layers": 2}
SIZES = {  # overrides of the bench preset
    "bench": {},  # 256 units, 1+1 layers, bidirectional encoder
    "w512": {"model.num_units": 512, "model.embedding_size": 512, **_DEEP},
    "w1024": {"model.num_units": 1024, "model.embedding_size": 1024, **_DEEP},
    # tensorflow/nmt's GNMT-4 (wmt16_gnmt_4_layer.json): 1024 units, a bidirectional
    # bottom encoder layer under 3 unidirectional ones, 4 decoder layers with the bottom
    # one querying normed Bahdanau attention (gnmt_v2), residual connections, and the
    # encoder states passed to the decoder (pass_hidden_state).
    "gnmt4": {"model.num_units": 1024, "model.embedding_size": 1024,
              "model.num_encoder_layers": 4, "model.num_decoder_layers": 4,
              "model.encoder_type": "gnmt", "model.attention": "normed_bahdanau",
              "model.attention_architecture": "gnmt", "model.residual": True,
              "model.bridge": "copy"},
}
PEER_SHAPES = {"bench": (256, 1, 1), "w512": (512, 2, 2)}  # units, encoder, decoder layers


def define_flags():
    benchmark.define_flags()
    flags.DEFINE_list("sizes", list(SIZES), f"Model sizes to measure, of {', '.join(SIZES)}.")
    flags.DEFINE_list("peer_sizes", list(PEER_SHAPES), "Sizes to run OpenNMT-tf at too, of "
                      f"{', '.join(PEER_SHAPES)} (empty: none).")
    flags.DEFINE_integer("window_seconds", 15, "Timed training per window, s.")
    flags.DEFINE_integer("rounds", 3, "Windows per precision and size (the median counts).")
    FLAGS.set_default("untimed_steps", 3)  # per trainer: tracing; big models step slowly
    flags.DEFINE_integer("beam_sentences", 128, "Test sentences translated with beam 5.")
    flags.DEFINE_integer("beam_repeats", 3, "Timed beam-5 passes (the median counts).")
    flags.DEFINE_integer("onmt_seconds", 90, "OpenNMT-tf training per size, s.")


def size_config(name, base=None):
    """The recipe's config (or `base`) with size `name`'s overrides, validated."""
    if name not in SIZES:
        raise ValueError(f"--sizes: unknown size {name!r} (choose from {', '.join(SIZES)})")
    return config_lib.override(base or benchmark.bench_config(), SIZES[name]).validate()


def timed_window(trainer, batches, seconds):
    """Train steps on `batches` (an iterator of data.Batch) for `seconds` -> (steps,
    elapsed s, target pieces trained, EOS excluded)."""
    steps = pieces = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = next(batches)
        trainer._set_learning_rate()
        float(trainer.train_step(batch)[1])  # waits for the step
        steps += 1
        pieces += int(tf.reduce_sum(batch.tgt_len)) - int(batch.tgt_len.shape[0])
    return steps, time.perf_counter() - start, pieces


def warm(trainer, steps):
    """A trainer and its own endless batches, after `steps` untimed steps."""
    batches = benchmark.endless_batches(trainer)
    timed_window(trainer, batches, 0)  # one step: traces
    for _ in range(steps - 1):
        timed_window(trainer, batches, 0)
    return batches


def window_figures(windows, batch_size, mean_tgt, flops_per_piece):
    """[(steps, seconds, pieces, matmul peak FLOP/s of the round)] -> medians over windows:
    steps/s, target pieces/s (the harness's definition: steps/s x batch x mean target
    pieces), trained pieces/s, MFU (each window against its round's peak)."""
    steps_per_s = statistics.median(w[0] / w[1] for w in windows)
    pieces_per_s = statistics.median(w[2] / w[1] for w in windows)
    return {"steps_per_s": steps_per_s, "tokens_per_s": steps_per_s * batch_size * mean_tgt,
            "measured_tokens_per_s": pieces_per_s, "windows": len(windows),
            "mfu": statistics.median(flops_per_piece * p / t / peak for _, t, p, peak in windows)}


def beam_pass(translator, lines):
    """-> (seconds, output pieces, EOS excluded) of one beam pass over `lines`."""
    start = time.perf_counter()
    results = translator.translate(lines)
    seconds = time.perf_counter() - start
    return seconds, sum(sum(1 for i in r[0].ids if i != EOS_ID) for r in results)


def run_peer_training(name, work_dir, row):
    """OpenNMT-tf trains at size `name`; its figures go to row["onmt"]."""
    harness = peer_sizes.write_harness(os.path.join(work_dir, f"harness-{name}"),
                                       *PEER_SHAPES[name], peers_dir=FLAGS.peers_dir)
    try:
        row["onmt"] = peer_sizes.train(harness, FLAGS.onmt_seconds)
    except (bench_peers.PeerError, OSError, ValueError) as e:
        logging.error("onmt at %s: %s", name, e)
        row["onmt"] = {"error": str(e)}
    return harness


def run_peer_translation(harness, row):
    if "error" in row["onmt"]:
        return
    try:
        seconds, pieces = peer_sizes.translate(harness, FLAGS.beam_sentences)
    except bench_peers.PeerError as e:
        row["onmt"]["error"] = str(e)
        return
    row["onmt"].update({"beam5_sentences_per_s": FLAGS.beam_sentences / seconds,
                        "beam5_tokens_per_s": pieces / seconds,
                        "beam5_mean_output_pieces": pieces / FLAGS.beam_sentences})


def measure_size(name, work_dir, peaks, lines):
    """peaks: {dtype: [matmul FLOP/s]}, appended to once per round."""
    config = size_config(name)
    trainers = {"fp32": benchmark.make_trainer(config, work_dir, name),
                "bf16": benchmark.make_trainer(config.replace(train={"precision": "bf16"}),
                                               work_dir, f"{name}-bf16")}
    fp32 = trainers["fp32"]
    mean_src, mean_tgt = benchmark.mean_lengths(fp32)
    flops = step_matmuls.training_flops_per_target_token(config.model, fp32.tgt_vocab.size,
                                                         mean_src, mean_tgt)
    batches = {dtype: warm(t, FLAGS.untimed_steps) for dtype, t in trainers.items()}
    translator = Translator(fp32.model, fp32.src_vocab, fp32.tgt_vocab,
                            dataclasses.replace(config.decode, beam_size=5, num_hypotheses=1))
    beam_pass(translator, lines)  # traces
    windows, beams = {"fp32": [], "bf16": []}, []
    row, harness = {"size": name, "flops_per_target_token": flops}, None
    for r in range(FLAGS.rounds):
        for dtype, peak in matmul_peaks(repeats=5).items():  # the load may change
            peaks[dtype].append(peak)
        for dtype, trainer in trainers.items():
            windows[dtype].append((*timed_window(trainer, batches[dtype], FLAGS.window_seconds),
                                   peaks[dtype][-1]))
        beams.append(beam_pass(translator, lines))
        if r == 0 and name in FLAGS.peer_sizes:
            harness = run_peer_training(name, work_dir, row)
            run_peer_translation(harness, row)
    for dtype in trainers:
        row[dtype] = window_figures(windows[dtype], config.data.batch_size, mean_tgt, flops)
    seconds = statistics.median(s for s, _ in beams)
    row.update({"parameters": sum(int(tf.size(v)) for v in fp32.model.trainable_variables),
                "beam5_sentences_per_s": len(lines) / seconds,
                "beam5_tokens_per_s": statistics.median(p / s for s, p in beams),
                "beam5_mean_output_pieces": statistics.median(p for _, p in beams) / len(lines),
                "mean_src_pieces": mean_src, "mean_tgt_pieces": mean_tgt,
                "trained_steps": FLAGS.untimed_steps + sum(w[0] for w in windows["fp32"])})
    return row


def matmul_peaks(repeats=10):
    """{dtype: FLOP/s of a 2048x2048 matmul} on this process's cores."""
    return {"fp32": flops_lib.matmul_flops_per_s(2048, tf.float32, repeats),
            "bf16": flops_lib.matmul_flops_per_s(2048, tf.bfloat16, repeats)}


def cell(value, digits=0):
    return "n/a" if value is None or value != value else f"{value:,.{digits}f}"


def ratio(row, key):
    """nmt / OpenNMT-tf for a top-level or fp32 figure, if the peer ran."""
    peer = row.get("onmt", {})
    ours = row["fp32"]["tokens_per_s"] if key == "train_tokens_per_s" else row[key]
    return f"{ours / peer[key]:.2f}" if peer.get(key) else "n/a"


def markdown(results):
    """The table by size, then the run's conditions."""
    head = ("| size | parameters | matmul GFLOP per target piece | fp32 target pieces/s | "
            "fp32 MFU | bf16 target pieces/s | bf16 MFU | beam 5 sentences/s (output "
            "pieces/sentence) | OpenNMT-tf target pieces/s | × OpenNMT-tf training | "
            "OpenNMT-tf beam 5 sentences/s (output pieces/sentence) | × OpenNMT-tf beam 5 |")
    lines = [head, "|" + " --- |" * 12]
    for row in results["rows"]:
        fp32, bf16, peer = row["fp32"], row["bf16"], row.get("onmt", {})
        lines.append(
            f"| {row['size']} | {row['parameters'] / 1e6:.1f} M | "
            f"{row['flops_per_target_token'] / 1e9:.3f} | {cell(fp32['tokens_per_s'])} | "
            f"{fp32['mfu']:.1%} | {cell(bf16['tokens_per_s'])} | {bf16['mfu']:.1%} | "
            f"{row['beam5_sentences_per_s']:.1f} ({row['beam5_mean_output_pieces']:.1f}) | "
            f"{cell(peer.get('train_tokens_per_s'))} | {ratio(row, 'train_tokens_per_s')} | "
            f"{cell(peer.get('beam5_sentences_per_s'), 1)} "
            f"({cell(peer.get('beam5_mean_output_pieces'), 1)}) | "
            f"{ratio(row, 'beam5_sentences_per_s')} |")
    peaks = results["peaks"]
    lines += ["", f"{results['machine']}, {' '.join(results['cpu_flags'])}; cores usable: "
              f"{results['cores']}; matmul peak (2048²) fp32 {peaks['fp32'] / 1e9:.0f}, bf16 "
              f"{peaks['bf16'] / 1e9:.0f} GFLOP/s (medians of one per round); windows of "
              f"{FLAGS.window_seconds} s, {FLAGS.rounds} per precision (medians); "
              f"beam 5 over {FLAGS.beam_sentences} test sentences; load average at start "
              f"{' '.join(f'{x:.2f}' for x in results['load_average_at_start'])}, at end "
              f"{' '.join(f'{x:.2f}' for x in results.get('load_average_at_end', ()))}"]
    lines += [f"{row['size']}: onmt failed: {row['onmt']['error']}" for row in results["rows"]
              if "error" in row.get("onmt", {})]
    return "\n".join(lines)


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        flags_line = next((line for line in f if line.startswith("flags")), "")
    return sorted(set(flags_line.split()) & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f"})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in FLAGS.sizes:
        size_config(name)  # an unknown size fails before anything runs
    unknown = set(FLAGS.peer_sizes) - set(PEER_SHAPES)
    if unknown:
        raise app.UsageError(f"--peer_sizes: OpenNMT-tf runs at {', '.join(PEER_SHAPES)} "
                             f"only (got {', '.join(sorted(unknown))})")
    logging.set_verbosity(logging.INFO)
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="nmt-bench-sizes-")
    lines = corpus_lib.read_lines(benchmark.test_file("src"))[:FLAGS.beam_sentences]
    results = {"command": " ".join(sys.argv), "machine": benchmark.machine(),
               "cpu_flags": cpu_flags(), "cores": len(os.sched_getaffinity(0)),
               "load_average_at_start": os.getloadavg(), "rows": []}
    peaks = {"fp32": [], "bf16": []}
    for name in FLAGS.sizes:
        logging.info("size %s", name)
        results["rows"].append(measure_size(name, work_dir, peaks, lines))
        results["peaks"] = {d: statistics.median(p) for d, p in peaks.items()}
        results["peaks_by_round"] = peaks
        save(results)
    results["load_average_at_end"] = os.getloadavg()
    save(results)
    print(markdown(results), flush=True)


def save(results):
    if FLAGS.save_json:
        with open(FLAGS.save_json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
