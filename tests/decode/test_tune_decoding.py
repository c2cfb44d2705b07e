"""Tests for nmt/decode/tune_decoding.py (behind nmt-tune-decoding): the best row is the argmax of
the table, shared searches really are equal, only the dev set is read."""
import json
import os
import shutil

import numpy as np
import pytest
import sacrebleu

from nmt import model_dir as model_dir_lib
from nmt.config import DecodeConfig
from nmt.data import corpus
from nmt.decode import metrics, score_run, tune_decoding
from nmt.decode.translate import Translator
from nmt.training import average_checkpoints

GRID = dict(beam_sizes=[1, 2], length_penalties=[0.0, 1.0], coverage_penalties=[0.0])


def read(path):
    return corpus.read_lines(path)


@pytest.fixture(scope="module")
def tuned(tiny_run, tmp_path_factory):
    """A real tuning run of the tiny model; records every file the corpus reader opened."""
    out = tmp_path_factory.mktemp("tuned")
    opened = []
    original = corpus.read_lines
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(corpus, "read_lines",
                        lambda path, *a, **k: opened.append(path) or original(path, *a, **k))
    try:
        record, markdown = tune_decoding.tune(tiny_run.run_dir, data_dir=tiny_run.data_dir,
                                              average_last=[1, 2, 5], output_md=str(out / "t.md"),
                                              output_json=str(out / "t.json"), **GRID)
    finally:
        monkeypatch.undo()
    return out, record, markdown, opened


