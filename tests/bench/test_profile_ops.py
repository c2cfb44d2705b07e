"""bench/profile_ops.py: self times from a profiler trace, and a profiled run."""
import os
import subprocess
import sys

import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from bench import profile_ops

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _space(events_by_line):
    """A host XSpace; events_by_line: [[(name, start_ps, duration_ps), ...], ...]."""
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    ids = {}
    for events in events_by_line:
        line = plane.lines.add()
        for name, start, duration in events:
            if name not in ids:
                ids[name] = len(ids) + 1
                plane.event_metadata[ids[name]].name = name
            line.events.add(metadata_id=ids[name], offset_ps=start, duration_ps=duration)
    space.planes.add(name="Task Environment").lines.add().events.add(metadata_id=1,
                                                                     duration_ps=10 ** 9)
    return space


def test_self_time_subtracts_nested_events_on_the_same_thread_only():
    space = _space([
        [("ExecutorState::Process", 0, 100), ("loop/MatMul:_MklMatMul", 10, 30),
         ("loop/Add:AddV2", 50, 20), ("loop/Add_1:AddV2", 60, 5),  # nested in Add
         ("ExecutorState::Process", 200, 10)],
        [("loop/MatMul:_MklMatMul", 20, 40)],  # another thread: overlaps, not nested
    ])
    times = profile_ops.op_self_times(space)
    assert times["ExecutorState::Process"] == [100 - 30 - 20 + 10, 2]
    assert times["loop/MatMul:_MklMatMul"] == [70, 2]
    assert times["loop/Add:AddV2"] == [15, 1]
    assert times["loop/Add_1:AddV2"] == [5, 1]
    rows = profile_ops.summarise(times, 2, profile_ops.op_type)
    assert [(r["name"], r["calls"]) for r in rows] == [("_MklMatMul", 2), ("AddV2", 2)]
    assert rows[0]["ms_per_unit"] == 70 / 1e9 / 2
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    assert abs(rows[0]["share"] - 70 / 90) < 1e-9


def test_only_op_events_have_a_type():
    assert profile_ops.op_type("while/body/MatMul:_MklMatMul") == "_MklMatMul"
    assert profile_ops.op_type("ExecutorState::Process") is None
    assert profile_ops.op_type("EagerLocalExecute: __inference_train_step_7") is None
    assert profile_ops.op_type("MemoryAllocation") is None


@pytest.mark.slow
def test_profiles_training_steps_of_a_tiny_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.profile_ops", "--mode=train", "--preset=tiny",
         "--steps=2", "--untimed_steps=1", "--top_names=5", f"--trace_dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    table = result.stdout.split("### By op name")[0]
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")][2:]
    assert any("MatMul" in row[0] for row in rows), table
    shares = [float(row[2].rstrip(" %")) for row in rows]
    assert 0 < sum(shares) <= 100.5, table
