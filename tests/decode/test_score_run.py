"""Tests for nmt/decode/score_run.py (behind nmt-score-run): every shipped set is scored, the
numbers are sacreBLEU's on the written hypotheses, both tables agree, writes are atomic."""
import glob
import json
import os
import re
import shutil

import pytest
import sacrebleu

from nmt import model_dir as model_dir_lib
from nmt.data import corpus
from nmt.decode import metrics, score_run
from nmt.decode.translate import Translator


def read(path):
    return corpus.read_lines(path)


def markdown_rows(markdown):
    """{set name: [cells]} of the Markdown table's body rows."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("set", "---"):
            rows[cells[0]] = cells
    return rows


@pytest.fixture(scope="module")
def scored(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored")
    record, markdown = score_run.score_run_dir(
        tiny_run.run_dir, data_dir=tiny_run.data_dir, output_md=str(out / "s.md"),
        output_json=str(out / "s.json"), hyp_dir=str(out / "hyp"))
    return out, record, markdown


def test_every_shipped_pair_but_train_is_found_dev_first(tiny_run):
    config = model_dir_lib.load_config(tiny_run.run_dir)
    sets = score_run.eval_sets(tiny_run.data_dir, config.data)
    assert [(s.name, s.role) for s in sets] == [("val", "dev"), ("test_a", "test"),
                                                 ("test_b", "test")]
    assert sets[0].ref_path.endswith("val.de.gz") and sets[1].src_path.endswith("test_a.en.gz")


def test_json_has_one_entry_per_set_scored_as_sacrebleu_on_the_hypotheses(scored, tiny_run):
    out, record, _ = scored
    with open(out / "s.json") as f:
        written = json.load(f)
    assert written == record
    assert [e["name"] for e in written["sets"]] == ["val", "test_a", "test_b"]
    for entry in written["sets"]:
        hyps, refs = read(entry["hypotheses"]), read(entry["ref"])
        assert len(hyps) == len(refs) == entry["sentences"] == len(read(entry["src"]))
        assert entry["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
        assert entry["bleu_lc"] == sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
        assert entry["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
        assert 0 < entry["chrf"] < 100  # (an untrained model's BLEU is 0: see below)
        assert entry["bleu_signature"] == metrics.signatures()["bleu_signature"]


class LookupTranslator:
    """Stands in for nmt.decode.translate.Translator: "translates" a source line into its
    reference, minus the last word on every other line (so 0 < BLEU < 100)."""

    def __init__(self, data_dir):
        self.table = {}
        for name in ("val", "test_a", "test_b"):
            src = read(corpus.find_corpus_file(os.path.join(data_dir, name), "en"))
            ref = read(corpus.find_corpus_file(os.path.join(data_dir, name), "de"))
            for i, (s, r) in enumerate(zip(src, ref)):
                self.table[s] = r.rsplit(" ", 1)[0] if i % 2 else r

    def translate_text(self, lines):
        return [self.table[line] for line in lines]


def test_scores_are_sacrebleu_of_the_written_hypotheses_in_order(tiny_run, tmp_path,
                                                                 monkeypatch):
    lookup = LookupTranslator(tiny_run.data_dir)
    monkeypatch.setattr(score_run, "Translator", lambda *args: lookup)
    record, _ = score_run.score_run_dir(tiny_run.run_dir, data_dir=tiny_run.data_dir,
                                        output_md=str(tmp_path / "s.md"),
                                        output_json=str(tmp_path / "s.json"),
                                        hyp_dir=str(tmp_path / "hyp"))
    for entry in record["sets"]:
        hyps, refs = read(entry["hypotheses"]), read(entry["ref"])
        assert hyps == lookup.translate_text(read(entry["src"]))
        assert 0 < entry["bleu"] < 100
        assert entry["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
        assert entry["bleu_lc"] == sacrebleu.corpus_bleu(hyps, [refs], lowercase=True).score
        assert entry["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score


def test_markdown_table_shows_the_json_numbers(scored):
    out, record, markdown = scored
    with open(out / "s.md") as f:
        assert f.read() == markdown + "\n"
    rows = markdown_rows(markdown)
    assert sorted(rows) == sorted(e["name"] for e in record["sets"])
    for entry in record["sets"]:
        assert rows[entry["name"]] == [entry["name"], entry["role"], str(entry["sentences"]),
                                       f"{entry['bleu']:.2f}", f"{entry['bleu_lc']:.2f}",
                                       f"{entry['chrf']:.2f}"]
    for key in ("bleu_signature", "bleu_lc_signature", "chrf_signature"):
        assert record["sets"][0][key] in markdown


def test_checkpoint_and_decode_overrides_are_used(tiny_run, tmp_path):
    ckpt_1 = os.path.join(tiny_run.run_dir, "ckpt", "ckpt-1")
    record, _ = score_run.score_run_dir(
        tiny_run.run_dir, checkpoint=ckpt_1, data_dir=tiny_run.data_dir,
        decode_overrides={"beam_size": 1, "length_penalty": None, "coverage_penalty": 0.0},
        output_md=str(tmp_path / "s.md"), output_json=str(tmp_path / "s.json"),
        hyp_dir=str(tmp_path / "hyp"))
    assert record["checkpoint"] == ckpt_1
    assert record["decode"]["beam_size"] == 1
    assert record["decode"]["length_penalty"] == 0.6  # None keeps the run's value
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(tiny_run.run_dir, ckpt_1)
    translator = Translator(model, src_vocab, tgt_vocab,
                            config.replace(decode=dict(beam_size=1)).decode)
    val = record["sets"][0]
    assert read(val["hypotheses"]) == translator.translate_text(read(val["src"]))


def test_a_failed_run_leaves_previous_tables_alone(tiny_run, tmp_path, monkeypatch):
    md, js = tmp_path / "s.md", tmp_path / "s.json"
    md.write_text("old md\n")
    js.write_text("{}\n")
    calls = []

    def failing_score(hyps, refs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("scoring died")
        return metrics.score(hyps, refs)

    monkeypatch.setattr(score_run.metrics, "score", failing_score)
    with pytest.raises(RuntimeError, match="scoring died"):
        score_run.score_run_dir(tiny_run.run_dir, data_dir=tiny_run.data_dir, output_md=str(md),
                                output_json=str(js), hyp_dir=str(tmp_path / "hyp"))
    assert md.read_text() == "old md\n" and js.read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == ["hyp", "s.json", "s.md"]


def test_tables_are_written_whole_or_not_at_all(tmp_path):
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    score_run.write_tables("| a |", {"x": 1}, str(md), str(js))
    assert md.read_text() == "| a |\n" and json.loads(js.read_text()) == {"x": 1}
    with pytest.raises(ValueError):  # NaN is not JSON: nothing may be replaced
        score_run.write_tables("| b |", {"x": float("nan")}, str(md), str(js))
    assert md.read_text() == "| a |\n" and json.loads(js.read_text()) == {"x": 1}
    assert sorted(os.listdir(tmp_path)) == ["t.json", "t.md"]


def test_a_missing_data_dir_says_to_give_one(tiny_run, tmp_path):
    config = model_dir_lib.load_config(tiny_run.run_dir).replace(
        data=dict(dev_prefix=str(tmp_path / "gone" / "val")))
    with pytest.raises(corpus.CorpusError, match=re.escape("give --data_dir")):
        score_run.resolve_data_dir(tiny_run.run_dir, config.data)
    assert score_run.resolve_data_dir(tiny_run.run_dir, config.data, tiny_run.data_dir) == \
        tiny_run.data_dir


def test_checkpoint_path_takes_names_prefixes_and_directories(tiny_run):
    ckpt_dir = os.path.join(tiny_run.run_dir, "ckpt")
    latest = os.path.join(ckpt_dir, "ckpt-2")
    assert model_dir_lib.checkpoint_path(tiny_run.run_dir, "best") == latest  # no best/
    assert model_dir_lib.checkpoint_path(tiny_run.run_dir, "latest") == latest
    assert model_dir_lib.checkpoint_path(tiny_run.run_dir, ckpt_dir) == latest
    prefix = os.path.join(ckpt_dir, "ckpt-1")
    assert model_dir_lib.checkpoint_path(tiny_run.run_dir, prefix) == prefix
    with pytest.raises(model_dir_lib.ModelDirError, match="no checkpoint state"):
        model_dir_lib.checkpoint_path(tiny_run.run_dir, tiny_run.data_dir)


def test_a_mistyped_checkpoint_name_is_a_one_line_error(tiny_run, tmp_path):
    with pytest.raises(model_dir_lib.ModelDirError, match="bset: no such checkpoint"):
        model_dir_lib.checkpoint_path(tiny_run.run_dir, "bset")
    prefix = os.path.join(tiny_run.run_dir, "ckpt", "ckpt-1")
    for path in glob.glob(prefix + ".data-*"):  # a copy without its .index (the run is shared)
        shutil.copy(path, tmp_path)
    truncated = str(tmp_path / "ckpt-1")  # a real checkpoint missing a file keeps its message
    assert model_dir_lib.checkpoint_path(tiny_run.run_dir, truncated) == truncated
    with pytest.raises(model_dir_lib.ModelDirError, match="index file missing"):
        model_dir_lib.check_checkpoint(truncated)


def test_nmt_score_run_scores_every_set(tiny_run, tmp_path):
    """The console script scores the dev and test sets with the --checkpoint given."""
    import subprocess
    import sys
    js = tmp_path / "s.json"
    result = subprocess.run(
        [sys.executable, "-m", "nmt.cli.score_run", f"--model_dir={tiny_run.run_dir}",
         f"--data_dir={tiny_run.data_dir}", "--checkpoint=last", "--beam_size=1",
         f"--output_md={tmp_path / 's.md'}", f"--output_json={js}",
         f"--hyp_dir={tmp_path / 'hyps'}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    record = json.loads(js.read_text())
    assert record["checkpoint"] == model_dir_lib.checkpoint_path(tiny_run.run_dir, "last")
    assert record["decode"]["beam_size"] == 1
    assert {s["name"]: s["role"] for s in record["sets"]} == {
        "val": "dev", "test_a": "test", "test_b": "test"}
