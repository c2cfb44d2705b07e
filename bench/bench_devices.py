"""Training throughput on 1, 2 and 4 devices, under model placement and MirroredStrategy.

    python -m bench.bench_devices                      # logical CPUs (or GPUs if present)
    python -m bench.bench_devices --devices=1,2 --steps=5 --num_units=64   # a smoke run

Each (mode, device count) runs in a fresh process (the CPU split must happen before
TensorFlow starts) on synthetic batches of --batch_size sentences of --length pieces,
and reports target tokens/s after --warmup steps, and the scaling efficiency
tokens/s(k devices) / (k * tokens/s(1 device)). On one physical CPU, logical devices
share the same cores: expect efficiency <= 1/k there; the numbers mean something on
GPUs or many-core machines. Whether placed layers run at the same time is measured
by bench/timeline_devices.py (a per-op device timeline) instead.
"""
import json
import os
import subprocess
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_list("devices", ["1", "2", "4"], "Device counts to measure.")
flags.DEFINE_list("modes", ["placement", "placement_gnmt", "mirrored"],
                  "placement (layer i on device i mod N, standard attention from the top "
                  "layer) | placement_gnmt (the same with GNMT attention from the bottom layer, "
                  "so upper layers need not wait for the top) | mirrored (data parallelism).")
flags.DEFINE_integer("steps", 20, "Timed steps per run.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing).")
flags.DEFINE_integer("batch_size", 64, "Global batch, sentences.")
flags.DEFINE_integer("length", 24, "Source and target length, pieces.")
flags.DEFINE_integer("vocab", 8000, "Vocabulary size.")
flags.DEFINE_integer("num_units", 256, "Model width (embedding too).")
flags.DEFINE_integer("num_layers", 2, "Encoder and decoder layers.")
flags.DEFINE_string("worker", None, "Internal: run one measurement, 'mode:devices'.")


def measure(mode, num_devices):
    """One run in this process -> target tokens/s."""
    import tensorflow as tf

    from bench import synthetic_steps
    from nmt import config as config_lib
    from nmt.model import devices
    from nmt.model.seq2seq import build_model
    from nmt.training import distribute, trainer

    devices.split_cpu(num_devices if not tf.config.list_physical_devices("GPU") else 0)
    model_config = config_lib.ModelConfig(
        num_units=FLAGS.num_units, embedding_size=FLAGS.num_units, dropout=0.0,
        num_encoder_layers=FLAGS.num_layers, num_decoder_layers=FLAGS.num_layers,
        attention_architecture="gnmt" if mode == "placement_gnmt" else "standard")
    train_config = config_lib.TrainConfig(
        num_train_steps=1, jit_compile=False, num_gpus=num_devices,
        strategy="mirrored" if mode == "mirrored" else "none")
    if mode not in ("placement", "placement_gnmt", "mirrored"):
        raise ValueError(f"unknown mode {mode!r}")
    strategy = distribute.make_strategy(train_config)
    with distribute.scope(strategy):
        model = build_model(model_config, FLAGS.vocab, FLAGS.vocab,
                            placement=devices.training_placement(model_config, train_config))
        optimizer = trainer.make_optimizer(train_config)
        optimizer.build(model.trainable_variables)
    step = (distribute.make_train_step(strategy, model, optimizer, train_config) if strategy
            else trainer.make_train_step(model, optimizer, train_config))
    batches = synthetic_steps.synthetic_batches(
        strategy, FLAGS.batch_size, FLAGS.length, FLAGS.vocab, FLAGS.warmup + FLAGS.steps)
    seconds = synthetic_steps.time_steps(step, batches, FLAGS.warmup, FLAGS.steps)
    return FLAGS.steps * FLAGS.batch_size * FLAGS.length / seconds


def main(argv):
    del argv
    if FLAGS.worker:
        mode, count = FLAGS.worker.split(":")
        print(json.dumps({"tokens_per_s": measure(mode, int(count))}))
        return
    passthrough = [a for a in sys.argv[1:] if not a.startswith(("--devices", "--modes"))]
    print("| mode | devices | target tokens/s | scaling efficiency |\n| --- | --- | --- | --- |")
    for mode in FLAGS.modes:
        base = None
        for count in map(int, FLAGS.devices):
            run = subprocess.run([sys.executable, "-m", "bench.bench_devices",
                                  f"--worker={mode}:{count}", *passthrough],
                                 capture_output=True, text=True, cwd=REPO)
            if run.returncode:
                print(f"| {mode} | {count} | failed: {run.stderr.strip().splitlines()[-1]} | |")
                continue
            rate = json.loads(run.stdout.strip().splitlines()[-1])["tokens_per_s"]
            base = base or (rate if count == 1 else None)
            efficiency = f"{rate / (count * base):.2f}" if base else "n/a"
            print(f"| {mode} | {count} | {rate:.0f} | {efficiency} |", flush=True)


if __name__ == "__main__":
    app.run(main)
