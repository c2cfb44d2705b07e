"""nmt/training/distill_pipeline.py (recipes/multi30k.py --distilled): the teachers run side by
side, one per core, each with the shared vocabulary and its own seed; a failed teacher stops
the recipe with its log; the student starts from the best teacher."""
import ast
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import tiny_corpus
from nmt import config as config_lib, model_dir as model_dir_lib
from nmt.data import vocab as vocab_lib
from nmt.training import distill_pipeline

FAKE_RECIPE = '''
import json, os, sys
out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--model_dir=")][0]
seen = {"argv": sys.argv[1:], "cores": sorted(os.sched_getaffinity(0)),
        "vocab": os.path.exists(os.path.join(out, "spm.model"))}
with open(os.path.join(out, "seen.json"), "w") as f:
    json.dump(seen, f)
sys.exit(3 if "--seed=2" in sys.argv and os.environ.get("FAIL_TEACHER_2") else 0)
'''


@pytest.fixture
def recipe(tmp_path):
    fake = tmp_path / "fake_recipe.py"
    fake.write_text(FAKE_RECIPE)
    vocab_dir = str(tmp_path / "vocab")
    os.makedirs(vocab_dir)
    src, tgt = tiny_corpus()
    vocab_lib.train_sentencepiece(src + tgt, os.path.join(vocab_dir, "spm"), vocab_size=300)

    def command(out_dir, *extra):
        return [sys.executable, str(fake), "--preset=best", f"--model_dir={out_dir}", *extra]
    return command, str(tmp_path / "out"), vocab_dir


def train_two_teachers(recipe, **kwargs):
    command, out_dir, vocab_dir = recipe
    return distill_pipeline.train_teachers(command, out_dir, vocab_dir, config_lib.DataConfig(),
                                           teachers=2, minutes=7.0, **kwargs)


@pytest.mark.parametrize("first_seed", [None, 3])
def test_teachers_get_their_seed_their_core_and_the_shared_vocabulary(recipe, first_seed):
    out_dir = recipe[1]
    dirs = train_two_teachers(recipe, **({} if first_seed is None else {"first_seed": first_seed}))
    assert dirs == [os.path.join(out_dir, "teacher1"), os.path.join(out_dir, "teacher2")]
    cores = sorted(os.sched_getaffinity(0))
    seen = []
    for i, teacher_dir in enumerate(dirs, start=first_seed or 1):
        with open(os.path.join(teacher_dir, "seen.json")) as f:
            seen.append(json.load(f))
        argv = seen[-1]["argv"]
        assert {"--preset=best", f"--seed={i}", "--noscore_test_sets",
                "--max_time_minutes=7.0", f"--model_dir={teacher_dir}"} <= set(argv)
        assert seen[-1]["vocab"]  # copied in before the teacher started
    if len(cores) >= 2:
        assert [s["cores"] for s in seen] == [[cores[0]], [cores[1]]]
    else:
        assert [s["cores"] for s in seen] == [cores, cores]


def test_a_failed_teacher_stops_the_recipe_naming_its_log(recipe, monkeypatch):
    monkeypatch.setenv("FAIL_TEACHER_2", "1")
    with pytest.raises(model_dir_lib.ModelDirError,
                       match=r"out/teacher2\.log: teacher 2 failed"):
        train_two_teachers(recipe)


def test_the_student_starts_from_the_teacher_with_the_best_dev_bleu(tmp_path):
    records = {"a": [37.4, 38.9, 38.1], "b": [37.9, 38.2]}
    for name, scores in records.items():
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "log.jsonl", "w") as f:
            for step, bleu in enumerate(scores, start=1):
                f.write(json.dumps({"kind": "train", "step": step, "bleu_is_not": 99.0}) + "\n")
                f.write(json.dumps({"kind": "eval", "step": step, "bleu": bleu}) + "\n")
    dirs = [str(tmp_path / "b"), str(tmp_path / "a")]
    assert distill_pipeline.best_dev_bleu(dirs[1]) == 38.9

    def command(out_dir, *extra):
        return ["recipe", f"--model_dir={out_dir}", *extra]
    student = distill_pipeline.student_command(command, "s", dirs, 75, "teacher", 0.0005)
    assert student[:5] == ["recipe", "--model_dir=s", f"--distil_from={dirs[0]},{dirs[1]}",
                           "--pick_on_val", "--max_time_minutes=75"]
    assert student[5:] == [f"--init_from={dirs[1]}", "--learning_rate=0.0005",
                           "--warmup_steps=0", "--decay=none"]
    scratch = distill_pipeline.student_command(command, "s", dirs, 75, "scratch", 0.0005)
    assert scratch == student[:5]


def test_multi30k_passes_the_config_flags_given_to_every_stage():
    """multi30k.py --distilled: each stage is a `best` run with the user's config
    flags, and a stage's own flags come last (absl keeps the last value)."""
    script = ("import sys; sys.argv = ['multi30k.py', '--distilled', '--tgt=fr', "
              "'--dropout=0.2', '--noshare_embeddings', '--teachers=3']; "
              "import multi30k; from absl import flags; flags.FLAGS(sys.argv); "
              "print(repr(multi30k.stage_command('d', '--seed=2')))")
    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")
    out = subprocess.run([sys.executable, "-c", script], cwd=recipes, check=True,
                         capture_output=True, text=True).stdout
    command = ast.literal_eval(out.strip().splitlines()[-1])
    assert command[1].endswith(os.path.join("recipes", "multi30k.py"))
    assert command[2] == "--preset=best"
    assert sorted(command[3:6]) == ["--dropout=0.2", "--noshare_embeddings", "--tgt=fr"]
    assert command[6:] == ["--model_dir=d", "--seed=2"]
