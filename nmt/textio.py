"""Streaming text in and out for translation: never loses or merges a line.

Input lines are split on "\\n" only (a trailing "\\r" is dropped); invalid UTF-8
is replaced by U+FFFD so every line still yields an output line. Output goes to
a temporary file renamed over the target at the end: a run that dies leaves
no half-written file.
"""
import contextlib
import gzip
import os
import sys


def read_chunks(path, chunk_size):
    """Yields lists of at most chunk_size lines from a file, .gz file or "-" (stdin)."""
    if path == "-":
        stream = sys.stdin.buffer
    elif path.endswith(".gz"):
        stream = gzip.open(path, "rb")
    else:
        stream = open(path, "rb")
    try:
        chunk = []
        for raw in stream:
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


def one_line(text):
    """A translation as exactly one line: newlines and other line breaks become spaces."""
    return " ".join(text.splitlines()) if text else ""
