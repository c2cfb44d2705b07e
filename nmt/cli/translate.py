"""nmt-translate: translate a file (or stdin) with a trained model dir.

    nmt-translate --model_dir=runs/en-de --input=test.en --output=test.de

Exactly one output line per input line. With --num_hypotheses=K > 1, K lines
per input line in Moses n-best format: `INDEX ||| TRANSLATION ||| SCORE`, INDEX
counting input lines from 0, best first.

--model_dir=A,B decodes with an ensemble of the model dirs (nmt/ensemble.py;
they must share vocabularies). A progress bar with sentences/s is drawn on
stderr when stderr is a terminal.

--alignments also writes OUTPUT.align: for each output line, the source piece
index (from 0) with the most attention for every target piece, space-separated,
e.g. "0 1 1 3" for a translation of 4 pieces (EOS not included; empty for an
empty translation). Pieces are those of the model's sentencepiece vocabularies
(`spm_encode --output_format=piece` shows them). The weights come from
teacher-forcing the produced translation (nmt/scoring.py).

A file --output is written as OUTPUT.partial, one chunk (--chunk_lines input
lines) at a time, each flushed and fsynced, and renamed to OUTPUT at the end
(atomic). If a run dies, OUTPUT.partial stays; re-running the same command with
--resume keeps the complete chunks in it (cutting off a half-written line or
chunk), skips as many input lines and appends, so the final OUTPUT is identical
to that of an uninterrupted run. OUTPUT.partial.json records --input, --model_dir,
--checkpoint, --chunk_lines, --alignments and the decoding settings; --resume
refuses to continue with other ones (one-line error), since the result would no
longer be one translation. Without --resume an existing OUTPUT.partial is
overwritten.
"""
import contextlib
import dataclasses
import gzip
import json
import os
import time

from absl import app, flags, logging

from nmt import textio
from nmt.config import ConfigError
from nmt.corpus import CorpusError
from nmt.cli import common
from nmt.cli.progress import ProgressBar
from nmt.cli import flags as flags_lib
from nmt.cli.flags import overrides_from_flags
from nmt.ensemble import load_ensemble
from nmt.scoring import ForcedDecoder, format_alignment
from nmt.translate import Translator

FLAGS = flags.FLAGS
flags_lib.define_model_dir("A model dir written by nmt-train (A,B,...: an ensemble).")
flags_lib.define_checkpoint()
flags.DEFINE_string("input", "-", "Source text: a file, a .gz file, or - for stdin.")
flags.DEFINE_string("output", "-", "Translations: a file (written as OUTPUT.partial, renamed "
                    "at the end) or - for stdout.")
flags.DEFINE_integer("chunk_lines", 10000, "Lines read, translated and written at a time.")
flags.DEFINE_boolean("alignments", False, "Also write OUTPUT.align (needs a file --output).")
flags.DEFINE_boolean("resume", False,
                     "Continue an interrupted run: keep the complete chunks in OUTPUT.partial "
                     "(and OUTPUT.align.partial), skip as many input lines, append; the result "
                     "equals an uninterrupted run's. Needs a file --output; other input, model "
                     "or decoding flags than the interrupted run's are refused.")
DECODE_FLAGS = flags_lib.define_config_flags(["decode"], inherited=True)
flags_lib.in_section("data", "input", "output", "chunk_lines", "alignments", "resume")
MAIN_FLAGS = ("input", "output", "beam_size", "length_penalty", "decode_batch_size",
              "num_hypotheses", "resume")


def count_lines(path):
    """Lines in a file (for the progress bar's total); None for stdin."""
    if path == "-":
        return None
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        return sum(1 for _ in f)


def resume_point(paths, lines_per_input, chunk_lines):
    """Input lines done in every PATH.partial: complete lines only, rounded down to
    whole chunks (the resumed run batches exactly like an uninterrupted one)."""
    complete = min(textio.count_complete_lines(p + textio.PARTIAL_SUFFIX) for p in paths)
    done = complete // lines_per_input
    return done - done % chunk_lines


def record_settings(output_path, settings, resume):
    """Writes OUTPUT.partial.json = settings; with resume, the one there must be equal.
    -> its path."""
    path = output_path + textio.PARTIAL_SUFFIX + ".json"
    if resume and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if changed:
            raise ConfigError(f"{path}: {output_path}{textio.PARTIAL_SUFFIX} was written with "
                              f"other {', '.join(changed)}; run without --resume to start over")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, sort_keys=True)
    os.replace(tmp, path)
    return path


