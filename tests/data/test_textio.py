"""Tests for nmt/data/textio.py: chunked reading that never loses or merges a line, atomic
output."""
import gzip
import io
import os
import sys

import pytest

from nmt.data import textio

AWKWARD = (b"plain\n"
           b"\n"                              # empty
           b"   \t \n"                        # whitespace only
           b"windows\r\n"                     # CRLF ending
           b"bad \xff\xfe bytes\n"            # invalid UTF-8
           b"line\xe2\x80\xa8separator\n"     # U+2028 inside a line
           b"form\x0cfeed \x1b[0m\n"          # control characters
           + "emoji \U0001F600 漢字\n".encode()
           + b"no final newline")
EXPECTED = ["plain", "", "   \t ", "windows", "bad \ufffd\ufffd bytes", "line\u2028separator",
            "form\x0cfeed \x1b[0m", "emoji \U0001F600 漢字", "no final newline"]


def write(path, data, gz=False):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.mark.parametrize("gz", [False, True])
def test_read_chunks_splits_on_newline_only(tmp_path, gz):
    path = write(tmp_path / ("in.txt.gz" if gz else "in.txt"), AWKWARD, gz=gz)
    chunks = list(textio.read_chunks(path, 4))
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert [line for chunk in chunks for line in chunk] == EXPECTED


def test_read_chunks_exact_multiple_and_empty_file(tmp_path):
    path = write(tmp_path / "six.txt", b"".join(b"%d\n" % i for i in range(6)))
    assert list(textio.read_chunks(path, 3)) == [["0", "1", "2"], ["3", "4", "5"]]
    assert list(textio.read_chunks(path, 100)) == [[str(i) for i in range(6)]]
    assert list(textio.read_chunks(write(tmp_path / "empty.txt", b""), 3)) == []


def test_read_chunks_keeps_a_lone_carriage_return_inside_a_line(tmp_path):
    path = write(tmp_path / "cr.txt", b"a\rb\n\r\n")
    assert list(textio.read_chunks(path, 10)) == [["a\rb", ""]]


def test_read_chunks_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(AWKWARD)))
    assert [line for c in textio.read_chunks("-", 2) for line in c] == EXPECTED


