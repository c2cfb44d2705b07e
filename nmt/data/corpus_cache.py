"""The binarised training corpus: token ids in flat arrays beside the run, read on demand.

    <out_dir>/corpus_cache/
        meta.json                 the key, array sizes and digests, the corpus report
        src.ids, tgt.ids          the kept pairs' ids end to end (uint16, or int32
                                  for vocabularies over 65,535 pieces)
        src.offsets, tgt.offsets  int64 [n + 1]: pair i is ids[offsets[i]:offsets[i + 1]]
        lines                     int64 [n]: each pair's 1-based line in its files
        sources                   uint8 [n]: which corpus of train_prefix it comes from

One streaming pass builds it: `validation.ParallelScan` checks every line (its
reports are kept in meta.json and logged again on every start), sentencepiece
encodes chunks of pairs, and pairs over max_src_len / max_tgt_len pieces are
dropped and counted. Memory holds one chunk, whatever the corpus size. The
cache is written to a temporary directory and renamed into place, so it is
whole or absent.

The key is the input files' identity (absolute path, size, modification time
and a digest of their first and last 64 KiB), the vocabularies' content and the
limits that decide which pairs are kept. On every start the key and a digest of
every array are checked: a stale cache (inputs or vocabularies changed) or a
corrupt one (truncated, edited) is rebuilt, with one warning line, never used.
Training then plans its batches from the offsets alone (nmt.data.batching.plan_batches).
"""
import collections
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from nmt.data import corpus as corpus_lib
from nmt.data import validation
from nmt.run_dir import CORPUS_CACHE_DIR

FORMAT_VERSION = 1
DIR_NAME = CORPUS_CACHE_DIR
CHUNK_PAIRS = 8192  # pairs encoded at a time: sentencepiece's batch, the memory held
_HEAD_BYTES = 1 << 16  # of each input file, hashed into the key
_ARRAYS = ("src.ids", "tgt.ids", "src.offsets", "tgt.offsets", "lines", "sources")

# Pairs kept after the length filter and dropped by it, over all corpora.
BuildStats = collections.namedtuple("BuildStats", ["kept", "dropped_too_long", "skipped_empty"])


class _ArrayFile:
    """One flat array of the cache, read with pread. What it reads lands in the
    kernel's page cache, not in the process: reading through a memory map instead
    would leave every page a batch touched resident, and over an epoch of random
    batches that is the whole cache."""

    def __init__(self, path: str, dtype, size: int):
        self.path, self.dtype, self.size = path, np.dtype(dtype), size
        self._fd = os.open(path, os.O_RDONLY) if size else None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Items start..stop-1 (a copy)."""
        count = stop - start
        if count <= 0:
            return np.zeros(0, self.dtype)
        want = count * self.dtype.itemsize
        data = os.pread(self._fd, want, start * self.dtype.itemsize)
        if len(data) != want:
            raise corpus_lib.CorpusError(f"{self.path}: truncated while training (read "
                                         f"{len(data)} of {want} bytes at item {start})")
        return np.frombuffer(data, self.dtype)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


class _Ragged(Sequence):
    """values[offsets[i]:offsets[i + 1]] as item i, read from the files on access."""

    def __init__(self, values: _ArrayFile, offsets: _ArrayFile):
        self._values, self._offsets = values, offsets

    def __len__(self):
        return max(self._offsets.size - 1, 0)

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        start, stop = self._offsets.read(i, i + 2)
        return self._values.read(int(start), int(stop)).astype(np.int32)

    def gather(self, index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Items `index` end to end -> (ids [sum of lengths] int32, lengths [batch] int64)."""
        rows = [self[int(i)] for i in index]
        lengths = np.fromiter(map(len, rows), np.int64, count=len(rows))
        return (np.concatenate(rows) if rows else np.zeros(0, np.int32)), lengths


