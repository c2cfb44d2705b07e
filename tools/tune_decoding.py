"""Grid search of decoding settings on a run's dev set (val) only.

    python tools/tune_decoding.py --run_dir=runs/multi30k-default-en-de \
        --beam_sizes=1,5,10 --length_penalties=0,0.6,1.0 --coverage_penalties=0,0.2 \
        --average_last=1,3,5 --mbr=false,true

Scores every combination on the run's dev set only (cased BLEU, lower-cased BLEU
and chrF with sacreBLEU), for the --checkpoint model and, with --average_last,
the mean of each last K checkpoints; each distinct search runs once
(nmt/tuning.py). Writes --output_md and --output_json (default RUN_DIR/tuning.md
and RUN_DIR/tuning.json, written whole or not at all) and prints the Markdown,
ending with the best setting (highest cased BLEU).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from nmt import tuning  # noqa: E402
from nmt.cli import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A model dir written by recipes/multi30k.py or nmt-train.")
flags.DEFINE_string("checkpoint", "best", "best (RUN_DIR/best, else the latest), latest, or a "
                    "checkpoint path (prefix, or a directory with a checkpoint state file).")
flags.DEFINE_string("data_dir", None, "Directory with the dev set (default: the run's).")
flags.DEFINE_list("beam_sizes", ["1", "5", "10"], "Beam sizes to try.")
flags.DEFINE_list("length_penalties", ["0", "0.6", "1.0"], "GNMT length penalties (alpha).")
flags.DEFINE_list("coverage_penalties", ["0", "0.2"], "GNMT coverage penalties (beta).")
flags.DEFINE_list("average_last", [], "Also try the mean of the last K checkpoints, each K.")
flags.DEFINE_list("mbr", ["false"], "MBR reranking of the beam off (false) and/or on (true); "
                  "on applies to beams of 2 or more (nmt/mbr.py).")
flags.DEFINE_string("output_md", None, "Markdown table (default RUN_DIR/tuning.md).")
flags.DEFINE_string("output_json", None, "JSON table (default RUN_DIR/tuning.json).")
flags.mark_flag_as_required("run_dir")


def _boolean(text):
    if text.lower() not in ("true", "false"):
        raise app.UsageError(f"--mbr takes true and/or false (got {text!r})")
    return text.lower() == "true"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    mbr = [_boolean(m) for m in FLAGS.mbr]

    def run():
        _, markdown = tuning.tune(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.data_dir,
                                  [int(b) for b in FLAGS.beam_sizes],
                                  [float(a) for a in FLAGS.length_penalties],
                                  [float(b) for b in FLAGS.coverage_penalties],
                                  [int(k) for k in FLAGS.average_last],
                                  FLAGS.output_md, FLAGS.output_json, mbr)
        print(markdown)

    common.run_main("tune_decoding", run)


if __name__ == "__main__":
    app.run(main)
