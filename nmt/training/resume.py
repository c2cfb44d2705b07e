"""What a training checkpoint holds, saving it, and resuming a run from it.

A training checkpoint (DIR/ckpt) holds everything a resumed run needs to continue
exactly: weights, optimizer slots, the Progress counters (step, data position,
schedule state), the vocabularies' fingerprint, and under fp16 the loss scale;
with a moving average, the model holds the average and the training weights sit
beside it. DIR/best holds the weights and counters of the best evaluation.
"""
import contextlib
import os

import tensorflow as tf
from absl import logging

from nmt import checkpoint_files
from nmt.run_dir import BEST_DIR, CKPT_DIR, ModelDirError, writing
from nmt.training import distribute
from nmt.training.moving_average import WeightAverage


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


class RunCheckpoints:
    """A run's training checkpoints (DIR/ckpt, keep `keep`) and its best one (DIR/best)."""

    def __init__(self, out_dir, parts, keep, strategy=None):
        """parts: an object with model, optimizer, progress, vocab_record, loss_scale
        (None unless fp16) and weight_average (None without a moving average)."""
        self.parts = parts
        self.strategy = strategy
        self.checkpoint = tf.train.Checkpoint(**self._saved(parts.loss_scale is not None,
                                                            parts.weight_average, True))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(out_dir, CKPT_DIR), max_to_keep=keep)
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=parts.model, progress=parts.progress),
            os.path.join(out_dir, BEST_DIR), max_to_keep=1)

    def _saved(self, loss_scale, average, vocab):
        """The objects of a training checkpoint, by name: with the loss scale (fp16),
        the training weights `average` (a moving average kept), the vocab record."""
        p = self.parts
        return {"model": p.model, "optimizer": p.optimizer, "progress": p.progress,
                **({"loss_scale": p.loss_scale} if loss_scale else {}),
                **({"vocab": p.vocab_record} if vocab else {}),
                **({"training_weights": average} if average is not None else {})}

    def restore(self, path):
        """Restores every saved value of the training checkpoint `path`. Checkpoints stay
        interchangeable between precisions (a missing loss scale starts afresh) and
        with or without a moving average; one-line ModelDirError if it does not fit."""
        p = self.parts
        p.optimizer.build(p.model.trainable_variables)  # slots restored eagerly
        has = {part: checkpoint_files.checkpoint_has(path, part + "/")
               for part in ("training_weights", "loss_scale", "vocab")}
        average = p.weight_average  # where the saved training weights go, if any
        if has["training_weights"] and average is None:  # the run kept one; this one does not
            with distribute.scope(self.strategy):
                average = WeightAverage(p.model.trainable_variables, decay=0.5)
        if p.loss_scale is not None and not has["loss_scale"]:
            logging.info("%s has no loss scale: starting it at %g", path, p.loss_scale.current())
        checkpoint = self.checkpoint  # every saved value, the save counter included
        if ((p.loss_scale is not None and not has["loss_scale"]) or not has["vocab"]
                or has["training_weights"] != (p.weight_average is not None)):
            checkpoint = tf.train.Checkpoint(**self._saved(
                p.loss_scale is not None and has["loss_scale"],
                average if has["training_weights"] else None, has["vocab"]))
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise ModelDirError(f"{path}: cannot resume from this checkpoint "
                                f"({str(e).splitlines()[0]})") from None
        p.vocab_record.check(path)
        self._restore_average(path, average, has["training_weights"])

    def _restore_average(self, path, average, saved_average):
        """The model holds the restored average: the training weights go back in."""
        p = self.parts
        if saved_average:
            average.swap(p.model.trainable_variables)
            if p.weight_average is None:
                logging.info("%s kept a moving average of the weights: resuming from its "
                             "training weights, without one", path)
        elif p.weight_average is not None:
            p.weight_average.reset(p.model.trainable_variables)
            logging.info("%s has no moving average of the weights: starting it at the "
                         "restored weights", path)

    def save(self, step):
        """Saves the training checkpoint of `step` (the model holding the average, if
        one is kept); -> its prefix. A checkpoint of non-finite weights is refused."""
        p = self.parts
        if not all(bool(tf.reduce_all(tf.math.is_finite(v)))
                   for v in p.model.trainable_variables):
            raise TrainingError(f"step {step}: weights are not finite; "
                                f"not saving over {self.manager.latest_checkpoint}")
        with averaged_weights(p.weight_average, p.model), writing(self.manager.directory):
            path = checkpoint_files.save_durably(self.manager, step)
            fingerprint = distribute.weights_fingerprint(p.model.trainable_variables)
        logging.info("saved %s (weights fingerprint %x)", path, fingerprint)
        return path

    def save_best(self, step):
        """Saves the model (as it is now) and the counters in DIR/best."""
        with writing(self.best_manager.directory):
            return checkpoint_files.save_durably(self.best_manager, step, stage="best")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss with no way to recover)."""


@contextlib.contextmanager
def averaged_weights(weight_average, model):
    """Inside, the model holds the moving average of its weights (if one is kept)."""
    if weight_average is None:
        yield
        return
    weight_average.swap(model.trainable_variables)
    try:
        yield
    finally:
        weight_average.swap(model.trainable_variables)


def initialise_from(parts, model_dir):
    """A new run takes the weights of model_dir's best checkpoint (its vocabularies are
    copied in first); optimizer slots, step and schedule start afresh."""
    path = checkpoint_files.checkpoint_path(model_dir, "best")
    checkpoint_files.check_checkpoint(path, parts.src_vocab, parts.tgt_vocab)
    parts.optimizer.build(parts.model.trainable_variables)
    checkpoint_files.restore_model(parts.model, path)
    if parts.weight_average is not None:
        parts.weight_average.reset(parts.model.trainable_variables)
    logging.info("initialised the model's weights from %s", path)
