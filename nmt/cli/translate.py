"""nmt-translate: translate a file (or stdin) with a trained model dir.

    nmt-translate --model_dir=runs/en-de --input=test.en --output=test.de

Exactly one output line per input line. With --num_hypotheses=K > 1, K lines
per input line in Moses n-best format: `INDEX ||| TRANSLATION ||| SCORE`, INDEX
counting input lines from 0, best first.

--model_dir=A,B decodes with an ensemble of the model dirs (nmt/decode/ensemble.py;
they must share vocabularies). A progress bar with sentences/s is drawn on
stderr when stderr is a terminal.

--alignments also writes OUTPUT.align: for each output line, the source piece
index (from 0) with the most attention for every target piece, space-separated,
e.g. "0 1 1 3" for a translation of 4 pieces (EOS not included; empty for an
empty translation). Pieces are those of the model's sentencepiece vocabularies
(`spm_encode --output_format=piece` shows them). The weights come from
teacher-forcing the produced translation (nmt/decode/forced.py).

A file --output is written as OUTPUT.partial, one chunk (--chunk_lines input
lines) at a time, each flushed and fsynced, and renamed to OUTPUT at the end
(atomic, and durable: the directory is fsynced). OUTPUT.lock keeps a second
nmt-translate off the same --output (it names the process holding it and exits
1). If a run dies, OUTPUT.partial stays; re-running the same command with
--resume keeps the complete chunks in it (cutting off a half-written line or
chunk), skips as many input lines and appends, so the final OUTPUT is identical
to that of an uninterrupted run. OUTPUT.partial.json records --input,
--model_dir, the checkpoints restored (path and SHA-256 of the .index file),
--chunk_lines, --alignments, the decoding settings, and after every chunk the
input lines done and the SHA-256 of their bytes; --resume refuses (one-line
error) another model, other settings or an input whose first lines changed,
since the result would no longer be one translation. Without --resume an
existing OUTPUT.partial is overwritten.

Input lines longer than max_input_len x 64 bytes are cut while they are read
(nmt.decode.translate.max_line_bytes), so a huge line or a gzip bomb never fills memory.
"""
import contextlib
import dataclasses
import glob
import json
import os
import time

from absl import app, flags, logging

from nmt import files
from nmt.cli import common
from nmt.cli import flags as flags_lib
from nmt.cli.flags import overrides_from_flags
from nmt.cli.progress import ProgressBar
from nmt.config import ConfigError
from nmt.data import textio
from nmt.data.corpus import CorpusError
from nmt.decode.ensemble import load_ensemble_checkpoints
from nmt.decode.forced import ForcedDecoder, format_alignment
from nmt.decode.translate import Translator, max_line_bytes

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


LOCK_SUFFIX = ".lock"
RECORD_SUFFIX = textio.PARTIAL_SUFFIX + ".json"


class PartialRecord:
    """OUTPUT.partial.json: the settings of a file translation and how far it got (input
    lines done and the SHA-256 of the input bytes read for them), rewritten
    atomically after every chunk; --resume continues only with equal settings and an
    input that starts with the same bytes."""

    def __init__(self, output_path, settings):
        """Call with OUTPUT locked: temporary files of a killed writer are removed."""
        self.output_path, self.settings = output_path, settings
        self.path = output_path + RECORD_SUFFIX
        self.partial = output_path + textio.PARTIAL_SUFFIX
        self.resumed = None  # the record continued by --resume
        directory, name = os.path.split(os.path.abspath(self.path))
        for stale in glob.glob(os.path.join(glob.escape(directory),
                                            f".{glob.escape(name)}.*.tmp")):
            os.remove(stale)  # files.atomic_write's, cut off before its rename

    def resume_point(self, outputs, lines_per_input):
        """Input lines to keep from the PATH.partial files: those the record names, if
        every file holds their complete lines; 0 if the files hold none."""
        complete = min(textio.count_complete_lines(p + textio.PARTIAL_SUFFIX)
                       for p in outputs) // lines_per_input
        if not complete:
            return 0
        old = self._read()
        self._check_settings(old["settings"])
        if complete < old["lines"]:
            raise CorpusError(f"{self.partial}: holds {complete} translated lines, fewer "
                              f"than the {old['lines']} that {self.path} records; run "
                              f"without --resume to start over")
        self.resumed = old
        return old["lines"]

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                old = json.load(f)
            if not (isinstance(old, dict) and isinstance(old.get("settings"), dict)
                    and isinstance(old.get("lines"), int) and "input_sha256" in old):
                raise ValueError("not a record of nmt-translate")
            return old
        except FileNotFoundError:
            problem = "missing, so what it was translated from is unknown"
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            problem = f"unreadable ({_first_line(e)})"
        raise ConfigError(f"{self.path}: {problem}; run without --resume to start over")

    def _check_settings(self, old):
        new = self.settings
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if "checkpoints" in changed:
            old_paths, new_paths = (_checkpoint_paths(x.get("checkpoints")) for x in (old, new))
            if old_paths != new_paths:
                raise ConfigError(f"{self.partial} was translated with {','.join(old_paths)}, "
                                  f"but this run loads {','.join(new_paths)}; run without "
                                  f"--resume to start over")
            raise ConfigError(f"{','.join(new_paths)}: other content than when "
                              f"{self.partial} was translated with it; run without "
                              f"--resume to start over")
        if changed:
            raise ConfigError(f"{self.path}: {self.partial} was written with other "
                              f"{', '.join(changed)}; run without --resume to start over")

    def check_input(self, reader, done):
        """Reads the first `done` input lines; they must be the ones translated before."""
        skipped = reader.skip(done)
        if skipped < done:
            raise CorpusError(f"{self.partial} holds {done} translated lines but "
                              f"{reader.path} has {skipped}: another input? Run without "
                              f"--resume")
        if reader.hexdigest() != self.resumed["input_sha256"]:
            raise CorpusError(f"{reader.path}: its first {done} lines differ from those "
                              f"translated in {self.partial}; run without --resume to "
                              f"start over")

    def save(self, reader):
        files.atomic_write(self.path, json.dumps(
            {"settings": self.settings, "lines": reader.lines_read,
             "input_sha256": reader.hexdigest()}, sort_keys=True))

    def remove(self):
        os.remove(self.path)
        files.fsync_path(os.path.dirname(os.path.abspath(self.path)))