def test_table_has_every_setting_of_every_model_and_skips_what_cannot_be_averaged(tuned):
    out, record, markdown, _ = tuned
    with open(out / "t.json") as f:
        assert json.load(f) == record
    with open(out / "t.md") as f:
        assert f.read() == markdown + "\n"
    models = [r["model"] for r in record["rows"]]
    assert models == (["best (ckpt/ckpt-2)"] * 4 + ["mean of last 1 (ckpt-2)"] * 4
                      + ["mean of last 2 (ckpt-1, ckpt-2)"] * 4)
    assert [(r["beam_size"], r["length_penalty"]) for r in record["rows"][:4]] == \
        [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    assert len(record["skipped"]) == 1 and "last 5 of 2" in record["skipped"][0]
    for i, r in enumerate(record["rows"]):  # the Markdown shows the JSON's numbers
        assert (f"| {i} | {r['model']} | {r['beam_size']} | {r['length_penalty']} | "
                f"{r['coverage_penalty']} | no | {r['bleu']:.2f} | {r['bleu_lc']:.2f} | "
                f"{r['chrf']:.2f} |") in markdown


def test_only_the_dev_set_is_read(tuned, tiny_run):
    _, record, _, opened = tuned
    assert record["dev_set"] == "val"
    assert opened and {os.path.basename(p) for p in opened} == {"val.en", "val.de.gz"}


def test_shared_searches_equal_a_real_translation(tuned, tiny_run):
    _, record, _, _ = tuned
    rows = record["rows"]
    assert rows[1]["same_as"] == 0  # greedy ignores the length penalty
    assert [r["same_as"] for r in rows[4:8]] == [0, 0, 2, 3]  # equal weights: ckpt-2 again
    assert [r["same_as"] for r in rows[8:]] == [None, 8, None, None]  # other weights
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(tiny_run.run_dir, "latest")
    dev = score_run.dev_set(tiny_run.data_dir, config.data)
    greedy_lp = config.replace(decode=dict(beam_size=1, length_penalty=1.0)).decode
    scores = score_run.translate_and_score(Translator(model, src_vocab, tgt_vocab, greedy_lp), dev)
    assert (scores.scores.bleu, scores.scores.chrf) == (rows[1]["bleu"], rows[1]["chrf"])
    _, averaged, _, _, _ = average_checkpoints.average_model(tiny_run.run_dir, 2)
    beam_2 = config.replace(decode=dict(beam_size=2, length_penalty=1.0)).decode
    scores = score_run.translate_and_score(Translator(averaged, src_vocab, tgt_vocab, beam_2), dev)
    assert (scores.scores.bleu, scores.scores.chrf) == (rows[11]["bleu"], rows[11]["chrf"])


class SettingTranslator:
    """Stands in for Translator: the reference with `drop` words cut from each line,
    drop depending on the settings, so every setting scores differently."""
    refs = {}

    def __init__(self, model, src_vocab, tgt_vocab, decode):
        self.drop = {(1, 0.0): 3, (1, 1.0): 3, (2, 0.0): 2, (2, 1.0): 1}[
            (decode.beam_size, decode.length_penalty)]

    def translate_text(self, lines):
        return [" ".join(self.refs[line].split()[:-self.drop]) for line in lines]


def test_best_is_the_argmax_of_its_own_table(tiny_run, tmp_path, monkeypatch):
    config = model_dir_lib.load_config(tiny_run.run_dir)
    dev = score_run.dev_set(tiny_run.data_dir, config.data)
    src, refs = read(dev.src_path), read(dev.ref_path)
    SettingTranslator.refs = dict(zip(src, refs))
    monkeypatch.setattr(tune_decoding, "Translator", SettingTranslator)
    record, markdown = tune_decoding.tune(tiny_run.run_dir, data_dir=tiny_run.data_dir,
                                          output_md=str(tmp_path / "t.md"),
                                          output_json=str(tmp_path / "t.json"), **GRID)
    rows = record["rows"]
    bleus = [r["bleu"] for r in rows]
    assert len(set(bleus[1:])) == 3 and record["best"] == bleus.index(max(bleus)) == 3
    assert "Best (highest cased BLEU): row 3:" in markdown
    for r in rows:
        hyps = SettingTranslator(None, None, None, DecodeConfig(
            beam_size=r["beam_size"], length_penalty=r["length_penalty"])).translate_text(src)
        assert r["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
        assert r["bleu_lc"] == metrics.score(hyps, refs).bleu_lc
    assert sorted(os.listdir(tmp_path)) == ["t.json", "t.md"]


@pytest.mark.parametrize("forced_average,forced_mbr", [(None, False), (2, False), (None, True)])
def test_every_set_is_scored_with_the_model_and_setting_val_picked(
        tiny_run, tmp_path, monkeypatch, forced_average, forced_mbr):
    """Whichever row val picks (forced here to the best checkpoint, then to the mean of
    the last 2, then to MBR), the scored dev set reproduces that row's numbers exactly,
    so the test sets were translated by the same model with the same setting."""
    run_dir = str(tmp_path / "run")
    shutil.copytree(tiny_run.run_dir, run_dir)
    real_tune = tune_decoding.tune

    def tune_then_force(*args, **kwargs):
        record, markdown = real_tune(*args, **kwargs)
        record["best"] = [(r["average_last"], r["mbr"]) for r in record["rows"]].index(
            (forced_average, forced_mbr))
        return record, markdown

    monkeypatch.setattr(tune_decoding, "tune", tune_then_force)
    tuned, record, markdown = tune_decoding.score_with_val_pick(
        run_dir, tiny_run.data_dir, length_penalties=[0.0, 1.0], average_last=[2],
        mbr=[False, True])
    pick = tuned["rows"][tuned["best"]]
    assert [r["beam_size"] for r in tuned["rows"]] == [2] * 8  # the run's beam
    assert record["decode"]["length_penalty"] == pick["length_penalty"]
    assert record["decode"]["mbr"] == pick["mbr"] == forced_mbr
    dev = [e for e in record["sets"] if e["role"] == "dev"]
    assert len(dev) == 1 and (dev[0]["bleu"], dev[0]["chrf"]) == (pick["bleu"], pick["chrf"])
    config = model_dir_lib.load_config(run_dir)
    assert [e["name"] for e in record["sets"]] == [
        s.name for s in score_run.eval_sets(tiny_run.data_dir, config.data)]
    averaged_dir = os.path.join(run_dir, tune_decoding.AVERAGED_DIR)
    if forced_average is None:
        assert record["checkpoint"] == model_dir_lib.checkpoint_path(run_dir, "best")
        assert not os.path.exists(averaged_dir)
    else:
        assert record["checkpoint"].startswith(averaged_dir)
        _, saved, _, _ = model_dir_lib.load(averaged_dir, "latest")
        _, mean, _, _, _ = average_checkpoints.average_model(run_dir, 2)
        for a, b in zip(saved.trainable_variables, mean.trainable_variables):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    with open(os.path.join(run_dir, "scores.json")) as f:
        assert json.load(f) == record
    assert markdown.startswith(f"Picked on val only (RUN_DIR/tuning.md, row {tuned['best']}): "
                               f"{pick['model']}")
    for e in record["sets"]:
        assert os.path.dirname(e["hypotheses"]) == os.path.join(run_dir, "scores")


def test_mbr_rows_need_a_beam_and_are_searches_of_their_own():
    combos = tune_decoding.grid([1, 3], [0.6], [0.0], mbr=[False, True])
    assert combos == [(1, 0.6, 0.0, False), (3, 0.6, 0.0, False), (3, 0.6, 0.0, True)]
    key = tune_decoding.search_key
    assert key("w", 3, 0.6, 0.0, True) != key("w", 3, 0.6, 0.0)
    assert tune_decoding.search_key("w", 1, 0.6, 0.0) == tune_decoding.search_key("w", 1, 1.0, 0.0)


def test_nmt_tune_decoding_writes_the_tables(tiny_run, tmp_path):
    """The console script's flags reach tuning.tune; a bad number is one usage error."""
    import subprocess
    import sys
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    args = [sys.executable, "-m", "nmt.cli.tune_decoding", f"--model_dir={tiny_run.run_dir}",
            f"--data_dir={tiny_run.data_dir}", "--checkpoint=last", "--beam_sizes=1,2",
            "--length_penalties=0", "--coverage_penalties=0", f"--output_md={md}",
            f"--output_json={js}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads(js.read_text())
    assert [r["beam_size"] for r in record["rows"]] == [1, 2]
    assert record["dev_set"] == "val" and md.read_text() in result.stdout
    bad = subprocess.run(args[:-4] + ["--beam_sizes=1,x"], capture_output=True, text=True,
                         timeout=600)
    assert bad.returncode == 1 and "--beam_sizes takes a list of numbers" in bad.stderr
    assert "Traceback" not in bad.stderr
