"""bench/op_overlap.py and bench/timeline_devices.py: the interval arithmetic behind the
overlap figures, on hand-built intervals with known answers, and how op runs become
per-layer steps."""

import pytest

from bench import op_overlap
from bench import timeline_devices as timeline
from bench.op_overlap import Interval
from bench.timeline_devices import OpRun


def test_merge_joins_overlapping_and_touching_spans():
    assert op_overlap.merge([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 6)]
    assert op_overlap.merge([]) == []


def test_overlap_time_is_the_length_of_the_intersection_of_the_unions():
    a = [(0, 4), (6, 10)]
    b = [(3, 7), (9, 12), (2, 3.5)]  # union (2, 7), (9, 12)
    assert op_overlap.overlap_time(a, b) == pytest.approx(2 + 1 + 1)  # (2,4) (6,7) (9,10)
    assert op_overlap.overlap_time(b, a) == pytest.approx(4)
    assert op_overlap.overlap_time([(0, 1)], [(1, 2)]) == 0  # touching is not overlapping


def test_concurrency_counts_time_with_ops_of_two_devices_running():
    intervals = [
        Interval("CPU:0", 0, 4), Interval("CPU:0", 1, 3),  # one device, two ops: not multi
        Interval("CPU:1", 2, 6),  # with CPU:0 over (2, 4)
        Interval("CPU:2", 5, 7),  # with CPU:1 over (5, 6)
        Interval("CPU:1", 9, 10),  # alone, after a gap (7, 9) where nothing runs
    ]
    result = op_overlap.concurrency(intervals)
    assert result.wall == pytest.approx(10)
    assert result.busy == pytest.approx(8)
    assert result.multi_device == pytest.approx(2 + 1)
    assert op_overlap.concurrency([]) == (0, 0, 0)
    # back to back on two devices: no instant with both running
    back_to_back = [Interval("CPU:0", 0, 1), Interval("CPU:1", 1, 2)]
    assert op_overlap.concurrency(back_to_back).multi_device == 0


def test_busy_by_device_counts_overlapping_ops_of_a_device_once():
    busy = op_overlap.busy_by_device([Interval("CPU:0", 0, 2), Interval("CPU:0", 1, 3),
                                    Interval("CPU:1", 0, 1)])
    assert busy == {"CPU:0": pytest.approx(3), "CPU:1": pytest.approx(1)}
    shares = timeline.device_shares([busy, {"CPU:1": 4}])
    assert list(shares) == ["CPU:0", "CPU:1"] and shares["CPU:1"] == pytest.approx(5 / 8)


def chain(num_layers, num_steps, lead):
    """Layer k's op at step t runs over [t + k * lead, t + k * lead + 1)."""
    return [[[(t + k * lead, t + k * lead + 1.0)] for t in range(num_steps)]
            for k in range(num_layers)]


def test_wavefront_of_a_serial_chain_is_empty():
    # Each step runs layer 0, 1, 2 one after another and the next step starts after
    # the top layer: layer k never runs while layer k + 1 is still at an earlier step.
    layers = [[[(3 * t + k, 3 * t + k + 1.0)] for t in range(4)] for k in range(3)]
    assert op_overlap.wavefront(layers) == (2 * 4, 0, 0.0, 0)


def test_wavefront_of_a_pipeline_measures_lead_and_overlap():
    # Layer k + 1 runs step t over [t + 0.5 (k + 1), ...): each lower layer is half a step
    # ahead, so layer k at step t + 1 overlaps layer k + 1 at step t for half a unit.
    result = op_overlap.wavefront(chain(num_layers=3, num_steps=4, lead=0.5))
    assert result.pairs == 2 * 4
    assert result.overlapping == 2 * 3  # the upper layer's last step has no later one below
    assert result.overlap_time == pytest.approx(2 * 3 * 0.5)
    assert result.max_lead == 1
    # Two steps ahead: layer k is at step t + 2 while layer k + 1 is at step t.
    deep = op_overlap.wavefront(chain(num_layers=2, num_steps=6, lead=2.5))
    assert deep.max_lead == 3 and deep.overlapping == 4  # steps 0 to 3 have a later one
    # Layer k + 1 running the same step at the same time as layer k is not a lead.
    assert op_overlap.wavefront(chain(num_layers=2, num_steps=3, lead=0.0)).overlapping == 0


