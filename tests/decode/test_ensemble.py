"""Tests for nmt/decode/ensemble.py: an ensemble of copies is the model itself."""
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_corpus, write_tiny_model_dir
from nmt import model_dir as model_dir_lib
from nmt.data import vocab as vocab_lib
from nmt.decode.ensemble import Ensemble, load_ensemble
from nmt.decode.forced import ForcedDecoder


@pytest.fixture(scope="module")
def batch():
    src = tf.constant([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]], tf.int32)
    return src, tf.constant([5, 3], tf.int32)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_ensemble_of_copies_equals_model(tiny_model_dir, batch, beam_size):
    model_dir, _, _ = tiny_model_dir
    _, model, _, _ = model_dir_lib.load(model_dir, "last")
    kwargs = dict(beam_size=beam_size, length_penalty=0.6, max_length=20, max_length_ratio=2.0)
    single = model.translate(*batch, **kwargs)
    double = Ensemble([model, model]).translate(*batch, **kwargs)
    np.testing.assert_array_equal(double.ids.numpy(), single.ids.numpy())
    np.testing.assert_array_equal(double.lengths.numpy(), single.lengths.numpy())
    np.testing.assert_allclose(double.scores.numpy(), single.scores.numpy(), rtol=1e-5)


def test_ensemble_hands_the_models_length_limit_to_the_search(tiny_model_dir, batch):
    """The limit bounds beam search's stopping rule (nmt.decode.search max_lengths)."""
    model_dir, _, _ = tiny_model_dir
    _, model, _, _ = model_dir_lib.load(model_dir, "last")
    _, state, _ = model.search_inputs(*batch, max_length_ratio=2.0)
    step_fn, ensemble_state, contexts = Ensemble([model, model]).search_inputs(
        *batch, max_length_ratio=2.0)
    np.testing.assert_array_equal(ensemble_state["limit"].numpy(), state["limit"].numpy())
    ids = tf.fill([2], 2)
    _, new_state = step_fn(ids, ensemble_state, context=contexts)
    assert tf.nest.map_structure(lambda t: t.shape, new_state) == \
        tf.nest.map_structure(lambda t: t.shape, ensemble_state)  # a loop-carried structure
    assert "limit" not in Ensemble([model]).search_inputs(*batch)[1]


def test_ensemble_forced_scores_of_copies_equal_model(tiny_model_dir):
    model_dir, _, _ = tiny_model_dir
    _, model, _, _ = model_dir_lib.load(model_dir, "last")
    src, tgt = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]]
    np.testing.assert_allclose(ForcedDecoder(Ensemble([model, model])).score_ids(src, tgt),
                               ForcedDecoder(model).score_ids(src, tgt), rtol=1e-5)


def test_ensemble_mixes_distributions(tiny_model_dir, tmp_path, batch):
    model_dir, _, _ = tiny_model_dir
    other_dir = str(tmp_path / "other")
    write_tiny_model_dir(other_dir, seeds=(7,), vocab_dir=model_dir)
    _, ensemble, _, _ = load_ensemble(f"{model_dir},{other_dir}", "last")
    assert isinstance(ensemble, Ensemble)
    a, b = ensemble.models
    src, src_len = batch
    tgt_in = tf.constant([[2, 5, 6], [2, 7, 8]], tf.int32)
    mixed = tf.nn.softmax(ensemble.logits(src, src_len, tgt_in)).numpy()
    expected = (tf.nn.softmax(a.logits(src, src_len, tgt_in)) +
                tf.nn.softmax(b.logits(src, src_len, tgt_in))).numpy() / 2
    np.testing.assert_allclose(mixed, expected, atol=1e-6)


def test_ensemble_needs_the_same_vocabularies(tiny_model_dir, tmp_path):
    model_dir, _, _ = tiny_model_dir
    other_dir = str(tmp_path / "own_vocab")
    shutil.copytree(model_dir, other_dir)
    src, _ = tiny_corpus(100)
    vocab_lib.train_sentencepiece(src, f"{other_dir}/spm", vocab_size=300)
    with pytest.raises(model_dir_lib.ModelDirError, match="vocabularies differ"):
        load_ensemble(f"{model_dir},{other_dir}", "last")


def test_ensemble_takes_vocabularies_trained_apart_on_one_corpus(tiny_model_dir, tmp_path):
    model_dir, _, _ = tiny_model_dir
    other_dir = str(tmp_path / "retrained_vocab")
    shutil.copytree(model_dir, other_dir)
    src, tgt = tiny_corpus()  # the corpus write_tiny_model_dir trained its vocabulary on
    vocab_lib.train_sentencepiece(src + tgt, f"{other_dir}/spm", vocab_size=300)
    with open(f"{model_dir}/spm.model", "rb") as a, open(f"{other_dir}/spm.model", "rb") as b:
        assert a.read() != b.read()
    _, ensemble, _, _ = load_ensemble(f"{model_dir},{other_dir}", "last")
    assert isinstance(ensemble, Ensemble)

