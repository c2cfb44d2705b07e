"""Tests for nmt/decode/metrics.py: sacreBLEU scores and perplexity."""
import math

import pytest

from nmt.decode import metrics

HYPS = ["A man rides a bike down the street .", "Two dogs play in the snow ."]


def test_identical_output_scores_100():
    scores = metrics.score(HYPS, HYPS)
    assert scores.bleu == pytest.approx(100.0)
    assert scores.bleu_lc == pytest.approx(100.0)
    assert scores.chrf == pytest.approx(100.0)


def test_lower_casing_raises_score_on_case_only_difference():
    refs = [h.upper() for h in HYPS]
    scores = metrics.score(HYPS, refs)
    assert scores.bleu < 50.0
    assert scores.bleu_lc == pytest.approx(100.0)


def test_signatures_and_format():
    scores = metrics.score(HYPS, ["A man rides a bike .", "Two dogs play ."])
    assert "case:mixed" in scores.bleu_signature and "tok:13a" in scores.bleu_signature
    assert "case:lc" in scores.bleu_lc_signature
    assert "nc:6" in scores.chrf_signature
    text = metrics.format_scores(scores)
    assert "cased" in text and "lower-cased" in text
    assert scores.bleu_signature in text and f"{scores.chrf:.2f}" in text


def test_length_mismatch_and_empty_raise():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metrics.score(HYPS, HYPS[:1])
    with pytest.raises(ValueError):
        metrics.score([], [])


def test_perplexity():
    assert metrics.perplexity(0.0, 10) == pytest.approx(1.0)
    assert metrics.perplexity(10 * math.log(7.0), 10) == pytest.approx(7.0)
    assert metrics.perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError):
        metrics.perplexity(1.0, 0)
