"""bench/under_load.py: runs counted by outcome, crashes kept with their stacks."""
import os
import sys

from bench import under_load


def test_a_crash_by_signal_is_counted_by_name_and_its_stacks_kept(tmp_path):
    abort = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGABRT)"]
    outcomes = under_load.run_all(abort, runs=2, burners=1, keep=str(tmp_path))
    assert outcomes == {"SIGABRT": 2}
    assert sorted(os.listdir(tmp_path)) == ["run-1.log", "run-2.log"]
    # PYTHONFAULTHANDLER is on in every run: the crash printed the Python stack
    assert "Fatal Python error: Aborted" in (tmp_path / "run-1.log").read_text()


def test_passes_and_exit_codes_are_told_apart(tmp_path):
    flaky = [sys.executable, "-c",
             "import os, sys; p = sys.argv[1]; n = len(os.listdir(p)) if os.path.isdir(p) else 0;"
             "sys.exit(3 if n == 0 else 0)", str(tmp_path)]
    outcomes = under_load.run_all(flaky, runs=3, burners=0, keep=str(tmp_path))
    # the first run fails (nothing kept yet), which keeps a file, so the next ones pass
    assert outcomes == {"exit 3": 1, "pass": 2}
