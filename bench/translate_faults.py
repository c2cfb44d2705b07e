"""Fault injection for nmt-translate: kills at random moments, and a full disk.

    python -m bench.translate_faults --model_dir=runs/en-de --input=test.en --kills=50
    python -m bench.translate_faults --model_dir=runs/en-de --input=test.en \
        --kills=0 --disk_kib=8,16,32,64          # as root: mounts tmpfs file systems

An uninterrupted run gives the reference output first. Then:
  * kills: nmt-translate --resume is started again and again and killed with
    SIGKILL at a random moment while it writes (a delay up to the reference run's
    writing time after OUTPUT.partial appears; the start-up holds nothing to lose).
    After each kill the complete lines of OUTPUT.partial must be a prefix of the
    reference; the next start resumes from them. A kill survived: its partial
    output was such a prefix and the start that found it accepted it. At the end one
    run finishes, and its output must equal the reference byte for byte.
  * disk (root only): for each size, OUTPUT lies on a fresh tmpfs of that many
    KiB. nmt-translate must fail with one line naming ENOSPC (or finish, if the
    output fits); then the file system gets room and --resume must end with the
    reference bytes.
Bytes lost are the reference bytes missing from a final output (0 when equal).
Prints one JSON object.
"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A model dir written by nmt-train.")
flags.DEFINE_string("input", None, "Source text to translate.")
flags.DEFINE_integer("kills", 50, "SIGKILLs at random moments.")
flags.DEFINE_list("disk_kib", [], "tmpfs sizes (KiB) to fill; needs root to mount.")
flags.DEFINE_integer("chunk_lines", 100, "--chunk_lines of the runs.")
flags.DEFINE_integer("seed", 0, "Seed of the kill delays.")
flags.DEFINE_list("translate_flags", ["--beam_size=1"], "More nmt-translate flags.")
flags.mark_flags_as_required(["model_dir", "input"])


def translate(output, *extra):
    """-> the completed subprocess.run of nmt-translate into output."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "nmt.cli.translate", f"--model_dir={FLAGS.model_dir}",
               f"--input={FLAGS.input}", f"--output={output}",
               f"--chunk_lines={FLAGS.chunk_lines}", *FLAGS.translate_flags, *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)


def bytes_lost(path, reference):
    """Reference bytes missing from the file at path (0 if it equals the reference)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return len(reference)
    if data == reference:
        return 0
    same = next((i for i, (a, b) in enumerate(zip(data, reference)) if a != b),
                min(len(data), len(reference)))
    return len(reference) - same


def complete_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def complete_prefix(path, reference):
    """Whether the complete lines of the file at path are a prefix of the reference."""
    with open(path, "rb") as f:
        data = f.read()
    return reference.startswith(data[:data.rfind(b"\n") + 1])


def wait_for_output(proc, output):
    """Waits until proc has opened OUTPUT.partial, or ended."""
    while not os.path.exists(output + ".partial") and proc.poll() is None:
        time.sleep(0.01)


def kill_trials(work, reference, seconds):
    """-> {"kills", "kills_survived", "kills_mid_output", "bytes_lost"}; a kill mid
    output left complete lines in OUTPUT.partial (others hit the start-up)."""
    output = os.path.join(work, "killed.out")
    rng = random.Random(FLAGS.seed)
    survived = mid_output = 0
    for _ in range(FLAGS.kills):
        proc = translate(output, "--resume")
        wait_for_output(proc, output)
        time.sleep(rng.uniform(0, seconds))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        refused = any(line.startswith("nmt-translate: error: ") for line in err.splitlines())
        if refused or "Traceback" in err:
            print(err, file=sys.stderr)
            continue
        partial = output + ".partial"
        if not os.path.exists(partial) or complete_prefix(partial, reference):
            survived += 1
        if os.path.exists(partial) and complete_lines(partial):
            mid_output += 1
    final = translate(output, "--resume")
    _, err = final.communicate()
    if final.returncode != 0:
        print(err, file=sys.stderr)
    return {"kills": FLAGS.kills, "kills_survived": survived, "kills_mid_output": mid_output,
            "bytes_lost": bytes_lost(output, reference)}


def disk_trials(work, reference):
    """-> {"disk_full_runs", "one_line_errors", "finished", "bytes_lost"}."""
    results = {"disk_full_runs": 0, "one_line_errors": 0, "finished": 0, "bytes_lost": 0}
    for size in FLAGS.disk_kib:
        mount = tempfile.mkdtemp(dir=work)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", mount],
                       check=True)
        try:
            output = os.path.join(mount, "out")
            proc = translate(output, "--resume")
            _, err = proc.communicate()
            results["disk_full_runs"] += 1
            errors = [line for line in err.splitlines()
                      if line.startswith("nmt-translate: error: ")]
            if proc.returncode == 1 and len(errors) == 1 and "No space left" in errors[0] \
                    and "Traceback" not in err:
                results["one_line_errors"] += 1
            elif proc.returncode == 0:
                results["finished"] += 1
            subprocess.run(["mount", "-o", "remount,size=" + str(4 * len(reference) + 65536),
                            mount], check=True)
            translate(output, "--resume").communicate()
            results["bytes_lost"] += bytes_lost(output, reference)
        finally:
            subprocess.run(["umount", mount], check=True)
    return results


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as work:
        straight = os.path.join(work, "straight.out")
        proc = translate(straight)
        wait_for_output(proc, straight)
        start = time.time()
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise app.UsageError(f"the uninterrupted run failed: {err.strip()[-500:]}")
        seconds = time.time() - start  # writing only, without the start-up
        with open(straight, "rb") as f:
            reference = f.read()
        report = {"reference_write_seconds": round(seconds, 1),
                  "reference_bytes": len(reference)}
        if FLAGS.kills:
            report.update(kill_trials(work, reference, seconds))
        if FLAGS.disk_kib:
            report["disk"] = disk_trials(work, reference)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
