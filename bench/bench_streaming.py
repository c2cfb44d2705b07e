"""Memory of nmt-translate against the input size: peak RSS must not grow with the lines.

    python -m bench.bench_streaming                                  # 10k, 100k, 1M lines
    python -m bench.bench_streaming --lines=2000,20000 --json        # smoke run
    python -m bench.bench_streaming --model_dir=runs/en-de --beam_size=5

For each size it writes an input file of that many Multi30k training sentences
(data/multi30k/train.en, each pass over its 29,000 sentences in another shuffled
order), runs the real `nmt-translate --input=IN --output=OUT` from a fresh small
wrapper process that waits for it with os.wait4: ru_maxrss is the peak resident
memory of that one run (a child started by a big process would inherit that
process's high-water mark; see WRAPPER). It also records
the wall time, lines/s, and checks that OUT has exactly one line per input line
and that no OUT.partial is left. One Markdown table (or, with --json, one JSON
object) is printed.

Without --model_dir it first trains a small model with nmt-train in the work dir
(uni LSTM, 1 layer, 64 units, 2k joint unigram vocabulary, --train_steps steps
on Multi30k en-de), so it needs no prepared model; decoding is greedy
(--beam_size=1) unless told otherwise.
"""
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA_DIR = os.path.join(ROOT, "data", "multi30k")

FLAGS = flags.FLAGS


def define_flags():
    """This tool's flags; importing the module defines none (tests import it beside the CLIs)."""
    flags.DEFINE_list("lines", ["10000", "100000", "1000000"], "Input sizes, in lines.")
    flags.DEFINE_string("model_dir", None, "A model dir to translate with (default: train a small "
                        "one in the work dir first).")
    flags.DEFINE_integer("train_steps", 600,
                         "Steps of the small model trained without --model_dir.")
    flags.DEFINE_string("work_dir", None, "Scratch dir: inputs, outputs, logs (default: a new "
                        "temporary dir, removed at the end).")
    flags.DEFINE_integer("beam_size", 1, "nmt-translate --beam_size (1: greedy).")
    flags.DEFINE_integer("batch_size", 512, "nmt-translate --decode_batch_size.")
    flags.DEFINE_integer("chunk_lines", 10000, "nmt-translate --chunk_lines.")
    flags.DEFINE_float("poll_seconds", 0.5, "How often /proc/PID/status is read for the RSS "
                       "timeline (the peak comes from wait4, not from polling).")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of Markdown.")


SMALL_MODEL = ["--src=en", "--tgt=de", "--encoder_type=uni", "--num_layers=1",
               "--num_units=64", "--embedding_size=64", "--vocab_size=2000", "--batch_size=64",
               "--steps_per_eval=0", "--steps_per_stats=100", "--dropout=0.0",
               "--nojit_compile"]


def console_script(name, module):
    """The installed console script beside this Python, else `python -m module`."""
    script = os.path.join(os.path.dirname(sys.executable), name)
    return [script] if os.path.exists(script) else [sys.executable, "-m", module]


def train_small_model(model_dir, steps, log_path):
    """Trains SMALL_MODEL for `steps` steps with nmt-train; -> the command."""
    command = console_script("nmt-train", "nmt.cli.train") + [
        f"--train_prefix={os.path.join(DATA_DIR, 'train')}", f"--model_dir={model_dir}",
        f"--num_train_steps={steps}", f"--steps_per_checkpoint={steps}", *SMALL_MODEL]
    with open(log_path, "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return command


def read_sentences(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write_input(path, count, sentences, seed=0):
    """count lines: passes over `sentences`, each pass in another shuffled order."""
    rng = random.Random(seed)
    order = list(range(len(sentences)))
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < count:
            rng.shuffle(order)
            take = order[:count - written]
            f.writelines(sentences[i] + "\n" for i in take)
            written += len(take)
    return path


def count_lines(path):
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


def vm_rss_mb(pid):
    """Current resident memory of a process (MiB), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


# Runs argv[1:] and prints "PID" when started and "MAXRSS_KIB STATUS" when it ended.
# A child's ru_maxrss starts at its parent's peak RSS (Linux copies the parent's
# high-water mark into the child at fork/vfork + exec), so the measured command is
# started by this small fresh process, never by a caller that may hold far more.
WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
print(proc.pid, flush=True)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), flush=True)
"""


def run_measured(command, log_path, poll_seconds):
    """Runs command; -> (peak RSS MiB, wall seconds, [(seconds, RSS MiB)] polled).

    The peak is ru_maxrss from os.wait4 of that one run, started by a fresh small
    wrapper process (WRAPPER); the timeline reads /proc/PID/status meanwhile."""
    timeline, done = [], threading.Event()
    with open(log_path, "w") as log:
        start = time.time()
        wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, *command],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=log, text=True)
        pid = int(wrapper.stdout.readline())

        def poll():
            while not done.wait(poll_seconds):
                rss = vm_rss_mb(pid)
                if rss is not None:
                    timeline.append((round(time.time() - start, 1), round(rss, 1)))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        maxrss_kib, returncode = map(int, wrapper.stdout.readline().split())
        seconds = time.time() - start
        done.set()
        poller.join()
        wrapper.wait()
    if returncode != 0:
        with open(log_path) as f:
            raise RuntimeError(f"{' '.join(command)} exited with {returncode}:\n"
                               f"{f.read()[-3000:]}")
    return maxrss_kib / 1024, seconds, timeline  # ru_maxrss is in KiB on Linux


