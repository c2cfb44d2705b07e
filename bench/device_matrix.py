"""Train, resume and translate through the CLI under every device setup.

    python -m bench.device_matrix                    # the full matrix (96 cells, 3-4 h here)
    python -m bench.device_matrix --cells=ci         # the covering subset CI runs
    python -m bench.device_matrix --strategies=place2,mirrored2 --precisions=fp16

A cell is a strategy, an optimizer, a precision and an architecture. For each, a tiny
model trains 2 steps with `python -m nmt.cli.train` on the first lines of the shipped
Multi30k, the same command resumes it to step 3, and `python -m nmt.cli.translate`
translates a few lines with the last checkpoint. A cell passes when every process exits
0, the resumed run says it resumed at step 2 and saved step 3, and the translation has
one line per input line. Processes, not threads: logical CPUs must be split before
TensorFlow starts. Strategies:

    place2, place3   --num_gpus=N layer placement over N logical CPUs (--num_cpu_devices=N)
    mirrored2        --strategy=mirrored over 2 logical CPUs
    multi_worker2    --strategy=multi_worker, 2 worker processes on 127.0.0.1 (TF_CONFIG)

Optimizers: adam (the fused kernel; under a strategy, Keras's Adam) and sgd. CI_CELLS
covers every value at least once (the first in CI, the rest with the slow tests);
tests/model/test_devices.py covers the optimizer x precision pairs of a placed step
in-process, and tests/training/test_distribute.py mirrored and multi-worker training.
"""
import collections
import gzip
import itertools
import os
import re
import sys
import tempfile
import time

from absl import app, flags

from bench import local_cluster

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TIMEOUT_S = 600  # per process (a cell takes 0.5-2 min on 2 loaded cores)

STRATEGIES = {
    "place2": ["--num_cpu_devices=2", "--num_gpus=2"],
    "place3": ["--num_cpu_devices=3", "--num_gpus=3"],
    "mirrored2": ["--num_cpu_devices=2", "--strategy=mirrored", "--num_gpus=2"],
    "multi_worker2": ["--strategy=multi_worker"],
}
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("fp32", "bf16", "fp16")
ARCHITECTURES = {
    "uni": ["--encoder_type=uni", "--num_layers=2"],
    "bi": ["--encoder_type=bi", "--num_layers=2"],
    "gnmt": ["--encoder_type=gnmt", "--attention_architecture=gnmt", "--num_layers=3"],
    "residual": ["--encoder_type=uni", "--residual", "--num_layers=3"],
}
TINY = ["--num_units=16", "--embedding_size=16", "--dropout=0.1", "--vocab_size=300",
        "--batch_size=16", "--steps_per_eval=0", "--steps_per_stats=1",
        "--steps_per_checkpoint=2", "--nojit_compile", "--beam_size=2", "--logtostderr"]
TRAIN_LINES, TRANSLATE_LINES = 200, 5

Cell = collections.namedtuple("Cell", ["strategy", "optimizer", "precision", "architecture"])
# Every value at least once, the fused Adam under placement and under both strategies (where
# it falls back to Keras's Adam), fp16's loss scale placed and mirrored.
CI_CELLS = [Cell("place2", "adam", "fp16", "residual"), Cell("place3", "sgd", "bf16", "gnmt"),
            Cell("mirrored2", "adam", "fp16", "bi"), Cell("multi_worker2", "adam", "fp32", "uni")]


def all_cells():
    return [Cell(*values) for values in itertools.product(
        STRATEGIES, OPTIMIZERS, PRECISIONS, ARCHITECTURES)]


def cell_name(cell):
    return "-".join(cell)


