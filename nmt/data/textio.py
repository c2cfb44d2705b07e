"""Streaming text in and out for translation: never loses or merges a line.

Input lines are split on "\\n" only (a trailing "\\r" is dropped, a leading
UTF-8 BOM too); invalid UTF-8 is replaced by U+FFFD so every line still yields
an output line. A line longer than max_line_bytes is cut while it is read (the
rest is read in blocks and dropped), so memory stays bounded whatever the input:
a multi-gigabyte line or a gzip bomb. Output goes to a temporary file renamed
over the target at the end: a run that dies leaves no half-written file.

`resumable_output` writes PATH.partial instead, made durable chunk by chunk
(`sync`: flush + fsync), and renames it to PATH at the end. A run that dies
leaves PATH.partial; `count_complete_lines` tells how much of it is usable
and `resumable_output(PATH, keep_lines=n)` continues after its first n lines
(nmt-translate --resume).
"""
import contextlib
import gzip
import hashlib
import os
import sys
import zlib

from nmt import files
from nmt.data.corpus import CorpusError

PARTIAL_SUFFIX = ".partial"
_BLOCK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"


class OutputError(Exception):
    """An output file cannot be written (no space, no permission, no such directory)."""


@contextlib.contextmanager
def output_errors(path):
    """Turns an OSError raised in the block into a one-line OutputError naming `path`
    (the file the user named, not a temporary or partial file beside it)."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__})") from None


def open_input(path):
    """A binary stream of a file (gzip-compressed if it starts with the gzip magic
    bytes, whatever its name) or of stdin for "-"; CorpusError if it cannot be opened."""
    if path == "-":
        return sys.stdin.buffer
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_GZIP_MAGIC))
        return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")
    except OSError as e:
        raise CorpusError(f"{path}: cannot open ({e.strerror})") from None


def read_bounded_lines(stream, max_line_bytes=None, on_cut=None, digest=None):
    """Yields the lines of a binary stream without their "\\n", each cut to at most
    max_line_bytes bytes (at a UTF-8 character boundary; None: no limit). The rest
    of a longer line is read in blocks and dropped, never held whole. on_cut() is
    called for each cut line; digest.update() gets every byte read."""
    limit = max_line_bytes + 1 if max_line_bytes else -1
    while line := stream.readline(limit):
        if digest:
            digest.update(line)
        if line.endswith(b"\n"):
            yield line[:-1]
        elif not max_line_bytes or len(line) <= max_line_bytes:
            yield line  # the last line, without a final newline
        else:
            while rest := stream.readline(_BLOCK):
                if digest:
                    digest.update(rest)
                if rest.endswith(b"\n"):
                    break
            if on_cut:
                on_cut()
            yield _cut_utf8(line, max_line_bytes)


def _cut_utf8(data, limit):
    """data[:limit] without a trailing incomplete UTF-8 character."""
    cut = data[:limit]
    for back in range(1, min(4, len(cut)) + 1):
        byte = cut[-back]
        if byte & 0xC0 != 0x80:  # the first byte of the last character
            length = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return cut[:-back] if length > back else cut
    return cut


class InputReader:
    """The lines of a file, .gz file or "-" (stdin) as str, in bounded memory, with
    a SHA-256 of the bytes read so far (`hexdigest`, for --resume) and the number
    of lines read and cut. Read errors (a truncated gzip file, an I/O error) are
    one-line CorpusErrors naming the file and line."""

    def __init__(self, path, max_line_bytes=None):
        self.path = path
        self.lines_read = self.num_cut = 0
        self._digest = hashlib.sha256()
        self._stream = open_input(path)
        self._lines = read_bounded_lines(self._stream, max_line_bytes, self._cut, self._digest)

    def _cut(self):
        self.num_cut += 1

    def hexdigest(self):
        return self._digest.hexdigest()

    def _next(self):
        """The next line as str, or None at the end of the input."""
        try:
            raw = next(self._lines, None)
        except (OSError, EOFError, zlib.error) as e:
            cause = "truncated" if isinstance(e, EOFError) else "cannot read"
            raise CorpusError(f"{self.path}: {cause} after line {self.lines_read} "
                              f"({e})") from None
        if raw is None:
            return None
        if self.lines_read == 0 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        self.lines_read += 1
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return raw.decode("utf-8", errors="replace")

    def skip(self, count):
        """Reads and drops up to `count` lines; -> the number dropped."""
        skipped = 0
        while skipped < count and self._next() is not None:
            skipped += 1
        return skipped

    def chunks(self, chunk_size):
        """Yields lists of at most chunk_size lines up to the end of the input."""
        chunk = []
        while (line := self._next()) is not None:
            chunk.append(line)
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self):
        if self._stream is not sys.stdin.buffer:
            self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_chunks(path, chunk_size, skip=0, max_line_bytes=None):
    """Yields lists of at most chunk_size lines from a file, .gz file or "-" (stdin),
    after skipping the first `skip` lines."""
    with InputReader(path, max_line_bytes) as reader:
        reader.skip(skip)
        yield from reader.chunks(chunk_size)


def count_input_lines(path):
    """Lines in a file or .gz file, counted in blocks (bounded memory); None for stdin."""
    if path == "-":
        return None
    with contextlib.closing(open_input(path)) as stream:
        try:
            count, last = 0, b"\n"
            while block := stream.read(_BLOCK):
                count, last = count + block.count(b"\n"), block[-1:]
        except (OSError, EOFError, zlib.error) as e:
            raise CorpusError(f"{path}: cannot read ({e})") from None
    return count + (last != b"\n")


@contextlib.contextmanager
def atomic_output(path):
    """A text stream to write to; "-" is stdout, a path is written whole or not at all
    (durably). An OSError (no such directory, no space) is a one-line OutputError."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with output_errors(path), files.atomic_open(path) as f:
        yield f  # the block only writes to f: its OSErrors are output errors too


