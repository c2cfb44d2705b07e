"""Attention over the encoder's annotations: (query, memory) -> (context, weights).

`prepare(annotations, lengths)` runs once per source batch and precomputes the
keys, so each decoder step costs one score and one weighted sum. Pad positions
get exactly zero weight and the weights of each row sum to 1.

When training, a decoder may defer the memory's gradients (nmt.model.deferred.DeferredMemory):
`deferrable(memory)` names the matrices an attention multiplies at every step; inside
such a loop `__call__` finds its step (`nmt.model.deferred.active`), multiplies their
stop-gradient copies, adds the step's zeros and records the vectors they met.
"""
import collections
import math

import tensorflow as tf

from nmt.config import LUONG_ATTENTIONS
from nmt.model import deferred as deferred_lib
from nmt.model.layers import Dense
from nmt.model.precision import read

Memory = collections.namedtuple("Memory", ["values", "keys", "mask"])
# values [batch, src_time, value_size]; keys [batch, src_time, key_size];
# mask [batch, src_time] bool


def masked_softmax(scores, mask):
    """Softmax over the last axis with masked-out positions exactly 0. `[batch, src_time]`.
    Computed in float32 (fp16 cannot hold -1e9), returned in the scores' dtype."""
    scores32 = tf.where(mask, tf.cast(scores, tf.float32), -1e9)
    weights = tf.nn.softmax(scores32, axis=-1) * tf.cast(mask, tf.float32)
    return tf.cast(weights, scores.dtype)


def _weighted_sum(weights, values, deferred=None):
    """[batch, src_time] x [batch, src_time, value_size] -> [batch, value_size]."""
    if deferred is None:
        return tf.squeeze(tf.matmul(weights[:, None, :], values), 1)
    deferred.inputs["values"] = weights
    return (tf.squeeze(tf.matmul(weights[:, None, :], deferred.kernels["values"]), 1)
            + deferred.zeros["values"])


def _scores(keys, query, deferred=None):
    """keys [batch, src_time, depth] . query [batch, depth] -> [batch, src_time]."""
    if deferred is None:
        return tf.squeeze(tf.matmul(keys, query[:, :, None]), 2)
    deferred.inputs["keys"] = query
    return (tf.squeeze(tf.matmul(deferred.kernels["keys"], query[:, :, None]), 2)
            + deferred.zeros["keys"])


class LuongAttention(tf.Module):
    """Multiplicative attention, Luong et al. 2015 §3.1.

    score="dot": q . h_s (query and memory sizes must match);
    score="general": q . (W_a h_s); scale=True multiplies the score by a learned
    scalar g (initialised to 1), as in tensorflow/nmt's scaled_luong.
    sqrt_scaling=True divides the score by sqrt(query_size), as in scaled dot-product
    attention (Vaswani et al. 2017), folded into the keys once per source batch.
    """

    def __init__(self, query_size, memory_size, score="general", scale=False,
                 sqrt_scaling=False, name=None):
        super().__init__(name=name)
        if score == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs query size == memory size "
                             f"(got {query_size} and {memory_size})")
        with self.name_scope:
            self.memory_layer = (Dense(memory_size, query_size, use_bias=False, name="memory_layer")
                                 if score == "general" else None)
            self.scale = tf.Variable(1.0, name="scale") if scale else None
        self.key_scale = 1.0 / math.sqrt(query_size) if sqrt_scaling else None

    def prepare(self, annotations, lengths):
        """annotations `[batch, src_time, memory_size]`, lengths `[batch]` -> Memory."""
        mask = tf.sequence_mask(lengths, tf.shape(annotations)[1])
        keys = self.memory_layer(annotations) if self.memory_layer else annotations
        if self.key_scale is not None:
            keys = keys * tf.cast(self.key_scale, keys.dtype)
        return Memory(annotations, keys, mask)

    def deferrable(self, memory):
        """{name: (matrix, side)} for nmt.model.deferred.DeferredMemory: keys and values."""
        return {"keys": (memory.keys, "left"), "values": (memory.values, "right")}

    def __call__(self, query, memory):
        """query `[batch, query_size]` -> context `[batch, memory_size]`, weights
        `[batch, src_time]`."""
        deferred = deferred_lib.active(self)  # a DeferredMemory's step for `deferrable(memory)`
        scores = _scores(memory.keys, query, deferred)  # [batch, src_time]
        if self.scale is not None:
            scores = scores * read(self.scale, scores)
        weights = masked_softmax(scores, memory.mask)
        return _weighted_sum(weights, memory.values, deferred), weights


class BahdanauAttention(tf.Module):
    """Additive attention, Bahdanau et al. 2015 A.1.2: v . tanh(W h_s + U q).

    normalize=True reparametrises v by weight normalisation, g * v / |v|, with a
    bias inside the tanh (Salimans & Kingma 2016), as tensorflow/nmt's normed_bahdanau.
    """

    def __init__(self, query_size, memory_size, units, normalize=False, name=None):
        super().__init__(name=name)
        with self.name_scope:
            self.memory_layer = Dense(memory_size, units, use_bias=False, name="memory_layer")
            self.query_layer = Dense(query_size, units, use_bias=False, name="query_layer")
            self.v = tf.Variable(tf.random.uniform([units], -0.1, 0.1), name="v")
            self.g = tf.Variable(tf.sqrt(1.0 / units), name="g") if normalize else None
            self.b = tf.Variable(tf.zeros([units]), name="b") if normalize else None

    def prepare(self, annotations, lengths):
        mask = tf.sequence_mask(lengths, tf.shape(annotations)[1])
        return Memory(annotations, self.memory_layer(annotations), mask)

    def deferrable(self, memory):
        """{name: (matrix, side)} for nmt.model.deferred.DeferredMemory: the values (the keys
        meet the query in a sum, not a product)."""
        return {"values": (memory.values, "right")}

    def __call__(self, query, memory):
        hidden = memory.keys + self.query_layer(query)[:, None, :]  # [batch, src_time, units]
        v = read(self.v, hidden)
        if self.g is not None:
            hidden = hidden + read(self.b, hidden)
            v = read(self.g * self.v / tf.norm(self.v), hidden)  # the norm in float32
        scores = tf.reduce_sum(tf.tanh(hidden) * v, axis=-1)  # [batch, src_time]
        weights = masked_softmax(scores, memory.mask)
        return _weighted_sum(weights, memory.values, deferred_lib.active(self)), weights


def build_attention(kind, query_size, memory_size, name="attention", sqrt_scaling=False):
    """One of config.ATTENTIONS -> an attention module. sqrt_scaling: Luong kinds only."""
    if kind in LUONG_ATTENTIONS:
        return LuongAttention(query_size, memory_size, score="dot" if kind == "dot" else "general",
                              scale=kind == "scaled_luong", sqrt_scaling=sqrt_scaling, name=name)
    if sqrt_scaling:
        raise ValueError(f"sqrt scaling applies to multiplicative (Luong) attention, not {kind!r}")
    if kind in ("bahdanau", "normed_bahdanau"):
        return BahdanauAttention(query_size, memory_size, query_size,
                                 normalize=kind == "normed_bahdanau", name=name)
    raise ValueError(f"unknown attention {kind!r}")
