"""Scoring translations with sacreBLEU (Post 2018) only; perplexity.

Hypotheses and references are detokenised text, compared cased with the
default 13a tokenizer, so numbers are comparable with anyone quoting the same
signature. The lower-cased BLEU is reported alongside because published
Multi30k tables usually are; label which one you quote.
"""
import collections
import math
from typing import Sequence

import sacrebleu

# bleu, bleu_lc, chrf: corpus scores (0-100); *_signature: sacreBLEU signatures.
Scores = collections.namedtuple("Scores", [
    "bleu", "bleu_lc", "chrf", "bleu_signature", "bleu_lc_signature", "chrf_signature"])


def score(hypotheses: Sequence[str], references: Sequence[str]) -> Scores:
    """Corpus BLEU (cased and lower-cased) and chrF of detokenised hypotheses
    against one reference each."""
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no sentences to score")
    bleu, bleu_lc, chrf = _metrics()
    results = [metric.corpus_score(hypotheses, [references]) for metric in (bleu, bleu_lc, chrf)]
    return Scores(results[0].score, results[1].score, results[2].score,
                  str(bleu.get_signature()), str(bleu_lc.get_signature()),
                  str(chrf.get_signature()))


def _metrics():
    """The (BLEU cased, BLEU lower-cased, chrF) metrics every score uses."""
    return sacrebleu.BLEU(), sacrebleu.BLEU(lowercase=True), sacrebleu.CHRF()


def signatures() -> dict:
    """{"bleu_signature", "bleu_lc_signature", "chrf_signature"} of the scores `score` reports
    (sacreBLEU knows the number of references only after scoring: one dummy pair)."""
    bleu, bleu_lc, chrf = _metrics()
    for metric in (bleu, bleu_lc, chrf):
        metric.corpus_score(["-"], [["-"]])
    return {"bleu_signature": str(bleu.get_signature()),
            "bleu_lc_signature": str(bleu_lc.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp(total negative log-likelihood in nats / number of target tokens)."""
    if total_tokens <= 0:
        raise ValueError(f"total_tokens must be positive (got {total_tokens})")
    try:
        return math.exp(total_nll / total_tokens)
    except OverflowError:
        return math.inf


def format_scores(scores: Scores) -> str:
    """A few aligned lines: each score with what it is and its signature."""
    return "\n".join([
        f"BLEU (cased)        {scores.bleu:6.2f}  {scores.bleu_signature}",
        f"BLEU (lower-cased)  {scores.bleu_lc:6.2f}  {scores.bleu_lc_signature}",
        f"chrF (cased)        {scores.chrf:6.2f}  {scores.chrf_signature}",
    ])
