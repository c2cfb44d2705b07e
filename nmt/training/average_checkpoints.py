"""Checkpoint averaging: the mean weights of the last k checkpoints as a new model dir.

Averaging the weights of the last few checkpoints of one run usually gains a
little BLEU over the last one alone (Vaswani et al. 2017 §6.1; Junczys-Dowmunt
et al. 2016). Floating-point model variables are averaged; others (dropout
generator states) are taken from the newest checkpoint. Optimizer slots are
not written: the result is for translation, not for resuming training.
"""
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from nmt import files
from nmt import model_dir as model_dir_lib
from nmt.model.seq2seq import build_model

AVERAGE_FILE = "average.json"  # in an average's dir: the run averaged and its checkpoints


def last_checkpoints(model_dir, k):
    """The prefixes of the newest k checkpoints in DIR/ckpt, oldest first."""
    ckpt_dir = os.path.join(model_dir, model_dir_lib.CKPT_DIR)
    state = tf.train.get_checkpoint_state(ckpt_dir)
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths:
        raise model_dir_lib.ModelDirError(f"{ckpt_dir}: no checkpoints to average")
    if k < 1 or k > len(paths):
        raise model_dir_lib.ModelDirError(
            f"{ckpt_dir}: cannot average the last {k} of {len(paths)} checkpoints")
    return [p if os.path.isabs(p) else os.path.join(ckpt_dir, p) for p in paths[-k:]]


def average_model(model_dir, last):
    """-> (config, model, src_vocab, tgt_vocab, paths): the model holds the mean weights
    of the last `last` checkpoints of model_dir (`paths`, oldest first), in memory."""
    config = model_dir_lib.load_config(model_dir)
    src_vocab, tgt_vocab = model_dir_lib.load_vocabs(model_dir, config)
    paths = last_checkpoints(model_dir, last)
    model = build_model(config.model, src_vocab.size, tgt_vocab.size)
    averaged = [v.dtype.is_floating for v in model.variables]
    sums = [np.zeros(v.shape, np.float64) for v in model.variables]
    for path in paths:
        model_dir_lib.check_checkpoint(path, src_vocab, tgt_vocab)
        model_dir_lib.restore_model(model, path)
        for total, v, use in zip(sums, model.variables, averaged):
            if use:
                total += v.numpy()
    for total, v, use in zip(sums, model.variables, averaged):
        if use:  # non-float variables keep the newest checkpoint's value (restored last)
            v.assign((total / len(paths)).astype(v.dtype.as_numpy_dtype))
    return config, model, src_vocab, tgt_vocab, paths


def average_checkpoints(model_dir, last, output_dir):
    """Writes OUT/config.json, OUT/spm*.model and OUT/ckpt/ with the mean of the last
    `last` checkpoints of model_dir; returns the new checkpoint prefix.

    OUT must be new, empty, or a previous average of the same run (OUT/average.json
    names the run); anything else, such as another run's dir, is refused untouched.
    """
    check_output_dir(model_dir, output_dir)
    _, model, src_vocab, tgt_vocab, paths = average_model(model_dir, last)
    os.makedirs(output_dir, exist_ok=True)
    files.atomic_write(os.path.join(output_dir, AVERAGE_FILE),
                       json.dumps({"model_dir": os.path.realpath(model_dir),
                                   "checkpoints": paths}, indent=2) + "\n")
    for source in {os.path.join(model_dir, model_dir_lib.CONFIG_FILE), src_vocab.path,
                   tgt_vocab.path}:
        with open(source, "rb") as f:
            files.atomic_write(os.path.join(output_dir, os.path.basename(source)), f.read())
    # A previous average's checkpoint goes first, so that none is overwritten in place;
    # a crash in between leaves no checkpoint (a clear error) until the next run.
    ckpt_dir = os.path.join(output_dir, model_dir_lib.CKPT_DIR)
    if os.path.exists(ckpt_dir):
        shutil.rmtree(ckpt_dir)
        files.fsync_path(output_dir)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), ckpt_dir,
                                         max_to_keep=1)
    step = os.path.basename(paths[-1]).rsplit("-", 1)[-1]
    return model_dir_lib.save_durably(manager, int(step) if step.isdigit() else None)


def check_output_dir(model_dir, output_dir):
    """ModelDirError unless output_dir is new, empty or a previous average of model_dir."""
    if os.path.realpath(model_dir) == os.path.realpath(output_dir):
        raise model_dir_lib.ModelDirError("--output must differ from --model_dir")
    if not os.path.exists(output_dir):
        return
    if not os.path.isdir(output_dir):
        raise model_dir_lib.ModelDirError(f"{output_dir}: not a directory")
    if not os.listdir(output_dir):
        return
    try:
        with open(os.path.join(output_dir, AVERAGE_FILE), encoding="utf-8") as f:
            source = json.load(f)["model_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        source = None
    if source != os.path.realpath(model_dir):
        raise model_dir_lib.ModelDirError(
            f"{output_dir}: not empty and not an average of {model_dir} (no "
            f"{AVERAGE_FILE} naming it); give a new or empty --output")
