"""nmt-evaluate: sacreBLEU BLEU (cased and lower-cased) and chrF, with signatures.

    nmt-evaluate --hyp=test.hyp.es --ref=data/test.es

Translate, then score: nmt-evaluate --model_dir=runs/en-es --input=data/test.en
--ref=data/test.es (--output keeps the translations).
"""
import json

from absl import app, flags

from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.cli.flags import overrides_from_flags
from nmt.data import corpus
from nmt.decode import metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("hyp", None, "Translations to score, one per line (plain or .gz).")
flags.DEFINE_string("ref", None, "References, one per line (plain or .gz).")
flags_lib.define_model_dir("Translate --input with this model dir first (instead of --hyp).",
                           required=False)
flags_lib.define_checkpoint()
flags.DEFINE_string("input", None, "Source file to translate with --model_dir.")
flags.DEFINE_string("output", None, "With --model_dir: also write the translations here.")
flags.DEFINE_boolean("json", False, "Print one JSON object instead of text.")
DECODE_FLAGS = flags_lib.define_config_flags(["decode"], inherited=True)
flags.mark_flag_as_required("ref")
flags_lib.in_section("data", "hyp", "ref", "input", "output", "json")
MAIN_FLAGS = ("hyp", "ref", "input", "output", "json", "beam_size")


def hypotheses():
    if FLAGS.hyp:
        return corpus.read_lines(FLAGS.hyp, on_bad_utf8=corpus.REPLACE)
    if not (FLAGS.model_dir and FLAGS.input):
        raise app.UsageError("give --hyp, or --model_dir and --input")
    from nmt import model_dir as model_dir_lib
    from nmt.data import textio
    from nmt.decode.translate import Translator
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(FLAGS.model_dir, FLAGS.checkpoint)
    config = common.build_config(overrides_from_flags(DECODE_FLAGS), base=config)
    lines = corpus.read_lines(FLAGS.input, on_bad_utf8=corpus.REPLACE)
    hyps = [textio.one_line(t) for t in Translator(model, src_vocab, tgt_vocab,
                                                   config.decode).translate_text(lines)]
    if FLAGS.output:
        with textio.atomic_output(FLAGS.output) as out:
            out.writelines(h + "\n" for h in hyps)
    return hyps


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        refs = corpus.read_lines(FLAGS.ref, on_bad_utf8=corpus.REPLACE)
        if not refs:
            raise corpus.CorpusError(f"{FLAGS.ref}: no references to score against")
        hyps = hypotheses()
        if len(hyps) != len(refs):
            raise corpus.CorpusError(f"{FLAGS.ref} has {len(refs)} lines but there are "
                                     f"{len(hyps)} hypotheses")
        scores = metrics.score(hyps, refs)
        print(json.dumps(scores._asdict()) if FLAGS.json else metrics.format_scores(scores))

    common.run_main("nmt-evaluate", run)


def run():
    common.app_run(main, "nmt-evaluate", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
