"""Tests for nmt/data/batching.py: encoding, length filtering, bucketing, batching."""
import os

import numpy as np
import pytest

from nmt.data import batching, corpus, vocab
from nmt.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "multi30k")


def synthetic(n=300, max_len=20, seed=0):
    """Sentence i's ids start with i + 4 (unique) and have random lengths."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for i in range(n):
        src.append(np.r_[i + 4, rng.integers(4, 50, rng.integers(0, max_len))].astype(np.int32))
        tgt.append(np.r_[i + 4, rng.integers(4, 50, rng.integers(0, max_len))].astype(np.int32))
    return batching.EncodedCorpus(src, tgt, None, None, list(range(1, n + 1)), None, None,
                                  max_len, max_len)


def epoch(dataset):
    return [batching.Batch(*(t.numpy() for t in b)) for b in dataset]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    pc = corpus.read_parallel(os.path.join(DATA, "val.en.gz"), os.path.join(DATA, "val.de.gz"))
    src, tgt = vocab.ensure_vocabs(str(tmp_path_factory.mktemp("v")), pc.src, pc.tgt, 600)
    return pc, src, tgt


@pytest.mark.parametrize("batch_size,batch_tokens", [(16, None), (None, 256), (8, 256)])
def test_every_sentence_once_per_epoch_with_correct_contents(batch_size, batch_tokens):
    enc = synthetic()
    batches = epoch(batching.train_dataset(enc, batch_size=batch_size, batch_tokens=batch_tokens,
                                           seed=3, bucket_width=8))
    seen = np.concatenate([b.src[:, 0] for b in batches]) - 4
    assert sorted(seen) == list(range(len(enc.src_ids)))
    for b in batches:
        size, src_time = b.src.shape
        tgt_time = b.tgt_in.shape[1]
        assert b.tgt_out.shape == b.tgt_in.shape
        assert src_time % 8 == 0 and tgt_time % 8 == 0
        assert src_time - 8 < b.src_len.max() <= src_time
        assert tgt_time - 8 < b.tgt_len.max() <= tgt_time
        if batch_size:
            assert size <= batch_size
        if batch_tokens:
            assert size * max(src_time, tgt_time) <= batch_tokens
        assert all(x.dtype == np.int32 for x in b)
        for row in range(size):
            i = b.src[row, 0] - 4
            s, t = enc.src_ids[i], enc.tgt_ids[i]
            assert b.src_len[row] == len(s) and b.tgt_len[row] == len(t) + 1
            np.testing.assert_array_equal(b.src[row], np.pad(s, (0, src_time - len(s))))
            np.testing.assert_array_equal(
                b.tgt_in[row], np.pad(np.r_[BOS_ID, t], (0, tgt_time - len(t) - 1)))
            np.testing.assert_array_equal(
                b.tgt_out[row], np.pad(np.r_[t, EOS_ID], (0, tgt_time - len(t) - 1)))
    assert PAD_ID == 0


def test_seeds_change_order_and_same_seed_repeats():
    enc = synthetic()

    def order(seed):
        return np.concatenate([b.src[:, 0] for b in epoch(
            batching.train_dataset(enc, batch_tokens=256, seed=seed))])

    def fixed(seed):
        return np.concatenate([b.src[:, 0] for b in epoch(
            batching.train_dataset(enc, batch_size=32, shuffle=False, seed=seed))])

    assert not np.array_equal(order(0), order(1))
    np.testing.assert_array_equal(order(5), order(5))
    np.testing.assert_array_equal(fixed(0), fixed(1))


def test_train_dataset_runs_without_the_autotuner():
    """With tf.data's autotuner on, ending an epoch's iterator waited up to a minute for
    the autotuner's next round (TF 2.21), so training stood idle at every epoch end."""
    dataset = batching.train_dataset(synthetic(), batch_size=16, seed=3)
    assert dataset.options().autotune.enabled is False
    assert dataset.map(lambda *batch: batch[0]).options().autotune.enabled is False


def test_word_dropout_hides_source_and_decoder_input_pieces_but_never_the_targets():
    enc = synthetic(n=400)
    clean = epoch(batching.train_dataset(enc, batch_size=16, seed=7))
    noisy = epoch(batching.train_dataset(enc, batch_size=16, seed=7, word_dropout=0.2))
    other = epoch(batching.train_dataset(enc, batch_size=16, seed=8, word_dropout=0.2))
    hidden = {"src": [], "tgt_in": []}
    for a, b in zip(clean, noisy):
        for field in ("src_len", "tgt_len", "tgt_out"):  # same order, lengths and targets
            np.testing.assert_array_equal(getattr(b, field), getattr(a, field))
        np.testing.assert_array_equal(b.tgt_in[:, 0], BOS_ID)
        for field in ("src", "tgt_in"):
            x, y = getattr(a, field), getattr(b, field)
            changed = x != y
            assert np.all(y[changed] == UNK_ID) and np.all(x[changed] != PAD_ID)
            hidden[field].append(changed.sum() / (x[:, 1:] != PAD_ID).sum()
                                 if field == "tgt_in" else changed.sum() / (x != PAD_ID).sum())
    for field, shares in hidden.items():
        assert 0.17 < np.mean(shares) < 0.23, (field, np.mean(shares))
    def hidden_by_sentence(batches):  # tgt_out[:, 0] names the sentence (i + 4)
        return {int(b.tgt_out[r, 0]): tuple(np.flatnonzero(b.src[r] == UNK_ID))
                for b in batches for r in range(len(b.src))}
    assert hidden_by_sentence(noisy) != hidden_by_sentence(other)  # a new draw every epoch
    assert hidden_by_sentence(noisy) == hidden_by_sentence(
        epoch(batching.train_dataset(enc, batch_size=16, seed=7, word_dropout=0.2)))
    with pytest.raises(ValueError, match="word_dropout"):
        batching.train_dataset(enc, batch_size=16, word_dropout=1.0)


