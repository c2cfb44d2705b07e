"""Minimum Bayes risk reranking of a beam's n-best list (Kumar & Byrne 2004).

Beam search returns the hypothesis the model scores highest; MBR returns the one that
agrees most with the others, weighted by how likely the model finds them:

    expected_utility(i) = sum_j p(j) * BLEU(i, j),   p = softmax(search scores)

over the n-best list (j = i included). The utility is sacreBLEU's sentence BLEU with
its 13a tokenisation and add-one smoothing of the 2- to 4-gram precisions (Lin & Och
2004; `smooth_method="add-k"`), computed here from n-gram counts made once per
hypothesis, so an n-best list of n costs n tokenisations and n^2 count comparisons.
"""
import collections
import math

import numpy as np
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

MAX_ORDER = 4
_tokenize = Tokenizer13a()

NgramStats = collections.namedtuple("NgramStats", ["counts", "length"])
# counts: one Counter of n-gram tuples per order 1..MAX_ORDER; length: tokens


def ngram_stats(text):
    """A line -> its NgramStats under sacreBLEU's 13a tokenisation."""
    tokens = _tokenize(text).split()
    counts = [collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
              for n in range(1, MAX_ORDER + 1)]
    return NgramStats(counts, len(tokens))


def sentence_bleu(hyp, ref):
    """BLEU in [0, 1] of hypothesis NgramStats against reference NgramStats, with add-one
    smoothing for orders above 1: sacrebleu.sentence_bleu(..., smooth_method="add-k") / 100."""
    if hyp.length == 0:
        return 0.0
    correct = [sum(min(count, ref_counts[gram]) for gram, count in hyp_counts.items())
               for hyp_counts, ref_counts in zip(hyp.counts, ref.counts)]
    if correct[0] == 0:  # no unigram in common: no n-gram either
        return 0.0
    log_precision = math.log(correct[0] / hyp.length)
    for n in range(2, MAX_ORDER + 1):
        total = max(hyp.length - n + 1, 0)
        log_precision += math.log((correct[n - 1] + 1) / (total + 1))
    brevity = 1.0 if hyp.length >= ref.length else math.exp(1.0 - ref.length / hyp.length)
    return brevity * math.exp(log_precision / MAX_ORDER)


def expected_utilities(texts, scores):
    """texts [n], search scores [n] -> each text's expected BLEU against the list, [n]."""
    scores = np.asarray(scores, np.float64)
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    stats = [ngram_stats(text) for text in texts]
    return np.array([sum(w * sentence_bleu(hyp, ref) for w, ref in zip(weights, stats))
                     for hyp in stats])


def rerank(hypotheses):
    """Hypotheses (with .text and .score) -> the same, highest expected BLEU first (the
    search's order among equals)."""
    if len(hypotheses) < 2:
        return list(hypotheses)
    utilities = expected_utilities([h.text for h in hypotheses], [h.score for h in hypotheses])
    order = sorted(range(len(hypotheses)), key=lambda i: -utilities[i])
    return [hypotheses[i] for i in order]