def _checkpoint_paths(checkpoints):
    """The paths of a record's list of checkpoints ({"path", "sha256"} each)."""
    if not isinstance(checkpoints, list):
        return []
    return [str(c.get("path")) if isinstance(c, dict) else str(c) for c in checkpoints]


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def translate_file(translator, input_path, output_path, chunk_lines, aligner=None,
                   resume=False, settings=None):
    """Streams input to output in chunks; returns the number of lines.

    aligner: a ForcedDecoder; then OUTPUT.align gets one line per output line.
    resume: continue OUTPUT.partial (see the module docstring).
    settings: a JSON-able dict; --resume refuses an OUTPUT.partial written with others.
    A file output is locked (OUTPUT.lock) against a second translator.
    """
    max_bytes = max_line_bytes(translator.config)
    if output_path == "-":
        with textio.InputReader(input_path, max_bytes) as reader:
            return _translate_chunks(translator, reader, ["-"], chunk_lines, aligner)
    outputs = [output_path] + ([f"{output_path}.align"] if aligner else [])
    with textio.output_errors(output_path), \
            files.exclusive_lock(output_path + LOCK_SUFFIX, "this output"):
        record = PartialRecord(output_path, settings or {})
        per_input = translator.config.num_hypotheses  # output lines per input line
        done = record.resume_point(outputs, per_input) if resume else 0
        with textio.InputReader(input_path, max_bytes) as reader:
            if done:
                record.check_input(reader, done)
                logging.info("resuming after %d lines already in %s", done, record.partial)
            record.save(reader)
            count = _translate_chunks(translator, reader, outputs, chunk_lines, aligner, record)
        record.remove()
    return count


def _translate_chunks(translator, reader, outputs, chunk_lines, aligner, record=None):
    """Translates the rest of reader's lines into outputs (OUTPUT[, OUTPUT.align]),
    continuing after reader.lines_read lines; -> the number of input lines done."""
    n_best = translator.config.num_hypotheses > 1
    done = count = reader.lines_read
    keep = done * translator.config.num_hypotheses
    start = time.time()
    total = textio.count_input_lines(reader.path) if ProgressBar().enabled else None
    bar = ProgressBar(total=total - done if total is not None else None)
    with textio.resumable_output(outputs[0], keep) as out, \
            (textio.resumable_output(outputs[-1], keep) if aligner
             else contextlib.nullcontext()) as align_out:
        for chunk in reader.chunks(chunk_lines):
            results = translator.translate(chunk, progress=bar.update)
            for i, hyps in enumerate(results, start=count):
                if n_best:
                    out.writelines(f"{i} ||| {textio.one_line(h.text)} ||| {h.score:.4f}\n"
                                   for h in hyps)
                else:
                    out.write(textio.one_line(hyps[0].text) + "\n")
            if aligner:
                _write_alignments(translator, aligner, chunk, results, n_best, align_out)
                textio.sync(align_out)
            textio.sync(out)
            count += len(chunk)
            if record:
                record.save(reader)
            if not bar.enabled:
                logging.info("%d lines, %.1f sentences/s", count,
                             (count - done) / (time.time() - start))
    bar.close()
    if reader.num_cut:
        logging.warning("%s: %d lines longer than %d bytes were cut", reader.path,
                        reader.num_cut, max_line_bytes(translator.config))
    return count


def _write_alignments(translator, aligner, chunk, results, n_best, align_out):
    shown = [hyps if n_best else hyps[:1] for hyps in results]
    limit = translator.config.max_input_len  # as translate() truncated them
    encoded = [x[:limit] for x in translator.src_vocab.encode(chunk)]
    src_ids = [x for x, hyps in zip(encoded, shown) for _ in hyps]
    tgt_ids = [h.ids for hyps in shown for h in hyps]
    align_out.writelines(format_alignment(a) + "\n"
                         for a in aligner.alignment_ids(src_ids, tgt_ids))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    def run():
        if FLAGS.alignments and FLAGS.output == "-":
            raise app.UsageError("--alignments writes OUTPUT.align: give a file --output")
        if FLAGS.resume and FLAGS.output == "-":
            raise app.UsageError("--resume continues OUTPUT.partial: give a file --output")
        config, model, src_vocab, tgt_vocab, checkpoints = load_ensemble_checkpoints(
            FLAGS.model_dir, FLAGS.checkpoint)
        config = common.build_config(overrides_from_flags(DECODE_FLAGS), base=config)
        translator = Translator(model, src_vocab, tgt_vocab, config.decode)
        aligner = ForcedDecoder(model, config.decode.batch_size) if FLAGS.alignments else None
        settings = {"input": FLAGS.input if FLAGS.input == "-" else os.path.abspath(FLAGS.input),
                    "model_dir": [os.path.abspath(d) for d in FLAGS.model_dir.split(",") if d],
                    "checkpoints": [{"path": os.path.abspath(c.path), "sha256": c.sha256}
                                    for c in checkpoints],
                    "chunk_lines": FLAGS.chunk_lines,
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
