"""Streaming text in and out for translation: never loses or merges a line.

Input lines are split on "\\n" only (a trailing "\\r" is dropped); invalid UTF-8
is replaced by U+FFFD so every line still yields an output line. Output goes to
a temporary file renamed over the target at the end: a run that dies leaves
no half-written file.

`resumable_output` writes PATH.partial instead, made durable chunk by chunk
(`sync`: flush + fsync), and renames it to PATH at the end. A run that dies
leaves PATH.partial; `count_complete_lines` tells how much of it is usable
and `resumable_output(PATH, keep_lines=n)` continues after its first n lines
(nmt-translate --resume).
"""
import contextlib
import gzip
import itertools
import os
import sys

PARTIAL_SUFFIX = ".partial"
_BLOCK = 1 << 20


def read_chunks(path, chunk_size, skip=0):
    """Yields lists of at most chunk_size lines from a file, .gz file or "-" (stdin),
    after skipping the first `skip` lines."""
    if path == "-":
        stream = sys.stdin.buffer
    elif path.endswith(".gz"):
        stream = gzip.open(path, "rb")
    else:
        stream = open(path, "rb")
    try:
        chunk = []
        for raw in itertools.islice(stream, skip, None):
            line = raw.rstrip(b"\n")
            if line.endswith(b"\r"):
                line = line[:-1]
            chunk.append(line.decode("utf-8", errors="replace"))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


@contextlib.contextmanager
def atomic_output(path):
    """A text stream to write to; "-" is stdout, a path is written whole or not at all."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
