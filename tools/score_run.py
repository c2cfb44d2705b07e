"""Score a run dir on every set its data ships: sacreBLEU cased and lower-cased BLEU, chrF.

    python tools/score_run.py --run_dir=runs/multi30k-default-en-de
    python tools/score_run.py --run_dir=R --checkpoint=latest --beam_size=10 \
        --data_dir=data/multi30k

The direction (data.src -> data.tgt) and the data dir come from RUN_DIR/config.json
(the directory of its dev prefix; --data_dir overrides it, e.g. when the run was
trained from another checkout). Every `NAME.SRC[.gz]` there with a
`NAME.TGT[.gz]` is translated, except the training set; the run's dev set is
marked "dev" (tune on it), the others "test" (report only). Decoding uses the
run's decode config; --beam_size, --length_penalty and --coverage_penalty
override it.

With --pick_on_val, the model (RUN_DIR/best or the mean of the last 5
checkpoints, written to RUN_DIR/averaged) and the length penalty (0.6 or 1.0)
are first picked on the dev set alone (RUN_DIR/tuning.md), and every set is
scored with that pick into RUN_DIR/scores.md, RUN_DIR/scores.json and
RUN_DIR/scores/; --checkpoint, the decode overrides and the output flags do
not apply.

Writes the hypotheses to HYP_DIR/NAME.TGT.hyp, the table to --output_md and
--output_json (default RUN_DIR/scores.md and RUN_DIR/scores.json, each written
whole or not at all), and prints the Markdown.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nmt import report, tuning  # noqa: E402
from nmt.cli import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A model dir written by recipes/multi30k.py or nmt-train.")
flags.DEFINE_string("checkpoint", "best", "best (RUN_DIR/best, else the latest), latest, or a "
                    "checkpoint path (prefix, or a directory with a checkpoint state file).")
flags.DEFINE_string("data_dir", None, "Directory with the sets (default: the run's data dir).")
flags.DEFINE_integer("beam_size", None, "Overrides the run's decode.beam_size.")
flags.DEFINE_float("length_penalty", None, "Overrides the run's decode.length_penalty.")
flags.DEFINE_float("coverage_penalty", None, "Overrides the run's decode.coverage_penalty.")
flags.DEFINE_bool("pick_on_val", False, "Pick the model (best, or the mean of the last 5) and "
                  "the length penalty (0.6, 1.0) on the dev set, then score with that pick.")
flags.DEFINE_string("output_md", None, "Markdown table (default RUN_DIR/scores.md).")
flags.DEFINE_string("output_json", None, "JSON table (default RUN_DIR/scores.json).")
flags.DEFINE_string("hyp_dir", None, "Where the hypotheses go (default RUN_DIR/scores).")
flags.mark_flag_as_required("run_dir")

DECODE_OVERRIDES = ("beam_size", "length_penalty", "coverage_penalty")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        if FLAGS.pick_on_val:
            _, _, markdown = tuning.score_with_val_pick(FLAGS.run_dir, FLAGS.data_dir)
            print(markdown)
            return
        _, markdown = report.score_run_dir(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.data_dir,
                                           {k: FLAGS[k].value for k in DECODE_OVERRIDES},
                                           FLAGS.output_md, FLAGS.output_json, FLAGS.hyp_dir)
        print(markdown)

    common.run_main("score_run", run)


if __name__ == "__main__":
    app.run(main)
