"""Tests for nmt/decode/forced.py and the nmt-score / nmt-translate --alignments outputs."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_corpus
from nmt import model_dir as model_dir_lib
from nmt.cli import translate as translate_cli
from nmt.config import DecodeConfig
from nmt.data import batching as batching_lib
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.decode.forced import ForcedDecoder, format_alignment, score_files
from nmt.decode.translate import Translator


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    model_dir, _, _ = tiny_model_dir
    return (model_dir,) + model_dir_lib.load(model_dir, "last")


def teacher_forced_nll(model, src_ids, tgt_ids):
    """The model's summed NLL of one pair, through Seq2Seq.loss on a batch of one."""
    batch = batching_lib.Batch(tf.constant([src_ids]), tf.constant([len(src_ids)]),
                               tf.constant([[BOS_ID] + tgt_ids]), tf.constant([tgt_ids + [EOS_ID]]),
                               tf.constant([len(tgt_ids) + 1]))
    return float(model.loss(batch, label_smoothing=0.0).nll_sum)


def test_score_is_negative_teacher_forced_nll(loaded, tmp_path):
    model_dir, config, model, src_vocab, tgt_vocab = loaded
    src, tgt = tiny_corpus(6)
    src_path, tgt_path, out_path = (str(tmp_path / n) for n in ("s.txt", "t.txt", "scores.txt"))
    for path, lines in ((src_path, src), (tgt_path, tgt)):
        with open(path, "w") as f:
            f.writelines(line + "\n" for line in lines)
    scores = score_files(model_dir, src_path, tgt_path, out_path, which="last")
    written = [float(line) for line in open(out_path)]
    assert len(written) == len(src)
    for s, t, got, from_file in zip(src_vocab.encode(src), tgt_vocab.encode(tgt), scores, written):
        expected = -teacher_forced_nll(model, s[:config.decode.max_input_len], t)  # as scored
        assert got == pytest.approx(expected, rel=1e-4)
        assert from_file == pytest.approx(expected, rel=1e-4)


def test_greedy_score_equals_forced_score_of_its_output(loaded):
    _, config, model, src_vocab, tgt_vocab = loaded
    src, _ = tiny_corpus(5)
    decode = DecodeConfig(beam_size=1, max_input_len=20, max_length_ratio=5.0)
    hyps = [h[0] for h in Translator(model, src_vocab, tgt_vocab, decode).translate(src)]
    finished = [h for h in hyps if len(h.ids) < 5 * 20]  # not cut by the length limit
    forced = ForcedDecoder(model).score_ids(
        [s for s, h in zip(src_vocab.encode(src), hyps) if h in finished],
        [h.ids for h in finished])
    np.testing.assert_allclose(forced, [h.score for h in finished], rtol=1e-4)


def test_empty_source_scores_nan():
    class NoModel:  # never called: the only pair has an empty source
        pass
    assert math.isnan(ForcedDecoder(NoModel()).score_ids([[]], [[5, 6]])[0])


def test_alignments_file_has_one_index_per_output_piece(loaded, tmp_path):
    _, config, model, src_vocab, tgt_vocab = loaded
    src, _ = tiny_corpus(7)
    lines = src + [""]
    input_path, output_path = str(tmp_path / "in.txt"), str(tmp_path / "out.txt")
    with open(input_path, "w") as f:
        f.writelines(line + "\n" for line in lines)
    translator = Translator(model, src_vocab, tgt_vocab, config.decode)
    expected = translator.translate(lines)
    translate_cli.translate_file(translator, input_path, output_path, chunk_lines=3,
                                 aligner=ForcedDecoder(model))
    align_lines = open(output_path + ".align").read().split("\n")[:-1]
    assert len(align_lines) == len(lines)
    for line, hyps, src_ids in zip(align_lines, expected, src_vocab.encode(lines)):
        indices = [int(i) for i in line.split()]
        assert len(indices) == len(hyps[0].ids)
        assert all(0 <= i < len(src_ids) for i in indices)
    assert align_lines[-1] == ""


def test_alignments_are_argmax_of_attention(loaded):
    _, _, model, src_vocab, _ = loaded
    src_ids, tgt_ids = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14]]
    got = ForcedDecoder(model).alignment_ids(src_ids, tgt_ids)
    for s, t, indices in zip(src_ids, tgt_ids, got):
        weights = model.alignments(tf.constant([s]), tf.constant([len(s)]),
                                   tf.constant([[BOS_ID] + t])).numpy()[0]
        assert indices == np.argmax(weights[:len(t)], axis=-1).tolist()
    assert format_alignment([0, 1, 1, 3]) == "0 1 1 3"
