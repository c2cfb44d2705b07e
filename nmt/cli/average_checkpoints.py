"""nmt-average-checkpoints: average the last k checkpoints into a new model dir.

    nmt-average-checkpoints --model_dir=runs/en-es --last=5 --output=runs/en-es-avg5

The new dir is a model dir of its own: nmt-translate --model_dir=runs/en-es-avg5.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.training import average_checkpoints

FLAGS = flags.FLAGS
flags_lib.define_model_dir("A model dir written by nmt-train.")
flags.DEFINE_integer("last", 5, "Average this many newest checkpoints of MODEL_DIR/ckpt.")
flags.DEFINE_string("output", None, "New model dir: config.json, spm models, ckpt/, "
                    "average.json. Must be new, empty, or an earlier average of --model_dir "
                    "(which it replaces).")
flags.mark_flag_as_required("output")
flags_lib.in_section("train", "last")
flags_lib.in_section("data", "output")
MAIN_FLAGS = ("last", "output")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    path = common.run_main("nmt-average-checkpoints", average_checkpoints.average_checkpoints,
                           FLAGS.model_dir, FLAGS.last, FLAGS.output)
    print(f"wrote {path}")


def run():
    common.app_run(main, "nmt-average-checkpoints", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
