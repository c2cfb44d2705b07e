"""End-to-end tests of the console scripts on a Multi30k slice: train, translate, evaluate,
resume, and one-line errors (stderr, exit status 1, no traceback) on bad input."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from nmt import config as config_lib
from nmt.decode import metrics

MODULES = {"nmt-train": "nmt.cli.train", "nmt-translate": "nmt.cli.translate",
           "nmt-evaluate": "nmt.cli.evaluate"}
TRAIN_STEPS = 30
TINY = ["--src=en", "--tgt=de", "--num_units=32", "--embedding_size=32", "--num_layers=1",
        "--vocab_size=400", "--max_src_len=60", "--max_tgt_len=60", "--batch_size=32",
        "--steps_per_eval=0", "--steps_per_checkpoint=10", "--steps_per_stats=10",
        "--nojit_compile"]
DECODE = ["--beam_size=2", "--max_input_len=40", "--max_length_ratio=1.0"]

# Every awkward kind of line, as raw bytes; each must give exactly one output line.
AWKWARD = [b"A man in a blue shirt is standing on a ladder.", b"", b"   \t  ",
           b"x" * 10_000, b"invalid \xff\xfe UTF-8 \xc3", "emoji \U0001F600 CJK 漢字かな".encode(),
           b"control \x01\x07\x1b[31m chars\x7f\x0c", b"windows ending\r",
           "line\u2028separator\x85next".encode(), b"", b"Two dogs."]
EMPTY = {1, 2, 9}  # indices of AWKWARD lines with no text


def command(name, *args):
    script = os.path.join(os.path.dirname(sys.executable), name)
    head = [script] if os.path.exists(script) else [sys.executable, "-m", MODULES[name]]
    return head + [str(a) for a in args]


def decode(result):
    result.stdout = result.stdout.decode("utf-8", "replace")
    result.stderr = result.stderr.decode("utf-8", "replace")
    return result


def run(name, *args, stdin=b""):
    return decode(subprocess.run(command(name, *args), input=stdin, capture_output=True,
                                 timeout=600))


def error_line(result, program):
    """The one "PROGRAM: error: ..." line of a run that failed cleanly."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{program}: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def train_args(multi30k_slice, out_dir, steps=TRAIN_STEPS, *extra):
    return [f"--train_prefix={os.path.join(multi30k_slice.gz, 'train')}", f"--model_dir={out_dir}",
            f"--num_train_steps={steps}", *TINY, *extra]


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "ckpt"))
    return int(path.rsplit("-", 1)[1]) if path else None


@pytest.fixture(scope="module")
def trained(multi30k_slice, tmp_path_factory):
    """A model dir trained for TRAIN_STEPS steps by nmt-train (on the gzipped slice)."""
    model_dir = str(tmp_path_factory.mktemp("cli") / "model")
    result = run("nmt-train", *train_args(multi30k_slice, model_dir))
    assert result.returncode == 0, result.stderr
    return model_dir


