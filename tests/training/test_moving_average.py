"""Tests for nmt/training/moving_average.py and its use by the trainer: the moving average's
math, the swap, checkpoints that hold the average, and exact resume."""
import os

import numpy as np
import pytest
import tensorflow as tf

from nmt import model_dir as model_dir_lib
from nmt.training import trainer as training
from nmt.training.moving_average import WeightAverage
from tests.training.test_trainer import assert_all_equal, tiny_config, values


def test_average_follows_the_formula_with_its_warm_up():
    w = tf.Variable([1.0, -2.0])
    average = WeightAverage([w], decay=0.9)
    expected = np.array([1.0, -2.0])
    for step, new in enumerate([[3.0, 0.0], [5.0, 4.0], [-1.0, 2.0], [0.5, 0.5]], start=1):
        w.assign(new)
        average.update([w], tf.constant(step))
        keep = min(0.9, (1 + step) / (10 + step))  # 0.18, 0.25, 0.31, 0.36: warm-up
        expected = keep * expected + (1 - keep) * np.array(new)
        np.testing.assert_allclose(average.values[0].numpy(), expected, rtol=1e-6)
    for _ in range(200):  # past warm-up the decay is the configured one
        w.assign([2.0, 2.0])
        average.update([w], tf.constant(1000))
    np.testing.assert_allclose(average.values[0].numpy(), [2.0, 2.0], atol=1e-6)
    assert float(average.decay_at(1000)) == pytest.approx(0.9)


def test_swap_exchanges_and_swapping_twice_restores():
    w, u = tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])
    average = WeightAverage([w, u], decay=0.5)
    w.assign([7.0, 8.0])
    u.assign([[9.0]])
    average.swap([w, u])
    assert_all_equal(values([w, u]), [np.array([1.0, 2.0]), np.array([[3.0]])])
    assert_all_equal(values(average.values), [np.array([7.0, 8.0]), np.array([[9.0]])])
    average.swap([w, u])
    assert_all_equal(values([w, u]), [np.array([7.0, 8.0]), np.array([[9.0]])])


def test_decay_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="decay"):
        WeightAverage([tf.Variable(1.0)], decay=1.0)


def test_checkpoints_hold_the_average_and_resume_is_exact(multi30k_slice, tmp_path):
    """The saved model is the average (what translation loads); the training weights
    are saved beside it; 3 + 3 resumed steps equal 6 straight ones, average included."""
    out = str(tmp_path / "run")
    config = tiny_config(multi30k_slice, num_train_steps=3, moving_average_decay=0.5)
    first = training.Trainer(config, out)
    first.run()
    trained, averaged = values(first.model.trainable_variables), values(
        first.weight_average.values)
    assert any(not np.array_equal(a, b) for a, b in zip(trained, averaged))

    _, loaded, _, _ = model_dir_lib.load(out, "last")
    assert_all_equal(values(loaded.trainable_variables), averaged)  # same build order

    resumed = training.Trainer(tiny_config(multi30k_slice, num_train_steps=6,
                                           moving_average_decay=0.5), out)
    resumed.restore()
    assert_all_equal(values(resumed.model.trainable_variables), trained)
    assert_all_equal(values(resumed.weight_average.values), averaged)
    resumed.run()

    straight = training.Trainer(tiny_config(multi30k_slice, num_train_steps=6,
                                            moving_average_decay=0.5), str(tmp_path / "straight"))
    straight.run()
    for a, b in zip(values(resumed.model.trainable_variables) + values(
            resumed.weight_average.values), values(straight.model.trainable_variables) +
            values(straight.weight_average.values)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_evaluation_scores_the_average(multi30k_slice, tmp_path):
    """The dev loss logged during training is the averaged model's, not the last weights'."""
    config = tiny_config(multi30k_slice, num_train_steps=4, moving_average_decay=0.5)
    config = config.replace(data={"dev_prefix": os.path.join(multi30k_slice.plain, "val")})
    trainer = training.Trainer(config, str(tmp_path))
    result = trainer.run()
    last_weights = trainer.evaluate(trainer.dev)
    with trainer.averaged_weights():
        averaged = trainer.evaluate(trainer.dev)
    assert result.loss == pytest.approx(averaged.loss)
    assert result.loss != pytest.approx(last_weights.loss)


def train_then_resume(multi30k_slice, out, first_decay, then_decay):
    """2 steps with moving_average_decay=first_decay, then a restored trainer for 4 with
    then_decay (0: off). -> (the first run's training weights, the restored trainer)."""
    first = training.Trainer(tiny_config(multi30k_slice, num_train_steps=2,
                                         moving_average_decay=first_decay), out)
    first.run()
    resumed = training.Trainer(tiny_config(multi30k_slice, num_train_steps=4,
                                           moving_average_decay=then_decay), out)
    resumed.restore()
    return values(first.model.trainable_variables), resumed


def test_a_run_resumed_with_an_average_starts_it_at_the_restored_weights(
        multi30k_slice, tmp_path):
    trained, resumed = train_then_resume(multi30k_slice, str(tmp_path), 0.0, 0.5)
    assert_all_equal(values(resumed.model.trainable_variables), trained)
    assert_all_equal(values(resumed.weight_average.values), trained)
    resumed.run()
    assert int(resumed.progress.step) == 4


def test_a_run_resumed_without_its_average_continues_from_the_training_weights(
        multi30k_slice, tmp_path):
    """Not from the average, which its checkpoints hold as the model."""
    trained, resumed = train_then_resume(multi30k_slice, str(tmp_path), 0.5, 0.0)
    assert resumed.weight_average is None
    assert_all_equal(values(resumed.model.trainable_variables), trained)
    resumed.run()
    assert int(resumed.progress.step) == 4
