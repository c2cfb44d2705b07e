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
