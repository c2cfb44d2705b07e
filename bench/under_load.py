"""Run a command again and again while other processes keep every core busy.

    python -m bench.under_load --runs=30 --burners=2 --keep=/tmp/failures -- \
        python -m pytest -q -x -p no:randomly tests/test_robustness.py -k resume

A failure that shows once in fifty runs needs many runs, and load to show at all:
each burner spins on arithmetic for the whole time. Every run gets
PYTHONFAULTHANDLER=1, so a crash by signal (SIGABRT, SIGSEGV) prints the Python stacks
of every thread. Prints one line per run and a summary; the output of each failed run
is kept under --keep.
"""
import multiprocessing
import os
import signal
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    """The script's flags; defined when it runs, so that tests can import it."""
    flags.DEFINE_integer("runs", 20, "How many times to run the command.")
    flags.DEFINE_integer("burners", 2, "Busy processes beside it (0: no load).")
    flags.DEFINE_string("keep", "/tmp/under_load", "Where the output of failed runs goes.")


def burn(parent):
    """Spins on float arithmetic until killed, or until `parent` is gone (a burner
    must not outlive a tool that was itself killed)."""
    x = 1.0
    while os.getppid() == parent:
        for _ in range(100_000):
            x = x * 1.0000001 % 7.0


def describe(returncode):
    """'exit 1', or 'SIGABRT' for a run a signal ended."""
    if returncode < 0:
        return signal.Signals(-returncode).name
    return f"exit {returncode}"


def run_all(command, runs, burners, keep):
    """Runs command `runs` times beside `burners` busy processes -> {outcome: count}."""
    os.makedirs(keep, exist_ok=True)
    spinning = [multiprocessing.Process(target=burn, args=(os.getpid(),), daemon=True)
                for _ in range(burners)]
    for process in spinning:
        process.start()
    outcomes = {}
    try:
        for run in range(1, runs + 1):
            start = time.time()
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONFAULTHANDLER": "1"})
            outcome = "pass" if done.returncode == 0 else describe(done.returncode)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            line = f"run {run}/{runs}: {outcome} in {time.time() - start:.0f} s"
            if done.returncode:
                path = os.path.join(keep, f"run-{run}.log")
                with open(path, "w") as f:
                    f.write(done.stdout + "\n--- stderr ---\n" + done.stderr)
                line += f" (output: {path})"
            print(line, flush=True)
    finally:
        for process in spinning:
            process.kill()
    return outcomes


def main(argv):
    command = argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise app.UsageError("give the command to run after --")
    outcomes = run_all(command, FLAGS.runs, FLAGS.burners, FLAGS.keep)
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return 0 if set(outcomes) == {"pass"} else 1


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
