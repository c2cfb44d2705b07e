"""Tests for nmt/data/corpus.py: finding, reading and validating text files."""
import gzip
import os

import pytest

from nmt.data import corpus

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "data", "multi30k")


def write(path, data: bytes, gz=False):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return str(path)


def test_find_corpus_file_plain_and_gzip(tmp_path):
    plain = write(tmp_path / "a.en", b"x\n")
    gz = write(tmp_path / "a.de.gz", b"y\n", gz=True)
    assert corpus.find_corpus_file(str(tmp_path / "a"), "en") == plain
    assert corpus.find_corpus_file(str(tmp_path / "a"), "de") == gz
    with pytest.raises(corpus.CorpusError, match=r"no file .*a\.fr or .*a\.fr\.gz"):
        corpus.find_corpus_file(str(tmp_path / "a"), "fr")


def test_reads_shipped_gzip_data():
    path = corpus.find_corpus_file(os.path.join(DATA, "val"), "de")
    lines = corpus.read_lines(path)
    assert len(lines) == 1014
    assert all("\n" not in line and not line.endswith("\r") for line in lines)


def test_gzip_and_plain_read_the_same(tmp_path):
    data = "Ein Hund läuft.\r\nZwei Katzen\u2028schlafen.\nohne Zeilenende".encode()
    expected = ["Ein Hund läuft.", "Zwei Katzen\u2028schlafen.", "ohne Zeilenende"]
    assert corpus.read_lines(write(tmp_path / "p.txt", data)) == expected
    assert corpus.read_lines(write(tmp_path / "g.gz", data, gz=True)) == expected


def test_invalid_utf8_error_names_file_line_and_byte(tmp_path):
    path = write(tmp_path / "bad.en", b"good\nalso good\nbad \xff here\n")
    with pytest.raises(corpus.CorpusError) as info:
        corpus.read_lines(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: invalid UTF-8")
    assert "0xff" in message and "column 5" in message
    assert "\n" not in message


def test_replace_mode_counts_bad_lines(tmp_path):
    path = write(tmp_path / "bad.en", b"a\xff\nfine\n\xc3(\xfe\n")
    text = corpus.read_text(path, on_bad_utf8="replace")
    assert text.num_replaced == 2
    assert text.lines == ["a\ufffd", "fine", "\ufffd(\ufffd"]
    assert corpus.read_lines(path, on_bad_utf8="replace") == text.lines
    with pytest.raises(ValueError, match="on_bad_utf8"):
        corpus.read_lines(path, on_bad_utf8="ignore")


def test_mismatched_line_counts_name_both_files_and_counts(tmp_path):
    src = write(tmp_path / "c.en", b"a\nb\nc\n")
    tgt = write(tmp_path / "c.de", b"x\ny\n")
    with pytest.raises(corpus.CorpusError) as info:
        corpus.read_parallel(src, tgt)
    message = str(info.value)
    assert src in message and tgt in message
    assert "3" in message and "2" in message and "\n" not in message


def test_empty_and_whitespace_pairs_are_skipped_and_counted(tmp_path):
    src = write(tmp_path / "c.en", b"one\n\nthree\n \t\nfive\nsix\n")
    tgt = write(tmp_path / "c.de", b"eins\nzwei\n   \nvier\nfuenf\nsechs\n")
    pc = corpus.read_parallel(src, tgt)
    assert pc.src == ["one", "five", "six"]
    assert pc.tgt == ["eins", "fuenf", "sechs"]
    assert pc.line_numbers == [1, 5, 6]
    assert pc.skipped_empty == 3
    limited = corpus.read_parallel(src, tgt, max_lines=5)
    assert limited.src == ["one", "five"] and limited.skipped_empty == 3


def reference_lines(data: bytes, limit=None):
    """The lines of `data` split on b"\\n" with one "\\r" dropped (a BOM dropped first); a
    line over `limit` bytes, "\\r" counted, as its first limit + 1 bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line[:limit + 1] if limit is not None and len(line) > limit
            else line[:-1] if line.endswith(b"\r") else line for line in lines]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
@pytest.mark.parametrize("limit", [None, 4, 9])
def test_the_bounded_reader_splits_and_cuts_lines_across_chunks(tmp_path, monkeypatch,
                                                                chunk, limit):
    monkeypatch.setattr(corpus, "_CHUNK_BYTES", chunk)
    data = (b"\xef\xbb\xbfone\r\ntwo\n\nthree four five six\r\n\r\n"
            b"seven\rX\n" + b"z" * 40 + b"\r\nabcd\r\nlast, no newline")
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    assert list(corpus.iter_raw_lines(str(path), limit)) == reference_lines(data, limit)
    assert list(corpus.iter_raw_lines(str(path), limit)) != []
