"""Loading a model dir under faults: each problem is named as what it is (out of memory,
an I/O error, a corrupt vocabulary, a foreign state file), and a trainer saving
meanwhile never makes a reader restore a torn checkpoint."""
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from nmt import model_dir as model_dir_lib


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    path = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir[0], path)
    return path


def load_error(model_dir, which="best"):
    with pytest.raises(model_dir_lib.ModelDirError) as info:
        model_dir_lib.load(model_dir, which)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("error, expected", [
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"),
     "out of memory while restoring"),
    (tf.errors.UnknownError(None, None, "Input/output error"), "cannot read the checkpoint"),
    (tf.errors.NotFoundError(None, None, "ckpt-1.data-00000-of-00001; No such file"),
     "cannot read the checkpoint"),
])
def test_an_internal_error_while_restoring_is_not_called_a_misfit(model_dir, monkeypatch,
                                                                  error, expected):
    def read(self, path, options=None):
        raise error

    monkeypatch.setattr(tf.train.Checkpoint, "read", read)
    message = load_error(model_dir)
    assert expected in message and "does not fit" not in message


def test_a_checkpoint_of_another_model_still_does_not_fit(model_dir):
    from nmt.model.seq2seq import build_model
    config = model_dir_lib.load_config(model_dir)
    vocab, _ = model_dir_lib.load_vocabs(model_dir, config)
    bigger = build_model(config.model.__class__(**{**vars(config.model), "num_units": 32}),
                         vocab.size, vocab.size)
    with pytest.raises(model_dir_lib.ModelDirError, match="does not fit this model"):
        model_dir_lib.restore_model(bigger, model_dir_lib.checkpoint_path(model_dir, "last"))


def test_a_corrupt_vocabulary_is_reported_as_corrupt_not_as_different(model_dir, tmp_path):
    config = model_dir_lib.load_config(model_dir)
    to_dir = tmp_path / "new_run"
    to_dir.mkdir()
    (to_dir / "spm.model").write_bytes(b"\x00not a sentencepiece model")
    with pytest.raises(model_dir_lib.ModelDirError) as info:
        model_dir_lib.copy_vocabs(model_dir, str(to_dir), config.data)
    message = str(info.value)
    assert message.startswith(f"{to_dir / 'spm.model'}: cannot load sentencepiece model")
    assert "differs" not in message


@pytest.mark.parametrize("named", ["/etc/passwd", "../../elsewhere/ckpt-1"])
def test_a_state_file_naming_a_checkpoint_outside_its_directory_is_refused(model_dir, named):
    state = os.path.join(model_dir, "ckpt", "checkpoint")
    with open(state, "w") as f:
        f.write(f'model_checkpoint_path: "{named}"\n')
    message = load_error(model_dir, "last")
    assert message.startswith(f"{state}: ") and "outside" in message
    assert named.lstrip("./") in message


def uniform_checkpoints(model_dir):
    """(model, manager): saving writes weights that all equal the checkpoint number,
    keeping only the newest checkpoint, as a trainer with max_to_keep=1 does."""
    _, model, _, _ = model_dir_lib.load(model_dir, "last")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         os.path.join(model_dir, "ckpt"), max_to_keep=1)

    def save(number):
        for v in model.trainable_variables:
            v.assign(tf.fill(v.shape, float(number)))
        model_dir_lib.save_durably(manager, number)

    return save


def assert_one_checkpoint(model):
    """Every weight holds the same number: the model came from one whole checkpoint."""
    values = {float(x) for v in model.trainable_variables for x in np.unique(v.numpy())}
    assert len(values) == 1, sorted(values)[:5]
    return values.pop()


def test_a_save_during_the_restore_makes_the_reader_start_over(model_dir, monkeypatch):
    save = uniform_checkpoints(model_dir)
    save(2)
    real = model_dir_lib.restore_model
    calls = []

    def restore_while_training_saves(model, path):
        if not calls:  # the trainer saves ckpt-3 and deletes ckpt-2 under the reader
            save(3)
        calls.append(path)
        real(model, path)

    monkeypatch.setattr(model_dir_lib, "restore_model", restore_while_training_saves)
    loaded = model_dir_lib.load_checkpoint(model_dir, "last")
    assert [os.path.basename(p) for p in calls] == ["ckpt-2", "ckpt-3"]
    assert loaded.checkpoint.path.endswith("ckpt-3")
    assert assert_one_checkpoint(loaded.model) == 3.0


def test_readers_never_see_a_torn_checkpoint_while_a_trainer_saves(model_dir):
    save = uniform_checkpoints(model_dir)
    save(10)
    stop = threading.Event()
    errors = []

    def trainer():
        number = 11
        try:
            while not stop.is_set():
                save(number)
                number += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    thread = threading.Thread(target=trainer)
    thread.start()
    try:
        seen = [assert_one_checkpoint(model_dir_lib.load(model_dir, "last")[1])
                for _ in range(15)]
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert seen == sorted(seen) and seen[-1] > 10


def test_a_training_error_is_one_line_from_nmt_train(tmp_path):
    """TrainingError (a diverged run) reaches the user as one line, exit 1."""
    script = ("import sys\n"
              "from nmt.training import trainer as training\n"
              "def train(config, out_dir, checkpoint):\n"
              "    raise training.TrainingError('step 3: weights are not finite; lower "
              "--learning_rate')\n"
              "training.train = train\n"
              "from nmt.cli import train as cli\n"
              "sys.argv = ['nmt-train', '--train_prefix=x', '--out_dir=" + str(tmp_path) + "']\n"
              "cli.run()\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("nmt-train: error: ")]
    assert lines == ["nmt-train: error: step 3: weights are not finite; lower --learning_rate"]
