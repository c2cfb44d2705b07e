"""Ensemble decoding: several models with one target vocabulary in one search.

The step function runs every model's step on the same ids and combines their
next-token distributions as log(mean_m p_m) (a mixture, so the result is still
normalised, as nmt.decode.search requires; OpenNMT and fairseq average the same way).
The search state is {"models": (state_1, ..., state_M), "alignments": mean of
the models' attention}, so beam search reorders every model's state with its
hypothesis and the coverage penalty sees the averaged attention.

An Ensemble offers what Translator and ForcedDecoder use of a Seq2Seq:
translate, search_inputs, logits (log of the mean probabilities) and
alignments (mean attention).
"""
import math

import tensorflow as tf

from nmt.model.seq2seq import Seq2Seq


class Ensemble(tf.Module):
    """Models trained on the same vocabularies, decoded as one."""

    def __init__(self, models, name="ensemble"):
        super().__init__(name=name)
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = list(models)

    def search_inputs(self, src, src_len, max_length_ratio=None, compute_dtype=tf.float32,
                      projection_dtype=None, input_table=False):
        """-> (step_fn, initial_state, context) over all models (see the module docstring);
        the context is the tuple of the models' contexts."""
        inputs = [m.search_inputs(src, src_len, max_length_ratio, compute_dtype, projection_dtype,
                                  input_table)
                  for m in self.models]
        step_fns = [step_fn for step_fn, _, _ in inputs]
        states = tuple(state for _, state, _ in inputs)
        contexts = tuple(context for _, _, context in inputs)
        log_m = math.log(len(self.models))

        def step_fn(ids, state, rows=None, *, context):
            outputs = [f(ids, s, rows, context=c)
                       for f, s, c in zip(step_fns, state["models"], context)]
            log_probs = tf.stack([tf.nn.log_softmax(logits)
                                  for logits, _ in outputs])  # [models, n, vocab]
            new_states = tuple(s for _, s in outputs)
            new_state = {"models": new_states, "alignments": _mean_alignments(new_states)}
            if "limit" in state:
                new_state["limit"] = state["limit"]
            return tf.reduce_logsumexp(log_probs, axis=0) - log_m, new_state

        state = {"models": states, "alignments": _mean_alignments(states)}
        if max_length_ratio is not None:  # every model forces eos at this same limit,
            state["limit"] = states[0]["limit"]  # which bounds beam search (Seq2Seq.translate)
        return step_fn, state, contexts

    # The search dispatch (greedy or beam, penalties) is Seq2Seq's, over our search_inputs.
    translate = Seq2Seq.translate

    def logits(self, src, src_len, tgt_in, training=False):
        """Teacher-forced log of the mean probabilities `[batch, tgt_time, vocab]` (a valid
        logits tensor: softmax of it is the ensemble's distribution)."""
        log_probs = [tf.nn.log_softmax(m.logits(src, src_len, tgt_in, training))
                     for m in self.models]
        return tf.reduce_logsumexp(tf.stack(log_probs), axis=0) - math.log(len(self.models))

    def alignments(self, src, src_len, tgt_in):
        """Mean attention weights `[batch, tgt_time, src_time]`."""
        alignments = [m.alignments(src, src_len, tgt_in) for m in self.models]
        return tf.add_n(alignments) / len(self.models)


def _mean_alignments(states):
    return tf.add_n([s["alignments"] for s in states]) / len(states)


def load_ensemble(model_dirs, which="best"):
    """Comma-separated model dirs -> (config of the first, model or Ensemble, src_vocab, tgt_vocab).

    One dir gives its Seq2Seq; several must share the vocabularies (the same
    sentencepiece model, wherever it was trained: Vocab.fingerprint), else ModelDirError.
    """
    return load_ensemble_checkpoints(model_dirs, which)[:4]


def load_ensemble_checkpoints(model_dirs, which="best"):
    """As load_ensemble, plus the list of the CheckpointIds restored (one per dir)."""
    from nmt import model_dir as model_dir_lib
    dirs = [d for d in model_dirs.split(",") if d]
    vocabs = [model_dir_lib.load_vocabs(d, model_dir_lib.load_config(d)) for d in dirs]
    for d, (src, tgt) in zip(dirs[1:], vocabs[1:]):
        if (src.fingerprint() != vocabs[0][0].fingerprint()
                or tgt.fingerprint() != vocabs[0][1].fingerprint()):
            raise model_dir_lib.ModelDirError(
                f"{d}: its vocabularies differ from {dirs[0]}'s; ensembles need the same ones")
    loaded = [model_dir_lib.load_checkpoint(d, which) for d in dirs]
    config, model, src_vocab, tgt_vocab, _ = loaded[0]
    checkpoints = [one.checkpoint for one in loaded]
    if len(loaded) == 1:
        return config, model, src_vocab, tgt_vocab, checkpoints
    return config, Ensemble([one.model for one in loaded]), src_vocab, tgt_vocab, checkpoints

