"""nmt-average-checkpoints: average the last k checkpoints into a new model dir.

    nmt-average-checkpoints --model_dir=runs/en-de --last=5 --output_dir=runs/en-de-avg5
    nmt-translate --model_dir=runs/en-de-avg5 --input=test.en --output=test.de
"""
from absl import app, flags

from nmt import checkpoints
from nmt.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A model dir written by nmt-train.")
flags.DEFINE_integer("last", 5, "Average this many newest checkpoints of DIR/ckpt.")
flags.DEFINE_string("output_dir", None, "New model dir: config.json, spm models, ckpt/, "
                    "average.json. Must be new, empty, or an earlier average of --model_dir "
                    "(which it replaces).")
for _name in ("model_dir", "output_dir"):
    flags.mark_flag_as_required(_name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    path = common.run_main("nmt-average-checkpoints", checkpoints.average_checkpoints,
                           FLAGS.model_dir, FLAGS.last, FLAGS.output_dir)
    print(f"wrote {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
