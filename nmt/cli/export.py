"""nmt-export: write a SavedModel that translates raw strings (see docs/export.md).

    nmt-export --model_dir=runs/en-de --export_dir=exports/en-de/1 --beam_size=5

Decode flags override the model dir's decode config; --model_dir=A,B exports
an ensemble.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A model dir written by nmt-train (A,B,...: an ensemble).")
flags.DEFINE_string("export_dir", None, "SavedModel directory to write (e.g. .../NAME/1 for "
                    "TensorFlow Serving).")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best dev BLEU, or the last saved.")
DECODE_FLAGS = define_config_flags(["decode"], skip={"decode.num_hypotheses"})
for _name in ("model_dir", "export_dir"):
    flags.mark_flag_as_required(_name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from nmt import export
    path = common.run_main("nmt-export", export.export, FLAGS.model_dir, FLAGS.export_dir,
                           FLAGS.checkpoint, overrides_from_flags(DECODE_FLAGS))
    print(f"wrote {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
