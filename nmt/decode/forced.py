"""Teacher-forced views of given translations: log-probabilities and alignments.

Both feed the target `[BOS] + pieces` to the decoder (teacher forcing), so they
describe exactly the translation given, whatever search produced it:

  score_ids      log p(pieces + [EOS] | source), summed over the target pieces
                 and the EOS step (natural log), one float per pair;
  alignment_ids  for target piece j, the source piece index with the most
                 attention when the decoder predicted piece j (EOS excluded),
                 one list of len(pieces) ints per pair.

For a greedy translation the alignments are those the search saw. A pair whose
source has no pieces gets score NaN and no alignments (the model never reads an
empty source; the translator outputs an empty line for it).
"""
import math

import numpy as np
import tensorflow as tf

from nmt.data.batching import pad_batch
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.decode.translate import length_sorted_batches

_SIGNATURE = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32),
              tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)]


class ForcedDecoder:
    """Teacher-forced scoring and alignment with one model (or an nmt.decode.ensemble.Ensemble)."""

    def __init__(self, model, batch_size=64):
        self.batch_size = batch_size

        @tf.function(input_signature=_SIGNATURE)
        def log_probs(src, src_len, tgt_in, tgt_len):
            """-> [batch] sum of log p over tgt_len + 1 steps (EOS included)."""
            logits = model.logits(src, src_len, tgt_in)  # [batch, time, vocab]
            tgt_out = tf.concat([tgt_in[:, 1:], tf.zeros_like(tgt_in[:, :1])], 1)
            tgt_out = tf.tensor_scatter_nd_update(  # EOS after the last piece
                tgt_out, tf.stack([tf.range(tf.shape(tgt_len)[0]), tgt_len], 1),
                tf.fill(tf.shape(tgt_len), EOS_ID))
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tgt_out, logits=logits)
            mask = tf.sequence_mask(tgt_len + 1, tf.shape(tgt_in)[1], dtype=nll.dtype)
            return -tf.reduce_sum(nll * mask, axis=1)

        @tf.function(input_signature=_SIGNATURE)
        def alignments(src, src_len, tgt_in, tgt_len):
            """-> [batch, time] argmax source index of every target step."""
            del tgt_len
            weights = model.alignments(src, src_len, tgt_in)  # [batch, time, src_time]
            return tf.argmax(weights, axis=-1, output_type=tf.int32)

        self._log_probs, self._alignments = log_probs, alignments

    def _run(self, function, src_ids, tgt_ids):
        """Applies function to length-sorted batches; -> (per-pair numpy rows, kept indices)."""
        if len(src_ids) != len(tgt_ids):
            raise ValueError(f"{len(src_ids)} sources but {len(tgt_ids)} targets")
        kept = [i for i, ids in enumerate(src_ids) if ids]
        rows = {}
        for batch in length_sorted_batches([len(src_ids[i]) for i in kept], self.batch_size):
            indices = [kept[j] for j in batch]
            src, src_len = pad_batch([src_ids[i] for i in indices])
            tgt_in, _ = pad_batch([[BOS_ID] + list(tgt_ids[i]) for i in indices])
            tgt_len = np.array([len(tgt_ids[i]) for i in indices], np.int32)
            out = function(tf.constant(src), tf.constant(src_len), tf.constant(tgt_in),
                           tf.constant(tgt_len)).numpy()
            rows.update(zip(indices, out))
        return rows

    def score_ids(self, src_ids, tgt_ids):
        """Id lists (no BOS/EOS) -> list of log p(target + EOS | source), NaN for empty sources."""
        rows = self._run(self._log_probs, src_ids, tgt_ids)
        return [float(rows[i]) if i in rows else math.nan for i in range(len(src_ids))]

    def alignment_ids(self, src_ids, tgt_ids):
        """Id lists -> for each pair, the argmax source index of every target piece."""
        rows = self._run(self._alignments, src_ids, tgt_ids)
        return [rows[i][:len(tgt_ids[i])].tolist() if i in rows else []
                for i in range(len(src_ids))]


def format_alignment(indices):
    """[0, 1, 1, 3] -> "0 1 1 3" (one line of an OUTPUT.align file)."""
    return " ".join(str(i) for i in indices)


def score_files(model_dir, src_path, tgt_path, output_path, which="best", overrides=None):
    """nmt-score: writes one log-probability per line pair of two files (plain or .gz);
    returns them. model_dir "A,B" scores with an ensemble."""
    from nmt import config as config_lib
    from nmt.data import corpus, textio
    from nmt.decode.ensemble import load_ensemble
    config, model, src_vocab, tgt_vocab = load_ensemble(model_dir, which)
    config = config_lib.override(config, overrides or {}).validate()
    src = corpus.read_lines(src_path, on_bad_utf8=corpus.REPLACE)
    tgt = corpus.read_lines(tgt_path, on_bad_utf8=corpus.REPLACE)
    if len(src) != len(tgt):
        raise corpus.CorpusError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}")
    limit = config.decode.max_input_len
    src_ids = [x[:limit] for x in src_vocab.encode(src)]
    scores = ForcedDecoder(model, config.decode.batch_size).score_ids(
        src_ids, tgt_vocab.encode(tgt))
    with textio.atomic_output(output_path) as out:
        out.writelines(f"{s:.6f}\n" for s in scores)
    return scores
