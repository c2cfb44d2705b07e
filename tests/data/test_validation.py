"""Tests for nmt/data/validation.py: every problem counted with its first line numbers, recoverable
ones skipped, fatal ones refused; and nmt-train --validate_only / the Trainer using it."""
import gzip
import os
import subprocess
import sys

import pytest

from nmt.config import DataConfig
from nmt.data import corpus, validation

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LIMIT = 20  # max_line_chars in these tests


def write(path, data: bytes, gz=False):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return str(path)


def pair(tmp_path, src: bytes, tgt: bytes, gz=False):
    suffix = ".gz" if gz else ""
    return (write(tmp_path / f"c.en{suffix}", src, gz), write(tmp_path / f"c.de{suffix}", tgt, gz))


def problems(report):
    return {(p.kind, os.path.basename(p.path)): (p.count, p.lines) for p in report.problems}


GOOD = [b"a house", b"two dogs", b"a cat", b"one bird", b"the sun", b"a tree", b"blue sky"]


def test_clean_corpus_keeps_every_pair(tmp_path):
    src, tgt = pair(tmp_path, b"\n".join(GOOD) + b"\n", b"\n".join(GOOD[::-1]) + b"\n")
    report, kept = validation.check_parallel(src, tgt, LIMIT)
    assert report.ok and report.problems == []
    assert (report.num_pairs, report.num_kept) == (7, 7)
    assert kept.src == [g.decode() for g in GOOD] and kept.line_numbers == list(range(1, 8))
    assert "trainable: 7 pairs kept, 0 skipped" in report.format()


@pytest.mark.parametrize("gz", [False, True])
def test_recoverable_problems_are_skipped_counted_and_located(tmp_path, gz):
    en = [b"ok one", b"", b"ok three", b"ctrl \x1b[31m red", b"ok five", b"x" * (LIMIT + 1),
          b"ok seven", b"ok eight", b"tab\tis fine", b"ok ten"]
    de = [b"gut eins", b"gut zwei", b" \t ", b"gut vier", b"", b"gut sechs", b"bell \x07",
          b"y" * LIMIT, b"gut neun", b"lone \r cr"]
    src, tgt = pair(tmp_path, b"\n".join(en) + b"\n", b"\r\n".join(de) + b"\r\n", gz=gz)
    report, kept = validation.check_parallel(src, tgt, LIMIT)
    assert report.ok
    name_en, name_de = os.path.basename(src), os.path.basename(tgt)
    assert problems(report) == {
        ("empty", name_en): (1, (2,)), ("empty", name_de): (1, (5,)),
        ("whitespace", name_de): (1, (3,)),
        ("too_long", name_en): (1, (6,)),  # exactly LIMIT characters is fine (de line 8)
        ("control", name_en): (1, (4,)), ("control", name_de): (2, (7, 10)),
    }
    assert kept.line_numbers == [1, 8, 9]
    assert kept.src == ["ok one", "ok eight", "tab\tis fine"]
    assert kept.tgt == ["gut eins", "y" * LIMIT, "gut neun"]
    assert kept.skipped_empty == 3  # pairs 2, 3, 5
    assert (report.num_pairs, report.num_kept) == (10, 3)
    text = report.format()
    assert f"skipped: {src}: empty lines: 1 (lines 2)" in text
    assert f"skipped: {tgt}: lines with control characters: 2 (lines 7, 10)" in text
    assert "trainable: 3 pairs kept, 7 skipped" in text


def test_only_the_first_few_line_numbers_are_kept(tmp_path):
    lines = [b"ok", b""] * 20
    src, tgt = pair(tmp_path, b"\n".join(lines) + b"\n", b"\n".join([b"gut"] * 40) + b"\n")
    report, _ = validation.check_parallel(src, tgt, LIMIT)
    (problem,) = report.problems
    assert problem.count == 20 and problem.lines == (2, 4, 6, 8, 10)
    assert "empty lines: 20 (lines 2, 4, 6, 8, 10, ...)" in validation.describe(problem)


def fatal_report(tmp_path, src: bytes, tgt: bytes):
    report, kept = validation.check_parallel(*pair(tmp_path, src, tgt), LIMIT)
    assert not report.ok and kept is None and report.num_kept == 0
    return report


def test_line_count_mismatch_is_fatal(tmp_path):
    report = fatal_report(tmp_path, b"one\ntwo\nthree\n", b"eins\nzwei\n")
    assert [p.kind for p in report.fatal] == ["line_counts"]
    message = report.error_message()
    assert "c.en has 3 lines" in message and "c.de has 2 lines" in message
    assert "\n" not in message


