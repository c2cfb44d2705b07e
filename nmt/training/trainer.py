"""The training loop: batches, learning rate, stop conditions, checkpoints and evaluations.

`train(config, out_dir)` is the one entry point. Re-running it on the same
out_dir resumes from the last checkpoint (nmt.training.resume): weights, optimizer slots,
step, schedule state, dropout RNG and the data position (epoch, batch in epoch);
with `checkpoint`, from an older checkpoint of the run instead.
"""
import contextlib
import dataclasses
import json
import math
import os
import signal

import tensorflow as tf
from absl import logging

from nmt import checkpoint_files
from nmt import files
from nmt import run_dir
from nmt import run_log
from nmt.data import batching as batching_lib
from nmt.data import corpus as corpus_lib
from nmt.data import training_data
from nmt.decode import metrics
from nmt.files import fault_point
from nmt.model import devices
from nmt.model import precision
from nmt.model.seq2seq import build_model
from nmt.run_dir import writing
from nmt.training import dev_evaluation
from nmt.training import distribute
from nmt.training import resume
from nmt.training import schedule
from nmt.training import summaries as summaries_lib
from nmt.training import throughput
from nmt.training.dev_evaluation import EvalResult  # noqa: F401  (the result of train())
from nmt.training.resume import Progress, TrainingError  # noqa: F401
from nmt.training.train_step import (  # noqa: F401  (importable from here, as the docs show)
    TRAIN_BATCH_SIGNATURE, make_eval_step, make_optimizer, make_train_step)
from nmt.training.moving_average import WeightAverage

# --checkpoint values that mean the newest checkpoint, the one a rerun resumes from.
NEWEST = ("", "last", "latest")


