"""Tests for nmt/training/schedule.py: warm-up, rsqrt / exponential / plateau decay, the floor,
the anneal over the budget's end."""
import math

import pytest

from nmt.config import TrainConfig
from nmt.training import schedule


def rate(step, plateau_scale=1.0, **fields):
    config = TrainConfig(**{"learning_rate": 1.0, "min_learning_rate": 0.0,
                            "num_train_steps": 1, **fields})
    config.validate()
    return schedule.learning_rate(step, config, plateau_scale,
                                  progress=schedule.budget_used(step, config))


def test_no_decay_is_constant():
    assert [rate(s) for s in (1, 10, 10_000)] == [1.0, 1.0, 1.0]


def test_warmup_is_linear_from_zero_to_the_base_rate():
    rates = [rate(s, warmup_steps=10) for s in range(1, 11)]
    assert rates == pytest.approx([s / 10 for s in range(1, 11)])
    steps = [b - a for a, b in zip(rates, rates[1:])]
    assert steps == pytest.approx([0.1] * 9)  # equal increments: linear
    assert rate(11, warmup_steps=10) == 1.0 and rate(500, warmup_steps=10) == 1.0


def test_rsqrt_decays_as_one_over_sqrt_step_after_warmup():
    warmup = 100
    assert rate(warmup, decay="rsqrt", warmup_steps=warmup) == pytest.approx(1.0)  # continuous
    for step in (100, 400, 2500, 10_000):
        assert rate(step, decay="rsqrt", warmup_steps=warmup) == pytest.approx(
            math.sqrt(warmup / step))
    # quadrupling the step halves the rate
    assert rate(1600, decay="rsqrt", warmup_steps=warmup) == pytest.approx(
        rate(400, decay="rsqrt", warmup_steps=warmup) / 2)
    assert rate(50, decay="rsqrt", warmup_steps=warmup) == pytest.approx(0.5)  # still warming up


def test_exponential_halves_every_decay_steps_after_decay_start():
    fields = dict(decay="exponential", decay_factor=0.5, decay_steps=100, decay_start=1000)
    assert rate(1, **fields) == 1.0
    assert rate(1099, **fields) == 1.0
    assert rate(1100, **fields) == 0.5
    assert rate(1199, **fields) == 0.5
    assert rate(1200, **fields) == 0.25
    assert rate(1000 + 10 * 100, **fields) == pytest.approx(0.5 ** 10)


def test_exponential_needs_decay_steps():
    with pytest.raises(ValueError, match="decay_steps"):
        TrainConfig(decay="exponential", decay_steps=0, num_train_steps=1).validate()


def test_plateau_uses_the_trainer_scale():
    assert rate(10, plateau_scale=0.25, decay="plateau") == 0.25
    assert rate(10, plateau_scale=0.25) == 1.0  # only decay=plateau reads the scale


@pytest.mark.parametrize("fields", [
    dict(decay="rsqrt", warmup_steps=1),
    dict(decay="exponential", decay_steps=1, decay_factor=0.5),
])
def test_min_learning_rate_is_a_floor(fields):
    assert rate(10 ** 9, min_learning_rate=1e-3, **fields) == 1e-3
    assert rate(10 ** 9, min_learning_rate=0.0, **fields) < 1e-3
    assert rate(10, plateau_scale=1e-9, decay="plateau", min_learning_rate=1e-3) == 1e-3


def test_plateau_reduces_after_patience_evaluations_without_gain():
    plateau = schedule.Plateau(patience=2, factor=0.5)
    assert plateau.update(10.0) == 1.0  # first evaluation is a new best
    assert plateau.update(12.0) == 1.0  # gain
    assert plateau.update(11.0) == 1.0  # 1 without gain
    assert plateau.update(12.0) == 0.5  # 2 without gain (equal is no gain): reduce
    assert plateau.bad_evals == 0  # and count again from zero
    assert plateau.update(11.5) == 0.5
    assert plateau.update(12.5) == 0.5  # a gain resets the count
    assert plateau.update(12.0) == 0.5
    assert plateau.update(12.0) == 0.25
    assert plateau.best == 12.5


def test_plateau_resumes_from_its_saved_state():
    plateau = schedule.Plateau(patience=3, factor=0.1, best=20.0, bad_evals=2, scale=0.5)
    assert plateau.update(19.0) == pytest.approx(0.05)


def test_anneal_lowers_the_rate_linearly_to_the_floor_over_the_budgets_last_fraction():
    fields = dict(num_train_steps=1000, anneal_fraction=0.2, min_learning_rate=0.1)
    # progress is the share of the budget used; the last 20 % anneals 1.0 -> 0.1
    assert rate(800, **fields) == pytest.approx(1.0)
    assert rate(900, **fields) == pytest.approx(0.1 + 0.9 * 0.5)
    assert rate(950, **fields) == pytest.approx(0.1 + 0.9 * 0.25)
    assert rate(1000, **fields) == pytest.approx(0.1)
    # it scales whatever the decay gives (here rsqrt: 0.5 at step 400 of warm-up 100)
    assert rate(400, decay="rsqrt", warmup_steps=100, num_train_steps=500,
                anneal_fraction=0.4, min_learning_rate=0.0) == pytest.approx(0.5 * 0.5)


def test_anneal_on_a_time_budget_follows_the_training_time():
    config = TrainConfig(learning_rate=1.0, min_learning_rate=0.0, max_time_minutes=10,
                         anneal_fraction=0.5)
    config.validate()
    used = [schedule.budget_used(10 ** 6, config, seconds) for seconds in (0, 300, 450, 600)]
    assert used == pytest.approx([0.0, 0.5, 0.75, 1.0])
    assert schedule.learning_rate(10 ** 6, config, progress=0.75) == pytest.approx(0.5)
    # two budgets: whichever ends first
    both = TrainConfig(num_train_steps=100, max_time_minutes=10)
    assert schedule.budget_used(50, both, 540) == pytest.approx(0.9)
    assert schedule.budget_used(90, both, 60) == pytest.approx(0.9)


def test_anneal_needs_a_step_or_time_budget_and_a_fraction_in_range():
    with pytest.raises(ValueError,
                       match="anneal_fraction needs num_train_steps or max_time_minutes"):
        TrainConfig(num_epochs=3, anneal_fraction=0.2).validate()
    with pytest.raises(ValueError, match="anneal_fraction must be in"):
        TrainConfig(num_train_steps=10, anneal_fraction=1.5).validate()
