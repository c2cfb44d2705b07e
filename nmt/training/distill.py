"""Sequence-level knowledge distillation (Kim & Rush 2016).

Teachers (one model dir, or several decoded as an ensemble) translate the
training source with beam search; a student then trains on their translations,
followed by the original pairs or instead of them. Each source line gets the
teachers' single most likely output: a target that is easier to fit than the
varied human references, and that carries what the ensemble knows.

    prefix = build_corpus(["runs/a", "runs/b"], "data/train", "en", "de", "runs/student")
    # then train with data.train_prefix = prefix (and train.init_from, or the
    # teachers' vocabulary copied in, to keep the pieces the teachers used)
"""
import dataclasses
import os
import time

from absl import logging

from nmt.data import corpus as corpus_lib
from nmt.data import textio
from nmt.decode.ensemble import load_ensemble
from nmt.decode.translate import Translator

DIR = "distilled"  # <out_dir>/distilled/: the teachers' output and the student's corpus


def teacher_translations(teacher_dirs, src_path, out_path, decode_overrides=None,
                         chunk_lines=2000):
    """The teachers' best translation of every line of src_path, one per line.

    Written to out_path whole or not at all; an existing out_path is read back
    instead of translating again (a rerun of an interrupted pipeline)."""
    lines = corpus_lib.read_lines(src_path)
    if os.path.exists(out_path):
        done = corpus_lib.read_lines(out_path)
        if len(done) != len(lines):
            raise corpus_lib.CorpusError(
                f"{out_path}: {len(done)} lines for the {len(lines)} of {src_path}; delete it "
                f"to translate again")
        logging.info("distillation: reusing the teachers' translations in %s", out_path)
        return done
    config, model, src_vocab, tgt_vocab = load_ensemble(",".join(teacher_dirs))
    decode = dataclasses.replace(config.decode, num_hypotheses=1, **(decode_overrides or {}))
    decode.validate()
    translator = Translator(model, src_vocab, tgt_vocab, decode)
    outputs, start = [], time.time()
    for begin in range(0, len(lines), chunk_lines):
        results = translator.translate(lines[begin:begin + chunk_lines])
        outputs.extend(textio.one_line(hyps[0].text) for hyps in results)
        rate = len(outputs) / (time.time() - start)
        logging.info("distillation: %d of %d lines, %.0f sentences/s, %.0f s to go",
                     len(outputs), len(lines), rate, (len(lines) - len(outputs)) / rate)
    with textio.atomic_output(out_path) as f:
        f.writelines(line + "\n" for line in outputs)
    return outputs


def build_corpus(teacher_dirs, train_prefix, src, tgt, out_dir, keep_original=True,
                 decode_overrides=None):
    """Writes out_dir/distilled/train.{src,tgt}: every training source line with the
    teachers' translation, then (keep_original) the original pairs. -> that prefix."""
    src_path = corpus_lib.find_corpus_file(train_prefix, src)
    tgt_path = corpus_lib.find_corpus_file(train_prefix, tgt)
    directory = os.path.join(out_dir, DIR)
    os.makedirs(directory, exist_ok=True)
    sources = corpus_lib.read_lines(src_path)
    targets = teacher_translations(teacher_dirs, src_path,
                                   os.path.join(directory, f"teacher.{tgt}"), decode_overrides)
    if keep_original:
        original = corpus_lib.read_lines(tgt_path)
        if len(original) != len(sources):
            raise corpus_lib.CorpusError(
                f"line counts differ: {src_path} has {len(sources)} lines, {tgt_path} has "
                f"{len(original)} lines")
        sources, targets = sources + sources, targets + original
    prefix = os.path.join(directory, "train")
    for lang, lines in ((src, sources), (tgt, targets)):
        with textio.atomic_output(f"{prefix}.{lang}") as f:
            f.writelines(line + "\n" for line in lines)
    logging.info("distillation: %s.{%s,%s} holds %d pairs (%s)", prefix, src, tgt,
                 len(sources), "teachers' then original" if keep_original else "teachers' only")
    return prefix
