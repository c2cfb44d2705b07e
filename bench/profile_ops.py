"""Where the time goes, op by op: the TensorFlow profiler over training steps or a translation.

    python -m bench.profile_ops --mode=train                         # bench preset, 20 steps
    python -m bench.profile_ops --mode=train --preset=best --steps=10
    python -m bench.profile_ops --mode=beam --model_dir=runs/multi30k-bench-en-de
    python -m bench.profile_ops --mode=greedy --model_dir=D --top_names=20

Training runs the recipe's own train step (bench/benchmark.py's helpers, so any
`recipes/multi30k.py` flag applies) after --untimed_steps of warm-up; a translation
mode profiles one warm pass over the test set after an untimed one. The profiler's
host trace is read back (its XSpace protobuf) and each op's *self* time is summed:
an event's duration minus that of the events nested in it on the same thread, so
a while loop or a function call is not counted twice with the ops inside it.
Prints two Markdown tables, by op type and by op name, with the time per
step (or pass), the share of all op time, and the number of calls. Profiling
slows the run down, so read shares, not absolute times; timing belongs to
bench/benchmark.py.
"""
import collections
import glob
import os
import tempfile

from absl import app, flags

from bench import benchmark, benchmark_translation
from nmt.data import corpus as corpus_lib

FLAGS = flags.FLAGS
MODES = ("train", "beam", "greedy")


def define_flags():
    """This tool's flags, beside bench/benchmark.py's (and the recipe's)."""
    flags.DEFINE_enum("mode", "train", MODES, "Profile training steps or a translation.")
    flags.DEFINE_integer("steps", 20, "Profiled training steps.")
    flags.DEFINE_integer("top_types", 25, "Rows of the table by op type.")
    flags.DEFINE_integer("top_names", 15, "Rows of the table by op name (0: none).")
    flags.DEFINE_string("trace_dir", None, "Where the profiler writes (default: a new temp dir).")


def op_self_times(xspace):
    """XSpace -> {event name: [self picoseconds, calls]} over the host threads.

    An event's self time is its duration minus the durations of the events directly
    nested in it (starting inside it on the same thread line)."""
    totals = collections.defaultdict(lambda: [0, 0])
    for plane in xspace.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack = []  # [end, name, self time so far]
            for event in events:
                start, end = event.offset_ps, event.offset_ps + event.duration_ps
                while stack and stack[-1][0] <= start:
                    _close(stack.pop(), totals)
                if stack:
                    stack[-1][2] -= event.duration_ps
                stack.append([end, plane.event_metadata[event.metadata_id].name,
                              event.duration_ps])
            while stack:
                _close(stack.pop(), totals)
    return dict(totals)


def _close(frame, totals):
    _, name, self_ps = frame
    totals[name][0] += max(self_ps, 0)
    totals[name][1] += 1


def op_type(name):
    """"while/body/MatMul:_MklMatMul" -> "_MklMatMul"; None for an event that is not an
    op: the executor's and tf.data's ("ExecutorState::Process"), function calls
    ("EagerLocalExecute: __inference_..."), memory events (no colon)."""
    if "::" in name or ":" not in name:
        return None
    kind = name.rsplit(":", 1)[1].strip()
    return kind if kind and not kind.startswith("__") else None


def summarise(times, units, key):
    """{name: [ps, calls]} -> rows {name, ms_per_unit, share, calls} by `key(name)` (None:
    skipped), largest first; units: steps or passes the times cover."""
    grouped = collections.defaultdict(lambda: [0, 0])
    for name, (ps, calls) in times.items():
        group = key(name)
        if group is not None:
            grouped[group][0] += ps
            grouped[group][1] += calls
    total = sum(ps for ps, _ in grouped.values()) or 1
    rows = [{"name": group, "ms_per_unit": ps / 1e9 / units, "share": ps / total, "calls": calls}
            for group, (ps, calls) in grouped.items()]
    return sorted(rows, key=lambda r: -r["ms_per_unit"])


def read_xspace(log_dir):
    """The newest XSpace the profiler wrote under log_dir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = sorted(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"{log_dir}: the profiler wrote no .xplane.pb")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return space


def markdown(title, rows, unit, limit):
    lines = [f"### {title}", "", f"| op | ms per {unit} | share of op time | calls |",
             "| --- | --- | --- | --- |"]
    for row in rows[:limit]:
        lines.append(f"| {row['name']} | {row['ms_per_unit']:.2f} | {100 * row['share']:.1f} % "
                     f"| {row['calls']} |")
    return "\n".join(lines)


def profile_training(log_dir):
    """Profiles FLAGS.steps training steps -> the number of steps."""
    import tensorflow as tf
    config = benchmark.bench_config()
    trainer = benchmark.make_trainer(config, tempfile.mkdtemp(prefix="profile-ops-"), "train")
    batches = benchmark.endless_batches(trainer)
    for _ in range(FLAGS.untimed_steps):
        float(trainer.train_step(next(batches))[1])
    profiled = [next(batches) for _ in range(FLAGS.steps)]
    tf.profiler.experimental.start(log_dir)
    for batch in profiled:
        float(trainer.train_step(batch)[1])
    tf.profiler.experimental.stop()
    return FLAGS.steps


def profile_translation(log_dir):
    """Profiles one warm pass over the test set -> 1 (pass)."""
    import tensorflow as tf
    if not FLAGS.model_dir:
        raise app.UsageError("--mode=beam or greedy needs --model_dir")
    decode = benchmark.bench_config().decode
    translator = benchmark_translation.load_translator(FLAGS.model_dir, decode,
                                           5 if FLAGS.mode == "beam" else 1)
    lines = corpus_lib.read_lines(benchmark.test_file("src"))
    translator.translate(lines)  # traces, warms caches
    tf.profiler.experimental.start(log_dir)
    translator.translate(lines)
    tf.profiler.experimental.stop()
    return 1


def main(argv):
    del argv
    log_dir = FLAGS.trace_dir or tempfile.mkdtemp(prefix="profile-ops-log-")
    if FLAGS.mode == "train":
        units, unit, plural = profile_training(log_dir), "step", "steps"
    else:
        units, unit, plural = profile_translation(log_dir), "pass", "pass"
    times = op_self_times(read_xspace(log_dir))
    print(markdown(f"By op type ({FLAGS.mode}, {units} {plural} profiled)",
                   summarise(times, units, op_type), unit, FLAGS.top_types))
    if FLAGS.top_names:
        print()
        print(markdown("By op name", summarise(times, units, lambda n: n if op_type(n) else None),
                       unit, FLAGS.top_names))


if __name__ == "__main__":
    benchmark.define_flags()
    define_flags()
    app.run(main)
