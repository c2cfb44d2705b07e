"""Loop steps and padding of a training epoch against the bucket width, as the trainer batches it.

    python -m bench.batch_shapes                   # the bench preset, bucket widths 4, 8 and 16
    python -m bench.batch_shapes --preset=best --epochs=3 --bucket_widths=8,1

Every batch's padded source and target times are the number of encoder and decoder loop
steps it costs, whatever its rows hold, so their sums over an epoch measure the
recurrent work that batching leaves, with no model run. For each `data.bucket_width`
in --bucket_widths, over the trainer's first --epochs epochs (their mean), it prints
batches, encoder and decoder loop steps (and their ratio to the first width's), the
share of padded target positions that hold real pieces, and the number of distinct
batch shapes (each costs a trace or an XLA compile where the step is made per shape).
Uses bench/benchmark.py's helpers, so the data and config are those of
`recipes/multi30k.py` with its flags.
"""
import tempfile

from absl import app, flags

from bench import benchmark

FLAGS = flags.FLAGS


def epoch_stats(batches):
    """data.Batch-like items (src, tgt_out, tgt_len) -> {batches, src_steps, tgt_steps,
    real_target_share, shapes}."""
    src_steps = tgt_steps = real = padded = 0
    shapes = set()
    count = 0
    for batch in batches:
        src_time, tgt_time = int(batch.src.shape[1]), int(batch.tgt_out.shape[1])
        count += 1
        src_steps += src_time
        tgt_steps += tgt_time
        real += int(sum(batch.tgt_len))
        padded += int(batch.tgt_out.shape[0]) * tgt_time
        shapes.add(tuple(batch.src.shape) + (tgt_time,))
    return {"batches": count, "src_steps": src_steps, "tgt_steps": tgt_steps,
            "real_target_share": real / max(padded, 1), "shapes": len(shapes)}


def mean_stats(trainer, epochs):
    """epoch_stats averaged over the trainer's first `epochs` epochs."""
    runs = [epoch_stats(trainer.epoch_dataset(epoch)) for epoch in range(epochs)]
    return {key: sum(r[key] for r in runs) / epochs for key in runs[0]}


def main(argv):
    del argv
    work_dir = tempfile.mkdtemp(prefix="batch-shapes-")
    config = benchmark.bench_config()
    rows = {}
    for width in map(int, FLAGS.bucket_widths):
        trainer = benchmark.make_trainer(config.replace(data={"bucket_width": width}),
                                         work_dir, f"width-{width}")
        rows[width] = mean_stats(trainer, FLAGS.epochs)
    first = rows[int(FLAGS.bucket_widths[0])]
    print(f"| bucket width ({FLAGS.epochs} epoch mean) | batches | encoder loop steps | "
          "decoder loop steps | real target positions | distinct shapes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for width, r in rows.items():
        print(f"| {width} | {r['batches']:.0f} | {r['src_steps']:.0f} "
              f"({r['src_steps'] / first['src_steps']:.3f}) | {r['tgt_steps']:.0f} "
              f"({r['tgt_steps'] / first['tgt_steps']:.3f}) | {r['real_target_share']:.3f} | "
              f"{r['shapes']:.0f} |")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_integer("epochs", 1, "Epochs to count (their mean).")
    flags.DEFINE_list("bucket_widths", ["4", "8", "16"],
                      "data.bucket_width values to compare (ratios against the first).")
    app.run(main)
