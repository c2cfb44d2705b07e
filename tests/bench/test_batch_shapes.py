"""bench/batch_shapes.py: an epoch's loop steps, padding and shapes, counted from its batches."""

import numpy as np

from bench import batch_shapes
from nmt.data import batching


def batch(src_time, tgt_lens):
    rows, tgt_time = len(tgt_lens), max(tgt_lens)
    return batching.Batch(np.zeros([rows, src_time]), np.full(rows, src_time),
                          np.zeros([rows, tgt_time]), np.zeros([rows, tgt_time]),
                          np.array(tgt_lens))


def test_epoch_stats_sum_padded_times_and_share_real_target_positions():
    stats = batch_shapes.epoch_stats([batch(8, [3, 5]), batch(6, [4, 4, 4]), batch(8, [5, 2])])
    assert stats == {"batches": 3, "src_steps": 22, "tgt_steps": 14,
                     "real_target_share": 27 / 32, "shapes": 2}


def test_mean_stats_average_the_epochs():
    class Trainer:
        def epoch_dataset(self, epoch):
            return [batch(8, [3, 5])] * (epoch + 1)
    assert batch_shapes.mean_stats(Trainer(), 2) == {
        "batches": 1.5, "src_steps": 12.0, "tgt_steps": 7.5, "real_target_share": 0.8,
        "shapes": 1.0}
