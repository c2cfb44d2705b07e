"""Per-op device timeline of a placed decoder: do layers on different devices run at once?

    python -m bench.timeline_devices                          # 4 logical CPUs, gnmt and standard
    python -m bench.timeline_devices --json --png=docs/timeline_devices.png

Throughput on logical CPUs cannot show model parallelism (they share the cores), so
this records *when* each op ran and on which device. It splits the CPU into
--devices logical devices, builds a model with --num_layers decoder layers, one per
device (`--num_gpus=N` placement, nmt.model.devices), for each attention architecture,
and profiles --calls calls of the teacher-forced loss ("forward") and of the
training step ("train") with the TensorFlow profiler. Each op's device comes from
the partition graphs of the instantiated function (run metadata), its start and end
from the profiler's host trace. Per architecture and pass it reports:

- multi-device share: the part of the wall time during which compute ops of at
  least two devices were executing at the same instant (of the whole call, and of
  the decoder loop: first to last op of the decoder's forward loop body; and in
  the training step, of that loop's gradient loop, the backward decoder loop);
- wavefront: the share of (layer k + 1, step t) pairs during which an op of layer k
  at a later step t' > t executed at the same instant, the time they overlapped,
  and the largest lead t' - t seen - lower layers running ahead of upper ones,
  pipelining over time steps. Layer k means the matmuls of the decoder loop body on
  layer k's device: its input and recurrent kernels, and the attention's where it
  sits (gnmt: the bottom layer's device; standard: the top one's); step t of an op
  is its t-th run in a call. With standard attention the recurrent matmul of step
  t + 1 needs only the layer's own state, so a lead of 1 is possible there too.

Compute ops are the ops that do arithmetic: not transfers, loop bookkeeping,
variable reads, shape ops or TensorList ops (`is_compute`). Everything shares the
same 2 cores: this shows overlap in time, not speed-up.

For the training step it also counts the backward pass's nodes by device: the nodes
of the partition graphs built under `tape.gradient`'s "gradient_tape/" name scope
(the gradient loops, their accumulators and the custom gradients of nmt.model.devices.call_on),
all of them and the compute ops among them (`backward_nodes`).
"""
import collections
import glob
import json
import os
import re

from absl import app, flags

from bench.op_overlap import Interval, busy_by_device, concurrency, wavefront

FLAGS = flags.FLAGS


def define_flags():
    """This tool's flags (not at import: tests import it beside the CLIs' flags)."""
    flags.DEFINE_integer("devices", 4,
                         "Logical CPU devices; decoder layer i runs on i mod devices.")
    flags.DEFINE_list("architectures", ["gnmt", "standard"], "Attention architectures to compare.")
    flags.DEFINE_list("passes", ["forward", "train"],
                      "forward (teacher-forced loss) | train (step).")
    flags.DEFINE_integer("num_layers", 4, "Decoder layers (the encoder has one uni layer).")
    flags.DEFINE_integer("num_units", 256, "Model width (embedding too).")
    flags.DEFINE_integer("batch_size", 64, "Sentences per batch.")
    flags.DEFINE_integer("length", 20, "Source and target length, pieces.")
    flags.DEFINE_integer("vocab", 8000, "Vocabulary size.")
    flags.DEFINE_integer("warmup", 2, "Unprofiled calls first (tracing, instantiation).")
    flags.DEFINE_integer("calls", 3, "Profiled calls per pass.")
    flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: its default, "
                         "the number of cores): how many ops can run at once.")
    flags.DEFINE_bool("json", False, "Also print the results as one JSON object.")
    flags.DEFINE_string("png", None, "Write device lanes of the decoder loop (forward) here.")
    flags.DEFINE_string("logdir", None, "Profiler log dir (default: a temporary one).")


NO_ARITHMETIC_OPS = frozenset([  # transfers, loop bookkeeping, handles and shapes
    "_Send", "_Recv", "_HostSend", "_HostRecv", "Enter", "Exit", "Merge", "Switch",
    "NextIteration", "LoopCond", "Identity", "Const", "NoOp", "ControlTrigger", "_Arg",
    "_Retval", "ReadVariableOp", "VariableShape", "Shape", "Reshape", "ExpandDims", "Squeeze"])


def is_compute(op_type):
    """Whether an op does arithmetic: not in NO_ARITHMETIC_OPS, nor a TensorList op (the
    loop's arrays and the gradient's accumulators only hold tensors)."""
    return op_type not in NO_ARITHMETIC_OPS and not op_type.startswith("TensorList")


# ----------------------------------------------------------------------------
# Reading the trace.

