"""The training loop: data, optimizer, schedule, clipping, checkpoints, evaluation.

`train(config, out_dir)` is the one entry point. Re-running it on the same
out_dir resumes from the last checkpoint: weights, optimizer slots, step,
schedule state, dropout RNG and the data position (epoch, batch in epoch).
"""
import collections
import contextlib
import dataclasses
import json
import math
import os
import signal
import time

import tensorflow as tf
from absl import logging

from nmt import attention_focus
from nmt import corpus as corpus_lib
from nmt import data as data_lib
from nmt import devices
from nmt import distribute
from nmt import evaluation
from nmt import files
from nmt import model_dir as model_dir_lib
from nmt import precision
from nmt import schedule
from nmt import summaries as summaries_lib
from nmt import training_data
from nmt.files import fault_point
from nmt.model import build_model
from nmt.optimizers import FusedAdam
from nmt.translate import Translator
from nmt.updates import apply_clipped_gradients
from nmt.weight_average import WeightAverage

EvalResult = collections.namedtuple("EvalResult", ["loss", "perplexity", "bleu", "chrf"])


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss with no way to recover)."""


class Progress(tf.Module):
    """Counters saved with every checkpoint so a resumed run continues exactly."""

    def __init__(self):
        super().__init__(name="progress")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
        self.best_bleu = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_bleu")
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_evals")
        self.plateau_bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.plateau_scale = tf.Variable(1.0, dtype=tf.float64, trainable=False)
        self.skipped_batches = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)


def make_optimizer(config):
    if config.optimizer == "adam":
        return FusedAdam(learning_rate=config.learning_rate)
    return tf.keras.optimizers.SGD(learning_rate=config.learning_rate)


def make_train_step(model, optimizer, config, loss_scale=None):
    """-> tf.function(batch) -> (LossOutput, gradient norm, applied?).

    A batch whose loss or gradients are not finite is not applied: weights and
    optimizer slots stay as they were, and the caller counts it. Builds the optimizer's
    slots (beside their variables) if it has none yet. The model computes
    in config.precision's dtype; loss_scale: a precision.DynamicLossScale (fp16).
    With config.deterministic the step is traced for each batch shape (bucketed
    batches have few), so that a resumed run computes each step with the same graph as
    an unbroken one; else once more with unknown dimensions after the first.
    """
    variables = model.trainable_variables
    dtypes = precision.training_dtypes(config.precision)
    # Slots made here, eagerly, sit on their variables' devices; made in the first trace
    # they would all land on the default device (Keras lifts them out of the graph,
    # which drops the colocation), and a placed variable's fused update, whose kernel
    # needs the variable and its slots on one device, could not be placed.
    optimizer.build(variables)

    @tf.function(jit_compile=config.jit_compile, reduce_retracing=not config.deterministic)
    def train_step(batch):
        with tf.GradientTape() as tape:
            out = model.loss(batch, config.label_smoothing, training=True, **dtypes)
            loss = out.loss_sum / tf.maximum(out.num_tokens, 1.0)
            scaled = loss if loss_scale is None else loss_scale.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        grads = [tf.convert_to_tensor(g) for g in grads]  # dense embedding grads
        norm, applied = apply_clipped_gradients(optimizer, grads, variables,
                                                config.max_gradient_norm, loss, loss_scale)
        return out, norm, applied

    return train_step


def make_eval_step(model):
    @tf.function(reduce_retracing=True)
    def eval_step(batch):
        return model.loss(batch, 0.0, training=False)

    return eval_step


class Trainer:
    """Holds one run's state; `run()` trains until a stop condition."""

    def __init__(self, config, out_dir, lock=False):
        """lock: hold DIR/train.lock until close(), so that a second trainer on out_dir
        stops at once with a LockError naming this process."""
        self.config = config.validate()
        self.strategy = distribute.make_strategy(config.train)  # first: it sets up collectives
        self.restore_dir = os.path.join(out_dir, model_dir_lib.CKPT_DIR)  # the chief's
        out_dir = distribute.worker_dir(out_dir, self.strategy)  # non-chief: a temp dir
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self._held = contextlib.ExitStack()
        if lock:
            self._held.enter_context(files.exclusive_lock(
                os.path.join(out_dir, model_dir_lib.LOCK_FILE), f"the run dir {out_dir}"))
        try:
            self._set_up(config, out_dir)
        except BaseException:
            self.close()
            raise

    def close(self):
        """Releases the run dir's lock (if this trainer holds it)."""
        self._held.close()

    def _set_up(self, config, out_dir):
        resuming = model_dir_lib.check_run_dir(out_dir)  # a damaged one: a ModelDirError
        model_dir_lib.check_config(out_dir, config)
        d = config.data
        if config.train.init_from:  # its pieces, before any are trained here
            model_dir_lib.copy_vocabs(config.train.init_from, out_dir, d)
        if resuming:  # a vocabulary trained afresh would renumber the pieces
            model_dir_lib.load_vocabs(out_dir, config)
        self.data = training_data.prepare(d, out_dir)  # logs a report; fatal: raises
        self.src_vocab, self.tgt_vocab, self.encoded = self.data[:3]
        self.dev = self._read_eval_set(d.dev_prefix)
        self._build(config, out_dir)
        with _writing(out_dir):  # the run's identity, once its data and model are set up
            model_dir_lib.save_config(out_dir, config)

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
        self.vocab_record = model_dir_lib.VocabRecord(self.src_vocab, self.tgt_vocab)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                              progress=self.progress, vocab=self.vocab_record,
                                              **self._loss_scale_part(),
                                              **self._weight_average_part())
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(out_dir, model_dir_lib.CKPT_DIR),
            max_to_keep=config.train.keep_checkpoints)
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=self.model, progress=self.progress),
            os.path.join(out_dir, model_dir_lib.BEST_DIR), max_to_keep=1)
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

    def _loss_scale_part(self, path=None):
        """{"loss_scale": ...} for the training checkpoint under fp16, else {}; with `path`,
        {} also when that checkpoint has none (written in another precision: the scale
        starts afresh), so checkpoints stay interchangeable between precisions."""
        if self.loss_scale is None:
            return {}
        if path and not _checkpoint_has(path, "loss_scale/"):
            logging.info("%s has no loss scale: starting it at %g", path,
                         self.loss_scale.current())
            return {}
        return {"loss_scale": self.loss_scale}

    def _weight_average_part(self):
        """{"training_weights": ...} with a moving average: checkpoints are written with
        the average in the model (averaged_weights), the training weights beside it."""
        return {} if self.weight_average is None else {"training_weights": self.weight_average}

    @contextlib.contextmanager
    def averaged_weights(self):
        """Inside, the model holds the moving average of its weights (if one is kept)."""
        if self.weight_average is None:
            yield
            return
        self.weight_average.swap(self.model.trainable_variables)
        try:
            yield
        finally:
            self.weight_average.swap(self.model.trainable_variables)

    def _read_eval_set(self, prefix):
        if not prefix:
            return None
        d = self.config.data
        return corpus_lib.read_parallel(corpus_lib.find_corpus_file(prefix, d.src),
                                        corpus_lib.find_corpus_file(prefix, d.tgt))

    def restore(self):
        """Resumes from the latest checkpoint if there is one; says which."""
        path = model_dir_lib.resume_path(self.restore_dir)  # every worker: the chief's
        if not path:
            logging.info("starting a new run in %s", self.out_dir)
            with _writing(self.out_dir):  # records of a run killed before its first checkpoint
                model_dir_lib.trim_log(self.out_dir, 0)
            if self.config.train.init_from:
                self.initialise_from(self.config.train.init_from)
            return
        self.model_variables_built()
        saved_average = _checkpoint_has(path, "training_weights/")
        average = self.weight_average  # where the saved training weights go, if any
        if saved_average and average is None:  # the run kept an average; this one does not
            with distribute.scope(self.strategy):
                average = WeightAverage(self.model.trainable_variables, decay=0.5)
        checkpoint = self.checkpoint  # every saved value, the save counter included
        saved_vocab = _checkpoint_has(path, "vocab/")
        if ((self.loss_scale is not None and not self._loss_scale_part(path))
                or saved_average != (self.weight_average is not None) or not saved_vocab):
            checkpoint = tf.train.Checkpoint(
                model=self.model, optimizer=self.optimizer, progress=self.progress,
                **self._loss_scale_part(path),
                **({"vocab": self.vocab_record} if saved_vocab else {}),
                **({"training_weights": average} if saved_average else {}))
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise model_dir_lib.ModelDirError(
                f"{path}: cannot resume from this checkpoint ({str(e).splitlines()[0]})") from None
        self.vocab_record.check(path)
        if saved_average:  # the model holds the average: the training weights go back in
            average.swap(self.model.trainable_variables)
            if self.weight_average is None:
                logging.info("%s kept a moving average of the weights: resuming from its "
                             "training weights, without one", path)
        elif self.weight_average is not None:
            self.weight_average.reset(self.model.trainable_variables)
            logging.info("%s has no moving average of the weights: starting it at the "
                         "restored weights", path)
        p = self.progress
        logging.info("resuming from %s at step %d (epoch %d, batch %d)", path,
                     int(p.step), int(p.epoch) + 1, int(p.batch_in_epoch))
        with _writing(self.out_dir):
            model_dir_lib.trim_log(self.out_dir, int(p.step))  # records of steps to be redone

    def initialise_from(self, model_dir):
        """A new run takes the weights of model_dir's best checkpoint (its vocabularies
        were copied in __init__); optimizer slots, step and schedule start afresh."""
        path = model_dir_lib.checkpoint_path(model_dir, "best")
        model_dir_lib.check_checkpoint(path, self.src_vocab, self.tgt_vocab)
        self.model_variables_built()
        model_dir_lib.restore_model(self.model, path)
        if self.weight_average is not None:
            self.weight_average.reset(self.model.trainable_variables)
        logging.info("initialised the model's weights from %s", path)

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
        meter = ThroughputMeter(self, start_step=int(p.step))
        last_eval = None
        while not self._finished():
            epoch = int(p.epoch)
            dataset = distribute.distribute_dataset(
                self.strategy, self.epoch_dataset(epoch, start=int(p.batch_in_epoch)))
            for batch in dataset:
                self._set_learning_rate()
                out, norm, applied = self.train_step(data_lib.Batch(*batch))
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

    def _set_learning_rate(self):
        rate = schedule.learning_rate(int(self.progress.step) + 1, self.config.train,
                                      float(self.progress.plateau_scale))
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
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.trainable_variables):
            raise TrainingError(f"step {int(self.progress.step)}: weights are not finite; "
                                f"not saving over {self.manager.latest_checkpoint}")
        with self.averaged_weights(), _writing(self.manager.directory):
            path = model_dir_lib.save_durably(self.manager, int(self.progress.step))
            fingerprint = distribute.weights_fingerprint(self.model.trainable_variables)
        logging.info("saved %s (weights fingerprint %x)", path, fingerprint)

    def evaluate(self, eval_set):
        """Dev loss, perplexity and BLEU/chrF of beam search on `eval_set`."""
        d = self.config.data
        encoded, _ = data_lib.encode_corpus(eval_set, self.src_vocab, self.tgt_vocab,
                                            max_src_len=10_000, max_tgt_len=10_000)
        total_nll = total_tokens = 0.0
        for batch in data_lib.train_dataset(encoded, batch_size=d.batch_size, shuffle=False,
                                            bucket_width=d.bucket_width):
            out = self.eval_step(data_lib.Batch(*batch))
            total_nll += float(out.nll_sum)
            total_tokens += float(out.num_tokens)
        limit = self.config.train.dev_bleu_max_sentences or len(eval_set.src)
        translator = Translator(self.model, self.src_vocab, self.tgt_vocab, self.config.decode)
        hyps = translator.translate_text(eval_set.src[:limit])
        scores = evaluation.score(hyps, eval_set.tgt[:limit])
        return EvalResult(total_nll / total_tokens, evaluation.perplexity(total_nll, total_tokens),
                          scores.bleu, scores.chrf)

    def evaluate_and_keep_best(self):
        p, t = self.progress, self.config.train
        start = time.time()
        with self.averaged_weights():
            result = self.evaluate(self.dev)
            improved = result.bleu > float(p.best_bleu)
            if improved:
                p.best_bleu.assign(result.bleu)
                p.bad_evals.assign(0)
                with _writing(self.best_manager.directory):
                    model_dir_lib.save_durably(self.best_manager, int(p.step), stage="best")
            else:
                p.bad_evals.assign_add(1)
            self.summaries.write_attention(int(p.step), self.model, self.src_vocab,
                                           self.tgt_vocab, self.dev)
            share = attention_focus.dev_mode_share(self.model, self.src_vocab, self.tgt_vocab,
                                                   self.dev)
        if t.decay == "plateau":
            plateau = schedule.Plateau(t.plateau_patience, t.decay_factor,
                                       best=float(p.best_bleu) if not improved else -1.0,
                                       bad_evals=int(p.plateau_bad_evals),
                                       scale=float(p.plateau_scale))
            plateau.update(result.bleu)
            p.plateau_bad_evals.assign(plateau.bad_evals)
            p.plateau_scale.assign(plateau.scale)
        logging.info("step %d dev: loss %.3f, ppl %.2f, BLEU %.2f, chrF %.2f%s (%.0f s)",
                     int(p.step), result.loss, result.perplexity, result.bleu, result.chrf,
                     " (new best)" if improved else "", time.time() - start)
        warning = attention_focus.collapse_warning(int(p.step), share)
        if warning:
            logging.warning(warning)
        self.log_record({"kind": "eval", "step": int(p.step), **result._asdict(),
                         "attention_mode_share": share})
        return result

    def log_record(self, record):
        path = os.path.join(self.out_dir, model_dir_lib.LOG_FILE)
        with _writing(path), open(path, "a", encoding="utf-8") as f:
            fault_point("log", path)
            f.write(json.dumps(record) + "\n")
        self.summaries.write_record(record)

    def write_run_record(self, last_eval):
        """DIR/run.json: command, versions, training time and the last dev scores."""
        scores = None
        if last_eval is not None:
            scores = {"dev": {**last_eval._asdict(), **evaluation.signatures()}}
        model_dir_lib.write_run_record(self.out_dir, float(self.progress.train_seconds), scores)


