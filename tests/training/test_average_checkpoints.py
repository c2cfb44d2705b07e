"""Tests for nmt/training/average_checkpoints.py: averaged weights are the mean of the last k."""
import os

import numpy as np
import pytest

from tests.conftest import write_tiny_model_dir
from nmt import model_dir as model_dir_lib
from nmt.cli import translate as translate_cli
from nmt.decode.translate import Translator
from nmt.training import average_checkpoints


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("three"))
    write_tiny_model_dir(model_dir, seeds=(1, 2, 3))
    return model_dir


def weights(model):
    return [v.numpy() for v in model.trainable_variables]


def test_average_of_last_two_is_their_mean(three_checkpoints, tmp_path):
    out_dir = str(tmp_path / "avg")
    paths = average_checkpoints.last_checkpoints(three_checkpoints, 2)
    assert [os.path.basename(p) for p in paths] == ["ckpt-2", "ckpt-3"]
    average_checkpoints.average_checkpoints(three_checkpoints, 2, out_dir)
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(out_dir)  # usable as a model dir
    assert os.path.exists(os.path.join(out_dir, "config.json"))
    per_checkpoint = []
    for path in paths:
        model_dir_lib.restore_model(model, path)
        per_checkpoint.append(weights(model))
    _, averaged, _, _ = model_dir_lib.load(out_dir)
    for got, a, b in zip(weights(averaged), *per_checkpoint):
        np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(per_checkpoint[0][0], per_checkpoint[1][0])
    output = str(tmp_path / "out.txt")
    with open(str(tmp_path / "in.txt"), "w") as f:
        f.write("A dog runs.\n\n")
    translator = Translator(averaged, src_vocab, tgt_vocab, config.decode)
    assert translate_cli.translate_file(translator, str(tmp_path / "in.txt"), output, 10) == 2


def test_average_of_one_is_the_last_checkpoint(three_checkpoints, tmp_path):
    average_checkpoints.average_checkpoints(three_checkpoints, 1, str(tmp_path / "one"))
    _, last, _, _ = model_dir_lib.load(three_checkpoints, "last")
    _, averaged, _, _ = model_dir_lib.load(str(tmp_path / "one"))
    for got, expected in zip(weights(averaged), weights(last)):
        np.testing.assert_array_equal(got, expected)


def test_too_many_checkpoints_is_an_error(three_checkpoints, tmp_path):
    with pytest.raises(model_dir_lib.ModelDirError, match="last 4 of 3"):
        average_checkpoints.average_checkpoints(three_checkpoints, 4, str(tmp_path / "x"))


def snapshot(directory):
    """{relative path: bytes} of every file under directory."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = f.read()
    return found


def test_averaging_into_another_runs_dir_is_refused_and_leaves_it_whole(three_checkpoints,
                                                                      tmp_path):
    other = str(tmp_path / "other_run")
    write_tiny_model_dir(other, seeds=(7, 8), vocab_dir=three_checkpoints)
    before = snapshot(other)
    with pytest.raises(model_dir_lib.ModelDirError, match=r"other_run: not empty and not an "
                                                          r"average of .*three"):
        average_checkpoints.average_checkpoints(three_checkpoints, 2, other)
    assert snapshot(other) == before


def test_averaging_into_a_non_empty_dir_or_a_file_is_refused(three_checkpoints, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me\n")
    with pytest.raises(model_dir_lib.ModelDirError, match="notes: not empty"):
        average_checkpoints.average_checkpoints(three_checkpoints, 2, str(tmp_path / "notes"))
    assert os.listdir(tmp_path / "notes") == ["todo.txt"]
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(model_dir_lib.ModelDirError, match="a_file: not a directory"):
        average_checkpoints.average_checkpoints(three_checkpoints, 2, str(tmp_path / "a_file"))


def test_a_previous_average_of_the_same_run_is_replaced(three_checkpoints, tmp_path):
    out_dir = str(tmp_path / "avg")
    average_checkpoints.average_checkpoints(three_checkpoints, 3, out_dir)
    average_checkpoints.average_checkpoints(three_checkpoints, 1, out_dir)
    _, last, _, _ = model_dir_lib.load(three_checkpoints, "last")
    _, averaged, _, _ = model_dir_lib.load(out_dir)
    for got, expected in zip(weights(averaged), weights(last)):
        np.testing.assert_array_equal(got, expected)
    other = str(tmp_path / "other_run")
    write_tiny_model_dir(other, seeds=(7,), vocab_dir=three_checkpoints)
    with pytest.raises(model_dir_lib.ModelDirError, match="avg: not empty and not an average "
                                                          "of .*other_run"):
        average_checkpoints.average_checkpoints(other, 1, out_dir)
