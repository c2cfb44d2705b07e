"""Speed of the bench model: training throughput, MFU, translation, scaling, peers.

    python tools/benchmark.py                                   # Markdown tables
    python tools/benchmark.py --json                            # one JSON object
    python tools/benchmark.py --model_dir=/tmp/run-default      # translate with a trained model
    python tools/benchmark.py --peers --peer_seconds=300        # + OpenNMT-tf and JoeyNMT, ratios
    python tools/benchmark.py --parts=matmul,train --train_seconds=20 --untimed_steps=5  # smoke run

The model and data are those of `recipes/multi30k.py --preset=bench` (any of that
recipe's flags, e.g. --preset=default or --dropout=0.2, changes them here too).
Training runs nmt.training.Trainer's own train step on its own epoch datasets, so
it measures what nmt-train runs, minus logging and checkpoints. docs/benchmark.md
explains every figure and the FLOPs formula.
"""
import collections
import dataclasses
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from nmt import corpus as corpus_lib
from nmt import data as data_lib
from nmt import evaluation
from nmt import model_dir as model_dir_lib
from nmt import precision
from nmt import training
from nmt.translate import Translator
from nmt.vocab import EOS_ID

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)  # tools/ is not a package
import bench_peers  # noqa: E402
import step_matmuls  # noqa: E402

FLAGS = flags.FLAGS
PARTS = ("matmul", "train", "train_bf16", "profile", "scaling", "translate", "translate_bf16")
recipe = None  # recipes/multi30k.py, loaded by define_flags()


