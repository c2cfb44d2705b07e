"""nmt-translate under faults: bad input files, an unwritable or full output, a changed
model or input on --resume, two translators on one output, adversarial bytes.

Most runs call the CLI's main in this process (flags parsed as on the command line,
errors through the same run_main); the runs that need a real process (a lock
holder that is killed, peak memory) start one."""
import errno
import gzip
import os
import shutil
import signal
import subprocess
import time

import pytest
import tensorflow as tf

from nmt import model_dir as model_dir_lib
from nmt.cli import translate as translate_cli

FLAGS = translate_cli.FLAGS
LINES = ["A dog runs.", "Two men talk.", "", "A girl in a red coat.", "A cat.", "Boats."]


def write_input(path, lines=LINES):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def run_translate(capfd, model_dir, *args):
    """Runs nmt-translate's main here -> (exit status, stderr text)."""
    argv = ["nmt-translate", f"--model_dir={model_dir}", "--beam_size=1", *args]
    FLAGS(argv)
    try:
        translate_cli.main(argv[:1])
        status = 0
    except SystemExit as e:
        status = e.code
    finally:
        FLAGS.unparse_flags()
    return status, capfd.readouterr().err


def one_error(capfd, model_dir, *args):
    """The one error line of a run that must fail cleanly (exit 1, no traceback)."""
    status, err = run_translate(capfd, model_dir, *args)
    lines = [line for line in err.splitlines() if line.startswith("nmt-translate: error: ")]
    assert status == 1 and len(lines) == 1, err
    return lines[0]


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    """A copy of the tiny model dir that a test may change."""
    path = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir[0], path)
    return path


@pytest.fixture(scope="module")
def straight(tiny_model_dir, tmp_path_factory):
    """The uninterrupted translation of LINES (bytes), chunk_lines=2."""
    root = tmp_path_factory.mktemp("straight")
    source = write_input(root / "in.en")
    argv = ["nmt-translate", f"--model_dir={tiny_model_dir[0]}", "--beam_size=1",
            f"--input={source}", f"--output={root / 'out.de'}", "--chunk_lines=2"]
    FLAGS(argv)
    try:
        translate_cli.main(argv[:1])
    finally:
        FLAGS.unparse_flags()
    return (root / "out.de").read_bytes()


# --- bad input and output files: one line, exit 1 ---

