"""Speed of the bench model: training throughput, MFU, translation, scaling, peers.

    python -m bench.benchmark                                   # Markdown tables
    python -m bench.benchmark --json                            # one JSON object
    python -m bench.benchmark --model_dir=/tmp/run-default      # translate with a trained model
    python -m bench.benchmark --peers --peer_seconds=300        # + OpenNMT-tf and JoeyNMT, ratios
    python -m bench.benchmark --parts=matmul,train --train_seconds=20 --untimed_steps=5  # smoke run

The model and data are those of `recipes/multi30k.py --preset=bench` (any of that
recipe's flags, e.g. --preset=default or --dropout=0.2, changes them here too).
Training runs nmt.training.trainer.Trainer's own train step on its own epoch datasets, so
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

from nmt import model_dir as model_dir_lib
from nmt.data import batching as batching_lib
from nmt.data import corpus as corpus_lib
from nmt.model import precision
from nmt.training import trainer as training

from bench import bench_peers, benchmark_report, benchmark_translation
from bench import flops as flops_lib

HERE = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
PARTS = ("matmul", "train", "train_bf16", "profile", "scaling", "translate", "translate_bf16")
recipe = None  # recipes/multi30k.py, loaded by define_flags()


def define_flags():
    """Loads recipes/multi30k.py (it defines --preset and one flag per config field; the bench
    preset is the default here) and defines this tool's flags. Importing this module does
    neither, so tests can import it beside the CLIs."""
    global recipe
    path = os.path.join(HERE, "..", "recipes", "multi30k.py")
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
    flags.DEFINE_string("peers_dir", None, "The peer harness's folder (train.sh, translate.sh); "
                        "default $NMT_PEERS_DIR, else ../shared/bench/peers beside the checkout.")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of Markdown.")
    flags.DEFINE_string("save_json", None, "Also write the JSON object to this file.")


TrainSpeed = collections.namedtuple("TrainSpeed", [
    "batch_size", "steps", "seconds", "steps_per_s", "sentences_per_s",
    "tokens_per_s",           # steps/s x batch_size x mean target pieces (the harness's figure)
    "measured_tokens_per_s",  # non-pad target pieces actually trained on, EOS excluded
    "padding_efficiency"])    # target pieces (EOS counted) / padded target positions


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
            yield batching_lib.Batch(*batch)
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
    flops = flops_lib.training_flops_per_target_token(trainer.config.model, trainer.tgt_vocab.size,
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
    """Training throughput at each --scaling_batch_sizes (the recipe's own size is measured
    once)."""
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
    batches = [batching_lib.Batch(*b) for b in trainer.epoch_dataset(0).take(candidates)]
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
    shape = (f"{batch.src.shape[0]} sentences, source {batch.src.shape[1]}, "
             f"target {batch.tgt_out.shape[1]}")
    relaxed = 1000 * median_seconds(trainer.train_step, batch, repeats)
    return {"batch": shape, "repeats": repeats, "stages": rows, "trainer_step_ms": relaxed}


def test_file(side):
    """The --test_prefix file of the recipe's source or target language."""
    data = bench_config().data
    return corpus_lib.find_corpus_file(FLAGS.test_prefix, data.src if side == "src" else data.tgt)


# ----------------------------------------------------------------------------
# Peers, report, main.

def run_peers(results):
    """Each peer in turn: train for --peer_seconds, translate; ratios nmt/peer per figure."""
    harness = bench_peers.harness_dir(FLAGS.peers_dir)
    try:
        results["peer_mean_tgt_pieces"] = bench_peers.ensure_prepared(harness)
    except bench_peers.PeerError as e:
        raise SystemExit(f"benchmark: {e}")
    results["peers"], results["ratios"] = {}, {}
    for peer in bench_peers.PEERS:
        logging.info("peer %s: training %d s, then translating", peer, FLAGS.peer_seconds)
        try:
            figures = bench_peers.run_peer(harness, peer, FLAGS.peer_seconds)
        except (bench_peers.PeerError, subprocess.TimeoutExpired) as e:
            logging.error("peer %s: %s", peer, e)
            results["peers"][peer] = {"error": str(e)}
            continue
        results["peers"][peer] = figures
        results["ratios"][peer] = benchmark_report.peer_ratios(results, figures)


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} CPUs ({model}), TensorFlow {tf.__version__}"


def measure(parts, work_dir, results):
    """Runs the chosen parts, adding to `results` as they finish."""
    if "matmul" in parts:
        for dtype in ("fp32", "bf16"):
            results[f"matmul_{dtype}_flops_per_s"] = flops_lib.matmul_flops_per_s(
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
        results["profile"] = profile_step(
            trainer or make_trainer(bench_config(), work_dir, "train"))
    del trainer
    if "scaling" in parts:
        run_scaling(work_dir, results)
    translating = [p for p in ("translate", "translate_bf16") if p in parts]
    if translating and not model_dir:
        raise app.UsageError("translate needs --model_dir or the train part")
    if translating:
        ref = corpus_lib.read_lines(test_file("tgt"))
    for part in translating:
        decode = bench_config().decode
        if part == "translate_bf16":
            decode = dataclasses.replace(decode, decode_precision="bf16")
        benchmark_translation.run_translation(
            model_dir, test_file("src"), ref, decode, work_dir, results,
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
    os.makedirs(work_dir, exist_ok=True)
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
    print(json.dumps(results, indent=1) if FLAGS.json else benchmark_report.markdown(results),
          flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
