r"""nmt-score-run: score a model dir on every set of its data dir (BLEU, chrF).

    nmt-score-run --model_dir=runs/en-es --pick_on_val

The direction and the data dir come from MODEL_DIR/config.json (the directory
of its dev prefix; --data_dir overrides it). Every NAME.SRC[.gz] there with a
NAME.TGT[.gz] is translated, except the training set; the run's dev set is
marked "dev" (choices are made on it), the others "test" (report only).
Decoding uses the run's decode config; --beam_size, --length_penalty and
--coverage_penalty override it.

With --pick_on_val, the model (MODEL_DIR/best or the mean of the last 5
checkpoints, written to MODEL_DIR/averaged) and the length penalty (0.6 or
1.0) are first picked on the dev set alone (MODEL_DIR/tuning.md), and every set
is scored with that pick; --checkpoint, the decode overrides and the output
flags do not apply.

Writes the hypotheses to HYP_DIR/NAME.TGT.hyp and the tables to --output_md and
--output_json (default MODEL_DIR/scores.md and MODEL_DIR/scores.json, each
written whole or not at all), and prints the Markdown table.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib

FLAGS = flags.FLAGS
flags_lib.define_model_dir()
flags_lib.define_checkpoint()
flags.DEFINE_string("data_dir", None, "Directory with the sets (default: the directory of the "
                    "run's dev prefix).")
flags.DEFINE_bool("pick_on_val", False, "Pick the model (best, or the mean of the last 5 "
                  "checkpoints) and the length penalty (0.6, 1.0) on the dev set, then score "
                  "every set with that pick.")
flags.DEFINE_integer("beam_size", None, "Beam size, hypotheses per step (default: the run's).")
flags.DEFINE_float("length_penalty", None, "GNMT length penalty alpha (default: the run's).")
flags.DEFINE_float("coverage_penalty", None, "GNMT coverage penalty beta (default: the run's).")
flags.DEFINE_string("output_md", None, "Markdown table to write (default: MODEL_DIR/scores.md).")
flags.DEFINE_string("output_json", None, "JSON table to write (default: MODEL_DIR/scores.json).")
flags.DEFINE_string("hyp_dir", None, "Directory for the hypotheses (default: MODEL_DIR/scores).")
flags_lib.in_section("data", "data_dir", "output_md", "output_json", "hyp_dir")
flags_lib.in_section("decode", "pick_on_val", "beam_size", "length_penalty", "coverage_penalty")
MAIN_FLAGS = ("data_dir", "pick_on_val", "beam_size", "length_penalty")
DECODE_OVERRIDES = ("beam_size", "length_penalty", "coverage_penalty")


def score(model_dir, checkpoint, data_dir, pick_on_val, overrides, output_md=None,
          output_json=None, hyp_dir=None):
    """Scores model_dir on its sets (with pick_on_val: val's pick); -> the Markdown."""
    from nmt.decode import score_run, tune_decoding
    if pick_on_val:
        return tune_decoding.score_with_val_pick(model_dir, data_dir)[2]
    return score_run.score_run_dir(model_dir, checkpoint, data_dir, overrides, output_md,
                                   output_json, hyp_dir)[1]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    markdown = common.run_main("nmt-score-run", score, FLAGS.model_dir, FLAGS.checkpoint,
                               FLAGS.data_dir, FLAGS.pick_on_val,
                               {k: FLAGS[k].value for k in DECODE_OVERRIDES}, FLAGS.output_md,
                               FLAGS.output_json, FLAGS.hyp_dir)
    print(markdown)


def run():
    common.app_run(main, "nmt-score-run", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