def test_plan_batches_keeps_partial_batches():
    lens = np.array([3, 3, 3, 3, 3, 12, 12, 12])
    plan = batching.plan_batches(lens, lens, batch_size=2, batch_tokens=None, bucket_width=4,
                                 rng=None)
    assert [list(b) for b in plan] == [[0, 1], [2, 3], [4], [5, 6], [7]]


def test_batch_tokens_too_small_for_one_sentence_fails():
    with pytest.raises(ValueError, match="batch_tokens=16"):
        batching.train_dataset(synthetic(max_len=40), batch_tokens=16)
    with pytest.raises(ValueError, match="batch_size or batch_tokens"):
        batching.train_dataset(synthetic())


def test_encode_corpus_counts_dropped_and_truncated(real):
    pc, src_vocab, tgt_vocab = real
    src_lens = [len(x) for x in src_vocab.encode(pc.src)]
    tgt_lens = [len(x) for x in tgt_vocab.encode(pc.tgt)]
    too_long = sum(s > 15 or t > 18 for s, t in zip(src_lens, tgt_lens))
    assert 0 < too_long < len(pc.src)
    enc, stats = batching.encode_corpus(pc, src_vocab, tgt_vocab, 15, 18)
    assert stats == batching.FilterStats(len(pc.src) - too_long, too_long, 0)
    assert len(enc.src_ids) == len(enc.src_lines) == len(enc.line_numbers) == stats.kept
    assert max(map(len, enc.src_ids)) <= 15 and max(map(len, enc.tgt_ids)) <= 18
    i = 7
    assert src_vocab.decode(enc.src_ids[i]) == " ".join(pc.src[enc.line_numbers[i] - 1].split())
    enc, stats = batching.encode_corpus(pc, src_vocab, tgt_vocab, 15, 18, truncate=True)
    assert stats == batching.FilterStats(len(pc.src), 0, too_long)
    assert max(map(len, enc.src_ids)) <= 15 and max(map(len, enc.tgt_ids)) <= 18


def test_fingerprint_tells_apart_ids_pair_boundaries_and_sides():
    base = synthetic(n=50)
    same = synthetic(n=50)
    assert batching.fingerprint(base) == batching.fingerprint(same)
    assert 0 <= batching.fingerprint(base) < 2 ** 63  # fits a signed int64 collective
    one_id = synthetic(n=50)
    one_id.tgt_ids[30] = one_id.tgt_ids[30].copy()
    one_id.tgt_ids[30][0] += 1
    assert batching.fingerprint(one_id) != batching.fingerprint(base)
    moved = synthetic(n=50)  # the same ids in sequence, one boundary moved
    moved.src_ids[0], moved.src_ids[1] = (moved.src_ids[0][:-1],
                                          np.r_[moved.src_ids[0][-1:], moved.src_ids[1]])
    assert np.array_equal(np.concatenate(moved.src_ids), np.concatenate(base.src_ids))
    assert batching.fingerprint(moved) != batching.fingerprint(base)
    swapped = base._replace(src_ids=base.tgt_ids, tgt_ids=base.src_ids)
    assert batching.fingerprint(swapped) != batching.fingerprint(base)


def test_sampling_changes_segmentation_across_epochs_not_text(real):
    pc, src_vocab, tgt_vocab = real
    enc, _ = batching.encode_corpus(pc, src_vocab, tgt_vocab, 40, 40)

    def segmentations(seed):
        out = {}
        for b in epoch(batching.train_dataset(enc, batch_tokens=1024, seed=seed, sample_alpha=0.1)):
            for row in range(b.src.shape[0]):
                ids = tuple(b.src[row, :b.src_len[row]])
                out[src_vocab.decode(ids)] = ids
                assert b.src_len[row] <= 40 and b.tgt_len[row] <= 41
        return out

    first, second = segmentations(0), segmentations(1)
    assert set(first) == set(second) == {" ".join(s.split()) for s in enc.src_lines}
    assert sum(first[k] != second[k] for k in first) > len(first) // 2
    assert segmentations(0) == first


def test_pad_batch():
    ids, lengths = batching.pad_batch([[5, 6, 7], [8], []], pad_to_multiple=4)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    np.testing.assert_array_equal(ids, [[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    assert batching.pad_batch([[1, 2]])[0].shape == (1, 2)
