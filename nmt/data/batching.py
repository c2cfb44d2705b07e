"""tf.data input pipeline: encode once, filter by length, bucket, batch by tokens.

    corpus.ParallelCorpus --encode_corpus--> EncodedCorpus (+ FilterStats)
    EncodedCorpus --train_dataset(seed=epoch seed)--> one epoch of `Batch`es

Sentencepiece encodes the whole corpus once (C++ batch encode). Each epoch
only shuffles and groups indices with numpy; tf.data gathers and pads the
batches. One `train_dataset` call is exactly one epoch: every kept sentence
appears once (the last partial batch of each bucket is kept). The trainer calls
it again for every epoch with a new seed (e.g. `seed = base_seed + epoch`),
which reshuffles and, with subword sampling, re-segments the sentences; with word
dropout, it also draws which pieces become <unk> (source and decoder input only:
the decoder still predicts the real target).

Time dimensions are padded to multiples of `bucket_width`, so an XLA-compiled
train step sees few distinct shapes.

The pipeline runs with tf.data's autotuner off (`without_autotune`): with it on,
destroying an iterator waits for the autotuner's next round, up to a minute in
TensorFlow 2.21, so training stood idle for 0-60 s at the end of every epoch.
"""
import collections
import hashlib
import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from nmt.data import corpus as corpus_lib
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocab

# One training batch; all int32.
#   src      [batch, src_time]  source ids, PAD_ID-padded
#   src_len  [batch]            source lengths
#   tgt_in   [batch, tgt_time]  BOS + target ids (decoder input)
#   tgt_out  [batch, tgt_time]  target ids + EOS (what the decoder predicts)
#   tgt_len  [batch]            target lengths, EOS counted
Batch = collections.namedtuple("Batch", ["src", "src_len", "tgt_in", "tgt_out", "tgt_len"])

# Fixed tf.data parallelism (the autotuner is off, see the module docstring): the
# gather-and-pad map is cheap (a whole epoch takes about a second), so two threads and
# a few batches ahead keep a training step from ever waiting for data.
MAP_THREADS = 2
PREFETCH_BATCHES = 4

# The kept pairs as ids (no BOS/EOS), with what is needed to re-encode them.
#   src_ids, tgt_ids:       list of int32 arrays, [len] each
#   src_lines, tgt_lines:   the raw sentences of the kept pairs
#   line_numbers:           1-based line of each kept pair in the corpus files
#   src_vocab, tgt_vocab:   the vocabs that produced the ids
#   max_src_len, max_tgt_len: the length limits in pieces (EOS not counted)
EncodedCorpus = collections.namedtuple("EncodedCorpus", [
    "src_ids", "tgt_ids", "src_lines", "tgt_lines", "line_numbers",
    "src_vocab", "tgt_vocab", "max_src_len", "max_tgt_len"])

# What length filtering did: pairs kept, dropped, and kept after truncation.
FilterStats = collections.namedtuple("FilterStats", ["kept", "dropped_too_long", "truncated"])


