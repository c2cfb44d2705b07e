"""Reading text corpora: one sentence per line, plain or gzip, strictly UTF-8.

This is the first stage of the data flow (text -> pieces -> ids -> batches) and
imports no TensorFlow. Every problem is a `CorpusError` whose one-line message
names the file, the line and the cause, raised before any training starts.

Invalid UTF-8 is handled by `on_bad_utf8`:
  * "error"   (training, vocabulary building): fail on the first bad byte, so a
              broken corpus is noticed instead of silently learning U+FFFD.
  * "replace" (translation, nmt-translate): bad bytes become U+FFFD and are
              counted, so every input line still yields exactly one output line.

Lines are split on "\\n" only (a trailing "\\r" is dropped too), never with
str.splitlines(), which would also split on U+2028, U+0085, form feed etc. and
break line alignment between the two sides of a parallel corpus.
"""
import collections
import gzip
import itertools
import os
import zlib
from typing import BinaryIO, Iterator, List, Optional

from absl import logging

ERROR = "error"
REPLACE = "replace"
_BAD_UTF8_MODES = (ERROR, REPLACE)
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"


class CorpusError(ValueError):
    """A corpus file cannot be used; the message names file, line and cause."""


# What `read_text` returns: the lines and how many of them had bytes replaced.
TextFile = collections.namedtuple("TextFile", ["lines", "num_replaced"])

# A sentence-aligned corpus after skipping empty pairs.
#   src, tgt:       the kept sentences, src[i] translates to tgt[i]
#   line_numbers:   1-based line number (in both files) of each kept pair
#   skipped_empty:  pairs dropped because either side was empty/whitespace
ParallelCorpus = collections.namedtuple(
    "ParallelCorpus", ["src", "tgt", "line_numbers", "skipped_empty"])


# One corpus of a training mixture: files `prefix.<lang>[.gz]`, and how many times each
# of its pairs is seen per epoch (a fraction: that share of them, drawn anew each epoch).
TrainSource = collections.namedtuple("TrainSource", ["prefix", "weight"])


def parse_train_prefix(spec: str) -> List[TrainSource]:
    """`P1[:W1],P2[:W2],...` -> [TrainSource]; W defaults to 1 and must be > 0.

    E.g. "web:1,indomain:4": every in-domain pair comes 4 times per epoch, every web
    pair once; "web:0.25,indomain" sees a fresh quarter of the web pairs each epoch.
    """
    sources = []
    for item in spec.split(","):
        prefix, weight = item.strip(), 1.0
        head, sep, tail = prefix.rpartition(":")
        if sep and head:
            try:
                prefix, weight = head, float(tail)
            except ValueError:
                pass  # a ':' that is part of the path
        if not prefix:
            raise CorpusError(f"--train_prefix={spec!r}: an empty corpus name")
        if not weight > 0 or weight == float("inf"):
            raise CorpusError(f"--train_prefix={spec!r}: the weight of {prefix} must be a "
                              f"positive number (got {tail})")
        if prefix in (s.prefix for s in sources):
            raise CorpusError(f"--train_prefix={spec!r}: {prefix} is named twice")
        sources.append(TrainSource(prefix, weight))
    return sources


def find_corpus_file(prefix: str, lang: str) -> str:
    """Returns `prefix.lang` if it exists, else `prefix.lang.gz`."""
    for path in (f"{prefix}.{lang}", f"{prefix}.{lang}.gz"):
        if os.path.isfile(path):
            return path
    raise CorpusError(f"no file {prefix}.{lang} or {prefix}.{lang}.gz")


def find_parallel_sets(data_dir: str, src: str, tgt: str) -> "dict[str, tuple[str, str]]":
    """{name: (src_path, tgt_path)} for every `name.src[.gz]` in data_dir that has a
    `name.tgt[.gz]`, sorted by name (plain files preferred, as find_corpus_file)."""
    if not os.path.isdir(data_dir):
        raise CorpusError(f"{data_dir}: no such data dir")
    names = set()
    for entry in os.listdir(data_dir):
        for suffix in (f".{src}", f".{src}.gz"):
            if entry.endswith(suffix) and len(entry) > len(suffix):
                names.add(entry[:-len(suffix)])
    sets = {}
    for name in sorted(names):
        prefix = os.path.join(data_dir, name)
        try:
            sets[name] = (find_corpus_file(prefix, src), find_corpus_file(prefix, tgt))
        except CorpusError:  # no target side: not a parallel set
            continue
    return sets


def open_text(path: str) -> BinaryIO:
    """Opens a plain or gzip-compressed file (detected by its magic bytes) for
    reading bytes."""
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as e:
        raise CorpusError(f"{path}: cannot open ({e.strerror})") from e
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