OpRun = collections.namedtuple("OpRun", ["node", "op_type", "start", "end"])  # seconds
LOOP_BODY = re.compile(r"^(while(?:_\d+)?)/body/_\d+/")  # a lowered forward while loop
# the lowered gradient loop of forward loop group(1) (tape.gradient names it so)
GRADIENT_LOOP_BODY = re.compile(r"^gradient_tape/(?:[^/]+/)*?(while(?:_\d+)?)_grad/body/_\d+/")
CallTimeline = collections.namedtuple("CallTimeline", ["intervals", "loop", "layers",
                                                       "backward_loop"])
# intervals: compute Intervals of the call; loop: those of the decoder's forward loop;
# layers[k][t]: see call_timeline; backward_loop: the Intervals of that loop's gradient
# loop ([] without one)


def node_devices(run_metadata):
    """RunMetadata with function graphs -> {node name: device} over all partitions."""
    return {node.name: node.device
            for function in run_metadata.function_graphs
            for graph in function.partition_graphs for node in graph.node}


def is_backward(node):
    """Whether a partition-graph node was built by `tape.gradient` (its name scope)."""
    return "gradient_tape/" in node


def backward_nodes(run_metadata):
    """RunMetadata with function graphs -> {device: (backward nodes, compute ops among
    them)}, devices sorted."""
    nodes = [node for function in run_metadata.function_graphs
             for graph in function.partition_graphs for node in graph.node
             if is_backward(node.name)]
    counts = collections.defaultdict(lambda: [0, 0])
    for node in nodes:
        counts[device_short(node.device)][0] += 1
        counts[device_short(node.device)][1] += is_compute(node.op)
    return {device: tuple(counts[device]) for device in sorted(counts)}


def read_trace(logdir, marker):
    """The newest profile under logdir -> (op runs, [(start, end)] of the `marker`
    TraceMe events: one per profiled call), times in seconds."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    runs, calls = [], []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                start = line.timestamp_ns * 1e-9 + event.offset_ps * 1e-12
                end = start + event.duration_ps * 1e-12
                if name == marker:
                    calls.append((start, end))
                elif ":" in name and "::" not in name:  # "node:OpType"
                    node, op_type = name.rsplit(":", 1)
                    runs.append(OpRun(node, op_type, start, end))
    return runs, sorted(calls)


def device_short(device):
    """"/job:localhost/replica:0/task:0/device:CPU:1" -> "CPU:1"."""
    return device.rsplit("device:", 1)[-1]


def loop_name(node):
    """The forward while loop whose lowered body holds `node`, or None."""
    match = LOOP_BODY.match(node)
    return match.group(1) if match else None


def gradient_loop_name(node):
    """The forward while loop whose lowered gradient loop's body holds `node`, or None."""
    match = GRADIENT_LOOP_BODY.match(node)
    return match.group(1) if match else None


def call_timeline(runs, devices, layer_devices):
    """One call's op runs -> CallTimeline.

    The decoder loop is the forward while loop whose body runs on the most devices.
    layers[k][t]: the (start, end) of the matmuls that the loop body ran on layer k's
    device at step t (the t-th run of each node). Only matmuls: the loop's counters
    and input slices also run there, ahead of the recurrence, and would count as a
    layer running ahead."""
    compute = [r for r in runs if r.node in devices and is_compute(r.op_type)]
    intervals = [Interval(device_short(devices[r.node]), r.start, r.end) for r in compute]
    loop_devices = collections.defaultdict(set)
    for r in compute:
        if loop_name(r.node):
            loop_devices[loop_name(r.node)].add(devices[r.node])
    decoder = max(loop_devices, key=lambda name: len(loop_devices[name]))
    in_loop = [(r, i) for r, i in zip(compute, intervals) if loop_name(r.node) == decoder]
    by_node = collections.defaultdict(list)
    for r, interval in in_loop:
        if "MatMul" in r.op_type and interval.device in layer_devices:
            by_node[r.node].append(interval)
    layers = [collections.defaultdict(list) for _ in layer_devices]
    for node_runs in by_node.values():
        for t, interval in enumerate(sorted(node_runs, key=lambda i: i.start)):
            layers[layer_devices.index(interval.device)][t].append((interval.start, interval.end))
    layers = [[layer[t] for t in range(max(layer) + 1 if layer else 0)] for layer in layers]
    backward = [i for r, i in zip(compute, intervals) if gradient_loop_name(r.node) == decoder]
    return CallTimeline(intervals, [i for _, i in in_loop], layers, backward)


# ----------------------------------------------------------------------------
# Measuring.

