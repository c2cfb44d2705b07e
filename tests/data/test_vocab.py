"""Tests for nmt/data/vocab.py: sentencepiece training, round trips, special ids."""
import os
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm

from nmt.data import corpus, vocab

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "multi30k")
NUM_LINES = 2000


def normalised(line):
    """What sentencepiece's nmt_nfkc keeps of a line."""
    return " ".join(unicodedata.normalize("NFKC", line).split())


@pytest.fixture(scope="module")
def lines():
    en = corpus.read_lines(os.path.join(DATA, "train.en.gz"))[:NUM_LINES]
    de = corpus.read_lines(os.path.join(DATA, "train.de.gz"))[:NUM_LINES]
    return en, de


@pytest.fixture(scope="module")
def joint(lines, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("joint"))
    src, tgt = vocab.ensure_vocabs(model_dir, lines[0], lines[1], vocab_size=500)
    return model_dir, src, tgt


def test_special_ids_are_as_named(joint):
    _, v, _ = joint
    assert (vocab.PAD_ID, vocab.UNK_ID, vocab.BOS_ID, vocab.EOS_ID) == (0, 1, 2, 3)
    assert v.pieces([0, 1, 2, 3]) == ["<pad>", "<unk>", "<s>", "</s>"]
    ids = v.encode(["A dog runs."])[0]
    assert vocab.BOS_ID not in ids and vocab.EOS_ID not in ids


def test_round_trip_real_lines(lines, joint):
    _, v, _ = joint
    for side in lines:
        decoded = [v.decode(ids) for ids in v.encode(side)]
        assert decoded == [normalised(line) for line in side]
        exact = [(d, line) for d, line in zip(decoded, side) if normalised(line) == line]
        assert len(exact) > 0.95 * len(side)
        assert all(d == line for d, line in exact)


def test_round_trip_unseen_unicode_and_emoji(joint):
    _, v, _ = joint
    text = ["Ein Bär 🐻 läuft über 東京 — naïve café 😀!", "Ελληνικά ✓ ąčęėįšųūž"]
    encoded = v.encode(text)
    assert all(vocab.UNK_ID not in ids for ids in encoded)  # byte fallback
    assert [v.decode(ids) for ids in encoded] == text


def test_decode_stops_at_eos_and_drops_pad_and_bos(joint):
    _, v, _ = joint
    ids = v.encode(["Two men are talking."])[0]
    padded = [vocab.BOS_ID] + ids + [vocab.EOS_ID] + ids + [vocab.PAD_ID] * 3
    assert v.decode(padded) == "Two men are talking."
    assert len(v.pieces(ids)) == len(ids)


def test_sampling_varies_with_seed_and_repeats_with_same_seed(lines, joint):
    _, v, _ = joint
    text = lines[0][:200]
    a = v.encode(text, sample_alpha=0.1, seed=1)
    b = v.encode(text, sample_alpha=0.1, seed=1)
    c = v.encode(text, sample_alpha=0.1, seed=2)
    assert a == b and a != c
    assert [v.decode(ids) for ids in c] == [normalised(line) for line in text]


def test_ensure_vocabs_joint_trains_once_then_loads(lines, joint):
    model_dir, src, tgt = joint
    assert src is tgt
    path = os.path.join(model_dir, "spm.model")
    mtime = os.path.getmtime(path)
    src2, tgt2 = vocab.ensure_vocabs(model_dir, ["different"], ["lines"], vocab_size=300)
    assert os.path.getmtime(path) == mtime
    assert src2 is tgt2 and src2.size == src.size
    assert src2.encode(lines[0][:50]) == src.encode(lines[0][:50])


def test_ensure_vocabs_separate(lines, tmp_path):
    src, tgt = vocab.ensure_vocabs(str(tmp_path), lines[0], lines[1], vocab_size=400,
                                   joint=False, model_type="bpe")
    assert src is not tgt
    names = sorted(f for f in os.listdir(tmp_path) if f.endswith(".model"))
    assert names == ["spm.src.model", "spm.tgt.model"]
    assert src.pieces(src.encode(["Zwei"])[0]) != tgt.pieces(tgt.encode(["Zwei"])[0])
    mtime = os.path.getmtime(tmp_path / "spm.src.model")
    vocab.ensure_vocabs(str(tmp_path), [], [], vocab_size=400, joint=False)
    assert os.path.getmtime(tmp_path / "spm.src.model") == mtime


def test_fingerprint_ignores_where_a_model_was_trained(lines, joint, tmp_path):
    model_dir, trained, _ = joint
    again_dir = tmp_path / "elsewhere"  # another dir, another temp input file, same corpus
    again, _ = vocab.ensure_vocabs(str(again_dir), lines[0], lines[1], vocab_size=500)
    with open(trained.path, "rb") as a, open(again.path, "rb") as b:
        assert a.read() != b.read()  # the paths are recorded in the model
    assert again.fingerprint() == trained.fingerprint()
    other = vocab.Vocab.load(vocab.train_sentencepiece(
        lines[0][:1000] + lines[1][:1000], str(tmp_path / "other"), vocab_size=500))
    assert other.fingerprint() != trained.fingerprint()
    bpe = vocab.Vocab.load(vocab.train_sentencepiece(
        lines[0] + lines[1], str(tmp_path / "bpe"), vocab_size=500, model_type="bpe"))
    assert bpe.fingerprint() != trained.fingerprint()


def test_tiny_corpus_and_gz_path_train(tmp_path):
    path = vocab.train_sentencepiece(
        ["a b", "a c"], str(tmp_path / "tiny"), vocab_size=8, byte_fallback=False)
    tiny = vocab.Vocab.load(path)
    assert tiny.decode(tiny.encode(["c a b"])[0]) == "c a b"
    gz = os.path.join(DATA, "val.en.gz")
    path = vocab.train_sentencepiece([Path(gz)], str(tmp_path / "val"), vocab_size=300)
    assert vocab.Vocab.load(path).size >= 300


def test_load_rejects_other_special_ids(tmp_path):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c", "b c d"] * 10), model_prefix=str(tmp_path / "x"),
        vocab_size=10, hard_vocab_limit=False, minloglevel=2)
    with pytest.raises(ValueError, match="special ids"):
        vocab.Vocab.load(str(tmp_path / "x.model"))
