"""Checkpoint averaging: the mean weights of the last k checkpoints as a new model dir.

Averaging the weights of the last few checkpoints of one run usually gains a
little BLEU over the last one alone (Vaswani et al. 2017 §6.1; Junczys-Dowmunt
et al. 2016). Floating-point model variables are averaged; others (dropout
generator states) are taken from the newest checkpoint. Optimizer slots are
not written: the result is for translation, not for resuming training.
"""
import os
import shutil

import numpy as np
import tensorflow as tf

from nmt import model_dir as model_dir_lib
from nmt.model import build_model


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
    `last` checkpoints of model_dir; returns the new checkpoint prefix."""
    if os.path.abspath(model_dir) == os.path.abspath(output_dir):
        raise model_dir_lib.ModelDirError("--output must differ from --model_dir")
    _, model, src_vocab, tgt_vocab, paths = average_model(model_dir, last)
    os.makedirs(output_dir, exist_ok=True)
    shutil.copy(os.path.join(model_dir, model_dir_lib.CONFIG_FILE), output_dir)
    for vocab in {src_vocab.path, tgt_vocab.path}:
        shutil.copy(vocab, output_dir)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), os.path.join(output_dir, model_dir_lib.CKPT_DIR),
        max_to_keep=1)
    step = os.path.basename(paths[-1]).rsplit("-", 1)[-1]
    return manager.save(checkpoint_number=int(step) if step.isdigit() else None)
