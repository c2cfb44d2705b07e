"""Training steps/s of config variants of the bench model, side by side in one process.

    nice -n 5 python -m bench.bench_training --variant=base --variant=precision=bf16
    python -m bench.bench_training --variant=base --variant=deterministic=true \
        --variant=precision=bf16_output --windows=3 --window_seconds=20

A variant is `base` (the recipe's config) or `field=value` pairs joined by `+` over the
config's sections (`train.` is implied: `precision=bf16+model.dropout=0.2`). Every
trainer is built and warmed up first, then timed in alternating windows (A, B, C, A,
B, C, ...) so that load from other processes hits all alike; every window is printed,
and the medians against the first variant: steps/s, and real (non-pad) target pieces/s,
the figure to compare when variants batch differently (`data.bucket_width=4`). A variant
that traces or XLA-compiles per batch shape (`deterministic`, `jit_compile`) warms up for a
whole epoch, so that no window pays for tracing. Uses bench/benchmark.py's helpers, so the
model and data are those of `recipes/multi30k.py --preset=bench` (and its flags).
"""
import statistics
import tempfile

from absl import app, flags

from bench import benchmark

from nmt import config as config_lib  # noqa: E402
from nmt.cli import common  # noqa: E402

FLAGS = flags.FLAGS


def parse_variant(spec):
    """"base" or "a=1+model.b=x" -> {"train.a": 1, "model.b": "x"}, values typed by the
    config field they set; a clear ValueError for an unknown field or a bad value."""
    if spec == "base":
        return {}
    overrides = {}
    for part in spec.split("+"):
        key, sep, text = part.partition("=")
        if not sep:
            raise ValueError(f"variant {spec!r}: {part!r} is not field=value")
        section, _, name = key.rpartition(".")
        section = section or "train"
        types = config_lib.field_types(section) if section in config_lib.SECTIONS else {}
        if name not in types:
            raise ValueError(f"variant {spec!r}: no config field {section}.{name}")
        overrides[f"{section}.{name}"] = _typed(name, types[name].__name__, text, spec)
    return overrides


def _typed(name, kind, text, spec):
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return {"int": int, "float": float}.get(kind, str)(text)
    except ValueError:
        raise ValueError(f"variant {spec!r}: {name}={text!r} is not a {kind}") from None


def apply_variant(config, overrides):
    """The config with a parse_variant's overrides, validated."""
    return common.build_config(overrides, base=config)


def warmup_steps(trainer, untimed_steps):
    """untimed_steps, or a whole epoch's batches when the step traces or XLA-compiles per
    batch shape."""
    t = trainer.config.train
    if not (t.deterministic or t.jit_compile):
        return untimed_steps
    return max(untimed_steps, sum(1 for _ in trainer.epoch_dataset(0)))


def main(argv):
    del argv
    specs = FLAGS.variant or ["base", "precision=bf16"]
    work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="bench-training-")
    config = benchmark.bench_config()
    trainers, rates, pieces = {}, {}, {}
    for i, spec in enumerate(specs):
        trainer = benchmark.make_trainer(apply_variant(config, parse_variant(spec)),
                                         work_dir, f"variant-{i}")
        mean_tgt = benchmark.mean_lengths(trainer)[1]
        benchmark.measure_training(trainer, 1, warmup_steps(trainer, FLAGS.untimed_steps),
                                   mean_tgt)
        trainers[spec], rates[spec], pieces[spec] = (trainer, mean_tgt), [], []
    for window in range(FLAGS.windows):
        for spec, (trainer, mean_tgt) in trainers.items():
            speed = benchmark.measure_training(trainer, FLAGS.window_seconds, 0, mean_tgt)
            rates[spec].append(speed.steps_per_s)
            pieces[spec].append(speed.measured_tokens_per_s)
            print(f"window {window + 1} {spec}: {speed.steps_per_s:.3f} steps/s "
                  f"({speed.steps} steps, {speed.sentences_per_s:.0f} sentences/s, "
                  f"{speed.measured_tokens_per_s:.0f} real target pieces/s, "
                  f"{speed.padding_efficiency:.3f} of target positions real)", flush=True)
    for unit, values_of in (("steps/s", rates), ("real target pieces/s", pieces)):
        base = statistics.median(values_of[specs[0]])
        for spec, values in values_of.items():
            median = statistics.median(values)
            print(f"{spec}: median {median:.3f} {unit} (min {min(values):.3f}, "
                  f"max {max(values):.3f}), x{median / base:.2f} vs {specs[0]}")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_multi_string("variant", None, "A config variant (repeat the flag): base, or "
                              "field=value pairs joined by +; the first is the base. Default: "
                              "base and precision=bf16.")
    flags.DEFINE_integer("windows", 3, "Timed windows per variant, alternating.")
    flags.DEFINE_integer("window_seconds", 20, "Length of one timed window, s.")
    app.run(main)
