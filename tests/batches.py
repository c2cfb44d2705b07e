"""Random padded training batches for tests that need a real `Batch`; a recorder of the
dtypes a train step asks the model's loss for."""
import numpy as np
import tensorflow as tf

from nmt.data.batching import Batch


def random_batch(rng, batch=4, src_time=7, tgt_time=6, vocab=20):
    """A Batch with random lengths in [1, time] and ids in [3, vocab), PAD (0) after."""
    src_len = rng.integers(1, src_time + 1, batch).astype(np.int32)
    tgt_len = rng.integers(1, tgt_time + 1, batch).astype(np.int32)

    def ids(lengths, time):
        return np.where(np.arange(time) < lengths[:, None],
                        rng.integers(3, vocab, (batch, time)), 0).astype(np.int32)

    return Batch(*map(tf.constant, (ids(src_len, src_time), src_len, ids(tgt_len, tgt_time),
                                    ids(tgt_len, tgt_time), tgt_len)))


def record_loss_dtypes(model):
    """Wraps model.loss; -> a list that gets (compute_dtype, projection_dtype,
    projection_gradient_dtype) for each call (each trace, inside a tf.function)."""
    seen, original = [], model.loss

    def recording(*args, **kwargs):
        seen.append((kwargs["compute_dtype"], kwargs["projection_dtype"],
                     kwargs["projection_gradient_dtype"]))
        return original(*args, **kwargs)
    model.loss = recording
    return seen
