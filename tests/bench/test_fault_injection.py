"""bench/fault_injection.py at a small size: kills inside checkpoint saves and a full
disk lose nothing, and the resumed run ends with the unbroken run's weights."""
import os
import shutil

from bench import fault_injection
from bench.fault_injection import Fault


def test_kills_in_a_save_and_a_full_disk_lose_nothing(tmp_path):
    faults = [Fault("kill", "ckpt.state#2", "kill@ckpt.state#2", None),
              Fault("ENOSPC", "ckpt.data#1", "ENOSPC@ckpt.data#1", None)]
    result = fault_injection.campaign(str(tmp_path), 0, two_trainers=False, faults=faults)
    assert result["failures"] == []
    assert (result["kills_survived"], result["kills"]) == (1, 1)
    assert (result["faults_handled"], result["faults"]) == (2, 2)
    assert result["finished_runs_equal_to_unbroken"] == result["finished_runs"] == 1
    assert result["bytes_lost"] == 0


def test_the_harness_counts_damaged_files_as_lost(tiny_model_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(tiny_model_dir[0], run_dir)
    before = fault_injection.snapshot(run_dir)
    assert fault_injection.bytes_lost(before, run_dir) == 0
    config = os.path.join(run_dir, "config.json")
    size = os.path.getsize(config)
    with open(config, "w") as f:
        f.write("{}")
    index = before.newest + ".index"
    index_size = os.path.getsize(index)
    os.remove(index)
    assert fault_injection.bytes_lost(before, run_dir) == size + index_size


def test_a_kill_after_the_end_is_tried_again_and_the_rest_of_its_chain_still_runs():
    Outcome, Fault = fault_injection.Outcome, fault_injection.Fault
    faults = [Fault("kill", f"random {i}", None, float(i)) for i in range(6)]
    chains, seen = [], set()

    def run_one(index, batch):  # "random 1" lands only from step 0 (first in a chain)
        chains.append([f.where for f in batch])
        outcomes = []
        for position, fault in enumerate(batch):
            if fault.where == "random 1" and position > 0:
                outcomes += [Outcome("kill", fault.where, None, "finished first", 0),
                             Outcome("finish", "", True, None, 0)]
                return outcomes, batch[position + 1:]
            outcomes.append(Outcome("kill", fault.where, True, None, 0))
            seen.add(fault.where)
        return outcomes + [Outcome("finish", "", True, None, 0)], []

    outcomes = fault_injection.run_all(faults, 3, run_one)
    assert chains == [["random 0", "random 1", "random 2"], ["random 1", "random 2", "random 3"],
                      ["random 4", "random 5"]]
    assert seen == {f.where for f in faults}  # every kill landed once
    report = fault_injection.report(outcomes, 1.0)
    assert report["kills"] == report["kills_survived"] == 6
    assert report["kills_after_the_end"] == 1


def test_two_trainers_scenario_reports_the_refusal_then_the_finished_run(tmp_path, monkeypatch):
    class FirstTrainer:  # holds the lock until killed
        pid = 4242

        def __init__(self, *args, **kwargs):
            (tmp_path / "train.lock").write_text("4242 host\n")

        def send_signal(self, signum):
            self.signal = signum

        def wait(self):
            return -9

    finished = fault_injection.Outcome("finish", "", True, None, 0)
    monkeypatch.setattr(fault_injection.subprocess, "Popen", FirstTrainer)
    monkeypatch.setattr(fault_injection, "run", lambda command: (
        1, f"nmt-train: error: {tmp_path} is in use by process 4242 on host (since now)"))
    monkeypatch.setattr(fault_injection, "run_chain", lambda *args: ([finished], []))
    outcomes = fault_injection.two_trainers_scenario(["nmt-train"], str(tmp_path), None)
    assert [(o.kind, o.ok) for o in outcomes] == [("two trainers", True), ("finish", True)]