def define_flags():
    """Loads recipes/multi30k.py (it defines --preset and one flag per config field; the bench
    preset is the default here) and defines this tool's flags. Importing this module does
    neither, so tests can import it beside the CLIs."""
    global recipe
    path = os.path.join(TOOLS, "..", "recipes", "multi30k.py")
    spec = importlib.util.spec_from_file_location("multi30k_recipe", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    FLAGS.set_default("preset", "bench")
    flags.DEFINE_list("parts", list(PARTS), f"What to measure, any of {', '.join(PARTS)}.")
    flags.DEFINE_integer("train_seconds", 60, "Timed training (steady state, after warm-up), s.")
    flags.DEFINE_integer("untimed_steps", 30, "Untimed training steps first (tracing, caches).")
    flags.DEFINE_list("scaling_batch_sizes", ["16", "64", "256"], "Batch sizes (sentences).")
    flags.DEFINE_integer("scaling_seconds", 30, "Timed training per extra batch size, s.")
    # --model_dir is the recipe's flag: here, a trained model dir to translate with
    # (default: the model this run trains, which is only --train_seconds old).
    flags.DEFINE_string("work_dir", None, "Scratch dir (default: a new temporary dir).")
    flags.DEFINE_string("test_prefix", os.path.join(recipe.DATA_DIR, "test_2016_flickr"),
                        "Translation test set: PREFIX.SRC[.gz] and PREFIX.TGT[.gz].")
    flags.DEFINE_integer("matmul_size", 2048, "Square matmul for the FLOP/s peak.")
    flags.DEFINE_integer("matmul_repeats", 10, "Timed matmuls (the median counts).")
    flags.DEFINE_boolean("peers", False, "Also run the peer harness (OpenNMT-tf, JoeyNMT).")
    flags.DEFINE_integer("peer_seconds", 180, "Training time per peer, s (train.sh SECONDS).")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of Markdown.")
    flags.DEFINE_string("save_json", None, "Also write the JSON object to this file.")


TrainSpeed = collections.namedtuple("TrainSpeed", [
    "batch_size", "steps", "seconds", "steps_per_s", "sentences_per_s",
    "tokens_per_s",           # steps/s x batch_size x mean target pieces (the peer harness's figure)
    "measured_tokens_per_s",  # non-pad target pieces actually trained on, EOS excluded
    "padding_efficiency"])    # target pieces (EOS counted) / padded target positions

LENGTH_BUCKETS = ((1, 10), (11, 15), (16, 20), (21, 30), (31, 10_000))  # source pieces


# ----------------------------------------------------------------------------
# Peak FLOP/s of this machine and the model's FLOPs.

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
    both gradients, at the mean lengths (tools/step_matmuls.py lists them)."""
    return step_matmuls.training_flops_per_target_token(model, vocab_size, mean_src, mean_tgt)


# ----------------------------------------------------------------------------
# Training.

def bench_config(batch_size=None):
    """The recipe's config (preset + flags), optionally with another batch size."""
    config = recipe.recipe_config()
    if batch_size:
        config = config.replace(data={"batch_size": batch_size, "batch_tokens": 0})
    return config


def make_trainer(config, work_dir, name):
    """A Trainer in work_dir/name, reusing work_dir's sentencepiece model if there is one."""
    out_dir = os.path.join(work_dir, name)
    os.makedirs(out_dir, exist_ok=True)
    for spm in ("spm.model", "spm.vocab"):
        if os.path.exists(os.path.join(work_dir, spm)):
            shutil.copy(os.path.join(work_dir, spm), out_dir)
    trainer = training.Trainer(config, out_dir)
    if not os.path.exists(os.path.join(work_dir, "spm.model")):
        shutil.copy(os.path.join(out_dir, "spm.model"), work_dir)
        shutil.copy(os.path.join(out_dir, "spm.vocab"), work_dir)
    return trainer


def endless_batches(trainer):
    """The trainer's epochs, one after another, as data.Batch."""
    epoch = 0
    while True:
        for batch in trainer.epoch_dataset(epoch):
            yield data_lib.Batch(*batch)
        epoch += 1


def measure_training(trainer, seconds, warmup_steps, mean_tgt):
    """Runs trainer.train_step for warmup_steps, then for `seconds` -> TrainSpeed."""
    batches = endless_batches(trainer)
    for _ in range(warmup_steps):
        trainer._set_learning_rate()
        float(trainer.train_step(next(batches))[1])  # waits for the step
    steps = sentences = eos_pieces = padded = 0
    traces = trainer.train_step.experimental_get_tracing_count()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:  # the loop of Trainer.run, minus logging
        batch = next(batches)
        trainer._set_learning_rate()
        float(trainer.train_step(batch)[1])
        steps += 1
        tgt_len = batch.tgt_len.numpy()  # [batch], EOS counted
        sentences += len(tgt_len)
        eos_pieces += int(tgt_len.sum())
        padded += int(np.prod(batch.tgt_out.shape))
    elapsed = time.perf_counter() - start
    if trainer.train_step.experimental_get_tracing_count() > traces:
        logging.warning("the train step was traced again while timed: raise --untimed_steps")
    pieces = eos_pieces - sentences
    batch_size = trainer.config.data.batch_size
    trainer.progress.step.assign_add(warmup_steps + steps)
    return TrainSpeed(batch_size, steps, elapsed, steps / elapsed, sentences / elapsed,
                      steps / elapsed * batch_size * mean_tgt, pieces / elapsed,
                      eos_pieces / max(padded, 1))


def mean_lengths(trainer):
    """Mean source and target pieces (EOS excluded) of the length-filtered training set."""
    return (float(np.mean([len(x) for x in trainer.encoded.src_ids])),
            float(np.mean([len(x) for x in trainer.encoded.tgt_ids])))


def timed_training(config, work_dir, name):
    """A Trainer for `config` in work_dir/name, timed for --train_seconds ->
    (trainer, TrainSpeed, FLOPs per target piece, (mean source, mean target pieces))."""
    trainer = make_trainer(config, work_dir, name)
    mean_src, mean_tgt = mean_lengths(trainer)
    speed = measure_training(trainer, FLAGS.train_seconds, FLAGS.untimed_steps, mean_tgt)
    flops = training_flops_per_target_token(trainer.config.model, trainer.tgt_vocab.size,
                                            mean_src, mean_tgt)
    return trainer, speed, flops, (mean_src, mean_tgt)


def run_training(work_dir, results):
    """The main measurement at the recipe's batch size -> the Trainer (its out_dir, work_dir/train,
    is a model dir with the trained weights)."""
    trainer, speed, flops, (mean_src, mean_tgt) = timed_training(bench_config(), work_dir,
                                                                 "train")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    trainer.save()  # DIR/ckpt: the model translated below unless --model_dir
    results.update({
        "train_tokens_per_s": speed.tokens_per_s, "train_steps_per_s": speed.steps_per_s,
        "train_sentences_per_s": speed.sentences_per_s,
        "train_measured_tokens_per_s": speed.measured_tokens_per_s,
        "train_padding_efficiency": speed.padding_efficiency, "train_timed_steps": speed.steps,
        "train_timed_s": speed.seconds, "batch_size": speed.batch_size,
        "mean_src_pieces": mean_src, "mean_tgt_pieces": mean_tgt,
        "parameters": sum(int(np.prod(v.shape)) for v in trainer.model.trainable_variables),
        "flops_per_target_token": flops,
        "achieved_flops_per_s": flops * speed.measured_tokens_per_s,
        "peak_rss_mb": peak_rss_mb})
    if "matmul_fp32_flops_per_s" in results:
        results["mfu_fp32"] = results["achieved_flops_per_s"] / results["matmul_fp32_flops_per_s"]
    results.setdefault("scaling", []).append(speed._asdict())
    return trainer


def run_training_bf16(work_dir, results):
    """The same measurement with --precision=bf16 (fp32 master weights, bf16 compute)."""
    _, speed, flops, _ = timed_training(bench_config().replace(train={"precision": "bf16"}),
                                        work_dir, "train-bf16")
    results.update({"train_bf16_tokens_per_s": speed.tokens_per_s,
                    "train_bf16_steps_per_s": speed.steps_per_s,
                    "achieved_flops_per_s_bf16": flops * speed.measured_tokens_per_s})
    if "train_steps_per_s" in results:
        results["train_bf16_speedup"] = speed.steps_per_s / results["train_steps_per_s"]
    if "matmul_bf16_flops_per_s" in results:
        results["mfu_bf16"] = (results["achieved_flops_per_s_bf16"] /
                               results["matmul_bf16_flops_per_s"])


def run_scaling(work_dir, results):
    """Training throughput at each --scaling_batch_sizes (the recipe's own size is measured once)."""
    done = {row["batch_size"] for row in results.get("scaling", [])}
    for batch_size in map(int, FLAGS.scaling_batch_sizes):
        if batch_size in done:
            continue
        trainer = make_trainer(bench_config(batch_size), work_dir, f"train-b{batch_size}")
        _, mean_tgt = mean_lengths(trainer)
        speed = measure_training(trainer, FLAGS.scaling_seconds, FLAGS.untimed_steps, mean_tgt)
        results.setdefault("scaling", []).append(speed._asdict())
        del trainer
    results["scaling"].sort(key=lambda row: row["batch_size"])


def typical_batch(trainer, candidates=20):
    """Among the first batches of an epoch, one of the median padded target length."""
    batches = [data_lib.Batch(*b) for b in trainer.epoch_dataset(0).take(candidates)]
    full = [b for b in batches if b.src.shape[0] == trainer.config.data.batch_size] or batches
    full.sort(key=lambda b: b.tgt_out.shape[1])
    return full[len(full) // 2]


def median_seconds(function, batch, repeats):
    for _ in range(2):
        tf.nest.flatten(function(batch))[0].numpy()  # trace, warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.flatten(function(batch))[0].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile_step(trainer, repeats=10):
    """Where a training step's time goes: cumulative pieces of it timed on one batch, in
    the trainer's precision."""
    model, batch = trainer.model, typical_batch(trainer)
    dtypes = precision.training_dtypes(trainer.config.train.precision)

    def encoder(b):
        return model.encode(b.src, b.src_len, training=True,
                            compute_dtype=dtypes["compute_dtype"])

    def decoder(b):
        return model.decoder.teacher_forced(encoder(b), b.tgt_in, training=True)

    def forward(b):
        return model.loss(b, training=True, **dtypes).loss_sum

    def gradients(b):
        with tf.GradientTape() as tape:
            loss = model.loss(b, training=True, **dtypes).loss_sum
        return tape.gradient(loss, model.trainable_variables)

    stages = (("encoder forward", tf.function(encoder)),
              ("+ decoder loop forward (LSTM, attention)", tf.function(decoder)),
              ("+ output projection, softmax, loss", tf.function(forward)),
              ("+ backward", tf.function(gradients)),
              ("+ clipping, Adam: the train step", training.make_train_step(
                  model, trainer.optimizer, trainer.config.train)))
    rows, previous = [], 0.0
    for name, function in stages:  # each traced for this batch's shapes only
        seconds = median_seconds(function, batch, repeats)
        rows.append({"stage": name, "cumulative_ms": 1000 * seconds,
                     "stage_ms": 1000 * (seconds - previous)})
        previous = seconds
    shape = f"{batch.src.shape[0]} sentences, source {batch.src.shape[1]}, target {batch.tgt_out.shape[1]}"
    relaxed = 1000 * median_seconds(trainer.train_step, batch, repeats)
    return {"batch": shape, "repeats": repeats, "stages": rows, "trainer_step_ms": relaxed}


# ----------------------------------------------------------------------------
# Translation.

def load_translator(model_dir, decode, beam_size):
    """A Translator on model_dir's best (else last) checkpoint with `decode` settings."""
    _, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, "best")
    decode = dataclasses.replace(decode, beam_size=beam_size, num_hypotheses=1)
    return Translator(model, src_vocab, tgt_vocab, decode)


def timed_translate(translator, lines):
    """-> (seconds, hypotheses as strings, output pieces EOS excluded)."""
    start = time.perf_counter()
    results = translator.translate(lines)
    seconds = time.perf_counter() - start
    pieces = sum(sum(1 for i in r[0].ids if i != EOS_ID) for r in results)
    return seconds, [r[0].text for r in results], pieces


def run_translation(model_dir, src, ref, decode, work_dir, results, label=""):
    """Beam 5 and greedy over the test set, in process (cold, then warm) and as a command;
    the figures are named `beam5{label}_...` and `greedy{label}_...`."""
    for mode, beam_size in ((f"beam5{label}", 5), (f"greedy{label}", 1)):
        translator = load_translator(model_dir, decode, beam_size)
        seconds, hyps, pieces = timed_translate(translator, src)  # includes tracing
        warm_seconds, _, _ = timed_translate(translator, src)
        results.update({f"{mode}_s": seconds, f"{mode}_sentences_per_s": len(src) / seconds,
                        f"{mode}_tokens_per_s": pieces / seconds,
                        f"{mode}_warm_sentences_per_s": len(src) / warm_seconds,
                        f"{mode}_warm_tokens_per_s": pieces / warm_seconds,
                        f"{mode}_mean_output_pieces": pieces / len(src),
                        f"{mode}_bleu": evaluation.score(hyps, ref).bleu})
        command_s, rss_mb = time_command(model_dir, beam_size, decode, work_dir)
        results.update({f"{mode}_command_s": command_s, f"{mode}_command_rss_mb": rss_mb})
        if mode == "beam5" and not label:
            results["translate_by_length"] = translation_by_length(translator, src)


def translation_by_length(translator, src):
    """Warm beam search per source-length bucket -> rows of lines, lengths, speed."""
    lengths = [len(x) for x in translator.src_vocab.encode(src)]
    rows = []
    for low, high in LENGTH_BUCKETS:
        lines = [s for s, n in zip(src, lengths) if low <= n <= high]
        if not lines:
            continue
        seconds, _, pieces = timed_translate(translator, lines)
        rows.append({"src_pieces": f"{low}-{high}" if high < 10_000 else f">={low}",
                     "lines": len(lines), "mean_src_pieces": float(np.mean(
                         [n for n in lengths if low <= n <= high])),
                     "mean_output_pieces": pieces / len(lines), "seconds": seconds,
                     "sentences_per_s": len(lines) / seconds,
                     "ms_per_sentence": 1000 * seconds / len(lines)})
    return rows


def time_command(model_dir, beam_size, decode, work_dir):
    """Wall time and peak RSS (MiB) of a whole nmt-translate run on the test set.

    The RSS comes from GNU time, as in the peer harness: a child forked from this big
    process would report this process's RSS as its own peak.
    """
    command = shutil.which("nmt-translate")
    stats = os.path.join(work_dir, "command.time")
    argv = ["/usr/bin/time", "-o", stats, "-f", "%M"] + (
        [command] if command else [sys.executable, "-m", "nmt.cli.translate"]) + [
        f"--model_dir={model_dir}", f"--input={test_file('src')}",
        f"--output={os.path.join(work_dir, f'command.beam{beam_size}.txt')}",
        f"--beam_size={beam_size}", f"--length_penalty={decode.length_penalty}",
        f"--decode_batch_size={decode.batch_size}", f"--decode_precision={decode.decode_precision}"]
    with open(os.path.join(work_dir, "command.log"), "ab") as log:
        start = time.perf_counter()
        run = subprocess.run(argv, stdout=log, stderr=log)
        seconds = time.perf_counter() - start
    if run.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({run.returncode}); see {log.name}")
    with open(stats) as f:
        return seconds, int(f.read().split()[-1]) / 1024


def test_file(side):
    """The --test_prefix file of the recipe's source or target language."""
    data = bench_config().data
    return corpus_lib.find_corpus_file(FLAGS.test_prefix, data.src if side == "src" else data.tgt)


# ----------------------------------------------------------------------------
# Peers, report, main.

FIGURES = (  # (key, label); ratios nmt/peer are printed for every key a peer reports too
    ("train_tokens_per_s", "training: target pieces/s (steps/s x batch x mean target pieces)"),
    ("train_steps_per_s", "training: steps/s"),
    ("train_measured_tokens_per_s", "training: non-pad target pieces/s actually trained"),
    ("train_padding_efficiency", "training: real / padded target positions"),
    ("peak_rss_mb", "training: peak RSS, MiB"),
    ("achieved_flops_per_s", "training: model FLOP/s (formula x non-pad pieces/s)"),
    ("mfu_fp32", "training: MFU vs fp32 matmul peak"),
    ("train_bf16_tokens_per_s", "training, --precision=bf16: target pieces/s (vs peers' fp32)"),
    ("train_bf16_speedup", "training, --precision=bf16: x fp32 steps/s, same run"),
    ("mfu_bf16", "training, --precision=bf16: MFU vs bf16 matmul peak"),
    ("beam5_sentences_per_s", "beam 5: sentences/s after loading (tracing included)"),
    ("beam5_tokens_per_s", "beam 5: target pieces/s after loading"),
    ("beam5_warm_sentences_per_s", "beam 5: sentences/s, second pass"),
    ("beam5_command_s", "beam 5: whole translate command, s (lower is better)"),
    ("beam5_command_rss_mb", "beam 5: translate command peak RSS, MiB"),
    ("beam5_mean_output_pieces", "beam 5: mean output pieces"),
    ("beam5_bleu", "beam 5: test BLEU"),
    ("greedy_sentences_per_s", "greedy: sentences/s after loading (tracing included)"),
    ("greedy_tokens_per_s", "greedy: target pieces/s after loading"),
    ("greedy_warm_sentences_per_s", "greedy: sentences/s, second pass"),
    ("greedy_mean_output_pieces", "greedy: mean output pieces"),
    ("greedy_command_s", "greedy: whole translate command, s (lower is better)"),
    ("greedy_command_rss_mb", "greedy: translate command peak RSS, MiB"),
    ("greedy_bleu", "greedy: test BLEU"),
    ("beam5_bf16_sentences_per_s", "beam 5, --decode_precision=bf16: sentences/s after loading"),
    ("beam5_bf16_warm_sentences_per_s", "beam 5, --decode_precision=bf16: sentences/s, second pass"),
    ("beam5_bf16_command_s", "beam 5, --decode_precision=bf16: whole command, s"),
    ("beam5_bf16_bleu", "beam 5, --decode_precision=bf16: test BLEU"),
    ("greedy_bf16_sentences_per_s", "greedy, --decode_precision=bf16: sentences/s after loading"),
    ("greedy_bf16_command_s", "greedy, --decode_precision=bf16: whole command, s"),
    ("greedy_bf16_bleu", "greedy, --decode_precision=bf16: test BLEU"),
)


def run_peers(results):
    """Each peer in turn: train for --peer_seconds, translate; ratios nmt/peer per figure."""
    results["peer_mean_tgt_pieces"] = bench_peers.ensure_prepared()
    results["peers"], results["ratios"] = {}, {}
    for peer in bench_peers.PEERS:
        logging.info("peer %s: training %d s, then translating", peer, FLAGS.peer_seconds)
        try:
            figures = bench_peers.run_peer(peer, FLAGS.peer_seconds)
        except (bench_peers.PeerError, subprocess.TimeoutExpired) as e:
            logging.error("peer %s: %s", peer, e)
            results["peers"][peer] = {"error": str(e)}
            continue
        results["peers"][peer] = figures
        results["ratios"][peer] = peer_ratios(results, figures)


def peer_ratios(results, figures):
    """nmt / peer for each figure both report; our bf16 training against their fp32."""
    return {key: results[key] / figures[PEER_KEY.get(key, key)] for key, _ in FIGURES
            if key in results and figures.get(PEER_KEY.get(key, key))}


# Our figures compared with another of the peers' (they train and decode in fp32 only).
PEER_KEY = {"train_bf16_tokens_per_s": "train_tokens_per_s",
            **{f"{mode}_bf16_{figure}": f"{mode}_{figure}" for mode in ("beam5", "greedy")
               for figure in ("sentences_per_s", "warm_sentences_per_s", "command_s", "bleu")}}


def fmt(value):
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1e9:
        return f"{value / 1e9:,.1f} G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f} M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 1 else f"{value:.3f}"


def main_table(results):
    peers = [p for p, f in results.get("peers", {}).items() if "error" not in f]
    head = ["figure", "nmt", *peers, *[f"nmt/{p}" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, label in FIGURES:
        if key not in results:
            continue
        cells = [fmt(results[key])]
        cells += [fmt(results["peers"][p].get(key)) for p in peers]
        cells += [fmt(results["ratios"][p].get(key)) for p in peers]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def scaling_tables(results):
    lines = []
    if results.get("profile"):
        p = results["profile"]
        total = p["stages"][-1]["cumulative_ms"]
        lines += ["", f"Where a training step's time goes (one batch: {p['batch']}; median of "
                  f"{p['repeats']} runs of each cumulative piece):", "",
                  "| stage | ms | share of the step |", "| --- | --- | --- |"]
        lines += [f"| {r['stage']} | {fmt(r['stage_ms'])} | {r['stage_ms'] / total:.0%} |"
                  for r in p["stages"]]
        lines += [f"| the trainer's own train step on the same batch (traced with relaxed "
                  f"shapes) | {fmt(p['trainer_step_ms'])} | {p['trainer_step_ms'] / total:.0%} |"]
    if results.get("scaling"):
        lines += ["", "Training throughput against batch size:", "",
                  "| batch (sentences) | steps/s | sentences/s | target pieces/s (harness def.) | "
                  "non-pad target pieces/s | padding efficiency |", "|" + " --- |" * 6]
        lines += [f"| {r['batch_size']} | {fmt(r['steps_per_s'])} | {fmt(r['sentences_per_s'])} | "
                  f"{fmt(r['tokens_per_s'])} | {fmt(r['measured_tokens_per_s'])} | "
                  f"{fmt(r['padding_efficiency'])} |" for r in results["scaling"]]
    if results.get("translate_by_length"):
        lines += ["", "Beam 5 translation time against source length (warm, test set split by "
                  "source pieces):", "",
                  "| source pieces | lines | mean source | mean output | sentences/s | ms/sentence |",
                  "|" + " --- |" * 6]
        lines += [f"| {r['src_pieces']} | {r['lines']} | {fmt(r['mean_src_pieces'])} | "
                  f"{fmt(r['mean_output_pieces'])} | {fmt(r['sentences_per_s'])} | "
                  f"{fmt(r['ms_per_sentence'])} |" for r in results["translate_by_length"]]
    return lines


def markdown(results):
    lines = main_table(results)
    notes = [f"{k}: {fmt(results[k])}" for k in (
        "matmul_fp32_flops_per_s", "matmul_bf16_flops_per_s", "flops_per_target_token",
        "mean_src_pieces", "mean_tgt_pieces", "peer_mean_tgt_pieces", "parameters")
        if k in results]
    lines += ["", "; ".join(notes)] if notes else []
    lines += scaling_tables(results)
    lines += ["", f"preset {results['preset']}, translations from {results.get('translate_model_dir')}"
              f", {results['machine']}, load average at start "
              f"{' '.join(f'{x:.2f}' for x in results['load_average_at_start'])}"]
    return "\n".join(lines)


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({model}), TensorFlow {tf.__version__}"


def measure(parts, work_dir, results):
    """Runs the chosen parts, adding to `results` as they finish."""
    if "matmul" in parts:
        for dtype in ("fp32", "bf16"):
            results[f"matmul_{dtype}_flops_per_s"] = matmul_flops_per_s(
                FLAGS.matmul_size, tf.float32 if dtype == "fp32" else tf.bfloat16,
                FLAGS.matmul_repeats)
    model_dir = FLAGS.model_dir
    trainer = None
    if "train" in parts:
        trainer = run_training(work_dir, results)
        model_dir = model_dir or trainer.out_dir
    if "train_bf16" in parts:
        run_training_bf16(work_dir, results)
    if "profile" in parts:
        results["profile"] = profile_step(trainer or make_trainer(bench_config(), work_dir, "train"))
    del trainer
    if "scaling" in parts:
        run_scaling(work_dir, results)
    translating = [p for p in ("translate", "translate_bf16") if p in parts]
    if translating and not model_dir:
        raise app.UsageError("translate needs --model_dir or the train part")
    if translating:
        src = corpus_lib.read_lines(test_file("src"))
        ref = corpus_lib.read_lines(test_file("tgt"))
    for part in translating:
        decode = bench_config().decode
        if part == "translate_bf16":
            decode = dataclasses.replace(decode, decode_precision="bf16")
        run_translation(model_dir, src, ref, decode, work_dir, results,
                        label="_bf16" if part == "translate_bf16" else "")
        results["translate_model_dir"] = model_dir
    if FLAGS.peers:
        run_peers(results)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    unknown = set(FLAGS.parts) - set(PARTS)
    if unknown:
        raise app.UsageError(f"--parts: unknown {', '.join(sorted(unknown))} (choose from "
                             f"{', '.join(PARTS)})")
    logging.set_verbosity(logging.INFO)
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="nmt-bench-")
    logging.info("work dir %s", work_dir)
    results = {"command": " ".join(sys.argv), "preset": FLAGS.preset, "machine": machine(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "load_average_at_start": os.getloadavg()}
    try:
        measure(set(FLAGS.parts), work_dir, results)
    except Exception as e:  # report what was measured before the failure
        logging.exception("measurement failed")
        results["error"] = f"{type(e).__name__}: {e}"
    results["load_average_at_end"] = os.getloadavg()
    if FLAGS.save_json:
        model_dir_lib.write_json_atomic(FLAGS.save_json, results)
    print(json.dumps(results, indent=1) if FLAGS.json else markdown(results), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
