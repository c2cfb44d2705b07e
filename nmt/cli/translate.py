"""nmt-translate: translate a file (or stdin) with a trained model dir.

    nmt-translate --model_dir=runs/en-de --input=test.en --output=test.de

Exactly one output line per input line. With --num_hypotheses=K > 1, K lines
per input line in Moses n-best format: `INDEX ||| TRANSLATION ||| SCORE`, INDEX
counting input lines from 0, best first.
"""
import time

from absl import app, flags, logging

from nmt import model_dir as model_dir_lib
from nmt import textio
from nmt.cli import common
from nmt.cli.flags import define_config_flags, overrides_from_flags
from nmt.translate import Translator

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A model dir written by nmt-train.")
flags.DEFINE_string("input", "-", "Source text: a file, a .gz file, or - for stdin.")
flags.DEFINE_string("output", "-", "Translations: a file (written whole at the end) or - for stdout.")
flags.DEFINE_enum("checkpoint", "best", ["best", "last"], "best dev BLEU, or the last saved.")
flags.DEFINE_integer("chunk_lines", 10000, "Lines read, translated and written at a time.")
DECODE_FLAGS = define_config_flags(["decode"])
flags.mark_flag_as_required("model_dir")


def translate_file(translator, input_path, output_path, chunk_lines):
    """Streams input to output in chunks; returns the number of lines."""
    count, start = 0, time.time()
    n_best = translator.config.num_hypotheses > 1
    with textio.atomic_output(output_path) as out:
        for chunk in textio.read_chunks(input_path, chunk_lines):
            for i, hyps in enumerate(translator.translate(chunk), start=count):
                if n_best:
                    out.writelines(f"{i} ||| {textio.one_line(h.text)} ||| {h.score:.4f}\n"
                                   for h in hyps)
                else:
                    out.write(textio.one_line(hyps[0].text) + "\n")
            count += len(chunk)
            logging.info("%d lines, %.1f sentences/s", count, count / (time.time() - start))
    return count


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        config, model, src_vocab, tgt_vocab = model_dir_lib.load(FLAGS.model_dir, FLAGS.checkpoint)
        config = common.build_config(overrides_from_flags(DECODE_FLAGS), base=config)
        translator = Translator(model, src_vocab, tgt_vocab, config.decode)
        count = translate_file(translator, FLAGS.input, FLAGS.output, FLAGS.chunk_lines)
        if translator.num_truncated:
            logging.warning("%d inputs longer than %d pieces were truncated",
                            translator.num_truncated, config.decode.max_input_len)
        logging.info("translated %d lines", count)

    common.run_main("nmt-translate", run)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
