r"""nmt-score: the model's log-probability of given translations.

    nmt-score --model_dir=runs/en-es --input=data/test.en --hyp=data/test.es \
        --output=scores.txt

One number per line pair: log p(target pieces + EOS | source), natural log,
summed over the target pieces and EOS (teacher-forced; no length penalty).
Sources longer than decode.max_input_len pieces are truncated as nmt-translate
does; a pair with an empty source gets nan. --model_dir=A,B scores with an
ensemble.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.cli.flags import overrides_from_flags
from nmt.decode.forced import score_files

FLAGS = flags.FLAGS
flags_lib.define_model_dir("A model dir written by nmt-train (A,B,...: an ensemble).")
flags_lib.define_checkpoint()
flags.DEFINE_string("input", None, "Source sentences, one per line (plain or .gz).")
flags.DEFINE_string("hyp", None, "Translations to score, one per line (plain or .gz).")
flags.DEFINE_string("output", "-", "Scores, one per line: a file or - for stdout.")
flags_lib.in_section("data", "input", "hyp", "output")
MAIN_FLAGS = ("input", "hyp", "output", "decode_batch_size")
DECODE_FLAGS = flags_lib.define_config_flags(
    ["decode"], inherited=True,
    skip={"decode.beam_size", "decode.length_penalty", "decode.coverage_penalty",
          "decode.num_hypotheses", "decode.max_length_ratio"})
for _name in ("input", "hyp"):
    flags.mark_flag_as_required(_name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common.run_main("nmt-score", score_files, FLAGS.model_dir, FLAGS.input, FLAGS.hyp,
                    FLAGS.output, FLAGS.checkpoint, overrides_from_flags(DECODE_FLAGS))


def run():
    common.app_run(main, "nmt-score", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