class CachedCorpus:
    """A loaded cache: its arrays (the per-pair ids read on demand), the vocabularies
    and the length limits."""

    def __init__(self, directory: str, meta: dict, src_vocab, tgt_vocab):
        self.directory, self.meta = directory, meta
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.max_src_len, self.max_tgt_len = meta["key"]["max_src_len"], meta["key"]["max_tgt_len"]
        files = {}
        for name in ("src.ids", "tgt.ids", "src.offsets", "tgt.offsets"):
            dtype, shape = meta["arrays"][name]
            files[name] = _ArrayFile(os.path.join(directory, name), dtype, shape[0])
        # mapped: `sources` (a byte per pair) is read whole when an epoch is planned,
        # `lines` only where a pair's line number is wanted
        self.line_numbers = _map(directory, "lines", meta)
        self.sources = _map(directory, "sources", meta)
        self.src_ids = _Ragged(files["src.ids"], files["src.offsets"])
        self.tgt_ids = _Ragged(files["tgt.ids"], files["tgt.offsets"])
        self.stats = BuildStats(*meta["stats"])

    def __len__(self):
        return len(self.line_numbers)

    def lengths(self) -> Tuple[np.ndarray, np.ndarray]:
        """(source, target) lengths in pieces, EOS not counted; int32 [n] each. The
        offsets are read a block at a time, so that memory holds only the result."""
        return self._lengths("src.offsets"), self._lengths("tgt.offsets")

    def _lengths(self, name: str, block: int = 1 << 20) -> np.ndarray:
        out = np.empty(len(self), np.int32)  # [n]
        with open(os.path.join(self.directory, name), "rb") as f:
            previous = np.fromfile(f, np.int64, 1)
            for start in range(0, len(self), block):
                offsets = np.fromfile(f, np.int64, min(block, len(self) - start))
                out[start:start + len(offsets)] = np.diff(np.concatenate([previous, offsets]))
                previous = offsets[-1:]
        return out

    def fingerprint(self) -> int:
        """A 63-bit digest of the arrays: equal only for the same training data."""
        digest = hashlib.blake2b(digest_size=8)
        for name in _ARRAYS:
            digest.update(self.meta["digests"][name].encode())
        return int.from_bytes(digest.digest(), "little") >> 1

    def report(self):
        """The corpus check's report, as found when the cache was built."""
        reports = [_report_from_json(r) for r in self.meta["reports"]]
        return reports[0] if len(reports) == 1 else validation.MixtureReport(reports)


def _map(directory, name, meta):
    dtype, shape = meta["arrays"][name]
    if shape[0] == 0:
        return np.zeros(shape, dtype)
    return np.memmap(os.path.join(directory, name), dtype=dtype, mode="r", shape=tuple(shape))


def _file_identity(path: str) -> list:
    """[absolute path, size, mtime in ns, digest of its first and last 64 KiB]."""
    stat = os.stat(path)
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        digest.update(f.read(_HEAD_BYTES))
        f.seek(max(stat.st_size - _HEAD_BYTES, 0))
        digest.update(f.read(_HEAD_BYTES))
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns, digest.hexdigest()]


def cache_key(files: Sequence[Tuple[str, str]], data_config, src_vocab, tgt_vocab) -> dict:
    """What the cache's content depends on; any change makes it stale."""
    d = data_config
    return {"format": FORMAT_VERSION,
            "files": [[_file_identity(src), _file_identity(tgt)] for src, tgt in files],
            "vocabs": [hashlib.blake2b(v.fingerprint(), digest_size=16).hexdigest()
                       for v in (src_vocab, tgt_vocab)],
            "max_src_len": d.max_src_len, "max_tgt_len": d.max_tgt_len,
            "max_line_chars": d.max_line_chars, "max_line_bytes": d.max_line_bytes}


def _digest_file(path: str) -> str:
    """blake2b of a file, read 4 MiB at a time (page cache, not resident memory)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _problem(directory: str, key: dict) -> Optional[str]:
    """Why the cache in `directory` cannot be used for `key` (None: it can)."""
    meta_path = os.path.join(directory, "meta.json")
    if not os.path.isdir(directory):
        return "absent"
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        return f"corrupt: {meta_path} unreadable ({e})"
    if meta.get("key") != key:
        return "stale: the training files, vocabularies or length limits changed"
    for name in _ARRAYS:
        path = os.path.join(directory, name)
        dtype, shape = meta["arrays"][name]
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return f"corrupt: {path} is not {size} bytes"
        if _digest_file(path) != meta["digests"][name]:
            return f"corrupt: {path} does not match its digest"
    return None


def load_or_build(out_dir: str, files: Sequence[Tuple[str, str]], data_config,
                  src_vocab, tgt_vocab) -> CachedCorpus:
    """The run's corpus cache for these files and vocabularies, built first if it is
    absent, stale or corrupt (logged). CorpusError (one line) if the corpus is unfit."""
    directory = os.path.join(out_dir, DIR_NAME)
    key = cache_key(files, data_config, src_vocab, tgt_vocab)
    problem = _problem(directory, key)
    if problem is None:
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        logging.info("training data from the corpus cache %s (%d pairs)", directory,
                     meta["stats"][0])
        cached = CachedCorpus(directory, meta, src_vocab, tgt_vocab)
        validation.log_report(cached.report())  # as found when it was built
        return cached
    if problem != "absent":
        logging.warning("corpus cache %s is %s; rebuilding it", directory, problem)
    _build(directory, files, data_config, src_vocab, tgt_vocab, key)
    with open(os.path.join(directory, "meta.json")) as f:
        return CachedCorpus(directory, json.load(f), src_vocab, tgt_vocab)


def _chunks(files, data_config, scans: list) -> Iterator[Tuple[int, list]]:
    """(corpus index, up to CHUNK_PAIRS kept (line, src, tgt)) over all corpora; each
    corpus's finished ParallelScan is appended to `scans`."""
    d = data_config
    for source, (src_path, tgt_path) in enumerate(files):
        scan = validation.ParallelScan(src_path, tgt_path, d.max_line_chars, d.max_line_bytes)
        chunk = []
        for pair in scan:
            chunk.append(pair)
            if len(chunk) == CHUNK_PAIRS:
                yield source, chunk
                chunk = []
        if chunk:
            yield source, chunk
        scans.append(scan)


