"""Training steps/s of the bench model in fp32 and bf16, side by side in one process.

    nice -n 5 python tools/bench_precision.py --windows=3 --window_seconds=20

Both trainers are built and warmed up first, then timed in alternating windows
(fp32, bf16, fp32, ...) so that load from other processes hits both alike; every
window is printed, and the medians. Uses tools/benchmark.py's helpers, so the
model and data are those of `recipes/multi30k.py --preset=bench` (and its flags).
"""
import os
import statistics
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/ is not a package
import benchmark  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    del argv
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench-precision-")
    config = benchmark.bench_config()
    trainers, rates = {}, {}
    for name in FLAGS.precisions:
        trainers[name] = benchmark.make_trainer(
            config.replace(train={"precision": name}), work_dir, f"train-{name}")
        _, mean_tgt = benchmark.mean_lengths(trainers[name])
        benchmark.measure_training(trainers[name], 1, FLAGS.untimed_steps, mean_tgt)  # warm up
        rates[name] = []
    for window in range(FLAGS.windows):
        for name, trainer in trainers.items():
            speed = benchmark.measure_training(trainer, FLAGS.window_seconds, 0, mean_tgt)
            rates[name].append(speed.steps_per_s)
            print(f"window {window + 1} {name}: {speed.steps_per_s:.3f} steps/s "
                  f"({speed.steps} steps, {speed.sentences_per_s:.0f} sentences/s)", flush=True)
    base = statistics.median(rates[FLAGS.precisions[0]])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name}: median {median:.3f} steps/s (min {min(values):.3f}, max {max(values):.3f})"
              f", x{median / base:.2f} vs {FLAGS.precisions[0]}")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_list("precisions", ["fp32", "bf16"], "Compared precisions, the first is the base.")
    flags.DEFINE_integer("windows", 3, "Timed windows per precision, alternating.")
    flags.DEFINE_integer("window_seconds", 20, "Length of one timed window, s.")
    app.run(main)