def measure(model_dir, sizes, work_dir):
    sentences = read_sentences(os.path.join(DATA_DIR, "train.en.gz"))
    rows = []
    for count in sizes:
        source = write_input(os.path.join(work_dir, f"in-{count}.en"), count, sentences)
        output = os.path.join(work_dir, f"out-{count}.de")
        command = console_script("nmt-translate", "nmt.cli.translate") + [
            f"--model_dir={model_dir}", f"--input={source}", f"--output={output}",
            f"--beam_size={FLAGS.beam_size}", f"--decode_batch_size={FLAGS.batch_size}",
            f"--chunk_lines={FLAGS.chunk_lines}"]
        peak, seconds, timeline = run_measured(command, os.path.join(work_dir, f"{count}.log"),
                                               FLAGS.poll_seconds)
        out_lines = count_lines(output)
        rss = [r for _, r in timeline]
        rows.append({
            "lines": count, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1),
            "lines_per_s": round(count / seconds, 1), "output_lines": out_lines,
            "one_line_per_input_line": out_lines == count,
            "partial_left": os.path.exists(output + ".partial"),
            # polled RSS in the second half of the run vs the first: growth shows here
            "rss_first_half_max_mb": max(rss[:len(rss) // 2], default=None),
            "rss_second_half_max_mb": max(rss[len(rss) // 2:], default=None),
            "rss_timeline": timeline[::max(len(timeline) // 40, 1)],  # (s, MiB), <= ~40 points
            "command": command})
        os.remove(source)
        os.remove(output)
    return rows


def markdown(result):
    lines = [f"Model: {result['model']}. Decoding: beam {result['beam_size']}, batch "
             f"{result['batch_size']} sentences, chunks of {result['chunk_lines']} lines. "
             f"Load average {result['load_average_at_start'][0]:.2f} at start, "
             f"{result['load_average_at_end'][0]:.2f} at end.", "",
             "| lines | peak RSS (MiB) | polled RSS max, 1st / 2nd half (MiB) | wall time (s) "
             "| lines/s | output lines |",
             "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["runs"]:
        ok = "= input" if r["one_line_per_input_line"] and not r["partial_left"] else "**WRONG**"
        lines.append(f"| {r['lines']:,} | {r['peak_rss_mb']:.0f} | {r['rss_first_half_max_mb']} "
                     f"/ {r['rss_second_half_max_mb']} | {r['seconds']:.1f} | "
                     f"{r['lines_per_s']:,.0f} | {r['output_lines']:,} {ok} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sizes = [int(n) for n in FLAGS.lines]
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="nmt-bench-streaming-")
    os.makedirs(work_dir, exist_ok=True)
    result = {"load_average_at_start": os.getloadavg(), "beam_size": FLAGS.beam_size,
              "batch_size": FLAGS.batch_size, "chunk_lines": FLAGS.chunk_lines}
    try:
        model_dir = FLAGS.model_dir
        if model_dir is None:
            model_dir = os.path.join(work_dir, "model")
            start = time.time()
            command = train_small_model(model_dir, FLAGS.train_steps,
                                        os.path.join(work_dir, "train.log"))
            result["model"] = (f"trained here for {FLAGS.train_steps} steps in "
                               f"{time.time() - start:.0f} s: {' '.join(command[1:])}")
        else:
            result["model"] = model_dir
        result["runs"] = measure(model_dir, sizes, work_dir)
    finally:
        if FLAGS.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=1) if FLAGS.json else markdown(result), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
