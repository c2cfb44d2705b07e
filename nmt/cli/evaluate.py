"""nmt-evaluate: sacreBLEU BLEU (cased and lower-cased) and chrF, with signatures.

Score an existing file:   nmt-evaluate --hyp=out.de --ref=test.de
Translate, then score:    nmt-evaluate --model_dir=runs/en-de --src=test.en --ref=test.de
"""
import json

from absl import app, flags

from nmt import corpus, evaluation
from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("hyp", None, "Translations to score (one per line).")
flags.DEFINE_string("ref", None, "References, one per line (plain or .gz).")
flags.DEFINE_string("model_dir", None, "Translate --src with this model dir first.")
flags.DEFINE_string("src", None, "Source file to translate with --model_dir.")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best dev BLEU, or the last saved.")
flags.DEFINE_string("output", None, "With --model_dir: also write the translations here.")
flags.DEFINE_boolean("json", False, "Print one JSON object instead of text.")
DECODE_FLAGS = define_config_flags(["decode"])
flags.mark_flag_as_required("ref")


def hypotheses():
    if FLAGS.hyp:
        return corpus.read_lines(FLAGS.hyp, on_bad_utf8=corpus.REPLACE)
    if not (FLAGS.model_dir and FLAGS.src):
        raise app.UsageError("give --hyp, or --model_dir and --src")
    from nmt import model_dir as model_dir_lib, textio
    from nmt.translate import Translator
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(FLAGS.model_dir, FLAGS.checkpoint)
    config = common.build_config(overrides_from_flags(DECODE_FLAGS), base=config)
    lines = corpus.read_lines(FLAGS.src, on_bad_utf8=corpus.REPLACE)
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
        hyps = hypotheses()
        if len(hyps) != len(refs):
            raise corpus.CorpusError(f"{FLAGS.ref} has {len(refs)} lines but there are "
                                     f"{len(hyps)} hypotheses")
        scores = evaluation.score(hyps, refs)
        print(json.dumps(scores._asdict()) if FLAGS.json else evaluation.format_scores(scores))

    common.run_main("nmt-evaluate", run)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