_CHUNK_BYTES = 1 << 20  # what the bounded reader reads at a time


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def _bounded_blocks(f: BinaryIO, max_line_bytes: Optional[int]) -> Iterator[List[bytes]]:
    """The lines of `f`, split as described above, read _CHUNK_BYTES at a time and
    yielded a list per chunk. A line of more than max_line_bytes bytes (a trailing
    "\\r" counted) comes as its first max_line_bytes + 1 bytes (so its length tells it
    was cut); the rest of it is read past, never held."""
    limit = max_line_bytes if max_line_bytes is not None else -1
    pending, cut = b"", False  # the current line's start; is it cut?
    start = f.read(len(_UTF8_BOM))
    start = b"" if start == _UTF8_BOM else start
    while True:
        chunk = start + f.read(_CHUNK_BYTES)
        start = b""
        if not chunk:
            break
        pieces = chunk.split(b"\n")  # pieces[0] ends the pending line, pieces[-1] starts one
        if len(pieces) > 1:
            head = pending if cut else pending + pieces[0]
            lines = [head] + pieces[1:-1]
            if limit >= 0 and max(map(len, lines)) > limit:
                lines = [p[:limit + 1] if len(p) > limit else p for p in lines]
            if b"\r" in chunk or head.endswith(b"\r"):
                lines = [p if len(p) > limit >= 0 else _strip_cr(p) for p in lines]
            yield lines
            pending, cut = b"", False
        if not cut:
            pending += pieces[-1]
            if limit >= 0 and len(pending) > limit:
                pending, cut = pending[:limit + 1], True
    if pending or cut:
        yield [pending if cut else _strip_cr(pending)]


def iter_raw_blocks(path: str, max_line_bytes: Optional[int] = None) -> Iterator[List[bytes]]:
    """`iter_raw_lines` a list of lines at a time (about 1 MiB of text each)."""
    if max_line_bytes is not None and max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be >= 1 (got {max_line_bytes})")
    try:
        with open_text(path) as f:
            yield from _bounded_blocks(f, max_line_bytes)
    except (OSError, EOFError, zlib.error) as e:  # e.g. a truncated gzip file
        raise CorpusError(f"{path}: cannot read ({e})") from e


def iter_raw_lines(path: str, max_line_bytes: Optional[int] = None) -> Iterator[bytes]:
    """The lines of `path` (plain or .gz) as undecoded bytes, streamed in bounded
    memory (a leading UTF-8 BOM dropped). A line over max_line_bytes bytes comes as its
    first max_line_bytes + 1 bytes: `len(line) > max_line_bytes` marks it as cut."""
    return itertools.chain.from_iterable(iter_raw_blocks(path, max_line_bytes))


def read_raw_lines(path: str) -> List[bytes]:
    """All lines of `path` (plain or .gz) as undecoded bytes, split as described
    above (a leading UTF-8 BOM dropped)."""
    return list(iter_raw_lines(path))


def read_text(path: str, on_bad_utf8: str = ERROR) -> TextFile:
    """Reads all lines of `path` (plain or .gz) without their line endings."""
    if on_bad_utf8 not in _BAD_UTF8_MODES:
        raise ValueError(
            f"on_bad_utf8 must be one of {_BAD_UTF8_MODES} (got {on_bad_utf8!r})")
    raw = read_raw_lines(path)
    try:  # fast path: the whole file is valid UTF-8
        return TextFile([line.decode("utf-8") for line in raw], 0)
    except UnicodeDecodeError:
        pass
    lines, num_replaced = [], 0
    for number, line in enumerate(raw, start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            if on_bad_utf8 == ERROR:
                raise CorpusError(
                    f"{path}:{number}: invalid UTF-8 (byte 0x{line[e.start]:02x} "
                    f"at column {e.start + 1})") from None
            lines.append(line.decode("utf-8", errors="replace"))
            num_replaced += 1
    return TextFile(lines, num_replaced)


def read_lines(path: str, on_bad_utf8: str = ERROR) -> List[str]:
    """Like `read_text` but returns only the lines; replacements are logged."""
    text = read_text(path, on_bad_utf8)
    if text.num_replaced:
        logging.warning("%s: %d lines had invalid UTF-8 replaced by U+FFFD",
                        path, text.num_replaced)
    return text.lines


def read_parallel(src_path: str, tgt_path: str,
                  max_lines: Optional[int] = None,
                  on_bad_utf8: str = ERROR) -> ParallelCorpus:
    """Reads a sentence-aligned pair of files.

    The two files must have the same number of lines (checked on the whole
    files, before `max_lines` keeps only the first lines). Pairs where either
    side is empty or whitespace-only are skipped and counted.
    """
    if max_lines is not None and max_lines < 0:
        raise ValueError(f"max_lines must be >= 0 (got {max_lines})")
    src_lines = read_lines(src_path, on_bad_utf8)
    tgt_lines = read_lines(tgt_path, on_bad_utf8)
    if len(src_lines) != len(tgt_lines):
        raise CorpusError(
            f"line counts differ: {src_path} has {len(src_lines)} lines, "
            f"{tgt_path} has {len(tgt_lines)} lines")
    if max_lines is not None:
        src_lines, tgt_lines = src_lines[:max_lines], tgt_lines[:max_lines]
    src, tgt, numbers = [], [], []
    for number, (s, t) in enumerate(zip(src_lines, tgt_lines), start=1):
        if s.strip() and t.strip():
            src.append(s)
            tgt.append(t)
            numbers.append(number)
    skipped = len(src_lines) - len(src)
    if skipped:
        logging.info("%s / %s: skipped %d pairs with an empty side",
                     src_path, tgt_path, skipped)
    return ParallelCorpus(src, tgt, numbers, skipped)
