"""Lines in, translated lines out: batched, sorted by length, input order restored.

Every input line yields exactly one result. A line that encodes to no pieces
(empty or whitespace-only) gets an empty translation without touching the
model. Inputs longer than DecodeConfig.max_input_len pieces are truncated to
it (bounded memory; the truncation is counted); readers cut longer lines at
`max_line_bytes` bytes before they are decoded. With DecodeConfig.mbr, the search
returns its whole n-best list (beam_size hypotheses), which nmt.decode.mbr reorders by
expected BLEU before the first num_hypotheses are kept.
"""
import collections

import numpy as np
import tensorflow as tf

from nmt.data.batching import pad_batch
from nmt.decode import mbr
from nmt.model import precision

Hypothesis = collections.namedtuple("Hypothesis", ["text", "score", "ids"])

# A piece is at most 16 characters (sentencepiece's max_sentencepiece_length) of at
# most 4 UTF-8 bytes, and pieces never span words: cutting a line after this many
# bytes per piece of max_input_len leaves the pieces the model sees unchanged,
# except in lines padded with long runs of spaces (which are collapsed).
MAX_PIECE_BYTES = 64


def max_line_bytes(decode_config):
    """Input lines are cut at this many bytes while read (bounded memory per line)."""
    return decode_config.max_input_len * MAX_PIECE_BYTES


def length_sorted_batches(lengths, batch_size, batch_tokens=0):
    """Index lists, longest first, of at most batch_size sentences (or a source-token budget)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, current, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        full = (len(current) >= batch_size if not batch_tokens
                else (len(current) + 1) * longest_if_added > batch_tokens)
        if current and full:
            batches.append(current)
            current, longest_if_added = [], lengths[index]
        current.append(int(index))
        longest = longest_if_added
    if current:
        batches.append(current)
    return batches


class Translator:
    """A loaded model plus its vocabularies and a DecodeConfig."""

    def __init__(self, model, src_vocab, tgt_vocab, decode_config, compact=True):
        """decode_config.decode_precision sets the search's dtypes (nmt.model.precision), whatever
        precision the model was trained in. compact: the search drops finished sentences'
        rows (nmt.decode.search); False keeps every row to the end, for comparison."""
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.config = decode_config
        self.num_truncated = 0
        c = decode_config
        self.search_hypotheses = c.beam_size if c.mbr else c.num_hypotheses
        compute_dtype = precision.compute_dtype(c.decode_precision)
        projection_dtype = precision.projection_dtype(c.decode_precision)

        @tf.function(autograph=False,
                     input_signature=[tf.TensorSpec([None, None], tf.int32),
                                      tf.TensorSpec([None], tf.int32)])
        def translate_batch(src, src_len):
            return model.translate(src, src_len, beam_size=c.beam_size,
                                   length_penalty=c.length_penalty,
                                   coverage_penalty=c.coverage_penalty,
                                   num_hypotheses=self.search_hypotheses,
                                   max_length=int(c.max_length_ratio * c.max_input_len) + 10,
                                   max_length_ratio=c.max_length_ratio,
                                   compute_dtype=compute_dtype,
                                   projection_dtype=projection_dtype, compact=compact)

        self._translate_batch = translate_batch

    def encode(self, lines):
        """Lines -> id lists truncated to max_input_len (the count is kept)."""
        ids = self.src_vocab.encode(list(lines))
        limit = self.config.max_input_len
        self.num_truncated += sum(len(x) > limit for x in ids)
        return [x[:limit] for x in ids]

    def translate(self, lines, progress=None):
        """Lines -> one list of num_hypotheses Hypothesis per line, in input order.

        progress: optional callable(n), called as n more lines are done.
        """
        ids = self.encode(lines)
        results = [None] * len(ids)
        lengths = [len(x) for x in ids]
        empty = Hypothesis("", 0.0, [])
        for i, n in enumerate(lengths):
            if n == 0:
                results[i] = [empty] * self.config.num_hypotheses
        nonempty = [i for i, n in enumerate(lengths) if n]
        if progress and len(nonempty) < len(ids):
            progress(len(ids) - len(nonempty))
        sub_lengths = [lengths[i] for i in nonempty]
        for batch in length_sorted_batches(sub_lengths, self.config.batch_size,
                                           self.config.batch_tokens):
            indices = [nonempty[j] for j in batch]
            src, src_len = pad_batch([ids[i] for i in indices])
            out = self._translate_batch(tf.constant(src, tf.int32), tf.constant(src_len, tf.int32))
            out_ids, scores, out_lengths = (t.numpy() for t in out)
            for row, i in enumerate(indices):
                hyp_ids = [out_ids[row, k, :out_lengths[row, k]] for k in range(out_ids.shape[1])]
                results[i] = [Hypothesis(self.tgt_vocab.decode(ids), float(scores[row, k]),
                                         ids.tolist()) for k, ids in enumerate(hyp_ids)]
                if self.config.mbr:
                    results[i] = mbr.rerank(results[i])[:self.config.num_hypotheses]
            if progress:
                progress(len(indices))
        return results

    def translate_text(self, lines):
        """Lines -> the best translation of each, as strings."""
        return [hyps[0].text for hyps in self.translate(lines)]
