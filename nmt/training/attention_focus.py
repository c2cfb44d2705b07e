"""Is the attention looking along the sentence, or has it collapsed onto one piece?

A Luong-attention run can stall early in training: the decoder puts nearly all of its
attention on one source piece (usually the first, whose backward annotation sums up
the sentence) for every target piece, and stays there, learning as a language model
(docs/attention-collapse.md). Its dev BLEU stalls around half of a healthy run's.

The sign is easy to count. For each dev pair, teacher-forced along its reference, take
each target piece's most-attended source piece; the *mode share* is the share of target
pieces (and EOS) whose most-attended piece is their sentence's most frequent one, over
all pairs. A diagonal alignment spreads them; a collapsed one puts nearly all on one
piece. Measured on the first 256 val pairs of Multi30k en->de: healthy
bench and default runs 0.19-0.32 from 500 steps on (0.47 at 250 steps); two collapsed
bench runs 0.61-0.68 and 0.83-0.86 at every evaluation from 500 to 1,500 and 2,000
steps. A slow run can read high once and recover (0.53 at 1,000 steps, 0.25 at
2,000), so the warning says "looks collapsed" and a stall is a high share that stays.
Before 500 steps the share says nothing yet: a healthy run read 0.47 at 250 steps, a
hair under the threshold, and no collapsed run was measured that early, so evaluations
before FIRST_JUDGED_STEP record the share and do not warn.
"""
import numpy as np

from nmt.training.summaries import attention_weights

NUM_PAIRS = 256  # dev pairs measured at each evaluation
BATCH_PAIRS = 128  # teacher-forced together (bounds the [batch, tgt, src] weights' memory)
COLLAPSED_SHARE = 0.5  # mode shares above this are reported as a collapse
FIRST_JUDGED_STEP = 500  # the first step where healthy (<= 0.32) and collapsed (>= 0.61) runs part


def mode_share(weights):
    """`[tgt, src]` attention arrays, one per pair -> the share of all their target rows
    whose argmax is their own array's most frequent argmax."""
    in_mode = rows = 0
    for w in weights:
        most_attended = np.asarray(w).argmax(axis=-1)
        if most_attended.size:
            in_mode += np.bincount(most_attended).max()
            rows += most_attended.size
    if not rows:
        raise ValueError("mode_share: no attention rows")
    return float(in_mode / rows)


def dev_mode_share(model, src_vocab, tgt_vocab, pairs, num_pairs=NUM_PAIRS):
    """The mode share of the model's attention on the first num_pairs pairs of a parallel
    corpus (anything with .src and .tgt line lists)."""
    src = src_vocab.encode(list(pairs.src[:num_pairs]))
    tgt = tgt_vocab.encode(list(pairs.tgt[:num_pairs]))
    weights = []
    for start in range(0, len(src), BATCH_PAIRS):
        end = start + BATCH_PAIRS
        weights += attention_weights(model, src[start:end], tgt[start:end])
    return mode_share(weights)


def collapse_warning(step, share):
    """The log line for a collapsed attention, or None for a healthy one or before
    FIRST_JUDGED_STEP (too early to tell)."""
    if share <= COLLAPSED_SHARE or step < FIRST_JUDGED_STEP:
        return None
    return (f"step {step}: the attention looks collapsed: {share:.0%} of dev target pieces "
            f"attend most to their sentence's one favourite source piece (healthy runs: about "
            f"20%); if the next evaluation reads as high, dev BLEU will stall: restart with a "
            f"different --seed, or with softer, learned Luong scores (--attention=scaled_luong "
            f"--attention_sqrt_scaling; docs/attention-collapse.md)")