def fingerprint(encoded: EncodedCorpus) -> int:
    """A 63-bit digest of the kept pairs' ids: equal only if the corpus, the length
    limits and the vocabularies encode the same training data."""
    digest = hashlib.blake2b(digest_size=8)
    for side in (encoded.src_ids, encoded.tgt_ids):
        digest.update(np.asarray([len(ids) for ids in side], np.int64).tobytes())
        digest.update(np.concatenate(side or [np.zeros(0, np.int32)]).tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


def _round_up(n, multiple):
    return -(-n // multiple) * multiple


def encode_corpus(corpus: corpus_lib.ParallelCorpus, src_vocab: Vocab, tgt_vocab: Vocab,
                  max_src_len: int, max_tgt_len: int,
                  truncate: bool = False) -> Tuple[EncodedCorpus, FilterStats]:
    """Encodes every pair once and drops (or truncates) pairs that are too long.

    Lengths are in pieces without BOS/EOS: a kept target has at most
    max_tgt_len pieces, so tgt_out has at most max_tgt_len + 1 steps.
    """
    if max_src_len < 1 or max_tgt_len < 1:
        raise ValueError(f"max_src_len and max_tgt_len must be >= 1 "
                         f"(got {max_src_len}, {max_tgt_len})")
    src_all = src_vocab.encode(corpus.src)
    tgt_all = tgt_vocab.encode(corpus.tgt)
    keep = {"src_ids": [], "tgt_ids": [], "src_lines": [], "tgt_lines": [], "line_numbers": []}
    dropped = truncated = 0
    for i, (s, t) in enumerate(zip(src_all, tgt_all)):
        if len(s) > max_src_len or len(t) > max_tgt_len:
            if not truncate:
                dropped += 1
                continue
            s, t = s[:max_src_len], t[:max_tgt_len]
            truncated += 1
        keep["src_ids"].append(np.asarray(s, np.int32))
        keep["tgt_ids"].append(np.asarray(t, np.int32))
        keep["src_lines"].append(corpus.src[i])
        keep["tgt_lines"].append(corpus.tgt[i])
        keep["line_numbers"].append(corpus.line_numbers[i])
    encoded = EncodedCorpus(src_vocab=src_vocab, tgt_vocab=tgt_vocab,
                            max_src_len=max_src_len, max_tgt_len=max_tgt_len, **keep)
    return encoded, FilterStats(len(encoded.src_ids), dropped, truncated)


def _flat(ids: Sequence[Sequence[int]]) -> Tuple[np.ndarray, np.ndarray]:
    """Ragged ids -> (values [total] int32, lengths [n] int64), without a
    Python-level loop over the corpus."""
    lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
    values = np.fromiter(itertools.chain.from_iterable(ids), np.int32,
                         count=int(lengths.sum()))
    return values, lengths


def _sampled_ids(encoded: EncodedCorpus, alpha: float, seed: int):
    """A sampled segmentation of every kept pair; a pair whose sample exceeds
    the length limits keeps its deterministic ids."""
    src = encoded.src_vocab.encode(encoded.src_lines, sample_alpha=alpha, seed=seed)
    tgt = encoded.tgt_vocab.encode(encoded.tgt_lines, sample_alpha=alpha, seed=seed + 1)
    src_lens = np.fromiter(map(len, src), np.int64, count=len(src))
    tgt_lens = np.fromiter(map(len, tgt), np.int64, count=len(tgt))
    too_long = np.flatnonzero((src_lens > encoded.max_src_len) |
                              (tgt_lens > encoded.max_tgt_len))
    for i in too_long:  # few: only pairs near the limit
        src[i], tgt[i] = encoded.src_ids[i], encoded.tgt_ids[i]
    return src, tgt


def plan_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, batch_size: Optional[int],
                 batch_tokens: Optional[int], bucket_width: int,
                 rng: Optional[np.random.Generator]) -> List[np.ndarray]:
    """Groups sentence indices into batches; every index appears exactly once.

    tgt_lens count EOS. Sentences are bucketed by their padded length
    round_up(max(src_len, tgt_len), bucket_width); a bucket of padded length L
    is cut into batches of min(batch_size, batch_tokens // L) sentences, the
    last one possibly smaller. With `rng` the order within buckets and the
    order of batches are random; without it both are by length and index.
    """
    padded = _round_up(np.maximum(src_lens, tgt_lens), bucket_width)  # [n]
    order = rng.permutation(len(padded)) if rng is not None else np.arange(len(padded))
    order = order[np.argsort(padded[order], kind="stable")]
    batches = []
    for length in np.unique(padded):
        members = order[padded[order] == length]
        size = batch_size if batch_size is not None else len(members)
        if batch_tokens is not None:
            if length > batch_tokens:
                raise ValueError(f"batch_tokens={batch_tokens} cannot hold one sentence of "
                                 f"padded length {length}; raise batch_tokens or lower "
                                 f"the maximum lengths")
            size = min(size, batch_tokens // int(length))
        batches.extend(np.split(members, range(size, len(members), size)))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def train_dataset(encoded: EncodedCorpus, batch_size: Optional[int] = None,
                  batch_tokens: Optional[int] = None, shuffle: bool = True, seed: int = 0,
                  bucket_width: int = 8, sample_alpha: float = 0.0,
                  word_dropout: float = 0.0) -> tf.data.Dataset:
    """One epoch of `Batch`es over `encoded`.

    batch_size: at most this many sentences per batch; batch_tokens: at most
    this many padded tokens, batch * max(src_time, tgt_time). Give either or
    both. seed: shuffles (and with sample_alpha > 0 re-segments) this epoch;
    pass a different seed every epoch. sample_alpha > 0 re-encodes the raw
    lines with subword sampling before batching. word_dropout > 0 replaces
    each source and decoder-input piece by UNK_ID with that probability
    (Sennrich et al. 2016 drop whole words likewise); tgt_out keeps the real ids.
    """
    if batch_size is None and batch_tokens is None:
        raise ValueError("give batch_size or batch_tokens (or both)")
    for name, value in (("batch_size", batch_size), ("batch_tokens", batch_tokens),
                        ("bucket_width", bucket_width)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1 (got {value})")
    if not encoded.src_ids:
        raise ValueError("no sentence pairs to batch (all filtered out?)")
    if not 0.0 <= word_dropout < 1.0:
        raise ValueError(f"word_dropout must be in [0, 1) (got {word_dropout})")
    if sample_alpha > 0.0:
        src_ids, tgt_ids = _sampled_ids(encoded, sample_alpha, seed)
    else:
        src_ids, tgt_ids = encoded.src_ids, encoded.tgt_ids
    src_values, src_lens = _flat(src_ids)
    tgt_values, tgt_lens = _flat(tgt_ids)
    tgt_in_values = tgt_values
    if word_dropout > 0.0:
        noise = np.random.default_rng([seed, 1])  # its own stream: the shuffle stays the same
        src_values = _drop_words(src_values, word_dropout, noise)
        tgt_in_values = _drop_words(tgt_values, word_dropout, noise)
    rng = np.random.default_rng(seed) if shuffle else None
    batches = plan_batches(src_lens, tgt_lens + 1, batch_size, batch_tokens, bucket_width, rng)
    index = tf.RaggedTensor.from_row_lengths(
        np.concatenate(batches).astype(np.int64), [len(b) for b in batches])
    src_rt = tf.RaggedTensor.from_row_lengths(src_values, src_lens)  # [n, (len)]
    tgt_rt = tf.RaggedTensor.from_row_lengths(tgt_values, tgt_lens)  # [n, (len)]
    tgt_in_rt = tf.RaggedTensor.from_row_lengths(tgt_in_values, tgt_lens)  # [n, (len)]
    make = _batch_fn(src_rt, tgt_rt, bucket_width, tgt_in_rt)
    dataset = tf.data.Dataset.from_tensor_slices(index)
    dataset = dataset.map(make, num_parallel_calls=MAP_THREADS, deterministic=True)
    return without_autotune(dataset.prefetch(PREFETCH_BATCHES))


def epoch_indices(sources: np.ndarray, weights: Sequence[float],
                  rng: Optional[np.random.Generator]) -> np.ndarray:
    """The pair indices of one epoch of a weighted mixture: a pair of corpus c comes
    floor(weights[c]) times, plus once more with probability weights[c] % 1 (drawn
    from rng; without rng, the first pairs of that share). -> int64 [m]."""
    if all(w == 1 for w in weights):
        return np.arange(len(sources), dtype=np.int64)
    parts = []
    for c, weight in enumerate(weights):
        members = np.flatnonzero(sources == c)
        whole, fraction = divmod(weight, 1.0)
        parts += [members] * int(whole)
        if fraction:
            count = int(round(fraction * len(members)))
            parts.append(np.sort(rng.choice(members, count, replace=False)) if rng is not None
                         else members[:count])
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def plan_epoch(src_lens: np.ndarray, tgt_lens: np.ndarray, sources: np.ndarray,
               weights: Sequence[float], batch_size: Optional[int],
               batch_tokens: Optional[int], shuffle: bool, seed: int,
               bucket_width: int) -> List[np.ndarray]:
    """One epoch's batches of pair indices, from the lengths alone (EOS not counted in
    tgt_lens). With all weights 1 they are the batches `train_dataset` makes."""
    rng = np.random.default_rng(seed) if shuffle else None
    if all(w == 1 for w in weights):  # every pair once: no copies of the length arrays
        return plan_batches(src_lens, tgt_lens + 1, batch_size, batch_tokens, bucket_width,
                            rng)
    indices = epoch_indices(sources, weights, rng)
    batches = plan_batches(src_lens[indices], tgt_lens[indices] + 1, batch_size, batch_tokens,
                           bucket_width, rng)
    return [indices[b] for b in batches]


def _padded(flat: np.ndarray, lengths: np.ndarray, time: int, first=None, last=None):
    """Rows of flat ids -> [batch, time] PAD_ID-padded, with an optional id before
    (`first`) or after (`last`) every row."""
    out = np.full([len(lengths), time], PAD_ID, np.int32)  # [batch, time]
    shift = 1 if first is not None else 0
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + shift
    out[rows, cols] = flat
    if first is not None:
        out[:, 0] = first
    if last is not None:
        out[np.arange(len(lengths)), lengths + shift] = last
    return out


def cached_batch(cached, index: np.ndarray, pad_multiple: int, word_dropout: float = 0.0,
                 noise: Optional[np.random.Generator] = None) -> Batch:
    """The `Batch` of pairs `index` of a corpus cache (nmt.data.corpus_cache), as numpy."""
    src, src_len = cached.src_ids.gather(index)
    tgt, tgt_len = cached.tgt_ids.gather(index)
    tgt_input = tgt
    if word_dropout > 0.0:
        src = _drop_words(src, word_dropout, noise)
        tgt_input = _drop_words(tgt, word_dropout, noise)
    src_time = _round_up(max(int(src_len.max()), 1), pad_multiple)
    tgt_time = _round_up(int(tgt_len.max()) + 1, pad_multiple)
    return Batch(_padded(src, src_len, src_time), src_len.astype(np.int32),
                 _padded(tgt_input, tgt_len, tgt_time, first=BOS_ID),
                 _padded(tgt, tgt_len, tgt_time, last=EOS_ID), (tgt_len + 1).astype(np.int32))


def cached_dataset(cached, plan: List[np.ndarray], start: int = 0, bucket_width: int = 8,
                   word_dropout: float = 0.0, seed: int = 0) -> tf.data.Dataset:
    """The batches plan[start:] of a corpus cache as a dataset of `Batch`es: each is
    read from the cache's files when it is needed, so starting mid-epoch costs nothing
    and memory holds a few batches. Word dropout draws from (seed, batch number), so a
    resumed epoch drops the same pieces."""
    if not 0.0 <= word_dropout < 1.0:
        raise ValueError(f"word_dropout must be in [0, 1) (got {word_dropout})")
    def batches():
        for number in range(start, len(plan)):
            noise = np.random.default_rng([seed, 1, number]) if word_dropout > 0.0 else None
            yield tuple(cached_batch(cached, plan[number], bucket_width, word_dropout, noise))

    matrix, vector = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)
    dataset = tf.data.Dataset.from_generator(
        batches, output_signature=(matrix, vector, matrix, matrix, vector))
    return without_autotune(dataset.map(lambda *b: Batch(*b)).prefetch(PREFETCH_BATCHES))


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuner off. With it on, an iterator's destructor
    waits for the autotuner thread's next round (its period doubles up to a minute),
    which stalled training at every epoch end; measured: 44 s once in two epochs."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _drop_words(values: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each id replaced by UNK_ID with probability `rate`."""
    return np.where(rng.random(len(values)) < rate, np.int32(UNK_ID), values)


def _batch_fn(src_rt: tf.RaggedTensor, tgt_rt: tf.RaggedTensor, pad_multiple: int,
              tgt_in_rt: tf.RaggedTensor):
    """index [batch] -> Batch, time dims padded to multiples of pad_multiple; the decoder
    input comes from tgt_in_rt (the target ids, or with word dropout's <unk>s)."""

    def pad_to(ragged, time):  # [batch, (len)] -> [batch, time]
        dense = ragged.to_tensor(default_value=PAD_ID)
        return tf.pad(dense, [[0, 0], [0, time - tf.shape(dense)[1]]],
                      constant_values=PAD_ID)

    def make(index):
        src = tf.gather(src_rt, index)  # [batch, (src_len)]
        tgt = tf.gather(tgt_rt, index)  # [batch, (tgt_len - 1)]
        tgt_input = tf.gather(tgt_in_rt, index)  # the same lengths
        src_len = tf.cast(src.row_lengths(), tf.int32)  # [batch]
        tgt_len = tf.cast(tgt.row_lengths(), tf.int32) + 1  # [batch], EOS counted
        src_time = _round_up(tf.reduce_max(src_len), pad_multiple)
        tgt_time = _round_up(tf.reduce_max(tgt_len), pad_multiple)
        special = tf.ones_like(index, tf.int32)[:, None]  # [batch, 1]
        tgt_in = tf.concat([special * BOS_ID, tgt_input], axis=1)  # [batch, (tgt_len)]
        tgt_out = tf.concat([tgt, special * EOS_ID], axis=1)  # [batch, (tgt_len)]
        return Batch(pad_to(src, src_time), src_len, pad_to(tgt_in, tgt_time),
                     pad_to(tgt_out, tgt_time), tgt_len)

    return make


def pad_batch(ids: Sequence[Sequence[int]],
              pad_to_multiple: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    """Pads id lists into (ids [batch, time] int32, lengths [batch] int32).

    time is the longest length rounded up to pad_to_multiple (at least 1 step).
    """
    if pad_to_multiple < 1:
        raise ValueError(f"pad_to_multiple must be >= 1 (got {pad_to_multiple})")
    lengths = np.array([len(x) for x in ids], np.int32)  # [batch]
    time = _round_up(max(int(lengths.max(initial=0)), 1), pad_to_multiple)
    out = np.full([len(ids), time], PAD_ID, np.int32)  # [batch, time]
    for row, x in enumerate(ids):
        out[row, :len(x)] = x
    return out, lengths
