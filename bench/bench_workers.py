"""Multi-worker training on loopback: 1 worker against 2, steps/s and all-reduce time.

    python -m bench.bench_workers                       # 3 alternating rounds
    python -m bench.bench_workers --rounds=1 --steps=5  # a smoke run

Each round runs one MultiWorkerMirroredStrategy cluster of 1 worker, then one of 2
(processes on 127.0.0.1, TF_CONFIG as docs/distributed.md), on synthetic batches of
--batch_size sentences of --length pieces: the global batch, so 2 workers each
compute half of it. The chief reports steps/s of the trainer's step
(nmt.training.distribute.make_train_step) after --warmup steps, and the time of one compiled
all-reduce of tensors shaped like the model's gradients (what each step adds up
across workers). Medians over the rounds; on one machine both workers share its
cores, so this measures the cost of the collective, not a speed-up.
"""
import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

from bench import local_cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_integer("rounds", 3, "Alternating rounds of 1 and 2 workers.")
flags.DEFINE_integer("steps", 20, "Timed steps per run.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing).")
flags.DEFINE_integer("batch_size", 64, "Global batch, sentences.")
flags.DEFINE_integer("length", 20, "Source and target length, pieces.")
flags.DEFINE_integer("vocab", 2000, "Vocabulary size.")
flags.DEFINE_integer("num_units", 128, "Model width (embedding too).")
flags.DEFINE_integer("num_layers", 1, "Encoder and decoder layers.")
flags.DEFINE_boolean("worker", False, "Internal: run as one worker of the TF_CONFIG cluster.")


def measure():
    """One worker's run -> {"steps_per_s", "all_reduce_ms"} (every worker times it)."""
    import numpy as np
    import tensorflow as tf

    from bench import synthetic_steps
    from nmt import config as config_lib
    from nmt.model.seq2seq import build_model
    from nmt.training import distribute, trainer

    train_config = config_lib.TrainConfig(num_train_steps=1, jit_compile=False,
                                          strategy="multi_worker")
    strategy = distribute.make_strategy(train_config)
    model_config = config_lib.ModelConfig(
        num_units=FLAGS.num_units, embedding_size=FLAGS.num_units, dropout=0.0,
        num_encoder_layers=FLAGS.num_layers, num_decoder_layers=FLAGS.num_layers)
    with strategy.scope():
        model = build_model(model_config, FLAGS.vocab, FLAGS.vocab)
        optimizer = trainer.make_optimizer(train_config)
        optimizer.build(model.trainable_variables)
    step = distribute.make_train_step(strategy, model, optimizer, train_config)
    batches = synthetic_steps.synthetic_batches(
        strategy, FLAGS.batch_size, FLAGS.length, FLAGS.vocab, FLAGS.warmup + FLAGS.steps)
    steps_per_s = FLAGS.steps / synthetic_steps.time_steps(step, batches, FLAGS.warmup, FLAGS.steps)

    shapes = [v.shape for v in model.trainable_variables]

    @tf.function
    def all_reduce():
        def replica():
            grads = [tf.ones(s) for s in shapes]
            return tf.distribute.get_replica_context().all_reduce(distribute.SUM, grads)[0]
        return strategy.experimental_local_results(strategy.run(replica))[0]

    for _ in range(FLAGS.warmup):
        all_reduce().numpy()
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        all_reduce().numpy()
    all_reduce_ms = 1000 * (time.perf_counter() - start) / FLAGS.steps
    return {"steps_per_s": steps_per_s, "all_reduce_ms": all_reduce_ms,
            "parameters": sum(int(np.prod(s)) for s in shapes)}


def run_cluster(num_workers):
    """Runs a cluster of num_workers processes -> the chief's measurement."""
    passthrough = [a for a in sys.argv[1:] if not a.startswith("--rounds")]
    envs = local_cluster.worker_envs(
        num_workers, dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "bench.bench_workers", "--worker", *passthrough], cwd=REPO,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for env in envs]
    outputs = [proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode:
            sys.exit(f"bench_workers: a worker failed:\n{err[-2000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.worker:
        print(json.dumps(measure()))
        return
    rows = {1: [], 2: []}
    for round_index in range(FLAGS.rounds):
        for num_workers in (1, 2):
            rows[num_workers].append(run_cluster(num_workers))
            r = rows[num_workers][-1]
            print(f"round {round_index + 1}, {num_workers} worker(s): {r['steps_per_s']:.2f} "
                  f"steps/s, all-reduce {r['all_reduce_ms']:.1f} ms", flush=True)
    print(f"\n{rows[1][0]['parameters']} parameters, global batch {FLAGS.batch_size} x "
          f"{FLAGS.length} pieces\n\n| workers | steps/s (median) | all-reduce ms/step "
          f"(median) | per round |\n| --- | --- | --- | --- |")
    for num_workers, runs in rows.items():
        per_round = ", ".join(f"{r['steps_per_s']:.2f} / {r['all_reduce_ms']:.1f}" for r in runs)
        print(f"| {num_workers} | {statistics.median(r['steps_per_s'] for r in runs):.2f} | "
              f"{statistics.median(r['all_reduce_ms'] for r in runs):.1f} | {per_round} |")


if __name__ == "__main__":
    app.run(main)