class Trainer:
    """Holds one run's state; `run()` trains until a stop condition."""

    def __init__(self, config, out_dir, lock=False, checkpoint=""):
        """lock: hold DIR/train.lock until close(), so that a second trainer on out_dir
        stops at once with a LockError naming this process. checkpoint: a checkpoint
        of this run's DIR/ckpt to resume from instead of the newest
        (checkpoint_files.rewind says what becomes of the newer ones)."""
        self.config = config.validate()
        self.strategy = distribute.make_strategy(config.train)  # first: it sets up collectives
        self.restore_dir = os.path.join(out_dir, run_dir.CKPT_DIR)  # the chief's
        chief_dir, out_dir = out_dir, distribute.worker_dir(out_dir, self.strategy)
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self._held = contextlib.ExitStack()
        if lock:
            self._held.enter_context(files.exclusive_lock(
                os.path.join(out_dir, run_dir.LOCK_FILE), f"the run dir {out_dir}"))
        try:
            run_dir.open_for_writing(out_dir)
            self._rewind_to = None  # the chief rewrites the state file the workers read
            self._abandoned_best = None  # where a rewind set best/ of later steps aside
            if checkpoint not in NEWEST and out_dir == chief_dir:
                self._rewind_to = checkpoint_files.check_rewind(self.restore_dir, checkpoint)
            self._set_up(config, out_dir)
        except BaseException:
            self.close()
            raise

    def close(self):
        """Releases the run dir's lock (if this trainer holds it)."""
        self._held.close()

    def _set_up(self, config, out_dir):
        resuming = checkpoint_files.check_run_dir(  # a damaged one: a ModelDirError
            out_dir, rewinding=self._rewind_to is not None)
        run_dir.check_config(out_dir, config)
        d = config.data
        if config.train.init_from:  # its pieces, before any are trained here
            run_dir.copy_vocabs(config.train.init_from, out_dir, d)
        if resuming:  # a vocabulary trained afresh would renumber the pieces
            run_dir.load_vocabs(out_dir, config)
        self.data = training_data.prepare(d, out_dir)  # logs a report; fatal: raises
        self.src_vocab, self.tgt_vocab, self.encoded = self.data[:3]
        self.dev = self._read_eval_set(d.dev_prefix)
        self._build(config, out_dir)
        with writing(out_dir):  # the run's identity, once its data and model are set up
            run_dir.save_config(out_dir, config)

    def _build(self, config, out_dir):
        distribute.check_workers_agree(self.strategy, "the encoded training data",
                                       training_data.fingerprint(self.data))
        tf.random.set_seed(config.train.seed)
        if config.train.deterministic:  # process-wide; on GPU, cuDNN and atomics need it
            tf.config.experimental.enable_op_determinism()
        placement = devices.training_placement(config.model, config.train)
        with distribute.scope(self.strategy):
            self.model = build_model(config.model, self.src_vocab.size, self.tgt_vocab.size,
                                     placement=placement, seed=config.train.seed)
            self.optimizer = make_optimizer(config.train)
            self.loss_scale = (precision.DynamicLossScale() if config.train.precision == "fp16"
                               else None)
            if self.strategy is not None:
                self.model_variables_built()  # slots are created in the scope
            self.weight_average = (
                WeightAverage(self.model.trainable_variables, config.train.moving_average_decay)
                if config.train.moving_average_decay else None)
        self.progress = Progress()
        self.vocab_record = run_dir.VocabRecord(self.src_vocab, self.tgt_vocab)
        if self._rewind_to:  # once the run is set up: a failed start changes nothing
            with writing(self.restore_dir):
                checkpoint_files.rewind(self.restore_dir, self._rewind_to)
                self._abandoned_best = checkpoint_files.set_abandoned_best_aside(
                    out_dir, checkpoint_files.step_of(self._rewind_to))
        self.checkpoints = resume.RunCheckpoints(out_dir, self, config.train.keep_checkpoints,
                                                 self.strategy)
        self.checkpoint = self.checkpoints.checkpoint
        self.manager, self.best_manager = self.checkpoints.manager, self.checkpoints.best_manager
        self.train_step = self._make_train_step(placement)
        if self.weight_average is not None:
            variables = self.model.trainable_variables
            self.update_average = tf.function(
                lambda step: self.weight_average.update(variables, step))
        self.eval_step = make_eval_step(self.model)
        self.stop_signal = None
        self.summaries = summaries_lib.Summaries(out_dir)

    def _make_train_step(self, placement):
        t = self.config.train
        if self.strategy is not None:
            return distribute.make_train_step(self.strategy, self.model, self.optimizer, t,
                                              self.loss_scale)
        if placement and t.jit_compile and t.num_gpus > 1:
            logging.info("jit_compile off: XLA compiles for one device, the model is placed "
                         "on %d", t.num_gpus)
            t = dataclasses.replace(t, jit_compile=False)
        return make_train_step(self.model, self.optimizer, t, self.loss_scale)

    def averaged_weights(self):
        """Inside, the model holds the moving average of its weights (if one is kept)."""
        return resume.averaged_weights(self.weight_average, self.model)

    def _read_eval_set(self, prefix):
        if not prefix:
            return None
        d = self.config.data
        return corpus_lib.read_parallel(corpus_lib.find_corpus_file(prefix, d.src),
                                        corpus_lib.find_corpus_file(prefix, d.tgt))

    def restore(self):
        """Resumes from the latest checkpoint if there is one; says which."""
        path = checkpoint_files.resume_path(self.restore_dir)  # every worker: the chief's
        if not path:
            logging.info("starting a new run in %s", self.out_dir)
            with writing(self.out_dir):  # records of a run killed before its first checkpoint
                run_log.trim_log(self.out_dir, 0)
            if self.config.train.init_from:
                self.initialise_from(self.config.train.init_from)
            return
        self.checkpoints.restore(path)
        p = self.progress
        if self._abandoned_best:  # its score is of steps that no longer exist
            p.best_bleu.assign(-1.0)
            p.bad_evals.assign(0)
            logging.info("best/ of the abandoned steps is now %s; this run's evaluations "
                         "choose a new best/", self._abandoned_best)
        logging.info("resuming from %s at step %d (epoch %d, batch %d)", path,
                     int(p.step), int(p.epoch) + 1, int(p.batch_in_epoch))
        with writing(self.out_dir):
            run_log.trim_log(self.out_dir, int(p.step))  # records of steps to be redone

    def initialise_from(self, model_dir):
        """A new run takes the weights of model_dir's best checkpoint (resume.initialise_from)."""
        resume.initialise_from(self, model_dir)

    def model_variables_built(self):
        """Creates the optimizer slots so a checkpoint restores them eagerly."""
        self.optimizer.build(self.model.trainable_variables)

    def epoch_dataset(self, epoch, start=0):
        """Epoch `epoch`'s batches from batch `start` on (training_data.epoch_dataset)."""
        d, t = self.config.data, self.config.train
        return training_data.epoch_dataset(self.data, d, seed=t.seed + epoch, start=start)

    def _install_signal_handlers(self):
        """SIGINT/SIGTERM: stop after the current step and save. The handlers put the
        previous ones back at once, so a second signal acts as it would without them
        (Ctrl-C twice interrupts at once). -> the previous handlers, for run() to restore."""
        stopping = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in stopping}

        def handler(signum, _frame):
            self.stop_signal = signum
            self._restore_signal_handlers(previous)
            logging.warning("received %s: saving a checkpoint and stopping (send it again to "
                            "stop at once)", signal.Signals(signum).name)

        for sig in stopping:
            signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous):
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def run(self):
        """Trains until num_train_steps, num_epochs, max_time or early stopping; returns
        the last EvalResult (or None without a dev set). SIGINT or SIGTERM ends it after
        the current step with a checkpoint and no final evaluation (stop_signal says so)."""
        self.restore()
        self.stop_signal = None
        previous_handlers = self._install_signal_handlers()
        try:
            return self._train()
        finally:
            self._restore_signal_handlers(previous_handlers)

    def _train(self):
        t = self.config.train
        p = self.progress
        meter = throughput.ThroughputMeter(self, start_step=int(p.step))
        last_eval = None
        while not self._finished():
            epoch = int(p.epoch)
            dataset = distribute.distribute_dataset(
                self.strategy, self.epoch_dataset(epoch, start=int(p.batch_in_epoch)))
            for batch in dataset:
                self._set_learning_rate(meter.unreported_seconds())
                out, norm, applied = self.train_step(batching_lib.Batch(*batch))
                p.step.assign_add(1)
                p.batch_in_epoch.assign_add(1)
                if not bool(applied):
                    if not self._loss_scale_overflow(out):
                        self._on_nonfinite(int(p.step))
                elif self.weight_average is not None:
                    self.update_average(p.step)
                meter.add(out, norm, int(out.num_tokens))  # target tokens, EOS counted
                step = int(p.step)
                if step % t.steps_per_stats == 0:
                    meter.report()
                if t.steps_per_eval and step % t.steps_per_eval == 0 and self.dev is not None:
                    last_eval = self.evaluate_and_keep_best()
                if step % t.steps_per_checkpoint == 0:
                    self.save()
                if self._finished():
                    break
            else:
                p.epoch.assign_add(1)
                p.batch_in_epoch.assign(0)
        self.save()
        if self.stop_signal is not None:  # no final evaluation: stop as soon as saved
            logging.warning("stopped by %s at step %d: the same command resumes from %s",
                            signal.Signals(self.stop_signal).name, int(p.step),
                            self.manager.latest_checkpoint)
        elif self.dev is not None and (last_eval is None
                                       or int(p.step) % max(t.steps_per_eval, 1)):
            last_eval = self.evaluate_and_keep_best()
        self.write_run_record(last_eval)
        return last_eval

    def _finished(self):
        """Whether to stop; under multi_worker, every worker stops when any would."""
        return distribute.any_worker(self.strategy, self._finished_here())

    def _finished_here(self):
        t, p = self.config.train, self.progress
        if self.stop_signal is not None:
            return True
        if t.num_train_steps and int(p.step) >= t.num_train_steps:
            return True
        if t.num_epochs and int(p.epoch) >= t.num_epochs:
            return True
        if t.max_time_minutes and float(p.train_seconds) >= 60 * t.max_time_minutes:
            return True
        if t.early_stopping_patience and int(p.bad_evals) >= t.early_stopping_patience:
            logging.info("early stopping: %d evaluations without a better dev BLEU",
                         int(p.bad_evals))
            return True
        return False

    def _set_learning_rate(self, unreported_seconds):
        """unreported_seconds: training time since the last progress line (not yet in
        progress.train_seconds), for an anneal on a time budget."""
        p, t = self.progress, self.config.train
        step = int(p.step) + 1
        used = (schedule.budget_used(step, t, float(p.train_seconds) + unreported_seconds)
                if t.anneal_fraction else 0.0)  # no variable read per step when unused
        rate = schedule.learning_rate(step, t, float(p.plateau_scale), progress=used)
        self.optimizer.learning_rate.assign(rate)

    def _loss_scale_overflow(self, out):
        """fp16: a skipped step with a finite loss overflowed the scaled gradients, which
        only lowered the loss scale (counted as a bad batch once the scale is down to 1)."""
        if self.loss_scale is None or not math.isfinite(float(out.loss_sum)):
            return False
        logging.info("step %d: fp16 gradients overflowed; step skipped, loss scale now %g",
                     int(self.progress.step), self.loss_scale.current())
        return self.loss_scale.current() > 1.0

    def _on_nonfinite(self, step):
        self.progress.skipped_batches.assign_add(1)
        last = self.manager.latest_checkpoint or "none yet"
        logging.warning("step %d: non-finite loss or gradient; batch skipped (%d so far); "
                        "last good checkpoint: %s", step, int(self.progress.skipped_batches), last)
        if int(self.progress.skipped_batches) > 100:
            raise TrainingError(f"step {step}: more than 100 batches with a non-finite loss; "
                                f"last good checkpoint: {last}")

    def save(self):
        """Saves the training checkpoint of the current step (resume.RunCheckpoints.save)."""
        return self.checkpoints.save(int(self.progress.step))

    def evaluate(self, eval_set):
        """Dev loss, perplexity and BLEU/chrF of beam search on `eval_set`."""
        return dev_evaluation.evaluate(self, eval_set)

    def evaluate_and_keep_best(self):
        return dev_evaluation.evaluate_and_keep_best(self)

    def log_record(self, record):
        path = os.path.join(self.out_dir, run_dir.LOG_FILE)
        with writing(path), open(path, "a", encoding="utf-8") as f:
            fault_point("log", path)
            f.write(json.dumps(record) + "\n")
        self.summaries.write_record(record)

    def write_run_record(self, last_eval):
        """DIR/run.json: command, versions, training time and the last dev scores."""
        scores = None
        if last_eval is not None:
            scores = {"dev": {**last_eval._asdict(), **metrics.signatures()}}
        run_dir.write_run_record(self.out_dir, float(self.progress.train_seconds), scores)


def train(config, out_dir, checkpoint=""):
    """Trains (or resumes) a model in out_dir, holding its lock; returns the last dev
    EvalResult. checkpoint: resume from this checkpoint of the run, not the newest."""
    trainer = Trainer(config, out_dir, lock=True, checkpoint=checkpoint)
    try:
        return trainer.run()
    finally:
        trainer.close()
