"""Training's data path against the corpus size: time to the first step, memory, speed.

    python -m bench.make_big_corpus --pairs=1000000 --out_prefix=/tmp/big1m
    python -m bench.bench_training_data --corpora=29k=data/multi30k/train,1M=/tmp/big1m
    python -m bench.bench_training_data --corpora=1M=/tmp/big1m --steps=300 --json

For each corpus (NAME=PREFIX, files PREFIX.en[.gz] and PREFIX.de[.gz]) it runs the
real `nmt-train` on the benchmark model (the bench preset's fields: bi-LSTM 256
units, one layer each side, Luong attention, 64 sentences per batch) in a new run
dir, three times, each from a small wrapper that reads its log as it comes and
waits for it with os.wait4 (ru_maxrss is then that run's own peak: a child's starts
at its parent's high-water mark, and this tool imports no TensorFlow):
  first     a new run for --steps steps: the time from the start of the command to
            its first training step (everything included: the corpus check, the
            vocabulary, the corpus cache), its peak RSS, and the median target
            tokens/s (EOS counted) of the steps after the first --warmup_steps;
  again     the same command for --steps more steps: it resumes; the time to its
            first step (nothing passes over the corpus again);
and for both, "data ready": the time to the trainer's "training pairs:" line, when
the vocabulary and the encoded corpus are ready (the rest until the first step is
TensorFlow's start, the model and the step's tracing);
  validate  `nmt-train --validate_only`: wall time, pairs/s and peak RSS.
The trainer logs every step (--steps_per_stats=1) so that the first one is seen.
With --speed_rounds=N, every corpus's run then resumes for --steps more steps, the
corpora in turn, N times: the median tokens/s of each round, side by side in time,
compares the speeds better than the single runs before (the machine's load drifts).
One Markdown table (or, with --json, one JSON object) is printed.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FLAGS = flags.FLAGS
BENCH_MODEL = ["--num_units=256", "--embedding_size=256", "--num_encoder_layers=1",
               "--num_decoder_layers=1", "--encoder_type=bi", "--attention=luong",
               "--bridge=dense", "--dropout=0.3", "--label_smoothing=0.0", "--batch_size=64",
               "--steps_per_eval=0"]
_STEP = re.compile(r"step (\d+) epoch \d+: .*?([\d.]+) tgt tokens/s")


def define_flags():
    """This tool's flags; importing the module defines none."""
    flags.DEFINE_list("corpora", ["29k=data/multi30k/train"], "NAME=PREFIX of each corpus.")
    flags.DEFINE_integer("steps", 200, "Training steps of each training command.")
    flags.DEFINE_integer("warmup_steps", 50, "Steps left out of the tokens/s median.")
    flags.DEFINE_string("work_dir", None, "Run dirs go here (default: a new temporary dir).")
    flags.DEFINE_list("extra", [], "More nmt-train flags, e.g. spm_sample_size=200000.")
    flags.DEFINE_integer("speed_rounds", 0, "Then resume every corpus's run for --steps more "
                         "steps, the corpora in turn, this many times (see above).")
    flags.DEFINE_bool("only_speed_rounds", False, "Only the speed rounds, on the runs that "
                      "an earlier call left in --work_dir.")
    flags.DEFINE_bool("json", False, "Print one JSON object instead of a Markdown table.")


def memory_kib(pid):
    """{"RssAnon": KiB, "RssFile": KiB} of a live process, from /proc (empty if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f)
                    if k in ("RssAnon", "RssFile")}
    except (OSError, ValueError):
        return {}


def run_timed(args):
    """Runs `args`, reading its stderr as it comes -> (wall seconds, peak RSS MiB,
    seconds to the first step line or None, [tokens/s per step], exit status, seconds
    to the "training pairs:" line, when the data is ready, or None, peak anonymous
    RSS MiB). The anonymous part leaves out the pages of mapped files (the corpus
    cache), which the kernel can drop and read again."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    seen = {"first": None, "speeds": [], "tail": [], "data": None, "anon": 0}

    def sample():
        while child.poll() is None:
            seen["anon"] = max(seen["anon"], memory_kib(child.pid).get("RssAnon", 0))
            time.sleep(0.2)

    def read():
        for line in child.stderr:
            if seen["data"] is None and "training pairs:" in line:
                seen["data"] = time.perf_counter() - start
            match = _STEP.search(line)
            if match:
                if seen["first"] is None:
                    seen["first"] = time.perf_counter() - start
                seen["speeds"].append(float(match.group(2)))
            seen["tail"] = (seen["tail"] + [line])[-5:]

    reader, sampler = threading.Thread(target=read), threading.Thread(target=sample)
    reader.start()
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    sampler.join()
    if child.returncode:
        sys.stderr.write("".join(seen["tail"]))
    return (wall, usage.ru_maxrss / 1024, seen["first"], seen["speeds"], child.returncode,
            seen["data"], seen["anon"] / 1024)


def count_lines(prefix):
    """Pairs in PREFIX.en[.gz] (a plain line count of the source side)."""
    from nmt.data import corpus
    return sum(1 for _ in corpus.iter_raw_lines(corpus.find_corpus_file(prefix, "en")))