MARKER = "timeline_call"
Result = collections.namedtuple("Result", [
    "architecture", "pass_name", "call_ms", "multi_share", "loop_ms", "loop_multi_share",
    "wavefront_share", "wavefront_pairs", "wavefront_ms", "max_lead", "backward_loop_ms",
    "backward_loop_multi_share", "device_busy", "backward"])
# device_busy: {device: its share of the summed per-device busy time of the calls}
# backward: `backward_nodes` of the pass ({} for the forward pass)


def synthetic_batch(rng):
    """A Batch of random ids, every sentence FLAGS.length pieces."""
    import numpy as np
    import tensorflow as tf
    from nmt.data.batching import Batch

    shape = (FLAGS.batch_size, FLAGS.length)
    lengths = np.full([FLAGS.batch_size], FLAGS.length, np.int32)
    ids = [rng.integers(3, FLAGS.vocab, shape, np.int32) for _ in range(3)]
    return Batch(*(tf.constant(x) for x in (ids[0], lengths, ids[1], ids[2], lengths)))


def build_calls(architecture):
    """-> (model config, {pass: a no-argument function running one call})."""
    import numpy as np
    import tensorflow as tf
    from nmt import config as config_lib
    from nmt.model import devices
    from nmt.model.seq2seq import build_model
    from nmt.training import trainer

    model_config = config_lib.ModelConfig(
        num_units=FLAGS.num_units, embedding_size=FLAGS.num_units, dropout=0.0,
        encoder_type="uni", num_encoder_layers=1, num_decoder_layers=FLAGS.num_layers,
        attention_architecture=architecture)
    train_config = config_lib.TrainConfig(num_train_steps=1, jit_compile=False,
                                          num_gpus=FLAGS.devices)
    model = build_model(model_config, FLAGS.vocab, FLAGS.vocab,
                        placement=devices.training_placement(model_config, train_config))
    optimizer = trainer.make_optimizer(train_config)
    optimizer.build(model.trainable_variables)
    train_step = trainer.make_train_step(model, optimizer, train_config)
    forward = tf.function(lambda batch: model.loss(batch, training=False))
    batch = synthetic_batch(np.random.default_rng(0))
    calls = {"forward": lambda: float(forward(batch).loss_sum),
             "train": lambda: float(train_step(batch)[1])}
    return model_config, {name: calls[name] for name in FLAGS.passes}


def profile(architecture, logdir):
    """Profiles FLAGS.calls calls of each pass -> ([Result], {pass: (intervals of the
    first call's decoder loop, layer devices)})."""
    import tensorflow as tf
    from tensorflow.python.eager import context  # run metadata: no public TF2 API
    from nmt.model import devices

    model_config, calls = build_calls(architecture)
    layer_devices = [device_short(d) for d in devices.model_placement(
        model_config, FLAGS.devices, device_type="CPU")["decoder"]]
    results, lanes = [], {}
    for name, call in calls.items():
        context.context().enable_run_metadata()  # partition graphs, at instantiation
        for _ in range(FLAGS.warmup):
            call()
        run_metadata = context.context().export_run_metadata()
        node_device = node_devices(run_metadata)
        context.context().disable_run_metadata()
        pass_dir = os.path.join(logdir, f"{architecture}_{name}")
        tf.profiler.experimental.start(pass_dir)
        for i in range(FLAGS.calls):
            with tf.profiler.experimental.Trace(MARKER, step_num=i):
                call()
        tf.profiler.experimental.stop()
        runs, windows = read_trace(pass_dir, MARKER)
        per_call = []
        for start, end in windows:
            in_call = [r for r in runs if start <= r.start <= end]
            per_call.append(call_timeline(in_call, node_device, layer_devices))
        results.append(summarise(architecture, name, per_call, backward_nodes(run_metadata)))
        lanes[name] = (per_call[0].loop, layer_devices)
    return results, lanes


