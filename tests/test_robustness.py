"""Nothing lost: broken model dirs get one-line errors, an interrupted
nmt-translate --resume ends with the same output as an uninterrupted run, training
survives kill -9, and translation streams in bounded memory."""
import dataclasses
import gzip
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_corpus
from nmt import model_dir as model_dir_lib
from nmt.cli import translate as translate_cli
from nmt.config import ConfigError
from nmt.data import vocab as vocab_lib
from nmt.data.corpus import CorpusError
from nmt.decode.translate import Translator

MULTI30K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "multi30k")


def copy_of(tiny_model_dir, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir[0], model_dir)
    return model_dir, tf.train.latest_checkpoint(os.path.join(model_dir, "ckpt"))


def load_error(model_dir):
    with pytest.raises(model_dir_lib.ModelDirError) as info:
        model_dir_lib.load(model_dir)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- model dirs on disk ---

def test_the_intact_copy_loads(tiny_model_dir, tmp_path):
    """The counterpart of the tests below: the copied model dir itself is fine."""
    model_dir, _ = copy_of(tiny_model_dir, tmp_path)
    _, model, src_vocab, _ = model_dir_lib.load(model_dir)
    np.testing.assert_array_equal(model.src_embedding.table.numpy(),
                                  tiny_model_dir[2].src_embedding.table.numpy())


@pytest.mark.parametrize("suffix, expected", [
    (".index", "checkpoint index file missing"),
    (".data-00000-of-00001", "checkpoint data file missing"),
])
def test_missing_checkpoint_file(tiny_model_dir, tmp_path, suffix, expected):
    model_dir, path = copy_of(tiny_model_dir, tmp_path)
    os.remove(path + suffix)
    message = load_error(model_dir)
    assert message == f"{path}{suffix}: {expected}"


def cut_in_half(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_truncated_data_file(tiny_model_dir, tmp_path):
    model_dir, path = copy_of(tiny_model_dir, tmp_path)
    data = path + ".data-00000-of-00001"
    size = os.path.getsize(data)
    cut_in_half(data)
    message = load_error(model_dir)
    assert message.startswith(f"{data}: checkpoint data truncated ({size // 2} bytes, the index "
                              f"lists at least ")


def test_truncated_index_file(tiny_model_dir, tmp_path):
    model_dir, path = copy_of(tiny_model_dir, tmp_path)
    cut_in_half(path + ".index")
    assert load_error(model_dir).startswith(
        f"{path}.index: checkpoint index file truncated or corrupt (")


def test_corrupt_data_bytes_fail_the_checksum(tiny_model_dir, tmp_path):
    model_dir, path = copy_of(tiny_model_dir, tmp_path)
    with open(path + ".data-00000-of-00001", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert load_error(model_dir).startswith(f"{path}: checkpoint data corrupt (")


def test_missing_sentencepiece_model(tiny_model_dir, tmp_path):
    model_dir, _ = copy_of(tiny_model_dir, tmp_path)
    os.remove(os.path.join(model_dir, "spm.model"))
    assert load_error(model_dir) == f"{model_dir}/spm.model: sentencepiece model missing"


def test_model_dir_made_for_other_vocabularies(tiny_model_dir, tmp_path):
    model_dir, path = copy_of(tiny_model_dir, tmp_path)
    old = vocab_lib.Vocab.load(os.path.join(model_dir, "spm.model")).size
    src, tgt = tiny_corpus()
    vocab_lib.train_sentencepiece(src + tgt, str(tmp_path / "other"), vocab_size=old + 100)
    shutil.copy(tmp_path / "other.model", os.path.join(model_dir, "spm.model"))
    new = vocab_lib.Vocab.load(os.path.join(model_dir, "spm.model")).size
    assert new != old
    assert load_error(model_dir) == (
        f"{path}: made for other vocabularies: its source embedding has {old} rows, "
        f"{model_dir}/spm.model has {new} pieces")


def test_a_dangling_best_pointer_is_an_error_not_a_silent_fallback(tiny_model_dir, tmp_path):
    model_dir, _ = copy_of(tiny_model_dir, tmp_path)
    best = os.path.join(model_dir, "best")
    os.mkdir(best)
    with open(os.path.join(best, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "ckpt-7"\n')
    assert load_error(model_dir) == f"{best}/ckpt-7.index: checkpoint index file missing"


def test_a_checkpoint_is_on_disk_before_the_state_file_names_it(tmp_path, monkeypatch):
    """save_durably fsyncs the new files and their directory before the `checkpoint`
    state file is rewritten, then the state file and the directory."""
    directory = os.path.realpath(tmp_path / "ckpt")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(tf.ones([10]))),
                                         directory, max_to_keep=2)
    model_dir_lib.save_durably(manager, 1)
    synced = []  # (fsynced path, the checkpoint the state file named at that moment)
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), tf.train.latest_checkpoint(directory)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    prefix = model_dir_lib.save_durably(manager, 2)
    assert prefix == os.path.join(directory, "ckpt-2")
    while_old = {path for path, named in synced if named == os.path.join(directory, "ckpt-1")}
    assert {prefix + ".index", prefix + ".data-00000-of-00001", directory} <= while_old
    assert [path for path, named in synced if named == prefix][-2:] == [
        os.path.join(directory, "checkpoint"), directory]


@pytest.mark.parametrize("name", ["../elsewhere/ckpt-1", "/tmp/victim"])
def test_a_state_file_naming_files_outside_its_dir_is_refused(tiny_model_dir, tmp_path, name):
    from nmt.training import trainer as training
    model_dir, _ = copy_of(tiny_model_dir, tmp_path)
    ckpt = os.path.join(model_dir, "ckpt")
    with open(os.path.join(ckpt, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "{name}"\n'
                f'all_model_checkpoint_paths: "ckpt-1"\n')
    message = load_error(model_dir)
    assert message.startswith(f"{ckpt}/checkpoint: names a checkpoint outside {ckpt} (")
    config = model_dir_lib.load_config(model_dir)
    with pytest.raises(model_dir_lib.ModelDirError, match="names a checkpoint outside"):
        training.Trainer(config, model_dir)  # before its manager could delete by that name


def test_save_durably_never_rewrites_a_checkpoint_the_state_names(tmp_path):
    directory = str(tmp_path / "ckpt")
    first = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), directory, 2)
    prefix = model_dir_lib.save_durably(first, 5)
    files = sorted(os.listdir(directory))
    contents = {f: (tmp_path / "ckpt" / f).read_bytes() for f in files}
    # Another process (a rerun) at the same step, with other values: nothing is written.
    again = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(2.0)), directory, 2)
    assert model_dir_lib.save_durably(again, 5) == prefix
    assert {f: (tmp_path / "ckpt" / f).read_bytes() for f in os.listdir(directory)} == contents
    assert model_dir_lib.save_durably(again, 6).endswith("ckpt-6")  # a new number is written