@contextlib.contextmanager
def resumable_output(path, keep_lines=0):
    """A text stream writing PATH.partial, renamed to PATH when the block ends normally.

    "-" is stdout. keep_lines > 0: PATH.partial's first keep_lines lines are kept
    (anything after them, e.g. half a line, is cut off) and writing appends;
    otherwise PATH.partial starts empty. If the block raises (or the process
    dies), PATH.partial stays for a later resume. Call `sync` after each chunk.
    """
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = path + PARTIAL_SUFFIX
    if keep_lines:
        truncate_lines(partial, keep_lines)
    with open(partial, "a" if keep_lines else "w", encoding="utf-8", newline="\n") as f:
        yield f
        sync(f)
    os.replace(partial, path)
    files.fsync_path(os.path.dirname(os.path.abspath(path)))


def sync(stream):
    """Makes what was written to `stream` durable: flush, and fsync for a file."""
    stream.flush()
    if stream is not sys.stdout:
        os.fsync(stream.fileno())


def count_complete_lines(path):
    """Lines ending in "\n" in a file (0 if it does not exist); reads in blocks."""
    if not os.path.exists(path):
        return 0
    count = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            count += block.count(b"\n")
    return count


def truncate_lines(path, num_lines):
    """Cuts a file after its first num_lines lines (it must have that many)."""
    offset = seen = 0
    with open(path, "r+b") as f:
        while seen < num_lines:
            block = f.read(_BLOCK)
            if not block:
                raise ValueError(f"{path} has fewer than {num_lines} lines")
            start = 0
            while seen < num_lines and (end := block.find(b"\n", start)) >= 0:
                seen, start = seen + 1, end + 1
            offset += start if seen == num_lines else len(block)
        f.truncate(offset)


def one_line(text):
    """A translation as exactly one line: newlines and other line breaks become spaces."""
    return " ".join(text.splitlines()) if text else ""
