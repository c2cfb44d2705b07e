"""Learning-rate schedule: linear warm-up, then none | rsqrt | exponential | plateau decay."""
import math


def learning_rate(step, config, plateau_scale=1.0):
    """The rate for 1-based `step` under a TrainConfig; plateau_scale is set by the trainer."""
    base = config.learning_rate
    if config.warmup_steps and step < config.warmup_steps:
        return base * step / config.warmup_steps
    if config.decay == "rsqrt":
        rate = base * math.sqrt(max(config.warmup_steps, 1) / max(step, 1))
    elif config.decay == "exponential":
        decays = max(0, step - config.decay_start) // config.decay_steps
        rate = base * config.decay_factor ** decays
    elif config.decay == "plateau":
        rate = base * plateau_scale
    else:
        return base
    return max(rate, config.min_learning_rate)


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