def test_load_reads_the_newer_checkpoint_when_a_trainer_replaces_it(tmp_path, monkeypatch):
    from tests.conftest import write_tiny_model_dir
    model_dir = str(tmp_path / "model")
    _, newest = write_tiny_model_dir(model_dir, seeds=(3, 4))
    ckpt = os.path.join(model_dir, "ckpt")
    state = os.path.join(ckpt, "checkpoint")
    with open(state, "w") as f:
        f.write('model_checkpoint_path: "ckpt-1"\n')
    real_check = model_dir_lib.check_checkpoint
    checked = []

    def trainer_saves_meanwhile(path, *args):
        checked.append(os.path.basename(path))
        if len(checked) == 1:  # between reading the state file and the checkpoint
            with open(state, "w") as f:
                f.write('model_checkpoint_path: "ckpt-2"\n')
            for name in os.listdir(ckpt):
                if name.startswith("ckpt-1."):
                    os.remove(os.path.join(ckpt, name))
        return real_check(path, *args)

    monkeypatch.setattr(model_dir_lib, "check_checkpoint", trainer_saves_meanwhile)
    _, model, _, _ = model_dir_lib.load(model_dir, "last")
    assert checked == ["ckpt-1", "ckpt-2"]
    for a, b in zip(model.variables, newest.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_second_nmt_train_on_a_locked_run_dir_names_the_holder(multi30k_slice, tmp_path):
    import socket
    from nmt import files
    out = tmp_path / "run"
    out.mkdir()
    with files.exclusive_lock(str(out / "train.lock"), "held by the test"):
        result = subprocess.run(train_command(multi30k_slice, out, 4), capture_output=True,
                                text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"nmt-train: error: {out}/train.lock: the run dir {out} is in use by process "
        f"{os.getpid()} on {socket.gethostname()}; wait for it to finish, or stop it")
    assert "Traceback" not in result.stderr
    assert os.listdir(out) == []  # the second wrote nothing; the lock left with the first


# --- nmt-translate --resume ---

def val_lines(count):
    with gzip.open(os.path.join(MULTI30K, "val.en.gz"), "rt", encoding="utf-8") as f:
        lines = [next(f).rstrip("\n") for _ in range(count)]
    lines[7], lines[50] = "", "   "  # awkward lines keep their place
    return lines


class Crash(Exception):
    pass


def counting(translator, crash_after=None):
    """Wraps translator.translate: counts the lines it is given, raises Crash on call
    crash_after + 1 (after crash_after chunks were translated)."""
    seen = []
    real = translator.translate

    def translate(lines, progress=None):
        if crash_after is not None and len(seen) == crash_after:
            raise Crash
        seen.append(len(lines))
        return real(lines, progress)

    translator.translate = translate
    return seen


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return model_dir_lib.load(tiny_model_dir[0])


@pytest.mark.parametrize("num_hypotheses", [1, 2])
def test_resume_continues_at_the_last_complete_chunk(loaded, tmp_path, num_hypotheses):
    config, model, src_vocab, tgt_vocab = loaded
    decode = dataclasses.replace(config.decode, beam_size=2, num_hypotheses=num_hypotheses)
    source = tmp_path / "in.en"
    source.write_text("".join(line + "\n" for line in val_lines(230)), encoding="utf-8")
    k = num_hypotheses

    expected = str(tmp_path / "straight.de")
    translate_cli.translate_file(Translator(model, src_vocab, tgt_vocab, decode), str(source),
                                 expected, chunk_lines=50)
    with open(expected, "rb") as f:
        reference = f.read()
    assert reference.count(b"\n") == 230 * k

    output = str(tmp_path / "out.de")
    partial = output + ".partial"
    crashing = Translator(model, src_vocab, tgt_vocab, decode)
    counting(crashing, crash_after=2)
    with pytest.raises(Crash):
        translate_cli.translate_file(crashing, str(source), output, chunk_lines=50)
    assert not os.path.exists(output)
    with open(partial, "rb") as f:  # two whole chunks, durable
        assert f.read() == b"".join(reference.splitlines(keepends=True)[:100 * k])
    with open(partial, "ab") as f:  # as if killed while writing the third chunk
        f.write(b"".join(reference.splitlines(keepends=True)[100 * k:130 * k]) + b"half a li")

    resumed = Translator(model, src_vocab, tgt_vocab, decode)
    seen = counting(resumed)
    count = translate_cli.translate_file(resumed, str(source), output, chunk_lines=50,
                                         resume=True)
    assert seen == [50, 50, 30]  # lines 101..230 only: the third chunk is redone whole
    assert count == 230
    with open(output, "rb") as f:
        assert f.read() == reference
    assert sorted(os.listdir(tmp_path)) == ["in.en", "out.de", "straight.de"]


def test_resume_refuses_other_settings(loaded, tmp_path):
    config, model, src_vocab, tgt_vocab = loaded
    source = tmp_path / "in.en"
    source.write_text("".join(line + "\n" for line in val_lines(60)), encoding="utf-8")
    output = str(tmp_path / "out.de")
    settings = {"input": str(source), "decode": {"beam_size": 2}}
    crashing = Translator(model, src_vocab, tgt_vocab, config.decode)
    counting(crashing, crash_after=1)
    with pytest.raises(Crash):
        translate_cli.translate_file(crashing, str(source), output, 20, settings=settings)
    other = {"input": str(source), "decode": {"beam_size": 3}}
    with pytest.raises(ConfigError, match=r"out\.de\.partial was written with other decode; "
                                          r"run without --resume"):
        translate_cli.translate_file(Translator(model, src_vocab, tgt_vocab, config.decode),
                                     str(source), output, 20, resume=True, settings=other)
    resumed = Translator(model, src_vocab, tgt_vocab, config.decode)
    seen = counting(resumed)
    translate_cli.translate_file(resumed, str(source), output, 20, resume=True,
                                 settings=settings)
    assert seen == [20, 20]
    assert sorted(os.listdir(tmp_path)) == ["in.en", "out.de"]  # settings file removed


def test_without_resume_a_stale_partial_is_overwritten(loaded, tmp_path):
    config, model, src_vocab, tgt_vocab = loaded
    source = tmp_path / "in.en"
    source.write_text("".join(line + "\n" for line in val_lines(60)), encoding="utf-8")
    output = str(tmp_path / "out.de")
    with open(output + ".partial", "w") as f:
        f.write("stale\n" * 60)
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    seen = counting(translator)
    translate_cli.translate_file(translator, str(source), output, chunk_lines=50)
    assert seen == [50, 10]
    with open(output, encoding="utf-8") as f:
        text = f.read()
    assert text.count("\n") == 60 and "stale" not in text


def test_resume_refuses_a_partial_longer_than_the_input(loaded, tmp_path):
    config, model, src_vocab, tgt_vocab = loaded
    source = tmp_path / "in.en"
    source.write_text("one\ntwo\nthree\nfour\nfive\n", encoding="utf-8")
    output = str(tmp_path / "out.de")
    crashing = Translator(model, src_vocab, tgt_vocab, config.decode)
    counting(crashing, crash_after=2)
    with pytest.raises(Crash):
        translate_cli.translate_file(crashing, str(source), output, chunk_lines=2)
    source.write_text("one\ntwo\n", encoding="utf-8")
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    with pytest.raises(CorpusError, match="holds 4 translated lines but .* has 2"):
        translate_cli.translate_file(translator, str(source), output, chunk_lines=2, resume=True)


def translate_command(model_dir, *args):
    return [sys.executable, "-m", "nmt.cli.translate", f"--model_dir={model_dir}",
            "--beam_size=1", *map(str, args)]


def complete_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def test_killed_translation_resumes_to_the_same_output(tiny_model_dir, tmp_path):
    """A real nmt-translate killed with SIGKILL mid-run, then re-run with --resume."""
    lines = val_lines(1000) * 4
    source = tmp_path / "in.en"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    output = tmp_path / "out.de"
    partial = str(output) + ".partial"
    args = (f"--input={source}", f"--output={output}", "--chunk_lines=100", "--resume")
    proc = subprocess.Popen(translate_command(tiny_model_dir[0], *args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while complete_lines(partial) < 300 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, did not finish
    assert not output.exists() and 300 <= complete_lines(partial) < len(lines)

    resumed = subprocess.run(translate_command(tiny_model_dir[0], *args), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after " in resumed.stderr, resumed.stderr
    straight = tmp_path / "straight.de"
    result = subprocess.run(translate_command(tiny_model_dir[0], f"--input={source}",
                                              f"--output={straight}", "--chunk_lines=100"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == straight.read_bytes()
    assert output.read_bytes().count(b"\n") == len(lines)
    assert sorted(os.listdir(tmp_path)) == ["in.en", "out.de", "straight.de"]


# --- training checkpoints against kill -9 ---

def _stream_lines(stream, lines):
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def train_command(multi30k_slice, out_dir, steps):
    return [sys.executable, "-m", "nmt.cli.train",
            f"--train_prefix={os.path.join(multi30k_slice.plain, 'train')}",
            f"--model_dir={out_dir}", "--src=en", "--tgt=de", "--num_units=16",
            "--embedding_size=16", "--num_layers=1", "--vocab_size=400", "--max_src_len=60",
            "--max_tgt_len=60", "--batch_size=32", f"--num_train_steps={steps}",
            "--steps_per_stats=1",
            "--steps_per_checkpoint=3", "--steps_per_eval=0", "--nojit_compile"]


def run_until_killed(command, saves_before_kill):
    """Starts command, SIGKILLs it right after its saves_before_kill-th "saved" log line;
    returns its stderr so far."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines, log = queue.Queue(), []
    threading.Thread(target=_stream_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            line = lines.get(timeout=max(deadline - time.time(), 0.1))
            if line is None:
                break
            log.append(line)
            if sum(" saved " in line for line in log) >= saves_before_kill:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(log)
    return "".join(log)


def test_training_killed_with_sigkill_resumes_from_its_last_checkpoint(multi30k_slice, tmp_path):
    out = tmp_path / "run"
    # The killed run cannot finish, however late the kill lands on a loaded machine
    # (with a reachable last step it sometimes did, and exited 0 instead of -9).
    log = run_until_killed(train_command(multi30k_slice, out, 100_000), saves_before_kill=2)
    assert "ckpt-6" in log, log
    path = tf.train.latest_checkpoint(str(out / "ckpt"))
    step = int(path.rsplit("-", 1)[1])
    assert step >= 6, log
    model_dir_lib.check_checkpoint(path)  # complete: index and data files whole
    reader = tf.train.load_checkpoint(path)
    saved = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert saved["progress/step/.ATTRIBUTES/VARIABLE_VALUE"] == step

    # What a resumed run restores (on a copy of the dir): every saved value, exactly.
    from nmt.training import trainer as training
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    trainer = training.Trainer(model_dir_lib.load_config(copy), copy)
    trainer.restore()
    restored = tf.train.load_checkpoint(trainer.checkpoint.write(str(tmp_path / "restored")))
    names = set(restored.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    assert names == set(saved)
    assert any(k.startswith("optimizer/") for k in names)  # Adam slots are compared too
    for key in sorted(names - {"save_counter/.ATTRIBUTES/VARIABLE_VALUE"}):
        np.testing.assert_array_equal(restored.get_tensor(key), saved[key], err_msg=key)

    # The same command (now with a reachable last step) resumes there and finishes;
    # the log has each step once.
    last = step + 10
    result = subprocess.run(train_command(multi30k_slice, out, last), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"resuming from {path} at step {step} " in result.stderr, result.stderr
    assert tf.train.latest_checkpoint(str(out / "ckpt")).endswith(f"ckpt-{last}")
    with open(out / "log.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, last + 1))

    # With the default settings the resumed run ends where an unbroken one does, bit for
    # bit: weights, Adam slots and counters.
    straight = tmp_path / "straight"
    result = subprocess.run(train_command(multi30k_slice, straight, last), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    resumed, unbroken = (tf.train.load_checkpoint(tf.train.latest_checkpoint(str(d / "ckpt")))
                         for d in (out, straight))
    names = set(unbroken.get_variable_to_shape_map())
    assert names == set(resumed.get_variable_to_shape_map())
    for key in sorted(names - {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/"
                               "VARIABLE_VALUE", "progress/train_seconds/.ATTRIBUTES/"
                               "VARIABLE_VALUE"}):
        np.testing.assert_array_equal(resumed.get_tensor(key), unbroken.get_tensor(key),
                                      err_msg=key)


def test_trim_log_drops_records_after_the_restored_step(tmp_path):
    lines = [json.dumps({"kind": "train", "step": s}) + "\n" for s in range(1, 8)]
    (tmp_path / "log.jsonl").write_text("".join(lines) + '{"kind": "tra', encoding="utf-8")
    model_dir_lib.trim_log(str(tmp_path), 4)
    assert (tmp_path / "log.jsonl").read_text(encoding="utf-8") == "".join(lines[:4])
    model_dir_lib.trim_log(str(tmp_path), 0)
    assert (tmp_path / "log.jsonl").read_text(encoding="utf-8") == ""
    assert os.listdir(tmp_path) == ["log.jsonl"]


# --- streaming: memory does not grow with the input ---

def write_lines(path, count):
    """count lines of about 180 characters (three Multi30k sentences each)."""
    with gzip.open(os.path.join(MULTI30K, "train.en.gz"), "rt", encoding="utf-8") as f:
        sentences = [next(f).rstrip("\n") for _ in range(3000)]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            f.write(" ".join(sentences[(3 * i + j) % 3000] for j in range(3)) + "\n")
    return str(path)


# A child's ru_maxrss starts at its parent's peak RSS (Linux copies the high-water mark
# into it at fork + exec): started from this pytest process, which holds TensorFlow
# and grows as tests run, both runs below would report at least its peak and the
# comparison could not fail. So a fresh small process starts and waits for the run.
WAIT_AND_REPORT = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(command, log_path):
    """Runs command; -> its peak resident memory in MB (ru_maxrss of that one run)."""
    with open(log_path, "w") as log:
        report = subprocess.run([sys.executable, "-c", WAIT_AND_REPORT, *command],
                                stdout=subprocess.PIPE, stderr=log, text=True, check=True)
    maxrss_kib, returncode = map(int, report.stdout.split())
    assert returncode == 0, open(log_path).read()
    return maxrss_kib / 1024  # ru_maxrss is in KiB on Linux


STREAM_ARGS = ("--decode_batch_size=500", "--max_input_len=8", "--max_length_ratio=1.0")


def test_translation_memory_does_not_grow_with_the_input(tiny_model_dir, tmp_path):
    """200k lines peak within 150 MB of 20k lines; holding the whole input (one chunk)
    would not (the last run shows the margin is meaningful)."""
    model_dir = tiny_model_dir[0]
    small = write_lines(tmp_path / "small.en", 20_000)
    large = write_lines(tmp_path / "large.en", 200_000)
    small_mb = peak_rss_mb(translate_command(model_dir, f"--input={small}",
                                             f"--output={tmp_path / 'small.de'}", *STREAM_ARGS),
                           tmp_path / "small.log")
    large_mb = peak_rss_mb(translate_command(model_dir, f"--input={large}",
                                             f"--output={tmp_path / 'large.de'}", *STREAM_ARGS),
                           tmp_path / "large.log")
    assert complete_lines(tmp_path / "large.de") == 200_000
    assert large_mb < small_mb + 150, (small_mb, large_mb)
