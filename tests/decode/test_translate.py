"""Tests for nmt/decode/translate.py: one result per input line, order restored, batching
invisible."""
import os

import numpy as np
import pytest
import tensorflow as tf

from nmt.config import DecodeConfig, ModelConfig
from nmt.data import corpus, vocab as vocab_lib
from nmt.decode import mbr
from nmt.decode.translate import Translator, length_sorted_batches
from nmt.model.seq2seq import build_model

AWKWARD = [
    "A man in a blue shirt is standing on a ladder.",
    "",
    "   \t  ",
    "x" * 10_000,
    "bad \ufffd\ufffd bytes",                  # what invalid UTF-8 becomes on reading
    "emoji \U0001F600\U0001F680 and CJK 漢字かな",
    "control \x01\x07\x1b[31m characters\x7f",
    "carriage\rreturn inside",
    "line\u2028separator and next\x85line",
    "",
    "Two dogs.",
]


@pytest.fixture(scope="module")
def vocab(multi30k_slice, tmp_path_factory):
    prefix = os.path.join(multi30k_slice.plain, "train")
    lines = (corpus.read_lines(corpus.find_corpus_file(prefix, "en"))
             + corpus.read_lines(corpus.find_corpus_file(prefix, "de")))
    path = vocab_lib.train_sentencepiece(lines, str(tmp_path_factory.mktemp("vocab") / "spm"), 400)
    return vocab_lib.Vocab.load(path)


@pytest.fixture(scope="module")
def model(vocab):
    tf.random.set_seed(7)
    config = ModelConfig(num_units=16, embedding_size=16, num_encoder_layers=1,
                         num_decoder_layers=1, dropout=0.0)
    return build_model(config, vocab.size, vocab.size)


def translator(model, vocab, **decode):
    config = DecodeConfig(**{"max_input_len": 40, "max_length_ratio": 1.0, **decode})
    config.validate()
    return Translator(model, vocab, vocab, config)


@pytest.fixture(scope="module")
def val_lines(multi30k_slice):
    return corpus.read_lines(os.path.join(multi30k_slice.plain, "val.en"))[:30]


# --- length_sorted_batches ---

def check_cover(batches, n):
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))  # every index exactly once


@pytest.mark.parametrize("batch_size", [1, 3, 7, 100])
def test_length_sorted_batches_by_size(batch_size):
    lengths = np.random.default_rng(batch_size).integers(1, 30, size=50).tolist()
    batches = length_sorted_batches(lengths, batch_size)
    check_cover(batches, 50)
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert len(batches) == -(-50 // batch_size)  # only the last batch is partial
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first


@pytest.mark.parametrize("batch_tokens", [25, 60, 1000])
def test_length_sorted_batches_by_token_budget(batch_tokens):
    lengths = np.random.default_rng(batch_tokens).integers(1, 30, size=80).tolist()
    lengths[5] = 40  # longer than the smallest budget: alone in its batch
    batches = length_sorted_batches(lengths, batch_size=64, batch_tokens=batch_tokens)
    check_cover(batches, 80)
    for b in batches:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded <= batch_tokens or len(b) == 1
    # greedy: adding the next batch's first sentence would have broken the budget
    for b, nxt in zip(batches, batches[1:]):
        assert (len(b) + 1) * max(lengths[i] for i in b) > batch_tokens


def test_length_sorted_batches_edge_cases():
    assert length_sorted_batches([], 4) == []
    assert length_sorted_batches([5], 4) == [[0]]
    batches = length_sorted_batches([3, 3, 3, 3, 3], 2)  # ties keep input order
    assert batches == [[0, 1], [2, 3], [4]]


# --- Translator ---

def test_awkward_lines_give_one_result_each(model, vocab):
    t = translator(model, vocab, beam_size=2, num_hypotheses=2, batch_size=4)
    results = t.translate(AWKWARD)
    assert len(results) == len(AWKWARD)
    assert all(len(hyps) == 2 for hyps in results)
    for line, hyps in zip(AWKWARD, results):
        if not line.strip():
            assert [h.text for h in hyps] == ["", ""]
            assert [h.ids for h in hyps] == [[], []]
        else:
            assert all(h.score < 0.0 for h in hyps)  # a real decode: a log-probability
    assert t.num_truncated == 1  # the 10,000-character line
    assert len(t.translate_text(AWKWARD)) == len(AWKWARD)


def test_only_empty_lines_never_call_the_model(model, vocab):
    t = translator(model, vocab)
    t._translate_batch = None  # any call would fail
    assert t.translate_text(["", " ", "\t"]) == ["", "", ""]
    assert t.translate([]) == []


@pytest.mark.parametrize("decode", [dict(beam_size=1), dict(beam_size=3, length_penalty=0.6)])
def test_batched_translation_equals_one_at_a_time(model, vocab, val_lines, decode):
    lines = val_lines + ["", "Ein Satz."]
    one = translator(model, vocab, batch_size=1, **decode).translate(lines)
    batched = translator(model, vocab, batch_size=8, **decode).translate(lines)
    by_tokens = translator(model, vocab, batch_size=64, batch_tokens=120, **decode).translate(lines)
    assert len({h[0].text for h in one}) > len(lines) // 2  # rows differ: a mix-up would show
    for a, b, c in zip(one, batched, by_tokens):
        assert a[0].ids == b[0].ids == c[0].ids
        assert a[0].text == b[0].text == c[0].text
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)
        assert a[0].score == pytest.approx(c[0].score, abs=1e-4)


def test_results_follow_input_order(model, vocab, val_lines):
    t = translator(model, vocab, batch_size=4)
    forward = t.translate_text(val_lines[:12])
    backward = t.translate_text(val_lines[:12][::-1])
    assert len(set(forward)) > 6
    assert backward == forward[::-1]


def test_mbr_reranks_the_whole_beam_and_keeps_num_hypotheses(model, vocab, val_lines):
    """mbr=True: the search's full n-best (beam_size), reordered by nmt.decode.mbr.rerank, cut to
    num_hypotheses; one result per line, empty lines included."""
    lines = val_lines[:12] + [""]
    full = translator(model, vocab, beam_size=4, num_hypotheses=4, batch_size=5).translate(lines)
    picked = translator(model, vocab, beam_size=4, num_hypotheses=2, mbr=True,
                        batch_size=5).translate(lines)
    assert len(picked) == len(lines) and all(len(hyps) == 2 for hyps in picked)
    for nbest, hyps in zip(full[:-1], picked[:-1]):
        want = mbr.rerank(nbest)[:2]
        assert [h.ids for h in hyps] == [h.ids for h in want]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in want], abs=1e-4)
    assert [h.text for h in picked[-1]] == ["", ""]
    assert any(p[0].ids != f[0].ids for p, f in zip(picked, full))  # MBR changed a pick
