"""Progress lines of training: losses, tokens/s and an ETA, every steps_per_stats steps."""
import math
import time

import tensorflow as tf
from absl import logging


class ThroughputMeter:
    """Accumulates losses and tokens between progress lines; prints them with an ETA."""

    def __init__(self, trainer, start_step):
        self.trainer = trainer
        self.start_time = self.last_time = time.time()
        self.start_step = start_step
        self._reset()

    def _reset(self):
        self.loss = self.nll = self.tokens = self.norm = 0.0
        self.steps = 0
        self.target_tokens = 0

    def add(self, out, norm, target_tokens):
        self.loss += float(out.loss_sum)
        self.nll += float(out.nll_sum)
        self.tokens += float(out.num_tokens)
        self.norm += float(norm)
        self.steps += 1
        self.target_tokens += target_tokens

    def unreported_seconds(self):
        """Wall time since the last progress line: not yet added to train_seconds."""
        return time.time() - self.last_time

    def report(self):
        """Logs a progress line and appends its record to the run's log; starts afresh."""
        now = time.time()
        elapsed = now - self.last_time
        p = self.trainer.progress
        p.train_seconds.assign_add(elapsed)
        step = int(p.step)
        tokens = max(self.tokens, 1)
        record = {
            "kind": "train", "step": step, "epoch": int(p.epoch) + 1,
            "loss": self.loss / tokens, "ppl": math.exp(min(self.nll / tokens, 50)),
            "lr": float(tf.convert_to_tensor(self.trainer.optimizer.learning_rate)),
            "grad_norm": self.norm / max(self.steps, 1),
            "tokens_per_s": self.target_tokens / max(elapsed, 1e-9),
            "elapsed_s": float(p.train_seconds)}
        logging.info("step %d epoch %d: loss %.3f, ppl %.2f, lr %.2e, |g| %.2f, %.0f tgt "
                     "tokens/s, %s elapsed%s", step, record["epoch"], record["loss"],
                     record["ppl"], record["lr"], record["grad_norm"], record["tokens_per_s"],
                     format_seconds(record["elapsed_s"]), self._eta(step, now))
        self.trainer.log_record(record)
        self.last_time = now
        self._reset()

    def _eta(self, step, now):
        """", ETA H:MM:SS, next eval in H:MM:SS" at the rate since the start."""
        t = self.trainer.config.train
        rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
        eta = ""
        if t.num_train_steps and rate > 0:
            eta = f", ETA {format_seconds((t.num_train_steps - step) / rate)}"
        if t.steps_per_eval and self.trainer.dev is not None and rate > 0:
            to_eval = t.steps_per_eval - step % t.steps_per_eval
            eta += f", next eval in {format_seconds(to_eval / rate)}"
        return eta


def format_seconds(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