class _Writer:
    """Appends encoded chunks to the array files of a cache being built."""

    def __init__(self, directory: str, id_dtype):
        self.directory, self.id_dtype = directory, np.dtype(id_dtype)
        self.files = {name: open(os.path.join(directory, name), "wb") for name in _ARRAYS}
        self.totals = {"src": 0, "tgt": 0}
        self.num_pairs = 0
        for side in ("src", "tgt"):
            self.files[f"{side}.offsets"].write(np.zeros(1, np.int64).tobytes())

    def add(self, source: int, lines: np.ndarray, src: List[List[int]], tgt: List[List[int]]):
        for side, ids in (("src", src), ("tgt", tgt)):
            lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
            flat = np.fromiter(itertools.chain.from_iterable(ids), self.id_dtype,
                               count=int(lengths.sum()))
            self.files[f"{side}.ids"].write(flat.tobytes())
            offsets = self.totals[side] + np.cumsum(lengths)
            self.files[f"{side}.offsets"].write(offsets.tobytes())
            self.totals[side] = int(offsets[-1]) if len(offsets) else self.totals[side]
        self.files["lines"].write(np.asarray(lines, np.int64).tobytes())
        self.files["sources"].write(np.full(len(lines), source, np.uint8).tobytes())
        self.num_pairs += len(lines)

    def close(self) -> dict:
        """-> {name: [dtype, shape]} of the arrays written."""
        for f in self.files.values():
            f.close()
        n, ids = self.num_pairs, self.id_dtype.str
        return {"src.ids": [ids, [self.totals["src"]]], "tgt.ids": [ids, [self.totals["tgt"]]],
                "src.offsets": ["<i8", [n + 1]], "tgt.offsets": ["<i8", [n + 1]],
                "lines": ["<i8", [n]], "sources": ["|u1", [n]]}


def _build(directory, files, data_config, src_vocab, tgt_vocab, key):
    """Writes the cache in one streaming pass (see the module docstring)."""
    d = data_config
    if len(files) > 255:
        raise corpus_lib.CorpusError(f"--train_prefix: at most 255 corpora (got {len(files)})")
    parent = os.path.dirname(directory)
    for entry in os.listdir(parent):  # left by a build that was killed
        if entry.startswith(DIR_NAME + ".partial-"):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    partial = tempfile.mkdtemp(prefix=DIR_NAME + ".partial-", dir=parent)
    try:
        big = max(src_vocab.size, tgt_vocab.size) > np.iinfo(np.uint16).max + 1
        writer = _Writer(partial, np.int32 if big else np.uint16)
        scans, dropped = [], 0
        for source, chunk in _chunks(files, d, scans):
            numbers, src_lines, tgt_lines = zip(*chunk)
            src, tgt = src_vocab.encode(src_lines), tgt_vocab.encode(tgt_lines)
            keep = [i for i, (s, t) in enumerate(zip(src, tgt))
                    if len(s) <= d.max_src_len and len(t) <= d.max_tgt_len]
            dropped += len(chunk) - len(keep)
            if len(keep) < len(chunk):
                numbers, src, tgt = ([x[i] for i in keep] for x in (numbers, src, tgt))
            writer.add(source, numbers, src, tgt)
        arrays = writer.close()
        reports = [scan.report for scan in scans]
        report = reports[0] if len(reports) == 1 else validation.MixtureReport(reports)
        validation.log_report(report)  # fatal: raises, and nothing is kept
        stats = BuildStats(writer.num_pairs, dropped, sum(s.skipped_empty for s in scans))
        meta = {"key": key, "arrays": arrays, "stats": list(stats),
                "reports": [_report_to_json(r) for r in reports],
                "digests": {name: _digest_file(os.path.join(partial, name)) for name in _ARRAYS}}
        with open(os.path.join(partial, "meta.json"), "w") as f:
            json.dump(meta, f)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.replace(partial, directory)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _report_to_json(report) -> dict:
    return {"src_path": report.src_path, "tgt_path": report.tgt_path,
            "num_pairs": report.num_pairs, "num_kept": report.num_kept,
            "problems": [list(p) for p in report.problems]}


def _report_from_json(raw: dict):
    problems = [validation.Problem(kind, path, count, tuple(lines), detail)
                for kind, path, count, lines, detail in raw["problems"]]
    return validation.Report(raw["src_path"], raw["tgt_path"], raw["num_pairs"],
                             raw["num_kept"], problems)
