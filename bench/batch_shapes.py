"""Loop steps and padding of a training epoch, as the trainer batches it.

    python -m bench.batch_shapes                   # the bench preset: loose and tight batches
    python -m bench.batch_shapes --preset=best --epochs=3

Every batch's padded source and target times are the number of encoder and decoder loop
steps it costs, whatever its rows hold, so their sums over an epoch measure the
recurrent work that batching leaves, with no model run. For `data.tight_batches` off and
on, over the trainer's first --epochs epochs (their mean), it prints batches, encoder and
decoder loop steps, the share of padded target positions that hold real pieces, and the
number of distinct batch shapes. Uses bench/benchmark.py's helpers, so the data and
config are those of `recipes/multi30k.py` with its flags.
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
    for tight in (False, True):
        trainer = benchmark.make_trainer(config.replace(data={"tight_batches": tight}),
                                         work_dir, f"tight-{tight}")
        rows["tight" if tight else "loose"] = mean_stats(trainer, FLAGS.epochs)
    print(f"| batches ({FLAGS.epochs} epoch mean) | batches | encoder loop steps | "
          "decoder loop steps | real target positions | distinct shapes |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['batches']:.0f} | {r['src_steps']:.0f} | {r['tgt_steps']:.0f} | "
              f"{r['real_target_share']:.3f} | {r['shapes']:.0f} |")
    loose, tight = rows["loose"], rows["tight"]
    print(f"\ntight / loose loop steps: encoder {tight['src_steps'] / loose['src_steps']:.3f}, "
          f"decoder {tight['tgt_steps'] / loose['tgt_steps']:.3f}")


if __name__ == "__main__":
    benchmark.define_flags()
    flags.DEFINE_integer("epochs", 1, "Epochs to count (their mean).")
    app.run(main)
