"""docs/your-corpus.md, run as written: its shell commands, extracted from the document, on a
slice of the Anki English-Spanish corpus, through the console scripts setup.cfg declares.

Only the budget is the test's own: every nmt-train command gets FAST_TRAIN appended (absl
keeps a flag's last value), so training takes seconds instead of the preset's minutes.
"""
import gzip
import os
import re
import subprocess


from tests.console_scripts import environment, write_scripts

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DOC = os.path.join(REPO, "docs", "your-corpus.md")
ANKI = os.path.join(REPO, "..", "shared", "data", "anki-spa-eng")  # beside the checkout
PAIRS = {"train": 3000, "dev": 150, "test": 150}
FAST_TRAIN = ["--preset=tiny", "--num_units=32", "--embedding_size=32", "--vocab_size=800",
              "--steps_per_checkpoint=10", "--steps_per_stats=10"]
STEPS = (20, 30)  # the first nmt-train run, then the resumed one


def shell_commands(path):
    """The commands of the ```sh blocks of a Markdown file, continuation lines joined."""
    with open(path, encoding="utf-8") as f:
        blocks = re.findall(r"^```sh\n(.*?)^```", f.read(), flags=re.S | re.M)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def write_slice(data_dir):
    os.makedirs(data_dir)
    for name, count in PAIRS.items():
        for lang in ("en", "es"):
            with gzip.open(os.path.join(ANKI, f"{name}.{lang}.gz"), "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(count)]
            with open(os.path.join(data_dir, f"{name}.{lang}"), "w", encoding="utf-8") as f:
                f.writelines(lines)


def test_the_document_has_the_whole_path():
    programs = [c.split()[0] for c in shell_commands(DOC)]
    for program in ("nmt-train", "nmt-score-run", "nmt-translate", "nmt-evaluate", "nmt-export"):
        assert program in programs
    assert any("--validate_only" in c for c in shell_commands(DOC))
    assert any("--pick_on_val" in c for c in shell_commands(DOC))


def test_walkthrough_commands_run_from_raw_files_to_bleu(tmp_path):
    write_slice(str(tmp_path / "data"))
    write_scripts(str(tmp_path / "bin"))
    env = environment(str(tmp_path / "bin"))
    outputs, trains = [], 0
    for command in shell_commands(DOC):
        if command.startswith("nmt-train") and "--validate_only" not in command:
            command += " " + " ".join(FAST_TRAIN + [f"--num_train_steps={STEPS[trains]}"])
            trains += 1
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, result.stderr
        outputs.append((command, result.stdout))
    assert trains == 2
    run_dir = tmp_path / "runs" / "en-es"
    steps = [int(p.split("-")[1].split(".")[0]) for p in os.listdir(run_dir / "ckpt")
             if p.endswith(".index")]
    assert max(steps) == STEPS[1]  # the second run resumed and went on
    scores = (run_dir / "scores.md").read_text(encoding="utf-8")
    assert "test" in scores and "dev" in scores
    hyps = (tmp_path / "test.hyp.es").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == PAIRS["test"]
    evaluated = [out for command, out in outputs if command.startswith("nmt-evaluate")][0]
    assert re.search(r"BLEU \(cased\)\s+\d+\.\d\d", evaluated), evaluated
    assert (tmp_path / "exports" / "en-es" / "1" / "saved_model.pb").is_file()
