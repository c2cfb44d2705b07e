"""The trainer's data: checked corpora -> vocabularies -> encoded pairs -> epochs of batches.

`prepare(data_config, out_dir, seed)` runs once per start of a run:
  1. the vocabularies: DataConfig.spm_model copied in, or the run's own, or trained
     on a uniform sample of spm_sample_size sentences drawn in one streaming pass
     over the checked training pairs (nmt.data.vocab.sample_pairs);
  2. the encoded pairs: the run's corpus cache (nmt.data.corpus_cache), built in one
     streaming pass if it is absent, stale or corrupt, else only opened; memory
     does not grow with the corpus. With subword sampling (sample_alpha > 0) each
     epoch re-encodes the raw text, so that path keeps the corpus in memory.
`epoch_dataset` then makes epoch e's batches, shuffled with seed + e, from batch
`start` on: a resumed run gets the same batches in the same order.
"""
import collections

from absl import logging

from nmt import config as config_lib
from nmt.data import batching as batching_lib
from nmt.data import corpus as corpus_lib
from nmt.data import corpus_cache
from nmt.data import validation
from nmt.data import vocab as vocab_lib

# What `prepare` returns.
#   src_vocab, tgt_vocab: the run's vocabularies
#   encoded:  a corpus_cache.CachedCorpus, or (sample_alpha > 0) a data.EncodedCorpus
#   weights:  per corpus of train_prefix, how many times a pair is seen per epoch
TrainingData = collections.namedtuple("TrainingData", ["src_vocab", "tgt_vocab", "encoded",
                                                       "weights"])


def _kept_pairs(files, data_config):
    """The kept (src, tgt) of every training corpus, streamed; CorpusError (one line)
    at the end if a corpus is unfit, so nothing is trained on it."""
    d = data_config
    scans = [validation.ParallelScan(src, tgt, d.max_line_chars, d.max_line_bytes)
             for src, tgt in files]
    for scan in scans:
        for _, src, tgt in scan:
            yield src, tgt
        if not scan.report.ok:
            raise corpus_lib.CorpusError(scan.report.error_message())


def _vocabs(data_config, out_dir, files, seed):
    d = data_config
    if d.spm_model:
        vocab_lib.install_models(out_dir, d.spm_model, d.joint_vocab)
    return vocab_lib.ensure_vocabs_from_pairs(
        out_dir, lambda: _kept_pairs(files, d), d.vocab_size, joint=d.joint_vocab,
        model_type=d.sp_model_type, seed=seed, sample_size=d.spm_sample_size,
        threads=d.spm_threads)


def prepare(data_config, out_dir: str, seed: int = 0) -> TrainingData:
    """The vocabularies and encoded training pairs of a run (see the module docstring);
    logs the corpus report. CorpusError (one line) if a corpus is unfit."""
    d = data_config
    files_weights = validation.training_files(d)
    files = [(src, tgt) for src, tgt, _ in files_weights]
    weights = [w for _, _, w in files_weights]
    if d.sample_alpha > 0.0:
        return _prepare_in_memory(d, out_dir, files, weights, seed)
    src_vocab, tgt_vocab = _vocabs(d, out_dir, files, seed)
    cached = corpus_cache.load_or_build(out_dir, files, d, src_vocab, tgt_vocab)
    stats = cached.stats
    logging.info("training pairs: %d kept, %d dropped as longer than %d/%d pieces, "
                 "%d skipped with an empty side", stats.kept, stats.dropped_too_long,
                 d.max_src_len, d.max_tgt_len, stats.skipped_empty)
    return TrainingData(src_vocab, tgt_vocab, cached, weights)


def _prepare_in_memory(d, out_dir, files, weights, seed) -> TrainingData:
    """Subword sampling re-encodes the raw lines every epoch: they stay in memory."""
    if any(w != 1 for w in weights):
        raise config_lib.ConfigError("corpus weights in train_prefix need sample_alpha=0 "
                                     f"(got {d.train_prefix!r}, sample_alpha={d.sample_alpha})")
    train_corpus = validation.load_training_corpus(d)  # logs a report; fatal: raises
    src_vocab, tgt_vocab = _vocabs(d, out_dir, files, seed)
    encoded, stats = batching_lib.encode_corpus(train_corpus, src_vocab, tgt_vocab,
                                                d.max_src_len, d.max_tgt_len)
    logging.info("training pairs: %d kept, %d dropped as longer than %d/%d pieces, "
                 "%d skipped with an empty side", stats.kept, stats.dropped_too_long,
                 d.max_src_len, d.max_tgt_len, train_corpus.skipped_empty)
    return TrainingData(src_vocab, tgt_vocab, encoded, weights)


def fingerprint(training_data: TrainingData) -> int:
    """A digest of the encoded pairs, for workers to check that they agree."""
    encoded = training_data.encoded
    if isinstance(encoded, corpus_cache.CachedCorpus):
        return encoded.fingerprint()
    return batching_lib.fingerprint(encoded)


def epoch_dataset(training_data: TrainingData, data_config, seed: int, start: int = 0):
    """Epoch batches from batch `start` on, shuffled with `seed` (seed + epoch)."""
    d = data_config
    batch_size, batch_tokens = (None if d.batch_tokens else d.batch_size), d.batch_tokens or None
    encoded = training_data.encoded
    if not isinstance(encoded, corpus_cache.CachedCorpus):
        dataset = batching_lib.train_dataset(
            encoded, batch_size=batch_size, batch_tokens=batch_tokens, seed=seed,
            bucket_width=d.bucket_width, sample_alpha=d.sample_alpha,
            word_dropout=d.word_dropout)
        return dataset.skip(start)
    if not len(encoded):
        raise ValueError("no sentence pairs to batch (all filtered out?)")
    src_lens, tgt_lens = encoded.lengths()
    plan = batching_lib.plan_epoch(src_lens, tgt_lens, encoded.sources, training_data.weights,
                                   batch_size, batch_tokens, True, seed, d.bucket_width)
    return batching_lib.cached_dataset(encoded, plan, start, d.bucket_width, d.word_dropout, seed)