def test_a_truncated_gzip_input_is_one_error_and_keeps_the_chunks_before(
        tiny_model_dir, tmp_path, capfd, straight):
    data = gzip.compress("".join(line + "\n" for line in LINES * 200).encode())
    source = tmp_path / "in.en.gz"
    source.write_bytes(data[:len(data) // 2])
    output = tmp_path / "out.de"
    line = one_error(capfd, tiny_model_dir[0], f"--input={source}", f"--output={output}",
                     "--chunk_lines=2")
    assert f"{source}: " in line and "truncated" in line
    partial = (tmp_path / "out.de.partial").read_bytes()
    assert partial.count(b"\n") > 0 and partial.startswith(straight[:straight.index(b"\n")])


def test_an_input_named_gz_that_is_not_gzip_is_read_as_text(
        tiny_model_dir, tmp_path, capfd, straight):
    source = write_input(tmp_path / "in.en.gz")
    status, err = run_translate(capfd, tiny_model_dir[0], f"--input={source}",
                                f"--output={tmp_path / 'out.de'}", "--chunk_lines=2")
    assert status == 0, err
    assert (tmp_path / "out.de").read_bytes() == straight


@pytest.mark.parametrize("where", ["missing_dir/out.de", "a_dir"])
def test_an_output_that_cannot_be_written_is_one_error(tiny_model_dir, tmp_path, capfd, where):
    (tmp_path / "a_dir").mkdir()
    source = write_input(tmp_path / "in.en")
    output = tmp_path / where
    line = one_error(capfd, tiny_model_dir[0], f"--input={source}", f"--output={output}")
    assert str(output) in line and "cannot write" in line


def test_a_corrupt_partial_settings_record_is_one_error(tiny_model_dir, tmp_path, capfd):
    source = write_input(tmp_path / "in.en")
    output = tmp_path / "out.de"
    (tmp_path / "out.de.partial").write_text("x\n")
    (tmp_path / "out.de.partial.json").write_text('{"input": ')
    line = one_error(capfd, tiny_model_dir[0], f"--input={source}", f"--output={output}",
                     "--resume")
    assert "out.de.partial.json: " in line and "run without --resume" in line


@pytest.mark.parametrize("content", ["", "garbage that is not a state file\x00"])
def test_an_empty_or_garbage_checkpoint_state_file_is_one_error(model_dir, tmp_path, capfd,
                                                                 content):
    state = os.path.join(model_dir, "ckpt", "checkpoint")
    with open(state, "w") as f:
        f.write(content)
    source = write_input(tmp_path / "in.en")
    line = one_error(capfd, model_dir, f"--input={source}", f"--output={tmp_path / 'o'}")
    assert f"{state}: " in line


@pytest.mark.parametrize("content", ["[]", '{"version": 1, "model": 3}', "1"])
def test_a_config_json_of_the_wrong_shape_is_one_error(model_dir, tmp_path, capfd, content):
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        f.write(content)
    source = write_input(tmp_path / "in.en")
    line = one_error(capfd, model_dir, f"--input={source}", f"--output={tmp_path / 'o'}")
    assert "config.json: " in line


# --- --resume refuses another model or another input ---

def interrupted(capfd, model_dir, tmp_path, monkeypatch, chunks=1):
    """Runs a translation of LINES that dies after `chunks` chunks of 2 lines."""
    source = write_input(tmp_path / "in.en")
    real = translate_cli.Translator.translate
    done = []

    def translate(self, lines, progress=None):
        if len(done) == chunks:
            raise KeyboardInterrupt
        done.append(len(lines))
        return real(self, lines, progress)

    monkeypatch.setattr(translate_cli.Translator, "translate", translate)
    args = (f"--input={source}", f"--output={tmp_path / 'out.de'}", "--chunk_lines=2",
            "--resume")
    with pytest.raises(KeyboardInterrupt):
        run_translate(capfd, model_dir, *args)
    monkeypatch.setattr(translate_cli.Translator, "translate", real)
    assert (tmp_path / "out.de.partial").read_bytes().count(b"\n") == 2 * chunks
    return args


def test_resume_refuses_a_model_whose_checkpoint_changed(model_dir, tmp_path, capfd,
                                                         monkeypatch, straight):
    args = interrupted(capfd, model_dir, tmp_path, monkeypatch)
    # Training writes a newer checkpoint: "best" (here the newest) now names another one.
    config, model, _, _ = model_dir_lib.load(model_dir)
    for v in model.trainable_variables:
        v.assign(v * 0.5)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               os.path.join(model_dir, "ckpt"), 5).save(checkpoint_number=7)
    line = one_error(capfd, model_dir, *args)
    assert "ckpt-1" in line and "ckpt-7" in line and "run without --resume" in line
    with open(os.path.join(model_dir, "ckpt", "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\n')  # back to the first model
    status, err = run_translate(capfd, model_dir, *args)
    assert status == 0, err
    assert (tmp_path / "out.de").read_bytes() == straight


def test_resume_refuses_a_checkpoint_rewritten_in_place(model_dir, tmp_path, capfd,
                                                        monkeypatch):
    args = interrupted(capfd, model_dir, tmp_path, monkeypatch)
    config, model, _, _ = model_dir_lib.load(model_dir)
    for v in model.trainable_variables:
        v.assign(v * 0.5)
    tf.train.Checkpoint(model=model).write(os.path.join(model_dir, "ckpt", "ckpt-1"))
    line = one_error(capfd, model_dir, *args)
    assert "ckpt-1" in line and "content" in line


def test_resume_refuses_an_input_whose_translated_lines_changed(model_dir, tmp_path, capfd,
                                                                monkeypatch):
    args = interrupted(capfd, model_dir, tmp_path, monkeypatch, chunks=2)
    write_input(tmp_path / "in.en", ["A dog runs!"] + LINES[1:])  # same length, line 1 differs
    line = one_error(capfd, model_dir, *args)
    assert "in.en" in line and "first 4 lines" in line and "run without --resume" in line


def test_resume_refuses_a_partial_without_its_settings_record(model_dir, tmp_path, capfd,
                                                              monkeypatch):
    args = interrupted(capfd, model_dir, tmp_path, monkeypatch)
    os.remove(tmp_path / "out.de.partial.json")
    line = one_error(capfd, model_dir, *args)
    assert "out.de.partial.json" in line and "run without --resume" in line


# --- a corpus of adversarial bytes ---

def test_adversarial_bytes_and_a_1_gib_line_give_one_line_each_in_small_memory(
        tiny_model_dir, tmp_path):
    """NUL bytes, a lone CR, a BOM, invalid UTF-8 and a 1 GiB line of NUL bytes (a hole
    in a sparse file): one output line per input line, and the process stays below the
    size of the line (holding it, or its decoded text, would take more than 1 GiB).
    tests/data/test_textio.py reads a gzip bomb the same way."""
    from tests.test_robustness import peak_rss_mb, translate_command
    source = tmp_path / "in.en"
    with open(source, "wb") as f:
        f.write(b"\xef\xbb\xbfA dog runs.\nnul\0inside\n")
        f.seek(1 << 30, os.SEEK_CUR)  # reads as 1 GiB of NUL bytes, stored as none
        f.write(b"\nlone\rcarriage return\nbad \xff\xfe UTF-8 \xc3\n\n\r\nTwo men.")
    output = tmp_path / "out.de"
    peak_mb = peak_rss_mb(translate_command(tiny_model_dir[0], f"--input={source}",
                                            f"--output={output}"), tmp_path / "log")
    assert output.read_bytes().count(b"\n") == 8
    assert "1 lines longer than 1280 bytes were cut" in (tmp_path / "log").read_text()
    assert peak_mb < 1024, peak_mb


# --- a full disk, a file without permission ---

class FullDisk:
    """A file that takes `room` more characters, then writes what fits and fails with
    ENOSPC, as write(2) on a full file system does."""

    def __init__(self, f, room):
        self._f, self.room = f, room

    def write(self, text):
        if len(text) > self.room:
            self._f.write(text[:self.room])
            self._f.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(text)
        return self._f.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def open_failing(module, monkeypatch, suffix, fault):
    """Makes module's open() of a file ending in suffix fail: fault "ENOSPC" (the disk
    fills after 3 written lines' worth) or "EACCES" (no permission)."""
    def faulty_open(file, mode="r", *args, **kwargs):
        name = file if isinstance(file, str) else os.readlink(f"/proc/self/fd/{file}")
        if not name.endswith(suffix) or "r" in mode:
            return open(file, mode, *args, **kwargs)
        if fault == "EACCES":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
        return FullDisk(open(file, mode, *args, **kwargs), room=30)

    monkeypatch.setattr(module, "open", faulty_open, raising=False)


@pytest.mark.parametrize("module, suffix, fault", [
    ("textio", ".partial", "ENOSPC"), ("files", ".partial.json", "ENOSPC"),
    ("textio", ".partial", "EACCES")])
def test_a_full_disk_or_a_denied_file_is_one_error_loses_nothing_and_resumes(
        tiny_model_dir, tmp_path, capfd, monkeypatch, straight, module, suffix, fault):
    from nmt import files
    from nmt.data import textio
    source = write_input(tmp_path / "in.en")
    output = tmp_path / "out.de"
    output.write_text("an earlier translation\n")
    args = (f"--input={source}", f"--output={output}", "--chunk_lines=2", "--resume")
    with monkeypatch.context() as patch:
        if module == "files":  # the resume record's second atomic write fills the disk
            patch.setenv(files.FAULT_ENV, f"{fault}@write:{output.name}{suffix}#2")
        else:
            open_failing(textio, patch, suffix, fault)
        line = one_error(capfd, tiny_model_dir[0], *args)
    assert "cannot write (" + os.strerror(errno.__dict__[fault]) + ")" in line
    assert output.read_text() == "an earlier translation\n"  # untouched until the end
    assert not os.path.exists(f"{output}.lock")
    status, err = run_translate(capfd, tiny_model_dir[0], *args)
    assert status == 0, err
    assert output.read_bytes() == straight
    assert sorted(os.listdir(tmp_path)) == ["in.en", "out.de"]


# --- two translators on one output ---

def test_a_second_translator_names_the_first_and_a_killed_ones_lock_is_taken_over(
        tiny_model_dir, tmp_path, capfd):
    from tests.test_robustness import complete_lines, translate_command
    source = write_input(tmp_path / "in.en", LINES * 700)
    output = tmp_path / "out.de"
    args = (f"--input={source}", f"--output={output}", "--chunk_lines=100", "--resume")
    first = subprocess.Popen(translate_command(tiny_model_dir[0], *args),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while (complete_lines(f"{output}.partial") < 100 and first.poll() is None
               and time.time() < deadline):
            time.sleep(0.02)
        line = one_error(capfd, tiny_model_dir[0], *args)
        assert first.poll() is None  # still translating
        assert line.startswith(f"nmt-translate: error: {output}.lock: this output is in use "
                               f"by process {first.pid} on ")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert os.path.exists(f"{output}.lock")  # left behind by the killed process
    status, err = run_translate(capfd, tiny_model_dir[0], *args)
    assert status == 0, err
    assert output.read_bytes().count(b"\n") == len(LINES) * 700
    assert sorted(os.listdir(tmp_path)) == ["in.en", "out.de"]
