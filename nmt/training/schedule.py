"""Learning-rate schedule: linear warm-up, then none | rsqrt | exponential | plateau decay,
and optionally a linear anneal to the floor over the last part of the training budget."""
import math


def budget_used(step, config, train_seconds=0.0):
    """The share of the training budget used after 1-based `step` and `train_seconds` of
    training time: of num_train_steps or max_time_minutes, whichever ends first (0 if
    neither is set)."""
    used = 0.0
    if config.num_train_steps:
        used = step / config.num_train_steps
    if config.max_time_minutes:
        used = max(used, train_seconds / (60.0 * config.max_time_minutes))
    return used


def learning_rate(step, config, plateau_scale=1.0, progress=0.0):
    """The rate for 1-based `step` under a TrainConfig; plateau_scale is set by the trainer,
    progress is `budget_used` (read only with anneal_fraction > 0)."""
    base = config.learning_rate
    if config.warmup_steps and step < config.warmup_steps:
        rate = base * step / config.warmup_steps
    elif config.decay == "rsqrt":
        rate = base * math.sqrt(max(config.warmup_steps, 1) / max(step, 1))
    elif config.decay == "exponential":
        decays = max(0, step - config.decay_start) // config.decay_steps
        rate = base * config.decay_factor ** decays
    elif config.decay == "plateau":
        rate = base * plateau_scale
    else:
        rate = base
    if config.decay != "none" or config.anneal_fraction:
        rate = max(rate, config.min_learning_rate)
    if config.anneal_fraction:
        left = min(max((1.0 - progress) / config.anneal_fraction, 0.0), 1.0)
        rate = config.min_learning_rate + (rate - config.min_learning_rate) * left
    return rate


class Plateau:
    """Reduce-on-plateau on dev BLEU: after `patience` evaluations without a new best,
    the scale is multiplied by `factor`. Its state is (best, bad_evals, scale)."""

    def __init__(self, patience, factor, best=-1.0, bad_evals=0, scale=1.0):
        self.patience, self.factor = patience, factor
        self.best, self.bad_evals, self.scale = best, bad_evals, scale

    def update(self, bleu):
        if bleu > self.best:
            self.best, self.bad_evals = bleu, 0
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.patience:
                self.scale *= self.factor
                self.bad_evals = 0
        return self.scale