@contextlib.contextmanager
def _writing(where):
    """A failed write (disk full, no permission) becomes a one-line ModelDirError:
    what was saved before stays whole, and the same command resumes from it."""
    try:
        yield
    except OSError as e:
        raise model_dir_lib.ModelDirError(
            f"{e.filename or where}: cannot write ({e.strerror or e}); the checkpoints "
            f"saved before are intact: fix this and rerun the same command") from None
    except tf.errors.OpError as e:
        raise model_dir_lib.ModelDirError(
            f"{where}: cannot write a checkpoint ({e.message.splitlines()[0]}); the "
            f"checkpoints saved before are intact: fix this and rerun the same command") from None


def _checkpoint_has(path, prefix):
    """Whether the checkpoint at `path` saved any variable under `prefix` (False if its
    index cannot be read: restoring it then fails with the one-line error)."""
    try:
        names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return False
    return any(name.startswith(prefix) for name in names)


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

    def report(self):
        now = time.time()
        elapsed = now - self.last_time
        p, t = self.trainer.progress, self.trainer.config.train
        p.train_seconds.assign_add(elapsed)
        step = int(p.step)
        rate = (step - self.start_step) / max(now - self.start_time, 1e-9)
        eta = ""
        if t.num_train_steps and rate > 0:
            eta = f", ETA {format_seconds((t.num_train_steps - step) / rate)}"
        if t.steps_per_eval and self.trainer.dev is not None and rate > 0:
            to_eval = t.steps_per_eval - step % t.steps_per_eval
            eta += f", next eval in {format_seconds(to_eval / rate)}"
        record = {
            "kind": "train", "step": step, "epoch": int(p.epoch) + 1,
            "loss": self.loss / max(self.tokens, 1), "ppl": math.exp(min(self.nll / max(self.tokens, 1), 50)),
            "lr": float(tf.convert_to_tensor(self.trainer.optimizer.learning_rate)), "grad_norm": self.norm / max(self.steps, 1),
            "tokens_per_s": self.target_tokens / max(elapsed, 1e-9),
            "elapsed_s": float(p.train_seconds)}
        logging.info("step %d epoch %d: loss %.3f, ppl %.2f, lr %.2e, |g| %.2f, %.0f tgt tokens/s, "
                     "%s elapsed%s", step, record["epoch"], record["loss"], record["ppl"],
                     record["lr"], record["grad_norm"], record["tokens_per_s"],
                     format_seconds(record["elapsed_s"]), eta)
        self.trainer.log_record(record)
        self.last_time = now
        self._reset()


def format_seconds(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train(config, out_dir):
    """Trains (or resumes) a model in out_dir, holding its lock; returns the last dev
    EvalResult."""
    trainer = Trainer(config, out_dir, lock=True)
    try:
        return trainer.run()
    finally:
        trainer.close()