def translate_file(translator, input_path, output_path, chunk_lines, aligner=None,
                   resume=False, settings=None):
    """Streams input to output in chunks; returns the number of lines.

    aligner: a ForcedDecoder; then OUTPUT.align gets one line per output line.
    resume: continue OUTPUT.partial (see the module docstring).
    settings: a JSON-able dict; --resume refuses an OUTPUT.partial written with others.
    """
    settings_path = None
    if settings is not None and output_path != "-":
        settings_path = record_settings(output_path, settings, resume)
    n_best = translator.config.num_hypotheses > 1
    per_input = translator.config.num_hypotheses  # output lines per input line
    outputs = [output_path] + ([f"{output_path}.align"] if aligner else [])
    done = resume_point(outputs, per_input, chunk_lines) if resume else 0
    if done:
        total = count_lines(input_path)
        if total is not None and total < done:
            raise CorpusError(f"{output_path}{textio.PARTIAL_SUFFIX} holds {done} translated "
                              f"lines but {input_path} has {total}: another input? Run "
                              f"without --resume")
        logging.info("resuming after %d lines already in %s%s", done, output_path,
                     textio.PARTIAL_SUFFIX)
    count, start = done, time.time()
    total = count_lines(input_path) if ProgressBar().enabled else None
    bar = ProgressBar(total=total - done if total is not None else None)
    with textio.resumable_output(output_path, done * per_input) as out, \
            (textio.resumable_output(outputs[-1], done * per_input) if aligner
             else contextlib.nullcontext()) as align_out:
        for chunk in textio.read_chunks(input_path, chunk_lines, skip=done):
            results = translator.translate(chunk, progress=bar.update)
            for i, hyps in enumerate(results, start=count):
                if n_best:
                    out.writelines(f"{i} ||| {textio.one_line(h.text)} ||| {h.score:.4f}\n"
                                   for h in hyps)
                else:
                    out.write(textio.one_line(hyps[0].text) + "\n")
            if aligner:
                shown = [hyps if n_best else hyps[:1] for hyps in results]
                limit = translator.config.max_input_len  # as translate() truncated them
                encoded = [x[:limit] for x in translator.src_vocab.encode(chunk)]
                src_ids = [x for x, hyps in zip(encoded, shown) for _ in hyps]
                tgt_ids = [h.ids for hyps in shown for h in hyps]
                align_out.writelines(format_alignment(a) + "\n"
                                     for a in aligner.alignment_ids(src_ids, tgt_ids))
                textio.sync(align_out)
            textio.sync(out)
            count += len(chunk)
            if not bar.enabled:
                logging.info("%d lines, %.1f sentences/s", count,
                             (count - done) / (time.time() - start))
    bar.close()
    if settings_path:
        os.remove(settings_path)
    return count


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        if FLAGS.alignments and FLAGS.output == "-":
            raise app.UsageError("--alignments writes OUTPUT.align: give a file --output")
        if FLAGS.resume and FLAGS.output == "-":
            raise app.UsageError("--resume continues OUTPUT.partial: give a file --output")
        config, model, src_vocab, tgt_vocab = load_ensemble(FLAGS.model_dir, FLAGS.checkpoint)
        config = common.build_config(overrides_from_flags(DECODE_FLAGS), base=config)
        translator = Translator(model, src_vocab, tgt_vocab, config.decode)
        aligner = ForcedDecoder(model, config.decode.batch_size) if FLAGS.alignments else None
        settings = {"input": FLAGS.input if FLAGS.input == "-" else os.path.abspath(FLAGS.input),
                    "model_dir": [os.path.abspath(d) for d in FLAGS.model_dir.split(",") if d],
                    "checkpoint": FLAGS.checkpoint, "chunk_lines": FLAGS.chunk_lines,
                    "alignments": FLAGS.alignments, "decode": dataclasses.asdict(config.decode)}
        count = translate_file(translator, FLAGS.input, FLAGS.output, FLAGS.chunk_lines, aligner,
                               resume=FLAGS.resume, settings=settings)
        if translator.num_truncated:
            logging.warning("%d inputs longer than %d pieces were truncated",
                            translator.num_truncated, config.decode.max_input_len)
        logging.info("translated %d lines", count)

    common.run_main("nmt-translate", run)


def run():
    common.app_run(main, "nmt-translate", __doc__, MAIN_FLAGS)


if __name__ == "__main__":
    run()
