"""bench/ablate_training.py: each run is the preset plus one lever's flags on a step budget,
and the table reads each run's final val evaluation (a missing one is reported, not zero)."""
import dataclasses
import json
import os

import pytest

from bench import ablate_training
from nmt import config as config_lib


def write_log(run_dir, records):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "log.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def evaluation(step, bleu):
    return {"kind": "eval", "step": step, "loss": 2.5, "bleu": bleu, "chrf": 50.0}


@pytest.mark.parametrize("lever", list(ablate_training.LEVERS))
def test_command_is_the_preset_plus_only_that_lever(lever):
    command = ablate_training.run_command(lever, "/tmp/x", "default", 1234)
    assert command[1].endswith(os.path.join("recipes", "multi30k.py"))
    fixed = ["--preset=default", "--model_dir=/tmp/x", "--noscore_test_sets",
             "--num_train_steps=1234", "--max_time_minutes=0", "--steps_per_eval=1234",
             "--steps_per_checkpoint=1234"]
    assert command[2:2 + len(fixed)] == fixed
    assert command[2 + len(fixed):] == ablate_training.LEVERS[lever][1]


def test_lever_flags_are_config_fields():
    """A misspelt lever flag would only fail an hour into an ablation; catch it here."""
    fields = {f.name for cls in config_lib.SECTIONS.values() for f in dataclasses.fields(cls)}
    for _, extra in ablate_training.LEVERS.values():
        for flag in extra:
            name = flag.split("=")[0].removeprefix("--")
            assert name in fields or name.removeprefix("no") in fields, flag


def test_table_reads_the_final_evaluation_and_reports_missing_runs(tmp_path):
    write_log(tmp_path / "base", [evaluation(1000, 10.0), evaluation(2000, 23.3)])
    write_log(tmp_path / "tied_embeddings", [evaluation(2000, 31.12)])
    write_log(tmp_path / "vocab_16k", [evaluation(1000, 15.0)])  # stopped before its end
    text = ablate_training.table(str(tmp_path), ["base", "tied_embeddings", "vocab_16k"],
                                 2000, "default")
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| lever")
            and not line.startswith("| ---")}
    assert "| 23.30 |  |" in rows["base"]
    assert "| 31.12 | +7.82 |" in rows["tied_embeddings"]
    assert "failed" in rows["vocab_16k"] and "15.00" not in rows["vocab_16k"]
    assert ablate_training.final_eval(str(tmp_path / "vocab_16k"), 2000) is None
