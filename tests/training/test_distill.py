"""Tests for nmt/training/distill.py: the student's corpus is the teachers' translations
(one model or an ensemble) of the training source, then the original pairs."""
import os

import pytest

from tests.conftest import tiny_corpus, write_tiny_model_dir
from nmt import model_dir as model_dir_lib
from nmt.data import textio
from nmt.data.corpus import CorpusError
from nmt.decode.ensemble import load_ensemble
from nmt.decode.translate import Translator
from nmt.training import distill


def write_train(directory, num_lines=24):
    src, tgt = tiny_corpus(num_lines)
    os.makedirs(directory, exist_ok=True)
    for lang, lines in (("en", src), ("de", tgt)):
        with open(os.path.join(directory, f"train.{lang}"), "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    return os.path.join(directory, "train"), src, tgt


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


@pytest.fixture(scope="module")
def two_teachers(tiny_model_dir, tmp_path_factory):
    """Two tiny model dirs with one vocabulary and different weights."""
    first = tiny_model_dir[0]
    second = str(tmp_path_factory.mktemp("second_teacher"))
    write_tiny_model_dir(second, seeds=(5,), vocab_dir=first)
    return [first, second]


def test_corpus_pairs_the_source_with_the_ensembles_translations(two_teachers, tmp_path):
    prefix, src, tgt = write_train(str(tmp_path / "data"))
    out_prefix = distill.build_corpus(two_teachers, prefix, "en", "de", str(tmp_path / "student"))
    assert out_prefix == str(tmp_path / "student" / "distilled" / "train")
    config, ensemble, src_vocab, tgt_vocab = load_ensemble(",".join(two_teachers))
    translator = Translator(ensemble, src_vocab, tgt_vocab, config.decode)
    expected = [textio.one_line(line) for line in translator.translate_text(src)]
    single = Translator(*model_dir_lib.load(two_teachers[0])[1:], config.decode)
    assert [textio.one_line(line) for line in single.translate_text(src)] != expected
    assert read(out_prefix + ".en") == src + src
    assert read(out_prefix + ".de") == expected + tgt
    assert read(str(tmp_path / "student" / "distilled" / "teacher.de")) == expected


def test_teachers_only_and_reuse_of_their_translations(two_teachers, tmp_path, monkeypatch):
    prefix, src, _ = write_train(str(tmp_path / "data"))
    out_dir = str(tmp_path / "student")
    out_prefix = distill.build_corpus(two_teachers[:1], prefix, "en", "de", out_dir,
                                      keep_original=False)
    teacher_lines = read(out_prefix + ".de")
    assert read(out_prefix + ".en") == src and len(teacher_lines) == len(src)

    def no_loading(_dirs):
        raise AssertionError("the teachers' translations were there: no model is needed")

    monkeypatch.setattr(distill, "load_ensemble", no_loading)
    distill.build_corpus(two_teachers[:1], prefix, "en", "de", out_dir, keep_original=False)
    assert read(out_prefix + ".de") == teacher_lines

    with open(os.path.join(out_dir, "distilled", "teacher.de"), "w", encoding="utf-8") as f:
        f.write("only one line\n")
    with pytest.raises(CorpusError, match=r"teacher\.de: 1 lines for the 24 of .*train\.en"):
        distill.build_corpus(two_teachers[:1], prefix, "en", "de", out_dir)