def test_call_timeline_finds_the_decoder_loop_and_numbers_layer_matmuls_per_node():
    devices = {
        "while/body/_1/while/MatMul": "/job:localhost/replica:0/task:0/device:CPU:0",  # encoder
        "while_1/body/_9/while_1/MatMul": "/job:localhost/replica:0/task:0/device:CPU:0",
        "while_1/body/_9/while_1/MatMul_4": "/job:localhost/replica:0/task:0/device:CPU:1",
        "while_1/body/_9/while_1/add": "/job:localhost/replica:0/task:0/device:CPU:0",
        "while_1/body/_9/while_1/x/_5": "/job:localhost/replica:0/task:0/device:CPU:1",
        "loss": "/job:localhost/replica:0/task:0/device:CPU:1",
        "gradient_tape/while_1/while_1_grad/body/_20/gradient_tape/while_1/MatMul_4/MatMul":
            "/job:localhost/replica:0/task:0/device:CPU:1",  # the decoder loop's gradient
        "gradient_tape/while/while_grad/body/_30/gradient_tape/while/MatMul/MatMul":
            "/job:localhost/replica:0/task:0/device:CPU:0",  # the encoder loop's
    }
    runs = [OpRun("while/body/_1/while/MatMul", "MatMul", 0, 1),
            OpRun("while_1/body/_9/while_1/MatMul", "MatMul", 2, 3),
            OpRun("while_1/body/_9/while_1/MatMul", "MatMul", 4, 5),
            OpRun("while_1/body/_9/while_1/add", "AddV2", 1, 1.5),  # a counter: in the
            OpRun("while_1/body/_9/while_1/add", "AddV2", 1.5, 1.8),  # loop, not a layer op
            OpRun("while_1/body/_9/while_1/MatMul_4", "MatMul", 4.5, 5.5),
            OpRun("while_1/body/_9/while_1/MatMul_4", "MatMul", 6, 7),
            OpRun("while_1/body/_9/while_1/x/_5", "_Send", 3, 4),  # not compute
            OpRun("loss", "Sum", 8, 9),
            OpRun("unknown/op", "Sum", 8, 9),  # no device known: left out
            OpRun("gradient_tape/while_1/while_1_grad/body/_20/gradient_tape/while_1/"
                  "MatMul_4/MatMul", "MatMul", 10, 11),
            OpRun("gradient_tape/while/while_grad/body/_30/gradient_tape/while/MatMul/MatMul",
                  "MatMul", 12, 13)]
    intervals, loop, layers, backward = timeline.call_timeline(runs, devices, ["CPU:0", "CPU:1"])
    assert len(intervals) == 10 and {i.device for i in intervals} == {"CPU:0", "CPU:1"}
    assert backward == [Interval("CPU:1", 10, 11)]
    assert sorted((i.device, i.start) for i in loop) == [
        ("CPU:0", 1), ("CPU:0", 1.5), ("CPU:0", 2), ("CPU:0", 4), ("CPU:1", 4.5), ("CPU:1", 6)]
    assert layers == [[[(2, 3)], [(4, 5)]], [[(4.5, 5.5)], [(6, 7)]]]
    assert op_overlap.wavefront(layers).overlapping == 1  # layer 0 step 1 with layer 1 step 0


def test_backward_nodes_are_counted_by_device_with_their_compute_ops():
    from tensorflow.core.protobuf import config_pb2

    metadata = config_pb2.RunMetadata()
    graph = metadata.function_graphs.add().partition_graphs.add()
    for name, op, device in [
            ("gradient_tape/MatMul/MatMul", "MatMul", "CPU:1"),
            ("while/gradient_tape/acc_switch", "Switch", "CPU:1"),  # bookkeeping
            ("gradient_tape/while_grad/body/_1/gradient_tape/Mul", "Mul", "CPU:0"),
            ("MatMul", "MatMul", "CPU:0")]:  # forward
        graph.node.add(name=name, op=op, device=f"/job:localhost/replica:0/task:0/device:{device}")
    assert timeline.backward_nodes(metadata) == {"CPU:0": (1, 1), "CPU:1": (2, 1)}
