"""nmt-plot: learning curves of a run, or one sentence's attention (needs nmt-lstm[plot]).

    nmt-plot --model_dir=runs/en-es --output=curves.png

Attention: nmt-plot --model_dir=runs/en-es --attention --sentence="A dog runs."
--output=att.png. Without --translation the attention is that of the model's
greedy translation of --sentence.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib

FLAGS = flags.FLAGS
flags_lib.define_model_dir("A model dir written by nmt-train: its log.jsonl (learning "
                           "curves) or, with --attention, its model.")
flags_lib.define_checkpoint()
flags.DEFINE_boolean("attention", False, "Plot the attention of --sentence (and --translation) "
                     "instead of the learning curves.")
flags.DEFINE_string("sentence", None, "Source sentence for --attention.")
flags.DEFINE_string("translation", None, "Its translation (default: the model's greedy "
                    "translation of --sentence).")
flags.DEFINE_string("output", None, "Image file to write (.png, .pdf, .svg).")
flags.mark_flag_as_required("output")
flags_lib.in_section("data", "attention", "sentence", "translation", "output")
MAIN_FLAGS = ("attention", "sentence", "translation", "output")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from nmt import model_dir
    from nmt.training import plot
    if FLAGS.attention:
        if not FLAGS.sentence:
            raise app.UsageError("--attention needs --sentence")
        common.run_main("nmt-plot", plot.plot_attention, FLAGS.model_dir, FLAGS.sentence,
                        FLAGS.translation, FLAGS.output, FLAGS.checkpoint)
        return
    common.run_main("nmt-plot", lambda: plot.learning_curves(model_dir.read_log(FLAGS.model_dir),
                                                             FLAGS.output))


def run():
    common.app_run(main, "nmt-plot", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
