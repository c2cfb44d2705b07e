"""Tests for nmt/data/corpus_cache.py and nmt/data/training_data.py: the binarised training corpus
gives the in-memory path's pairs and batches, resumes mid-epoch exactly, is rebuilt
when stale or corrupt, mixes weighted corpora, and keeps memory flat."""
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from nmt.config import DataConfig
from nmt.data import batching, corpus, corpus_cache, training_data, validation, vocab

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MULTI30K = os.path.join(ROOT, "data", "multi30k")


def multi30k_lines(lang, n):
    with gzip.open(os.path.join(MULTI30K, f"train.{lang}.gz"), "rt", encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


@pytest.fixture
def corpus_files(tmp_path):
    """400 Multi30k pairs with an empty line, a control character, an over-long line and
    a line over the byte limit; -> (prefix, en lines, de lines)."""
    en, de = multi30k_lines("en", 400), multi30k_lines("de", 400)
    en[3], de[7], en[11], de[20] = "", "bell \x07 here", "word " * 60, "x" * 900
    for lang, lines in (("en", en), ("de", de)):
        (tmp_path / f"c.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(tmp_path / "c"), en, de


def config(prefix, **fields):
    fields = {"vocab_size": 300, "batch_size": 16, "max_src_len": 60, "max_tgt_len": 60,
              "max_line_chars": 200, "max_line_bytes": 800, **fields}
    d = DataConfig(train_prefix=prefix, **fields)
    d.validate()
    return d


def batches(dataset):
    return [batching.Batch(*(np.asarray(t) for t in b)) for b in dataset]


def pairs_of(batch_list):
    """The multiset of (source ids, target ids) pairs in a list of batches."""
    out = []
    for b in batch_list:
        for i in range(len(b.src_len)):
            out.append((tuple(b.src[i, :b.src_len[i]]), tuple(b.tgt_out[i, :b.tgt_len[i] - 1])))
    return sorted(out)


def in_memory_epoch(d, out_dir, seed):
    """One epoch of the in-memory path (validation + encode_corpus + train_dataset)."""
    kept = validation.load_training_corpus(d)
    src_vocab, tgt_vocab = vocab.ensure_vocabs(out_dir, kept.src, kept.tgt, d.vocab_size)
    encoded, _ = batching.encode_corpus(kept, src_vocab, tgt_vocab, d.max_src_len, d.max_tgt_len)
    return batches(batching.train_dataset(encoded, batch_size=d.batch_size, seed=seed,
                                          bucket_width=d.bucket_width))


def test_one_epoch_gives_the_in_memory_paths_pairs_and_batches(corpus_files, tmp_path):
    prefix, _, _ = corpus_files
    d = config(prefix)
    expected = in_memory_epoch(d, str(tmp_path / "run"), seed=5)
    prepared = training_data.prepare(d, str(tmp_path / "run"))
    got = batches(training_data.epoch_dataset(prepared, d, seed=5))
    assert pairs_of(got) == pairs_of(expected)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):  # the same batches in the same order, padded alike
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    stats = prepared.encoded.stats
    assert stats.kept == len(pairs_of(got)) and stats.dropped_too_long > 0


def test_the_cache_keeps_the_corpus_report_and_line_numbers(corpus_files, tmp_path, caplog):
    prefix, en, _ = corpus_files
    d = config(prefix)
    with caplog.at_level("INFO", logger="absl"):
        prepared = training_data.prepare(d, str(tmp_path / "run"))
    cached = prepared.encoded
    kept = [int(n) for n in cached.line_numbers]
    assert {4, 8, 12, 21}.isdisjoint(kept)
    for i in (0, len(kept) // 2, len(kept) - 1):
        assert prepared.src_vocab.decode(cached.src_ids[i]) == en[kept[i] - 1]
    caplog.clear()
    with caplog.at_level("INFO", logger="absl"):  # a second start: the report comes from the cache
        again = training_data.prepare(d, str(tmp_path / "run"))
    assert "lines over the byte limit (over 800 bytes, cut unread): 1 (lines 21)" in caplog.text
    assert "lines with control characters: 1 (lines 8)" in caplog.text
    assert "from the corpus cache" in caplog.text
    assert again.encoded.fingerprint() == cached.fingerprint()


@pytest.mark.parametrize("weights", [None, "2"])
def test_resuming_mid_epoch_gives_the_same_following_batches(corpus_files, tmp_path, weights):
    prefix, _, _ = corpus_files
    d = config(prefix if weights is None else f"{prefix}:{weights}", word_dropout=0.2)
    prepared = training_data.prepare(d, str(tmp_path / "run"))
    whole = batches(training_data.epoch_dataset(prepared, d, seed=2))
    resumed = batches(training_data.epoch_dataset(prepared, d, seed=2, start=7))
    assert len(resumed) == len(whole) - 7
    for a, b in zip(resumed, whole[7:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = batches(training_data.epoch_dataset(prepared, d, seed=3))

    def targets(batch_list):  # the target side has no dropout
        return sorted(t for _, t in pairs_of(batch_list))

    assert targets(other) == targets(whole)
    assert any(not np.array_equal(a.src, b.src) for a, b in zip(other, whole))


def cache_dir(tmp_path):
    return os.path.join(str(tmp_path / "run"), corpus_cache.DIR_NAME)


def flip_byte(path, offset=0):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage,why", [
    (lambda c, p: open(os.path.join(c, "src.ids"), "r+b").truncate(10), "is not"),
    (lambda c, p: flip_byte(os.path.join(c, "tgt.offsets"), 8), "does not match its digest"),
    (lambda c, p: open(os.path.join(c, "meta.json"), "w").write("{"), "unreadable"),
    (lambda c, p: open(p + ".en", "a").write("One more line .\n") and
     open(p + ".de", "a").write("Noch eine Zeile .\n"), "stale"),
])
def test_a_stale_or_corrupt_cache_is_rebuilt_never_used(corpus_files, tmp_path, caplog,
                                                         damage, why):
    prefix, _, _ = corpus_files
    d = config(prefix)
    first = training_data.prepare(d, str(tmp_path / "run"))
    expected = pairs_of(batches(training_data.epoch_dataset(first, d, seed=1)))
    del first
    damage(cache_dir(tmp_path), prefix)
    with caplog.at_level("WARNING"):
        again = training_data.prepare(d, str(tmp_path / "run"))
    assert f"corpus cache {cache_dir(tmp_path)} is" in caplog.text and why in caplog.text
    got = pairs_of(batches(training_data.epoch_dataset(again, d, seed=1)))
    if why == "stale":  # the appended pair is in, the rest as before
        assert len(got) == len(expected) + 1 and set(expected) <= set(got)
    else:
        assert got == expected
    assert corpus_cache._problem(cache_dir(tmp_path), again.encoded.meta["key"]) is None


def test_a_fatal_corpus_leaves_no_cache(tmp_path):
    (tmp_path / "c.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "c.de").write_text("eins\nzwei\n")
    with pytest.raises(corpus.CorpusError, match="line counts differ"):
        training_data.prepare(config(str(tmp_path / "c")), str(tmp_path / "run"))
    assert not [e for e in os.listdir(tmp_path / "run") if e.startswith(corpus_cache.DIR_NAME)]


def test_weighted_corpora_repeat_and_subsample_per_epoch(corpus_files, tmp_path):
    prefix, _, _ = corpus_files
    (tmp_path / "small.en").write_text("A red ball .\nTwo dogs run .\n")
    (tmp_path / "small.de").write_text("Ein roter Ball .\nZwei Hunde rennen .\n")
    small = str(tmp_path / "small")
    d = config(f"{prefix}:0.5,{small}:3")
    prepared = training_data.prepare(d, str(tmp_path / "run"))
    sources = np.asarray(prepared.encoded.sources)
    num_big = int((sources == 0).sum())
    epochs = []
    for seed in (1, 2):
        index = np.concatenate(batching.plan_epoch(
            *prepared.encoded.lengths(), sources, prepared.weights, 16, None, True, seed, 8))
        assert np.bincount(sources[index]).tolist() == [round(num_big / 2), 6]
        assert np.bincount(index[sources[index] == 1]).tolist()[-2:] == [3, 3]
        epochs.append(set(index[sources[index] == 0].tolist()))
    assert epochs[0] != epochs[1]  # a fresh half of the big corpus each epoch


@pytest.mark.parametrize("spec,expected", [
    ("a", [("a", 1.0)]),
    ("web:1,in/domain:4", [("web", 1.0), ("in/domain", 4.0)]),
    (" web:0.25 , c:d/e ", [("web", 0.25), ("c:d/e", 1.0)]),
])
def test_parse_train_prefix(spec, expected):
    assert corpus.parse_train_prefix(spec) == [corpus.TrainSource(*e) for e in expected]


@pytest.mark.parametrize("spec,message", [
    ("a:0", "weight of a must be a positive number"), ("a,,b", "an empty corpus name"),
    ("a,a:2", "a is named twice"), ("a:-1", "positive")])
def test_parse_train_prefix_refuses_bad_specs_in_one_line(spec, message):
    with pytest.raises(corpus.CorpusError, match=message):
        corpus.parse_train_prefix(spec)


def test_sample_pairs_is_uniform_and_takes_all_of_a_small_corpus():
    assert vocab.sample_pairs(range(5), 10, seed=0) == [0, 1, 2, 3, 4]
    counts = np.zeros(1000)
    for seed in range(2000):
        sample = vocab.sample_pairs(range(1000), 50, seed=seed)
        assert len(set(sample)) == 50
        counts[sample] += 1
    # each item is drawn with probability 0.05: 100 times in 2000 draws, sd about 10
    assert 60 < counts.min() and counts.max() < 140
    assert abs(counts[:500].sum() - counts[500:].sum()) < 0.05 * counts.sum()


def test_an_own_spm_model_is_installed_and_must_fit_a_resumed_run(corpus_files, tmp_path):
    prefix, en, de = corpus_files
    mine = vocab.train_sentencepiece(en + de, str(tmp_path / "mine"), vocab_size=280)
    other = vocab.train_sentencepiece(en, str(tmp_path / "other"), vocab_size=300)
    run = str(tmp_path / "run")
    prepared = training_data.prepare(config(prefix, spm_model=mine), run)
    assert prepared.src_vocab.fingerprint() == vocab.Vocab.load(mine).fingerprint()
    assert os.path.isfile(os.path.join(run, "spm.model"))
    with pytest.raises(corpus.CorpusError, match="does not fit the run in"):
        training_data.prepare(config(prefix, spm_model=other), run)
    separate = training_data.prepare(
        config(prefix, spm_model=f"{mine},{other}", joint_vocab=False), str(tmp_path / "sep"))
    assert separate.tgt_vocab.fingerprint() == vocab.Vocab.load(other).fingerprint()
    with pytest.raises(corpus.CorpusError, match="not a usable sentencepiece model"):
        training_data.prepare(config(prefix, spm_model=str(tmp_path / "c.en")),
                              str(tmp_path / "bad"))


def peak_rss_mb(code, *args):
    """Runs python code in a fresh process -> its peak resident memory in MiB (VmHWM: unlike
    ru_maxrss, it does not inherit the high-water mark of the process that started it)."""
    probe = code + ("\nprint([l.split()[1] for l in open('/proc/self/status')"
                    " if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", probe, *args], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": ROOT}).stdout
    return int(out.split()[-1]) / 1024


def test_a_1gb_line_is_cut_without_being_read_into_memory(tmp_path):
    path = str(tmp_path / "huge.en")
    with open(path, "wb") as f:  # sparse: 1 GiB of NUL bytes costs no disk
        f.write(b"first\n")
        f.seek(1 << 30, 1)
        f.write(b"\nlast\n")
    code = ("import sys\nfrom nmt.data import corpus\n"
            "lines = [l if len(l) < 100 else len(l) for l in "
            "corpus.iter_raw_lines(sys.argv[1], 4096)]\n"
            "assert lines == [b'first', 4097, b'last'], lines[:3]\n")
    assert peak_rss_mb(code, path) < 100  # the line alone is 1024 MiB


def write_generated_corpus(prefix, n):
    """n pairs of generated sentences (5-20 words of a 2,000-word vocabulary)."""
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(2000)])
    for lang in ("en", "de"):
        with open(f"{prefix}.{lang}", "w") as f:
            for start in range(0, n, 10000):
                lengths = rng.integers(5, 21, min(10000, n - start))
                f.writelines(" ".join(words[rng.integers(0, 2000, k)]) + "\n" for k in lengths)


def test_memory_stays_flat_on_a_corpus_of_300k_pairs(tmp_path):
    code = ("import sys\nfrom nmt.data import training_data\nfrom nmt.config import DataConfig\n"
            "d = DataConfig(train_prefix=sys.argv[1], vocab_size=500, spm_sample_size=4000,"
            " max_src_len=30, max_tgt_len=30)\n"
            "p = training_data.prepare(d, sys.argv[2])\n"
            "n = sum(1 for _ in training_data.epoch_dataset(p, d, seed=1))\n"
            "print(len(p.encoded), n)\n")
    peaks = {}
    for n in (20_000, 300_000):
        prefix = str(tmp_path / f"g{n}")
        write_generated_corpus(prefix, n)
        peaks[n] = peak_rss_mb(code, prefix, str(tmp_path / f"run{n}"))
    # the in-memory path holds about 1 KiB per pair: 280 MiB more for the larger corpus
    assert peaks[300_000] < peaks[20_000] + 60, peaks


def resident_file_kib():
    """This process's resident pages of mapped files (RssFile), in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def test_reading_batches_leaves_the_cache_out_of_the_trainers_memory(tmp_path):
    # 2M pairs of 16 ids a side: 64 MiB of ids and 16 MiB of offsets per side
    n, length = 2_000_000, 16
    offsets = np.arange(n + 1, dtype=np.int64) * length
    ids = (np.arange(n * length) % 60000).astype(np.uint16)
    arrays = {"src.ids": ids, "tgt.ids": ids[::-1].copy(), "src.offsets": offsets,
              "tgt.offsets": offsets, "lines": np.arange(1, n + 1, dtype=np.int64),
              "sources": np.zeros(n, np.uint8)}
    for name, array in arrays.items():
        array.tofile(tmp_path / name)
    meta = {"key": {"max_src_len": length, "max_tgt_len": length}, "stats": [n, 0, 0],
            "arrays": {name: [a.dtype.str, list(a.shape)] for name, a in arrays.items()}}
    cached = corpus_cache.CachedCorpus(str(tmp_path), meta, None, None)
    index = np.arange(0, n, 128)  # a pair on every page of each ids file
    before = resident_file_kib()
    batch = batching.cached_batch(cached, index, pad_multiple=8)
    grown_mib = (resident_file_kib() - before) / 1024
    assert batch.src[5, :length].tolist() == ids[index[5] * length:(index[5] + 1) * length].tolist()
    assert batch.tgt_out[7, :length].tolist() == arrays["tgt.ids"][
        index[7] * length:(index[7] + 1) * length].tolist()
    # read through a memory map, each ids file's 64 MiB would now be resident
    assert grown_mib < 16, grown_mib
