"""tools/compare_runs.py: several runs' evaluations side by side, from their logs."""
import json
import os
import subprocess
import sys

import pytest

from tools import compare_runs

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def write_log(run_dir, evals, train_steps=(50,)):
    """A log.jsonl with train records and eval records {step: (loss, bleu)}."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "log.jsonl"), "w", encoding="utf-8") as f:
        for step in train_steps:
            f.write(json.dumps({"kind": "train", "step": step, "loss": 5.0}) + "\n")
        for step, (loss, bleu) in evals:
            f.write(json.dumps({"kind": "eval", "step": step, "loss": loss, "bleu": bleu,
                                "attention_mode_share": 0.2}) + "\n")
    return str(run_dir)


def test_evaluations_keep_the_last_record_of_a_step_and_skip_train_records(tmp_path):
    run = write_log(tmp_path / "a", [(100, (3.0, 10.0)), (200, (2.5, 20.0)),
                                     (200, (2.4, 21.0))])
    assert compare_runs.evaluations(run) == {100: (3.0, 10.0), 200: (2.4, 21.0)}


def test_a_run_without_evaluations_is_a_one_line_error(tmp_path):
    run = write_log(tmp_path / "a", [])
    with pytest.raises(ValueError, match=r"a/log\.jsonl: no evaluations yet"):
        compare_runs.evaluations(run)


def test_means_cover_only_the_steps_every_run_evaluated_from_from_step():
    base = {1000: (3.0, 10.0), 2000: (2.0, 20.0), 3000: (1.5, 30.0)}
    other = {1000: (3.5, 8.0), 2000: (2.2, 19.0), 2500: (2.0, 25.0), 3000: (1.6, 27.0)}
    result = compare_runs.compare([("base", base), ("other", other)], from_step=2000)
    assert result["steps"] == [1000, 2000, 2500, 3000]
    assert result["shared"] == [2000, 3000]  # 2500 is the other run's only
    base_run, other_run = result["runs"]
    assert base_run["mean_loss"] == pytest.approx(1.75)
    assert base_run["mean_bleu"] == pytest.approx(25.0)
    assert other_run["mean_loss"] == pytest.approx(1.9)
    assert other_run["mean_bleu"] == pytest.approx(23.0)
    assert other_run["mean_loss_difference"] == pytest.approx(0.15)
    assert other_run["mean_bleu_difference"] == pytest.approx(-2.0)
    assert base_run["mean_bleu_difference"] == 0.0


def test_markdown_has_a_row_per_step_differences_and_dashes_where_a_run_did_not_evaluate():
    base = {1000: (3.0, 10.0), 2000: (2.0, 20.0)}
    other = {1000: (3.25, 9.5), 1500: (2.5, 15.0), 2000: (2.125, 21.0)}
    table = compare_runs.markdown(compare_runs.compare([("fp32", base), ("bf16", other)]))
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| step | fp32 | bf16 | bf16 − fp32 |"
    assert rows[1] == "| 1,000 | 3.000 / 10.00 | 3.250 / 9.50 | +0.250 / -0.50 |"
    assert rows[2] == "| 1,500 | – | 2.500 / 15.00 | – |"
    assert rows[3] == "| 2,000 | 2.000 / 20.00 | 2.125 / 21.00 | +0.125 / +1.00 |"
    assert rows[4] == ("| mean of 2 shared evaluations, steps 1,000–2,000 | 2.500 / 15.00 "
                       "| 2.688 / 15.25 | +0.188 / +0.25 |")


def test_no_shared_step_gives_no_mean_and_says_so():
    result = compare_runs.compare([("a", {100: (1.0, 1.0)}), ("b", {200: (1.0, 1.0)})])
    assert result["shared"] == [] and result["runs"][1]["mean_bleu"] is None
    assert "no mean" in compare_runs.markdown(result)


def test_run_names_fall_back_to_the_path_when_two_dirs_share_a_name():
    assert compare_runs.run_names(["x/fp32", "x/bf16"]) == ["fp32", "bf16"]
    assert compare_runs.run_names(["a/run", "b/run/", "c"]) == ["a/run", "b/run/", "c"]


def test_cli_prints_the_table_and_json_and_draws_the_curves(tmp_path):
    a = write_log(tmp_path / "fp32", [(1000, (3.0, 10.0)), (2000, (2.0, 20.0))])
    b = write_log(tmp_path / "bf16", [(1000, (3.5, 9.0)), (2000, (2.5, 19.0))])
    script = ["-m", "tools.compare_runs"]
    image = tmp_path / "dev.png"
    out = subprocess.run([sys.executable, *script, f"--model_dir={a}", f"--model_dir={b}",
                          "--from_step=2000", f"--plot={image}"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "| 2,000 | 2.000 / 20.00 | 2.500 / 19.00 | +0.500 / -1.00 |" in out
    assert "| mean of 1 shared evaluation, steps 2,000–2,000 |" in out
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(subprocess.run([sys.executable, *script, f"--model_dir={a}",
                                      f"--model_dir={b}", "--json"], capture_output=True,
                                     text=True, check=True, cwd=REPO).stdout)
    assert data["shared"] == [1000, 2000]
    assert data["runs"][1]["mean_bleu_difference"] == pytest.approx(-1.0)
    missing = subprocess.run([sys.executable, *script, f"--model_dir={a}",
                              f"--model_dir={tmp_path / 'none'}"], capture_output=True, text=True,
                             cwd=REPO)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1] == (
        f"compare_runs: {tmp_path / 'none' / 'log.jsonl'}: no training log (train first)")
