"""nmt-plot: learning curves of a run, or one sentence's attention (needs nmt[plot]).

    nmt-plot --run_dir=runs/en-de --output=curves.png
    nmt-plot --model_dir=runs/en-de --attention --src="A dog runs." --output=att.png

Without --tgt the attention is that of the model's greedy translation of --src.
"""
from absl import app, flags

from nmt.cli import common

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Plot the learning curves in DIR/log.jsonl.")
flags.DEFINE_string("model_dir", None, "With --attention: the model dir.")
flags.DEFINE_boolean("attention", False, "Plot the attention of --src (and --tgt).")
flags.DEFINE_string("src", None, "Source sentence for --attention.")
flags.DEFINE_string("tgt", None, "Target sentence (default: the greedy translation of --src).")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best dev BLEU, or the last saved.")
flags.DEFINE_string("output", None, "Image file (.png, .pdf, .svg).")
flags.mark_flag_as_required("output")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.attention:
        if not (FLAGS.model_dir and FLAGS.src):
            raise app.UsageError("--attention needs --model_dir and --src")
        from nmt import plot
        common.run_main("nmt-plot", plot.plot_attention, FLAGS.model_dir, FLAGS.src, FLAGS.tgt,
                        FLAGS.output, FLAGS.checkpoint)
        return
    if not FLAGS.run_dir:
        raise app.UsageError("give --run_dir (learning curves) or --attention")
    from nmt import model_dir, plot
    common.run_main("nmt-plot", lambda: plot.learning_curves(model_dir.read_log(FLAGS.run_dir),
                                                             FLAGS.output))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
