"""Tests for nmt/decode/export.py: a fresh process serves the SavedModel like nmt-translate."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import tiny_corpus
from nmt import model_dir as model_dir_lib
from nmt.decode import export
from nmt.decode.translate import Translator

# Runs in a new interpreter: TensorFlow and tensorflow_text only, never nmt.
LOAD_AND_SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the sentencepiece ops
model = tf.saved_model.load(sys.argv[1])
lines = json.loads(sys.stdin.read())
out = model.signatures["serving_default"](inputs=tf.constant(lines, tf.string))
assert not any(name == "nmt" or name.startswith("nmt.") for name in sys.modules)
print(json.dumps({"translations": [t.decode("utf-8") for t in out["translations"].numpy()],
                  "scores": out["scores"].numpy().tolist()}))
"""


def test_exported_model_translates_like_translator(tiny_model_dir, tmp_path):
    model_dir, _, _ = tiny_model_dir
    src, _ = tiny_corpus(12)
    lines = src[:10] + ["", "Ünïcødé ☃ and a much longer line " * 3]
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, "last")
    assert config.decode.beam_size == 2
    expected = Translator(model, src_vocab, tgt_vocab, config.decode).translate(lines)

    export_dir = str(tmp_path / "export" / "1")
    export.export(model_dir, export_dir, which="last")
    assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
    assert os.path.exists(os.path.join(export_dir, export.EXTRA_DIR, "spm.model"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run([sys.executable, "-c", LOAD_AND_SERVE, export_dir], cwd=str(tmp_path),
                          input=json.dumps(lines), capture_output=True, text=True, env=env,
                          check=True)
    served = json.loads(done.stdout.strip().splitlines()[-1])

    assert served["translations"] == [hyps[0].text for hyps in expected]
    for got, hyps in zip(served["scores"], expected):
        assert abs(got - hyps[0].score) < 1e-3
    assert served["translations"][10] == "" and served["scores"][10] == 0.0


def test_mbr_is_refused_rather_than_silently_dropped(tiny_model_dir):
    model_dir, _, _ = tiny_model_dir
    config, model, src_vocab, tgt_vocab = model_dir_lib.load(model_dir, "last")
    decode = config.replace(decode=dict(mbr=True)).validate().decode
    with pytest.raises(ValueError, match="MBR reranking runs in nmt-translate only"):
        export.ServingModule(model, src_vocab, tgt_vocab, decode)