def test_atomic_output_writes_the_whole_file(tmp_path):
    path = str(tmp_path / "out.txt")
    with textio.atomic_output(path) as f:
        f.write("eins\n")
        assert not os.path.exists(path)  # nothing visible until the end
        f.write("zwei\n")
    with open(path, "rb") as f:
        assert f.read() == b"eins\nzwei\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_output_leaves_no_file_when_the_writer_raises(tmp_path):
    path = str(tmp_path / "out.txt")
    with pytest.raises(RuntimeError, match="boom"):
        with textio.atomic_output(path) as f:
            f.write("half a translation\n")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_output_keeps_the_old_file_when_the_writer_raises(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with textio.atomic_output(str(path)) as f:
            f.write("new\n")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_output_dash_is_stdout(capsys):
    with textio.atomic_output("-") as f:
        f.write("to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"


@pytest.mark.parametrize("text, expected", [
    ("", ""),
    ("ein Satz", "ein Satz"),
    ("zwei\nZeilen", "zwei Zeilen"),
    ("crlf\r\nund\rcr", "crlf und cr"),
    ("u2028\u2028u2029\u2029nel\x85ende", "u2028 u2029 nel ende"),
    ("trailing\n", "trailing"),
])
def test_one_line_never_returns_a_line_break(text, expected):
    out = textio.one_line(text)
    assert out == expected
    assert len((out + "\n").splitlines()) == 1


# --- resumable output (nmt-translate --resume) ---

def test_read_chunks_can_skip_lines(tmp_path):
    path = write(tmp_path / "six.txt.gz", b"".join(b"%d\n" % i for i in range(6)), gz=True)
    assert list(textio.read_chunks(path, 2, skip=3)) == [["3", "4"], ["5"]]
    assert list(textio.read_chunks(path, 2, skip=9)) == []


def test_resumable_output_writes_partial_then_renames(tmp_path):
    path = str(tmp_path / "out.txt")
    with textio.resumable_output(path) as f:
        f.write("eins\n")
        textio.sync(f)
        assert not os.path.exists(path)
        with open(path + ".partial", "rb") as partial:  # durable before the end
            assert partial.read() == b"eins\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_resumable_output_keeps_the_partial_on_error_and_resumes_after_n_lines(tmp_path):
    path = str(tmp_path / "out.txt")
    with pytest.raises(KeyboardInterrupt):
        with textio.resumable_output(path) as f:
            f.write("eins\nzwei\ndrei\nhal")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["out.txt.partial"]
    assert textio.count_complete_lines(path + ".partial") == 3
    with textio.resumable_output(path, keep_lines=2) as f:  # "drei" and "hal" are cut off
        f.write("DREI\n")
    with open(path, "rb") as f:
        assert f.read() == b"eins\nzwei\nDREI\n"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
def test_truncate_lines_across_read_blocks(tmp_path, monkeypatch, block):
    monkeypatch.setattr(textio, "_BLOCK", block)
    data = b"a\nbb\n\nccc\nhalf"
    for n in range(5):
        path = write(tmp_path / f"t{n}.txt", data)
        textio.truncate_lines(path, n)
        with open(path, "rb") as f:
            assert f.read() == b"".join(data.splitlines(keepends=True)[:n])
    with pytest.raises(ValueError, match="fewer than 5 lines"):
        textio.truncate_lines(write(tmp_path / "t.txt", data), 5)
    assert textio.count_complete_lines(str(tmp_path / "missing")) == 0


# --- lines cut at a byte limit while read ---

def test_read_bounded_lines_cuts_long_lines_and_keeps_the_next(tmp_path):
    data = b"short\n" + b"x" * 100 + b"\nafter\n" + b"y" * 10 + b"\n" + b"z" * 11
    cut = []
    lines = list(textio.read_bounded_lines(io.BytesIO(data), 10, on_cut=lambda: cut.append(1)))
    assert lines == [b"short", b"x" * 10, b"after", b"y" * 10, b"z" * 10]
    assert len(cut) == 2


def test_read_bounded_lines_cuts_at_a_character_boundary():
    text = "é" * 10 + "\n"  # two bytes each
    assert list(textio.read_bounded_lines(io.BytesIO(text.encode()), 5)) == ["éé".encode()]
    emoji = "ab\U0001F600cd\n".encode()
    assert list(textio.read_bounded_lines(io.BytesIO(emoji), 4)) == [b"ab"]


def test_the_input_digest_covers_every_byte_read_including_cut_ones(tmp_path):
    one = write(tmp_path / "one.txt", b"a" * 50 + b"\nb\n")
    two = write(tmp_path / "two.txt", b"a" * 49 + b"c\nb\n")
    digests = []
    for path in (one, two):
        with textio.InputReader(path, max_line_bytes=10) as reader:
            assert [line for c in reader.chunks(5) for line in c] == ["a" * 10, "b"]
            digests.append(reader.hexdigest())
    assert digests[0] != digests[1]


def zeros_gzip(path, megabytes, before=b"", after=b""):
    """A gzip file: before + megabytes MiB of NUL bytes (one line) + after, written as
    one gzip member per MiB so that making it takes no time."""
    member = gzip.compress(b"\0" * (1 << 20))
    with open(path, "wb") as f:
        f.write(gzip.compress(before))
        for _ in range(megabytes):
            f.write(member)
        f.write(gzip.compress(after))
    return str(path)


def test_a_gzip_bomb_line_is_read_in_bounded_memory(tmp_path):
    import tracemalloc
    path = zeros_gzip(tmp_path / "bomb.gz", 200, before=b"first\n", after=b"\nlast\n")
    tracemalloc.start()
    try:
        with textio.InputReader(path, max_line_bytes=1000) as reader:
            lines = [line for c in reader.chunks(10) for line in c]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert lines == ["first", "\0" * 1000, "last"] and reader.num_cut == 1
    assert peak < 20 << 20, peak  # the 200 MiB line is never held


def test_a_bom_is_dropped_from_the_first_line_only(tmp_path):
    path = write(tmp_path / "bom.txt", b"\xef\xbb\xbfone\n\xef\xbb\xbftwo\n")
    assert list(textio.read_chunks(path, 5)) == [["one", "\ufefftwo"]]


def test_a_truncated_gzip_file_is_one_corpus_error_naming_the_line(tmp_path):
    from nmt.data.corpus import CorpusError
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(20000)))
    path = write(tmp_path / "cut.gz", data[:len(data) // 2])
    with pytest.raises(CorpusError, match=r"cut\.gz: truncated after line \d+ "):
        list(textio.read_chunks(path, 100))


def test_resumable_output_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_replace, real_fsync_path = os.replace, textio.files.fsync_path
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", b)),
                                                     real_replace(a, b)))
    monkeypatch.setattr(textio.files, "fsync_path", lambda p: (events.append(("fsync", p)),
                                                               real_fsync_path(p)))
    path = str(tmp_path / "out.txt")
    with textio.resumable_output(path) as f:
        f.write("x\n")
    assert events == [("replace", path), ("fsync", str(tmp_path))]


def test_atomic_output_that_cannot_be_written_is_one_output_error(tmp_path):
    path = str(tmp_path / "missing_dir" / "out.txt")
    with pytest.raises(textio.OutputError, match=r"missing_dir/out\.txt: cannot write "
                                                  r"\(No such file or directory\)"):
        with textio.atomic_output(path) as f:
            f.write("x\n")
