"""nmt-export: write a SavedModel that translates raw strings (see docs/export.md).

    nmt-export --model_dir=runs/en-es --output=exports/en-es/1

Decode flags override the model dir's decode config; --model_dir=A,B exports
an ensemble. Needs nmt-lstm[export] (tensorflow-text).
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.cli.flags import overrides_from_flags

FLAGS = flags.FLAGS
flags_lib.define_model_dir("A model dir written by nmt-train (A,B,...: an ensemble).")
flags_lib.define_checkpoint()
flags.DEFINE_string("output", None, "SavedModel directory to write (e.g. .../NAME/1 for "
                    "TensorFlow Serving).")
flags.mark_flag_as_required("output")
flags_lib.in_section("data", "output")
DECODE_FLAGS = flags_lib.define_config_flags(["decode"], skip={"decode.num_hypotheses"},
                                             inherited=True)
MAIN_FLAGS = ("output", "beam_size", "length_penalty")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from nmt.decode import export
    path = common.run_main("nmt-export", export.export, FLAGS.model_dir, FLAGS.output,
                           FLAGS.checkpoint, overrides_from_flags(DECODE_FLAGS))
    print(f"wrote {path}")


def run():
    common.app_run(main, "nmt-export", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
