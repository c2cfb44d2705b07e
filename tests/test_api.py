"""nmt.train, nmt.load and Model.translate: docs/api.md's example runs as written, and
make_config builds what nmt-train would."""
import gzip
import json
import os
import re
import subprocess
import sys

import pytest

from nmt import api, config as config_lib, presets

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ANKI = os.path.join(REPO, "..", "shared", "data", "anki-spa-eng")  # beside the checkout


def python_blocks(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), flags=re.S | re.M)


def test_make_config_takes_a_preset_a_file_or_a_config(tmp_path):
    assert api.make_config("best") == presets.build("best")
    assert api.make_config("tiny", num_units=64).model.num_units == 64
    assert api.make_config("tiny", **{"decode.beam_size": 7}).decode.beam_size == 7
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"num_units": 96, "embedding_size": 96}}))
    from_file = api.make_config(str(path))
    assert from_file.model.num_units == 96
    assert from_file.train.max_time_minutes == presets.build().train.max_time_minutes
    assert api.make_config(config_lib.Config(), seed=3) == config_lib.Config().replace(
        train={"seed": 3})
    with pytest.raises(config_lib.ConfigError, match="unknown or ambiguous config field"):
        api.make_config("tiny", num_unitz=3)


def test_import_nmt_does_not_import_tensorflow():
    code = "import sys, nmt; print('tensorflow' in sys.modules, nmt.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.abspath(REPO)), check=True)
    assert out.stdout.split()[0] == "False"


def test_the_documented_example_runs(tmp_path):
    (tmp_path / "data").mkdir()
    for name, count in (("train", 2000), ("dev", 100)):
        for lang in ("en", "es"):
            with gzip.open(os.path.join(ANKI, f"{name}.{lang}.gz"), "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(count)]
            (tmp_path / "data" / f"{name}.{lang}").write_text("".join(lines), encoding="utf-8")
    [block] = python_blocks(os.path.join(REPO, "docs", "api.md"))
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True,
                            text=True, timeout=900,
                            env=dict(os.environ, PYTHONPATH=os.path.abspath(REPO)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.match(r"dev BLEU \d+\.\d\d\n", result.stdout), result.stdout
    assert os.path.isfile(tmp_path / "runs" / "api-en-es" / "config.json")
