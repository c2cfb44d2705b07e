"""Tests for nmt/decode/mbr.py: sentence BLEU against sacreBLEU, expected utility, reranking."""
import collections
import gzip
import os

import numpy as np
import pytest
import sacrebleu

from nmt.decode import mbr

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "multi30k")
Hyp = collections.namedtuple("Hyp", ["text", "score"])


def _sacrebleu(hyp, ref):
    return sacrebleu.sentence_bleu(hyp, [ref], smooth_method="add-k", smooth_value=1).score / 100


@pytest.fixture(scope="module")
def german_pairs():
    """Real val sentences paired with other val sentences and with edited copies of
    themselves (a word dropped, words swapped, truncated), plus edge cases."""
    with gzip.open(os.path.join(DATA, "val.de.gz"), "rt", encoding="utf-8") as f:
        lines = [next(f).strip() for _ in range(40)]
    pairs = list(zip(lines, lines[1:]))
    for line in lines:
        words = line.split()
        pairs += [(" ".join(words[1:]), line), (" ".join(words[::-1]), line),
                  (" ".join(words[:3]), line), (line, line), (line + " " + line, line)]
    pairs += [("", "Ein Hund."), ("Ein", "Ein Hund rennt."), ("Hund Hund Hund", "Ein Hund."),
              ("Katze.", "Ein Hund."), ("Ein Hund, der rennt!", "ein Hund der rennt")]
    return pairs


def test_sentence_bleu_equals_sacrebleu_add_one(german_pairs):
    for hyp, ref in german_pairs:
        ours = mbr.sentence_bleu(mbr.ngram_stats(hyp), mbr.ngram_stats(ref))
        assert ours == pytest.approx(_sacrebleu(hyp, ref), abs=1e-9), (hyp, ref)


def test_expected_utilities_are_probability_weighted_sentence_bleu():
    texts = ["Ein Mann fährt Fahrrad.", "Ein Mann fährt ein Fahrrad.",
             "Eine Frau sitzt auf einer Bank.", "Ein Mann fährt Rad."]
    scores = [-1.0, -1.5, -0.5, -3.0]
    weights = np.exp(scores) / np.exp(scores).sum()
    want = [sum(w * _sacrebleu(h, r) for w, r in zip(weights, texts)) for h in texts]
    np.testing.assert_allclose(mbr.expected_utilities(texts, scores), want, rtol=1e-9)


def test_rerank_prefers_the_consensus_over_the_top_scored_outlier():
    nbest = [Hyp("Eine Frau sitzt auf einer Bank.", -0.9),
             Hyp("Ein Mann fährt ein rotes Fahrrad.", -1.0),
             Hyp("Ein Mann fährt ein Fahrrad.", -1.1),
             Hyp("Ein Mann fährt ein rotes Rad.", -1.2)]
    reranked = mbr.rerank(nbest)
    assert reranked[0].text == "Ein Mann fährt ein rotes Fahrrad."
    assert reranked[-1].text == "Eine Frau sitzt auf einer Bank."
    assert sorted(reranked) == sorted(nbest)  # a reordering: nothing lost or added


def test_a_dominant_probability_wins_and_ties_keep_the_search_order():
    nbest = [Hyp("Ein Mann fährt ein rotes Fahrrad.", -1.0),
             Hyp("Ein Mann fährt ein Fahrrad.", -1.1),
             Hyp("Eine Frau sitzt auf einer Bank.", 5.0)]  # almost all of the mass
    assert mbr.rerank(nbest)[0].text == "Eine Frau sitzt auf einer Bank."
    same = [Hyp("Ein Hund.", -1.0), Hyp("Ein Hund.", -2.0)]
    assert mbr.rerank(same) == same
    assert mbr.rerank(same[:1]) == same[:1]