def test_invalid_utf8_is_fatal_with_every_line_counted(tmp_path):
    report = fatal_report(tmp_path, b"one\ntwo\nthree\nfour\n", b"eins\nzw\xe9i\ndrei\nv\xffier\n")
    (problem,) = report.fatal
    assert (problem.kind, problem.count, problem.lines) == ("invalid_utf8", 2, (2, 4))
    message = report.error_message()
    assert message.startswith(f"{tmp_path / 'c.de'}:2: invalid UTF-8 (byte 0xe9 at column 3)")
    assert "lines with invalid UTF-8: 2 (lines 2, 4)" in message


def test_nul_bytes_mean_a_binary_file(tmp_path):
    report = fatal_report(tmp_path, b"one\ntw\x00o\nthree\n", b"eins\nzwei\ndrei\n")
    assert [p.kind for p in report.fatal] == ["binary"]
    assert report.error_message().startswith(f"{tmp_path / 'c.en'}: not a text file")


def test_a_real_binary_file_is_refused(tmp_path):
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # every byte value, NULs too
    src = write(tmp_path / "img.en", image)
    tgt = write(tmp_path / "img.de", b"eins\n" * 9)
    report, kept = validation.check_parallel(src, tgt, LIMIT)
    assert kept is None and [p.kind for p in report.fatal][0] == "binary"
    assert report.error_message().startswith(f"{src}: not a text file: lines with NUL bytes: ")