def summarise(architecture, pass_name, per_call, backward):
    """[(intervals, loop intervals, layers)] of the calls, `backward_nodes` -> a Result
    (means, sums)."""
    whole = [concurrency(c.intervals) for c in per_call]
    loop = [concurrency(c.loop) for c in per_call]
    backward_loop = [concurrency(c.backward_loop) for c in per_call]
    fronts = [wavefront(c.layers) for c in per_call]
    pairs = sum(f.pairs for f in fronts)
    return Result(
        architecture, pass_name,
        call_ms=1e3 * sum(c.wall for c in whole) / len(whole),
        multi_share=sum(c.multi_device for c in whole) / sum(c.wall for c in whole),
        loop_ms=1e3 * sum(c.wall for c in loop) / len(loop),
        loop_multi_share=sum(c.multi_device for c in loop) / max(sum(c.wall for c in loop), 1e-12),
        wavefront_share=sum(f.overlapping for f in fronts) / max(pairs, 1),
        wavefront_pairs=pairs,
        wavefront_ms=1e3 * sum(f.overlap_time for f in fronts) / len(fronts),
        max_lead=max(f.max_lead for f in fronts),
        backward_loop_ms=1e3 * sum(c.wall for c in backward_loop) / len(backward_loop),
        backward_loop_multi_share=(sum(c.multi_device for c in backward_loop) /
                                   max(sum(c.wall for c in backward_loop), 1e-12)),
        device_busy=device_shares([busy_by_device(c.intervals) for c in per_call]),
        backward=backward)


def device_shares(busy_per_call):
    """[{device: busy seconds}] -> {device: share of the total}, devices sorted."""
    total = collections.Counter()
    for busy in busy_per_call:
        total.update(busy)
    whole = sum(total.values()) or 1.0
    return {device: total[device] / whole for device in sorted(total)}


def markdown(results):
    """[Result] -> a Markdown table, one row per architecture and pass."""
    lines = ["| architecture | pass | call ms | multi-device share of call | decoder loop ms "
             "| multi-device share of loop | wavefront pairs overlapping "
             "| wavefront overlap ms/call | max lead | backward decoder loop ms "
             "| multi-device share of backward loop | busy time by device "
             "| backward nodes (compute ops) by device |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        busy = " / ".join(f"{share:.0%}" for share in r.device_busy.values())
        backward = " / ".join(f"{n} ({c})" for n, c in r.backward.values()) or "-"
        backward_loop = (f"{r.backward_loop_ms:.0f} | {r.backward_loop_multi_share:.1%}"
                         if r.backward_loop_ms else "- | -")
        lines.append(f"| {r.architecture} | {r.pass_name} | {r.call_ms:.0f} "
                     f"| {r.multi_share:.1%} | {r.loop_ms:.0f} | {r.loop_multi_share:.1%} "
                     f"| {r.wavefront_share:.1%} of {r.wavefront_pairs} "
                     f"| {r.wavefront_ms:.1f} | {r.max_lead} | {backward_loop} | {busy} "
                     f"| {backward} |")
    return "\n".join(lines)


def plot_lanes(lanes, path, window=(0.4, 0.6)):
    """{architecture: (loop intervals, layer devices)} -> a PNG of one lane per device
    over the `window` (fractions) of each decoder loop; skipped without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no {path}")
        return
    figure, axes = plt.subplots(len(lanes), 1, figsize=(10, 1.2 + 1.1 * len(lanes)), squeeze=False)
    for ax, (architecture, (intervals, layer_devices)) in zip(axes[:, 0], lanes.items()):
        first, last = min(i.start for i in intervals), max(i.end for i in intervals)
        start, end = (first + f * (last - first) for f in window)
        for lane, device in enumerate(layer_devices):
            spans = [(1e3 * (i.start - start), 1e3 * (i.end - i.start)) for i in intervals
                     if i.device == device and start <= i.start < end]
            ax.broken_barh(spans, (lane - 0.4, 0.8), color=f"C{lane}")
        ax.set_yticks(range(len(layer_devices)),
                      [f"layer {k} ({d})" for k, d in enumerate(layer_devices)], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{architecture}: decoder loop ops by device (forward pass, "
                     f"{window[0]:.0%} to {window[1]:.0%} of the loop)", fontsize=10)
    axes[-1, 0].set_xlabel("ms from the start of the window")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv):
    del argv
    import tempfile
    if FLAGS.num_layers > FLAGS.devices:
        raise app.UsageError(f"one decoder layer per device: --num_layers must be <= --devices "
                             f"(got {FLAGS.num_layers} and {FLAGS.devices})")
    import tensorflow as tf
    from nmt.model import devices
    devices.split_cpu(FLAGS.devices)
    if FLAGS.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)
    results, lanes = [], {}
    with tempfile.TemporaryDirectory(prefix="timeline_") as temporary:
        for architecture in FLAGS.architectures:
            arch_results, arch_lanes = profile(architecture, FLAGS.logdir or temporary)
            results += arch_results
            if "forward" in arch_lanes:
                lanes[architecture] = arch_lanes["forward"]
    print(markdown(results))
    if FLAGS.json:
        print(json.dumps([r._asdict() for r in results]))
    if FLAGS.png and lanes:
        plot_lanes(lanes, FLAGS.png)


if __name__ == "__main__":
    define_flags()
    app.run(main)
