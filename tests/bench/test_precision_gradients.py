"""bench/precision_gradients.py: gradients of one checkpoint in two precisions, same dropout."""
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import precision_gradients
from nmt import model_dir as model_dir_lib
from nmt.data import corpus as corpus_lib
from nmt.model.seq2seq import build_model
from nmt.training import trainer
from tests.training.test_summaries import tiny_run_config

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.mark.slow
def test_same_precision_gives_the_same_gradients_only_with_the_same_dropout(tmp_path):
    config = tiny_run_config(tmp_path)
    assert config.model.dropout > 0
    run_dir = str(tmp_path / "run")
    trainer.train(config, run_dir)
    src_vocab, tgt_vocab = model_dir_lib.load_vocabs(run_dir, config)
    model = build_model(config.model, src_vocab.size, tgt_vocab.size)
    model_dir_lib.restore_model(model, model_dir_lib.checkpoint_path(run_dir, "last"))
    pairs = corpus_lib.read_parallel(str(tmp_path / "train.en"), str(tmp_path / "train.de"))
    batches = precision_gradients.random_batches(pairs, src_vocab, tgt_vocab, 2, 8)
    assert len(batches) == 2 and batches[0].src.shape[0] == 8
    assert not np.array_equal(batches[0].src.numpy(), batches[1].src.numpy())
    assert precision_gradients.dropout_generators(model)  # there is dropout to reset

    fp32 = precision_gradients.gradients(model, batches, "fp32", 0.1)
    errors, cosine, loss_diff = precision_gradients.compare(
        fp32, precision_gradients.gradients(model, batches, "fp32", 0.1))
    assert np.all(errors == 0.0) and abs(cosine - 1.0) < 1e-12 and loss_diff == 0.0

    # Without the reset, the second batch draws other dropout masks.
    errors, cosine, _ = precision_gradients.compare(
        fp32, precision_gradients.gradients(model, batches, "fp32", 0.1, reset_dropout=False))
    assert np.all(errors > 0.0) and cosine < 0.999

    errors, cosine, loss_diff = precision_gradients.compare(
        fp32, precision_gradients.gradients(model, batches, "bf16", 0.1))
    assert np.all(errors > 0.0) and np.all(errors < 0.5)  # rounded, not another gradient
    assert 0.9 < cosine < 1.0 and 0.0 < loss_diff < 0.05

    out = subprocess.run([sys.executable, "-m", "bench.precision_gradients",
                          f"--model_dir={run_dir}", "--precisions=bf16,fp16", "--batches=1",
                          "--batch_size=4"], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    labels = [row.split(" | ")[0][2:] for row in rows[2:-2]]
    assert len(set(labels)) == len(labels)  # the encoder's two directions told apart
    assert rows[0] == "| variable | bf16 | fp16 |"
    assert len(rows) == 2 + len(model.trainable_variables) + 2  # header, rule, totals
