"""recipes/multi30k_distilled.py: the teachers run side by side, one per core, each with
the shared vocabulary and its own seed; a failed teacher stops the recipe with its log."""
import json
import os
import sys

import pytest
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "recipes"))

import multi30k_distilled  # noqa: E402
from conftest import tiny_corpus  # noqa: E402
from nmt import config as config_lib, model_dir as model_dir_lib, vocab as vocab_lib  # noqa: E402

FAKE_RECIPE = '''
import json, os, sys
out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--out_dir=")][0]
seen = {"argv": sys.argv[1:], "cores": sorted(os.sched_getaffinity(0)),
        "vocab": os.path.exists(os.path.join(out, "spm.model"))}
with open(os.path.join(out, "seen.json"), "w") as f:
    json.dump(seen, f)
sys.exit(3 if "--seed=2" in sys.argv and os.environ.get("FAIL_TEACHER_2") else 0)
'''


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    fake = tmp_path / "fake_recipe.py"
    fake.write_text(FAKE_RECIPE)
    monkeypatch.setattr(multi30k_distilled, "RECIPE", str(fake))
    # Set the recipe's flags without parsing argv: other tests' modules define flags of
    # their own (nmt-translate's required --model_dir), which a parse would check.
    was_parsed = flags.FLAGS.is_parsed()
    saved = {name: flags.FLAGS[name].value for name in ("teachers", "teacher_minutes")}
    flags.FLAGS["teachers"].value, flags.FLAGS["teacher_minutes"].value = 2, 7.0
    flags.FLAGS.mark_as_parsed()
    vocab_dir = str(tmp_path / "vocab")
    os.makedirs(vocab_dir)
    src, tgt = tiny_corpus()
    vocab_lib.train_sentencepiece(src + tgt, os.path.join(vocab_dir, "spm"), vocab_size=300)
    yield str(tmp_path / "out"), vocab_dir
    for name, value in saved.items():
        flags.FLAGS[name].value = value
    if not was_parsed:
        flags.FLAGS.unparse_flags()


def test_teachers_get_their_seed_their_core_and_the_shared_vocabulary(recipe):
    out_dir, vocab_dir = recipe
    dirs = multi30k_distilled.train_teachers(out_dir, vocab_dir, config_lib.DataConfig())
    assert dirs == [os.path.join(out_dir, "teacher1"), os.path.join(out_dir, "teacher2")]
    cores = sorted(os.sched_getaffinity(0))
    seen = []
    for i, teacher_dir in enumerate(dirs, start=1):
        with open(os.path.join(teacher_dir, "seen.json")) as f:
            seen.append(json.load(f))
        argv = seen[-1]["argv"]
        assert {"--preset=best", f"--seed={i}", "--noscore_test_sets",
                "--max_time_minutes=7.0", f"--out_dir={teacher_dir}"} <= set(argv)
        assert seen[-1]["vocab"]  # copied in before the teacher started
    if len(cores) >= 2:
        assert [s["cores"] for s in seen] == [[cores[0]], [cores[1]]]
    else:
        assert [s["cores"] for s in seen] == [cores, cores]


def test_a_failed_teacher_stops_the_recipe_naming_its_log(recipe, monkeypatch):
    out_dir, vocab_dir = recipe
    monkeypatch.setenv("FAIL_TEACHER_2", "1")
    with pytest.raises(model_dir_lib.ModelDirError,
                       match=r"out/teacher2\.log: teacher 2 failed"):
        multi30k_distilled.train_teachers(out_dir, vocab_dir, config_lib.DataConfig())


def test_the_student_starts_from_the_teacher_with_the_best_dev_bleu(tmp_path):
    records = {"a": [37.4, 38.9, 38.1], "b": [37.9, 38.2]}
    for name, scores in records.items():
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "log.jsonl", "w") as f:
            for step, bleu in enumerate(scores, start=1):
                f.write(json.dumps({"kind": "train", "step": step, "bleu_is_not": 99.0}) + "\n")
                f.write(json.dumps({"kind": "eval", "step": step, "bleu": bleu}) + "\n")
    dirs = [str(tmp_path / "b"), str(tmp_path / "a")]
    assert multi30k_distilled.best_dev_bleu(dirs[1]) == 38.9
    assert max(dirs, key=multi30k_distilled.best_dev_bleu) == dirs[1]
