"""bench/under_load.py: runs counted by outcome, crashes kept with their stacks."""
import os
import subprocess
import sys
import time

from bench import under_load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def children_of(pid):
    """Pids whose parent is pid, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_burners_stop_when_the_tool_is_killed(tmp_path):
    code = ("import sys; from bench import under_load\n"
            "under_load.run_all([sys.executable, '-c', 'import time; time.sleep(30)'], 1, 1, "
            "sys.argv[1])\n")
    tool = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                            env={**os.environ, "PYTHONPATH": ROOT})
    deadline = time.time() + 30
    while len(children_of(tool.pid)) < 2 and time.time() < deadline:  # burner + command
        time.sleep(0.1)
    children = children_of(tool.pid)
    assert len(children) == 2, children
    tool.kill()
    tool.wait()
    deadline = time.time() + 10
    while burners_alive(children) and time.time() < deadline:
        time.sleep(0.1)
    alive = burners_alive(children)
    for pid in children:  # the command (a sleep) may linger: it is not a burner
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    assert alive == []


def burners_alive(pids):
    """Those of pids still running the tool's code (a burner is a fork of the tool)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"under_load" in f.read():
                    alive.append(pid)
        except OSError:
            pass
    return alive