def write_corpus(directory):
    """The first TRAIN_LINES Multi30k en-de training pairs as DIR/train.{en,de}; -> prefix."""
    for lang in ("en", "de"):
        with gzip.open(os.path.join(REPO, "data", "multi30k", f"train.{lang}.gz"), "rt",
                       encoding="utf-8") as f:
            lines = [next(f) for _ in range(TRAIN_LINES)]
        with open(os.path.join(directory, f"train.{lang}"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    return os.path.join(directory, "train")


def train_commands(cell, prefix, out_dir, steps):
    """-> ([command], [env]): one process, or one per worker under multi_worker2."""
    command = [sys.executable, "-m", "nmt.cli.train", f"--train_prefix={prefix}",
               f"--model_dir={out_dir}", f"--num_train_steps={steps}",
               f"--optimizer={cell.optimizer}", f"--precision={cell.precision}",
               *TINY, *STRATEGIES[cell.strategy], *ARCHITECTURES[cell.architecture]]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    if cell.strategy != "multi_worker2":
        return [command], [env]
    return [command] * 2, local_cluster.worker_envs(2, env)


def run_processes(commands, envs):
    """Runs the commands at once from the checkout -> [(exit code, stderr)]."""
    return local_cluster.run_processes(commands, envs, REPO, TIMEOUT_S)


def check_runs(what, results):
    """Raises CellFailure with the first failing process's tail; -> their stderrs."""
    for index, (code, err) in enumerate(results):
        if code != 0:
            raise CellFailure(f"{what}, process {index}: exit {code}\n{err[-3000:]}")
    return [err for _, err in results]


class CellFailure(Exception):
    """A process of a cell failed, or its output is not what it should be."""


def run_cell(cell, prefix, work_dir):
    """Trains, resumes and translates one cell in work_dir; raises CellFailure."""
    os.makedirs(work_dir, exist_ok=True)
    out_dir = os.path.join(work_dir, "run")
    check_runs("train", run_processes(*train_commands(cell, prefix, out_dir, 2)))
    for err in check_runs("resume", run_processes(*train_commands(cell, prefix, out_dir, 3))):
        if not re.search(r"resuming from \S*ckpt-2 at step 2", err):
            raise CellFailure(f"resume: no 'resuming from ...ckpt-2 at step 2'\n{err[-3000:]}")
    saved = open(os.path.join(out_dir, "ckpt", "checkpoint")).read()
    if '"ckpt-3"' not in saved:
        raise CellFailure(f"resume: the latest checkpoint is not ckpt-3:\n{saved}")
    source, output = os.path.join(work_dir, "source.en"), os.path.join(work_dir, "hyps.de")
    with open(f"{prefix}.en", encoding="utf-8") as f:
        lines = [next(f) for _ in range(TRANSLATE_LINES)]
    with open(source, "w", encoding="utf-8") as f:
        f.writelines(lines)
    command = [sys.executable, "-m", "nmt.cli.translate", f"--model_dir={out_dir}",
               "--checkpoint=last", f"--input={source}", f"--output={output}"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=REPO)
    check_runs("translate", run_processes([command], [env]))
    with open(output, encoding="utf-8") as f:
        translated = f.read().splitlines()
    if len(translated) != TRANSLATE_LINES:
        raise CellFailure(f"translate: {len(translated)} lines for {TRANSLATE_LINES}")


FLAGS = flags.FLAGS
flags.DEFINE_enum("cells", "all", ["all", "ci"], "The full matrix or CI's covering subset.")
flags.DEFINE_list("strategies", list(STRATEGIES), "Only these strategies.")
flags.DEFINE_list("optimizers", list(OPTIMIZERS), "Only these optimizers.")
flags.DEFINE_list("precisions", list(PRECISIONS), "Only these precisions.")
flags.DEFINE_list("architectures", list(ARCHITECTURES), "Only these architectures.")
flags.DEFINE_string("work_dir", None, "Where cells write (default: a new temporary dir).")


def main(argv):
    del argv
    cells = [c for c in (CI_CELLS if FLAGS.cells == "ci" else all_cells())
             if c.strategy in FLAGS.strategies and c.optimizer in FLAGS.optimizers
             and c.precision in FLAGS.precisions and c.architecture in FLAGS.architectures]
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="device-matrix-")
    os.makedirs(work_dir, exist_ok=True)
    prefix = write_corpus(work_dir)
    failed = []
    for i, cell in enumerate(cells, start=1):
        start = time.time()
        cell_dir = os.path.join(work_dir, cell_name(cell))
        os.makedirs(cell_dir, exist_ok=True)
        try:
            run_cell(cell, prefix, cell_dir)
            status = "ok"
        except CellFailure as e:
            failed.append(cell)
            status = f"FAILED: {str(e).splitlines()[0]} (log: {cell_dir})"
            with open(os.path.join(cell_dir, "failure.txt"), "w", encoding="utf-8") as f:
                f.write(str(e))
        print(f"[{i}/{len(cells)}] {cell_name(cell)}: {status} ({time.time() - start:.0f} s)",
              flush=True)
    print(f"{len(cells) - len(failed)} of {len(cells)} cells passed; work dir {work_dir}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app.run(main)
