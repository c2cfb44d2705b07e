"""GNMT length and coverage penalties for scoring hypotheses (Wu et al. 2016 §7)."""
import tensorflow as tf

# Accumulated attention is clipped to [COVERAGE_FLOOR, 1] before the log, so a
# never-attended source position costs beta * log(1e-10) instead of -inf (which
# would tie every hypothesis that skipped a word).
COVERAGE_FLOOR = 1e-10
ALIGNMENTS_KEY = "alignments"  # the state entry beam search reads for coverage


def gnmt_length_penalty(length, alpha):
    """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016 §7); 1 when alpha == 0."""
    if alpha == 0:
        return tf.ones_like(tf.cast(length, tf.float32))
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def gnmt_coverage_penalty(accumulated, beta, source_mask=None):
    """GNMT coverage penalty beta * sum_i log(min(sum_j p_ij, 1)) (Wu et al. 2016 §7).

    accumulated [..., src_time]: attention summed over the decoding steps;
    source_mask [..., src_time] bool or None: only True positions (i < source
    length) are penalised. Returns [...]. The sum is floored at COVERAGE_FLOOR.
    """
    log_coverage = tf.math.log(tf.clip_by_value(accumulated, COVERAGE_FLOOR, 1.0))
    if source_mask is not None:
        log_coverage = tf.where(source_mask, log_coverage, 0.0)
    return beta * tf.reduce_sum(log_coverage, axis=-1)