@pytest.fixture(scope="module")
def error_runs(multi30k_slice, tmp_path_factory):
    """The bad-input runs, started together (each is mostly TensorFlow start-up)."""
    tmp = tmp_path_factory.mktemp("errors")
    val = os.path.join(multi30k_slice.plain, "val")
    (tmp / "uneven.en").write_bytes(b"one\ntwo\nthree\nfour\nfive\n")
    (tmp / "uneven.de").write_bytes(b"eins\nzwei\ndrei\nvier\n")
    (tmp / "bad.en").write_bytes(b"one\ntwo\nthree\n")
    (tmp / "bad.de").write_bytes(b"eins\nzwei\ndr\xe9i\n")  # Latin-1, not UTF-8
    old = json.loads(config_lib.Config().to_json())
    old["version"] = 99
    (tmp / "old_model").mkdir()
    (tmp / "old_model" / "config.json").write_text(json.dumps(old))
    (tmp / "empty").write_bytes(b"")
    (tmp / "bad_config.json").write_text('{"model": {"num_units": "wide"}}')
    tiny = ["--num_train_steps=5", *TINY]
    runs = {
        "uneven": ("nmt-train", f"--train_prefix={tmp / 'uneven'}", f"--model_dir={tmp / 'o1'}",
                   *tiny),
        "bad_utf8": ("nmt-train", f"--train_prefix={tmp / 'bad'}", f"--model_dir={tmp / 'o2'}",
                     *tiny),
        "no_model_dir": ("nmt-translate", f"--model_dir={tmp / 'missing'}", f"--input={val}.en"),
        "old_version": ("nmt-translate", f"--model_dir={tmp / 'old_model'}", f"--input={val}.en"),
        "empty_ref": ("nmt-evaluate", f"--hyp={tmp / 'empty'}", f"--ref={tmp / 'empty'}"),
        "bad_preset": ("nmt-train", f"--train_prefix={val}", f"--model_dir={tmp / 'o4'}",
                       "--preset=huge", *tiny),
        "bad_config": ("nmt-train", f"--train_prefix={val}", f"--model_dir={tmp / 'o5'}",
                       f"--config={tmp / 'bad_config.json'}", *tiny),
        "bad_enum": ("nmt-train", f"--train_prefix={val}", f"--model_dir={tmp / 'o3'}",
                     "--unit_type=rnn", *tiny),
    }
    procs = {key: subprocess.Popen(command(*args), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for key, args in runs.items()}
    results = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[key] = decode(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return tmp, results


# --- train, translate, evaluate ---

def test_train_writes_a_model_dir(trained):
    for name in ("config.json", "spm.model", "log.jsonl"):
        assert os.path.isfile(os.path.join(trained, name)), name
    assert latest_step(trained) == TRAIN_STEPS
    records = [json.loads(line) for line in open(os.path.join(trained, "log.jsonl"))]
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == [10, 20, 30]
    assert config_lib.load_config(os.path.join(trained, "config.json")).model.num_units == 32


@pytest.fixture(scope="module")
def awkward_file(multi30k_slice, tmp_path_factory):
    with open(os.path.join(multi30k_slice.plain, "val.en"), "rb") as f:
        val = f.read().splitlines()[:10]
    path = tmp_path_factory.mktemp("awkward") / "in.en"
    path.write_bytes(b"\n".join(AWKWARD + val) + b"\n")
    return str(path), len(AWKWARD) + len(val)


@pytest.fixture(scope="module")
def translated_file(trained, awkward_file, tmp_path_factory):
    """(result, output dir, output path) of nmt-translate --input=FILE --output=FILE."""
    source, _ = awkward_file
    out_dir = tmp_path_factory.mktemp("translated")
    output = out_dir / "out.de"
    result = run("nmt-translate", f"--model_dir={trained}", f"--input={source}",
                 f"--output={output}", *DECODE)
    return result, out_dir, output


def test_translate_file_one_line_per_input_line(translated_file, awkward_file):
    result, out_dir, output = translated_file
    assert result.returncode == 0, result.stderr
    assert os.listdir(out_dir) == ["out.de"]  # no temporary file left behind
    data = output.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").split("\n")[:-1]
    assert len(lines) == awkward_file[1]
    for i, line in enumerate(lines):
        assert (line == "") == (i in EMPTY), (i, line)


def test_translate_stdin_to_stdout_matches_file_mode(trained, awkward_file, translated_file):
    source, count = awkward_file
    with open(source, "rb") as f:
        stdin = f.read()
    piped = run("nmt-translate", f"--model_dir={trained}", "--input=-", "--output=-", *DECODE,
                stdin=stdin)
    assert piped.returncode == 0, piped.stderr
    assert len(piped.stdout.split("\n")) == count + 1 and piped.stdout.endswith("\n")
    assert piped.stdout == translated_file[2].read_text(encoding="utf-8")


def test_translate_in_bf16_keeps_one_line_per_input_line(trained, awkward_file):
    source, count = awkward_file
    with open(source, "rb") as f:
        stdin = f.read()
    result = run("nmt-translate", f"--model_dir={trained}", "--decode_precision=bf16", *DECODE,
                 stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert len(lines) == count + 1 and lines[-1] == ""
    assert [i for i, line in enumerate(lines[:-1]) if line == ""] == sorted(EMPTY)


def test_translate_n_best(trained, multi30k_slice):
    with open(os.path.join(multi30k_slice.plain, "test_2016_flickr.en"), "rb") as f:
        lines = f.read().splitlines()[:4]
    lines.insert(2, b"")
    result = run("nmt-translate", f"--model_dir={trained}", "--num_hypotheses=2", "--beam_size=3",
                 "--max_input_len=40", "--max_length_ratio=1.0", stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert len(out) == 2 * len(lines)
    parsed = []
    for line in out:
        match = re.fullmatch(r"(\d+) \|\|\| (.*) \|\|\| (-?\d+\.\d{4})", line)
        assert match, line
        parsed.append((int(match.group(1)), match.group(2), float(match.group(3))))
    assert [p[0] for p in parsed] == [i for i in range(len(lines)) for _ in range(2)]
    for i in range(len(lines)):
        (_, best, s1), (_, second, s2) = parsed[2 * i], parsed[2 * i + 1]
        assert s1 >= s2  # best first
        if i == 2:  # the empty line: empty translations, no model score
            assert (best, second, s1, s2) == ("", "", 0.0, 0.0)
        else:
            assert s2 <= s1 < 0.0  # log-probabilities of real decodes


def test_evaluate_hyp_ref_prints_all_scores_and_json(multi30k_slice, tmp_path):
    with open(os.path.join(multi30k_slice.plain, "val.de"), encoding="utf-8") as f:
        refs = f.read().split("\n")[:-1]
    hyps = [r.lower() if i % 2 else r for i, r in enumerate(refs)]  # half differ in case only
    hyp_path = tmp_path / "hyp.de"
    hyp_path.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    ref_path = os.path.join(multi30k_slice.gz, "val.de.gz")
    expected = metrics.score(hyps, refs)

    text = run("nmt-evaluate", f"--hyp={hyp_path}", f"--ref={ref_path}")
    assert text.returncode == 0, text.stderr
    scores = {}
    for label in ("BLEU (cased)", "BLEU (lower-cased)", "chrF (cased)"):
        match = re.search(re.escape(label) + r"\s+(\d+\.\d\d)\s+(\S+)", text.stdout)
        assert match, text.stdout
        scores[label] = (float(match.group(1)), match.group(2))
    assert scores["BLEU (cased)"] == (round(expected.bleu, 2), expected.bleu_signature)
    assert scores["BLEU (lower-cased)"] == (round(expected.bleu_lc, 2), expected.bleu_lc_signature)
    assert scores["chrF (cased)"] == (round(expected.chrf, 2), expected.chrf_signature)
    assert scores["BLEU (cased)"][0] < scores["BLEU (lower-cased)"][0] == 100.0
    assert "case:mixed" in expected.bleu_signature and "case:lc" in expected.bleu_lc_signature

    as_json = run("nmt-evaluate", f"--hyp={hyp_path}", f"--ref={ref_path}", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == pytest.approx(expected._asdict())


def test_evaluate_translates_with_a_model_dir(trained, multi30k_slice, tmp_path):
    src = os.path.join(multi30k_slice.plain, "test_2016_flickr.en")
    ref = os.path.join(multi30k_slice.plain, "test_2016_flickr.de")
    output = tmp_path / "hyp.de"
    result = run("nmt-evaluate", f"--model_dir={trained}", f"--input={src}", f"--ref={ref}",
                 f"--output={output}", "--json", *DECODE)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    hyps = output.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(hyps) == 50
    with open(ref, encoding="utf-8") as f:
        refs = f.read().split("\n")[:-1]
    assert scores == pytest.approx(metrics.score(hyps, refs)._asdict())  # scored what it wrote


def test_rerunning_train_resumes(trained, multi30k_slice, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(trained, model_dir)
    result = run("nmt-train", *train_args(multi30k_slice, model_dir, TRAIN_STEPS + 10))
    assert result.returncode == 0, result.stderr
    assert re.search(r"resuming from \S+ckpt-30 at step 30\b", result.stderr), result.stderr
    assert latest_step(model_dir) == TRAIN_STEPS + 10
    records = [json.loads(line) for line in open(os.path.join(model_dir, "log.jsonl"))]
    assert [r["step"] for r in records if r["kind"] == "train"] == [10, 20, 30, 40]


def test_changing_a_model_flag_on_an_existing_dir_is_refused(trained, multi30k_slice):
    config_path = os.path.join(trained, "config.json")
    with open(config_path, "rb") as f:
        before = f.read()
    result = run("nmt-train", *train_args(multi30k_slice, trained, TRAIN_STEPS, "--num_units=64",
                                          "--embedding_size=64"))
    line = error_line(result, "nmt-train")
    assert "num_units" in line and "--model_dir" in line and config_path in line
    with open(config_path, "rb") as f:
        assert f.read() == before
    assert latest_step(trained) == TRAIN_STEPS


# --- bad input: one line on stderr, exit status 1 ---

def test_mismatched_line_counts(error_runs):
    tmp, results = error_runs
    line = error_line(results["uneven"], "nmt-train")
    assert f"{tmp / 'uneven.en'} has 5 lines" in line and f"{tmp / 'uneven.de'} has 4 lines" in line


def test_invalid_utf8_in_training_data(error_runs):
    tmp, results = error_runs
    line = error_line(results["bad_utf8"], "nmt-train")
    assert f"{tmp / 'bad.de'}:3: invalid UTF-8" in line


def test_missing_model_dir(error_runs):
    tmp, results = error_runs
    line = error_line(results["no_model_dir"], "nmt-translate")
    assert f"{tmp / 'missing'}: no such model dir" in line


def test_model_dir_of_another_config_version(error_runs):
    tmp, results = error_runs
    line = error_line(results["old_version"], "nmt-translate")
    assert "config version 99 is not supported" in line
    assert str(tmp / "old_model" / "config.json") in line


def test_unknown_enum_value_lists_the_choices(error_runs):
    result = error_runs[1]["bad_enum"]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(r"--unit_type=rnn.*lstm.*gru", result.stderr), result.stderr


def test_empty_references_are_one_line(error_runs):
    tmp, results = error_runs
    line = error_line(results["empty_ref"], "nmt-evaluate")
    assert line.endswith(f"{tmp / 'empty'}: no references to score against")


def test_unknown_preset_names_the_choices(error_runs):
    line = error_line(error_runs[1]["bad_preset"], "nmt-train")
    assert "--preset=huge: unknown preset (choose one of tiny, bench, default, best" in line


def test_config_file_of_the_wrong_type_names_file_and_field(error_runs):
    tmp, results = error_runs
    line = error_line(results["bad_config"], "nmt-train")
    assert line.endswith(f"{tmp / 'bad_config.json'}: model.num_units must be an integer "
                         f"(got 'wide')")


# --- presets, config files, flag files, checkpoints ---

def test_precedence_preset_config_file_flagfile_and_flags(multi30k_slice, tmp_path):
    """--preset=tiny < --config < flags (here some from absl's --flagfile); without a
    preset nmt-train uses the default preset (see the trained fixture)."""
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps({"model": {"num_units": 32, "embedding_size": 32},
                                       "decode": {"beam_size": 3}}))
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(f"--train_prefix={os.path.join(multi30k_slice.gz, 'train')}\n"
                        "--src=en\n--tgt=de\n--vocab_size=400\n")
    model_dir = tmp_path / "run"
    result = run("nmt-train", "--preset=tiny", f"--config={config_file}", f"--flagfile={flagfile}",
                 "--beam_size=4", "--num_train_steps=2", "--nojit_compile",
                 f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr
    config = config_lib.load_config(str(model_dir / "config.json"))
    assert config.model.num_units == 32          # the file over the preset's 128
    assert config.decode.beam_size == 4          # the flag over the file's 3
    assert config.data.vocab_size == 400         # from the flag file
    assert config.train.steps_per_stats == 50    # the preset over the default 100


def test_plain_nmt_train_uses_the_default_preset(trained):
    from nmt import presets
    config = config_lib.load_config(os.path.join(trained, "config.json"))
    assert config.train.max_time_minutes == presets.PRESETS["default"]["train.max_time_minutes"]


def test_checkpoint_takes_a_path_and_a_missing_one_is_one_line(trained, awkward_file, tmp_path):
    source, _ = awkward_file
    path = os.path.join(trained, "ckpt", "ckpt-20")
    given = run("nmt-translate", f"--model_dir={trained}", f"--checkpoint={path}",
                f"--input={source}", f"--output={tmp_path / 'out.de'}", *DECODE)
    assert given.returncode == 0, given.stderr
    missing = os.path.join(trained, "ckpt", "ckpt-999")
    line = error_line(run("nmt-translate", f"--model_dir={trained}", f"--checkpoint={missing}",
                          f"--input={source}"), "nmt-translate")
    assert f"{missing}: no such checkpoint" in line
