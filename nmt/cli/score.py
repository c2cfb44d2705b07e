"""nmt-score: the model's log-probability of given translations.

    nmt-score --model_dir=runs/en-de --src=test.en --tgt=test.de --output=scores.txt

One number per line pair: log p(target pieces + EOS | source), natural log,
summed over the target pieces and EOS (teacher-forced; no length penalty).
Sources longer than decode.max_input_len pieces are truncated as nmt-translate
does; a pair with an empty source gets nan. --model_dir=A,B scores with an
ensemble.
"""
from absl import app, flags

from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags
from nmt.scoring import score_files

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A model dir written by nmt-train (A,B,...: an ensemble).")
flags.DEFINE_string("src", None, "Source sentences, one per line (plain or .gz).")
flags.DEFINE_string("tgt", None, "Translations to score, one per line (plain or .gz).")
flags.DEFINE_string("output", "-", "Scores: a file or - for stdout.")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best dev BLEU, or the last saved.")
DECODE_FLAGS = define_config_flags(["decode"], skip={"decode.beam_size", "decode.length_penalty",
                                                      "decode.coverage_penalty",
                                                      "decode.num_hypotheses",
                                                      "decode.max_length_ratio"})
for _name in ("model_dir", "src", "tgt"):
    flags.mark_flag_as_required(_name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common.run_main("nmt-score", score_files, FLAGS.model_dir, FLAGS.src, FLAGS.tgt,
                    FLAGS.output, FLAGS.checkpoint, overrides_from_flags(DECODE_FLAGS))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