def train_command(name, prefix, work_dir, extra=()):
    """nmt-train on the bench model in WORK_DIR/NAME, without its step count; extra:
    more flags as NAME=VALUE."""
    return [sys.executable, "-m", "nmt.cli.train", f"--train_prefix={prefix}", "--src=en",
            "--tgt=de", f"--out_dir={os.path.join(work_dir, name)}", "--steps_per_stats=1",
            "--steps_per_checkpoint=100000"] + BENCH_MODEL + [f"--{e}" for e in extra]


def bench_corpus(name, prefix, work_dir):
    """The figures of one corpus (see the module docstring) as a dict."""
    train = train_command(name, prefix, work_dir, FLAGS.extra)
    row = {"corpus": name, "pairs": count_lines(prefix)}
    wall, rss, first, speeds, status, data, anon = run_timed(
        train + [f"--num_train_steps={FLAGS.steps}"])
    steady = speeds[FLAGS.warmup_steps:] or speeds
    row.update(first_step_s=first, data_ready_s=data, train_wall_s=wall, peak_rss_mib=rss,
               peak_anon_mib=anon, status=status,
               tokens_per_s=statistics.median(steady) if steady else None)
    wall, rss, first, _, status, data, anon = run_timed(
        train + [f"--num_train_steps={2 * FLAGS.steps}"])
    row.update(again_first_step_s=first, again_data_ready_s=data, again_peak_rss_mib=rss,
               again_peak_anon_mib=anon, again_status=status)
    validate = [sys.executable, "-m", "nmt.cli.train", f"--train_prefix={prefix}", "--src=en",
                "--tgt=de", "--validate_only"]
    wall, rss, _, _, status, _, _ = run_timed(validate)
    row.update(validate_s=wall, validate_pairs_per_s=row["pairs"] / wall,
               validate_peak_rss_mib=rss, validate_status=status)
    return row


def last_step(run_dir):
    """The step of run_dir's newest checkpoint (0 if none)."""
    ckpt = os.path.join(run_dir, "ckpt")
    names = os.listdir(ckpt) if os.path.isdir(ckpt) else []
    return max([int(n[5:-6]) for n in names if re.fullmatch(r"ckpt-\d+\.index", n)], default=0)


def speed_rounds(specs, work_dir, rounds, steps, warmup_steps, extra=(), run=run_timed):
    """{name: [median tokens/s of each round]}: each run resumed for `steps` more
    steps per round, corpora in turn."""
    medians = {name: [] for name, _ in specs}
    for _ in range(rounds):
        for name, prefix in specs:
            done = last_step(os.path.join(work_dir, name))
            speeds = run(train_command(name, prefix, work_dir, extra)
                         + [f"--num_train_steps={done + steps}"])[3]
            steady = speeds[warmup_steps:] or speeds
            medians[name].append(statistics.median(steady) if steady else float("nan"))
    return medians


def speed_table(medians):
    """Markdown: each corpus's round medians, their median and its ratio to the first's."""
    first = statistics.median(next(iter(medians.values())))
    out = ["| corpus | tgt tokens/s, each round | median | against the first |",
           "| --- | --- | ---: | ---: |"]
    for name, values in medians.items():
        mid = statistics.median(values)
        out.append(f"| {name} | {', '.join(f'{v:,.0f}' for v in values)} | {mid:,.0f} | "
                   f"{mid / first:.3f} |")
    return "\n".join(out)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(rows):
    out = ["| corpus | pairs | data ready, new run (s) | first step, new run (s) "
           "| data ready, again (s) | first step, again (s) | peak RSS (MiB) "
           "| peak RSS again (MiB) | of it anonymous | "
           "tgt tokens/s | validate_only (s) | validate pairs/s | validate RSS (MiB) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "| ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['corpus']} | {r['pairs']:,} | {_fmt(r['data_ready_s'], '.1f')} | "
                   f"{_fmt(r['first_step_s'], '.1f')} | {_fmt(r['again_data_ready_s'], '.1f')} | "
                   f"{_fmt(r['again_first_step_s'], '.1f')} | {r['peak_rss_mib']:.0f} | "
                   f"{r['again_peak_rss_mib']:.0f} | {r['again_peak_anon_mib']:.0f} | "
                   f"{_fmt(r['tokens_per_s'], ',.0f')} | {r['validate_s']:.1f} | "
                   f"{r['validate_pairs_per_s']:,.0f} | {r['validate_peak_rss_mib']:.0f} |")
    return "\n".join(out)


def main(argv):
    del argv
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_training_data.")
    rows = []
    for spec in [] if FLAGS.only_speed_rounds else FLAGS.corpora:
        name, _, prefix = spec.partition("=")
        rows.append(bench_corpus(name, prefix, work_dir))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    medians = {}
    if FLAGS.speed_rounds:
        specs = [spec.partition("=")[::2] for spec in FLAGS.corpora]
        medians = speed_rounds(specs, work_dir, FLAGS.speed_rounds, FLAGS.steps,
                               FLAGS.warmup_steps, FLAGS.extra)
    if FLAGS.json:
        print(json.dumps({"rows": rows, "speed_rounds": medians}, indent=1))
    else:
        print("\n\n".join(([table(rows)] if rows else [])
                            + ([speed_table(medians)] if medians else [])))


if __name__ == "__main__":
    define_flags()
    app.run(main)