def test_a_broken_gzip_file_cannot_be_read(tmp_path):
    data = gzip.compress(b"".join(b"line %d\n" % i for i in range(1000)))
    src = write(tmp_path / "c.en", data[:len(data) // 2])  # cut in half
    tgt = write(tmp_path / "c.de", b"eins\nzwei\n" * 100)
    with pytest.raises(corpus.CorpusError, match=r"c\.en: cannot read"):
        validation.check_parallel(src, tgt, LIMIT)


@pytest.mark.parametrize("src, tgt, expected", [
    (b"", b"", "empty file"),
    (b"\n\n  \n", b"a\n\nb\n", "no sentence pairs left to train on (all 3 were skipped)"),
])
def test_an_empty_corpus_is_fatal(tmp_path, src, tgt, expected):
    report = fatal_report(tmp_path, src, tgt)
    assert [p.kind for p in report.fatal][:1] == ["empty_corpus"]
    assert expected in report.error_message()


def test_source_and_target_the_same_file_is_fatal(tmp_path):
    path = write(tmp_path / "c.en", b"one\ntwo\n")
    os.link(path, tmp_path / "c.de")  # another name, the same file
    report, kept = validation.check_parallel(path, str(tmp_path / "c.de"), LIMIT)
    assert kept is None and [p.kind for p in report.fatal] == ["same_file"]
    assert "are the same file" in report.error_message()
    assert "NOT trainable" in report.format()


def test_load_training_corpus_raises_one_line(tmp_path):
    pair(tmp_path, b"one\ntwo\n", b"eins\n")
    config = DataConfig(train_prefix=str(tmp_path / "c"), max_line_chars=LIMIT)
    with pytest.raises(corpus.CorpusError, match=r"^line counts differ: .*c\.en has 2 lines"):
        validation.load_training_corpus(config)


def test_load_training_corpus_returns_the_kept_pairs(tmp_path):
    pair(tmp_path, b"one\n\nthree\n", b"eins\nzwei\ndrei\n")
    config = DataConfig(train_prefix=str(tmp_path / "c"), max_line_chars=LIMIT)
    kept = validation.load_training_corpus(config)
    assert kept.src == ["one", "three"] and kept.line_numbers == [1, 3]


# --- nmt-train --validate_only and the Trainer ---

def nmt_train(*args):
    return subprocess.run([sys.executable, "-m", "nmt.cli.train", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_validate_only_reports_and_sets_the_exit_status(tmp_path):
    """No --model_dir needed, nothing is written, the status says whether the corpus can be
    trained on."""
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    pair(tmp_path / "good", b"one\n\nthree\n", b"eins\nzwei\ndrei\n")
    pair(tmp_path / "bad", b"one\ntwo\n", b"eins\n")
    good, bad = (nmt_train("--validate_only", "--max_line_chars=20",
                           f"--train_prefix={tmp_path / name / 'c'}") for name in ("good", "bad"))
    assert good.returncode == 0, good.stderr
    assert "skipped: " in good.stdout and "empty lines: 1 (lines 2)" in good.stdout
    assert "trainable: 2 pairs kept, 1 skipped" in good.stdout
    assert bad.returncode == 1, bad.stderr
    assert "FATAL: line counts differ" in bad.stdout and "NOT trainable" in bad.stdout
    assert "Traceback" not in good.stderr + bad.stderr
    assert sorted(os.listdir(tmp_path / "good")) == ["c.de", "c.en"]  # nothing written


def test_validate_only_streams_without_tensorflow(tmp_path):
    """It imports no TensorFlow (seconds of start-up and about 600 MiB): a stand-in that
    fails on import sits first on the path."""
    stand_in = tmp_path / "no_tf" / "tensorflow"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ImportError('tensorflow imported')\n")
    pair(tmp_path, b"one\ntwo\n", b"eins\nzwei\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "no_tf"), REPO, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "nmt.cli.train", "--validate_only",
                          f"--train_prefix={tmp_path / 'c'}"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "trainable: 2 pairs kept, 0 skipped" in run.stdout


def tiny_train_config(prefix, **data):
    from nmt.config import Config, ModelConfig, TrainConfig
    return Config(
        data=DataConfig(train_prefix=prefix, vocab_size=60, batch_size=8, **data),
        model=ModelConfig(num_units=8, embedding_size=8, num_encoder_layers=1,
                          num_decoder_layers=1, dropout=0.0),
        train=TrainConfig(num_train_steps=1, jit_compile=False)).validate()


def test_trainer_stops_on_a_fatal_problem_before_anything_is_trained(tmp_path):
    from nmt.training import trainer as training
    path = write(tmp_path / "c.en", b"one\ntwo\n")
    os.symlink(path, tmp_path / "c.de")
    out = tmp_path / "run"
    with pytest.raises(corpus.CorpusError, match="are the same file"):
        training.Trainer(tiny_train_config(str(tmp_path / "c")), str(out))
    assert not (out / "spm.model").exists() and not (out / "ckpt").exists()


def test_trainer_skips_recoverable_lines_and_logs_the_report(tmp_path, caplog):
    from nmt.training import trainer as training
    en = [f"a small house number {i}" for i in range(40)]
    de = [f"ein kleines haus nummer {i}" for i in range(40)]
    en[3], de[7], en[11] = "", "bell \x07 here", "z" * 30  # lines 4, 8, 12
    write(tmp_path / "c.en", ("\n".join(en) + "\n").encode())
    write(tmp_path / "c.de", ("\n".join(de) + "\n").encode())
    config = tiny_train_config(str(tmp_path / "c"), max_line_chars=28)
    with caplog.at_level("INFO"):
        trainer = training.Trainer(config, str(tmp_path / "run"))
    kept = [int(n) for n in trainer.encoded.line_numbers]
    assert len(kept) == 37 and {4, 8, 12}.isdisjoint(kept)
    assert [trainer.src_vocab.decode(trainer.encoded.src_ids[i]) for i in range(len(kept))] == \
        [en[n - 1] for n in kept]
    log = caplog.text
    assert "over-long lines (over 28 characters): 1 (lines 12)" in log
    assert "lines with control characters: 1 (lines 8)" in log


def test_a_clean_block_with_blank_and_crlf_lines_is_checked_like_any_other(tmp_path):
    en = b"a house\r\n\r\n  \t\r\nthe dog\r\n"
    de = b"ein haus\r\nx\r\ny\r\nder hund\r\n"
    report, kept = validation.check_parallel(write(tmp_path / "c.en", en),
                                             write(tmp_path / "c.de", de), LIMIT)
    assert kept.src == ["a house", "the dog"] and kept.tgt == ["ein haus", "der hund"]
    assert kept.line_numbers == [1, 4] and kept.skipped_empty == 2
    assert [(p.kind, p.lines) for p in report.problems] == [("empty", (2,)), ("whitespace", (3,))]


def test_check_data_reports_each_corpus_of_a_weighted_list(tmp_path):
    write(tmp_path / "a.en", b"one\ntwo\n")
    write(tmp_path / "a.de", b"eins\nzwei\n")
    write(tmp_path / "b.en", b"three\n\n")
    write(tmp_path / "b.de", b"drei\nvier\n")
    prefixes = f"{tmp_path / 'a'}:2,{tmp_path / 'b'}:0.5"
    report, kept = validation.check_data(DataConfig(train_prefix=prefixes), keep_pairs=True)
    assert report.ok and report.num_pairs == 4 and report.num_kept == 3
    text = report.format()
    assert f"{tmp_path / 'a.en'} / " in text
    assert f"{tmp_path / 'b.en'}: empty lines: 1 (lines 2)" in text
    assert kept.src == ["one", "two", "three"]
    write(tmp_path / "b.de", b"drei\n")
    report, kept = validation.check_data(DataConfig(train_prefix=prefixes))
    assert not report.ok and kept is None
    assert report.error_message().startswith(f"line counts differ: {tmp_path / 'b.en'} has 2")
