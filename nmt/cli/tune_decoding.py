r"""nmt-tune-decoding: grid search of decoding settings on a run's dev set only.

    nmt-tune-decoding --model_dir=runs/en-es --beam_sizes=1,5,10 \
        --length_penalties=0,0.6,1.0 --average_last=1,3,5

Scores every combination on the run's dev set only (cased BLEU, lower-cased BLEU
and chrF with sacreBLEU), for the --checkpoint model and, with --average_last,
the mean of each last K checkpoints; each distinct search runs once
(nmt/decode/tune_decoding.py). Writes --output_md and --output_json (default
MODEL_DIR/tuning.md and MODEL_DIR/tuning.json, written whole or not at all) and
prints the Markdown, ending with the best setting (highest cased BLEU).
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib

FLAGS = flags.FLAGS
flags_lib.define_model_dir()
flags_lib.define_checkpoint()
flags.DEFINE_string("data_dir", None, "Directory with the dev set (default: the directory of "
                    "the run's dev prefix).")
flags.DEFINE_list("beam_sizes", ["1", "5", "10"], "Beam sizes to try (hypotheses per step).")
flags.DEFINE_list("length_penalties", ["0", "0.6", "1.0"], "GNMT length penalties (alpha).")
flags.DEFINE_list("coverage_penalties", ["0", "0.2"], "GNMT coverage penalties (beta).")
flags.DEFINE_list("average_last", [], "Also try the mean of the last K checkpoints, for each "
                  "K (checkpoints).")
flags.DEFINE_list("mbr", ["false"], "MBR reranking of the beam off (false) and/or on (true); "
                  "on applies to beams of 2 or more (nmt/decode/mbr.py).")
flags.DEFINE_string("output_md", None, "Markdown table to write (default: MODEL_DIR/tuning.md).")
flags.DEFINE_string("output_json", None, "JSON table to write (default: MODEL_DIR/tuning.json).")
flags_lib.in_section("data", "data_dir", "output_md", "output_json")
flags_lib.in_section("decode", "beam_sizes", "length_penalties", "coverage_penalties",
                     "average_last", "mbr")
MAIN_FLAGS = ("beam_sizes", "length_penalties", "coverage_penalties", "average_last", "mbr")


def _boolean(text):
    if text.lower() not in ("true", "false"):
        raise app.UsageError(f"--mbr takes true and/or false (got {text!r})")
    return text.lower() == "true"


def _numbers(name, kind):
    try:
        return [kind(x) for x in FLAGS[name].value]
    except ValueError:
        raise app.UsageError(f"--{name} takes a list of numbers (got "
                             f"{','.join(FLAGS[name].value)})") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    mbr = [_boolean(m) for m in FLAGS.mbr]
    grid = (_numbers("beam_sizes", int), _numbers("length_penalties", float),
            _numbers("coverage_penalties", float), _numbers("average_last", int))

    def run():
        from nmt.decode import tune_decoding
        _, markdown = tune_decoding.tune(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.data_dir, *grid,
                                         FLAGS.output_md, FLAGS.output_json, mbr)
        print(markdown)

    common.run_main("nmt-tune-decoding", run)


def run():
    common.app_run(main, "nmt-tune-decoding", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
