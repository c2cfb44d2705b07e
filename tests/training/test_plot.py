"""Tests for nmt/training/plot.py and nmt-plot: valid PNG files."""
import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from nmt import model_dir
from nmt.training import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert np.std(image) > 0  # something is drawn


def test_learning_curves_png(tmp_path):
    records = ([{"kind": "train", "step": s, "loss": 5.0 / s, "ppl": 1.0} for s in range(1, 50)] +
               [{"kind": "eval", "step": s, "loss": 4.0 / s, "perplexity": 2.0, "bleu": s / 2,
                 "chrf": s} for s in (10, 20, 40)])
    with open(tmp_path / "log.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    output = str(tmp_path / "curves.png")
    plot.learning_curves(model_dir.read_log(str(tmp_path)), output)
    assert_png(output)


def test_learning_curves_add_a_mode_share_panel_when_evaluations_measured_it(tmp_path):
    train = [{"kind": "train", "step": s, "loss": 5.0 / s} for s in range(1, 50)]
    evals = [{"kind": "eval", "step": s, "loss": 4.0 / s, "bleu": s / 2} for s in (10, 20, 40)]
    shares = [dict(r, attention_mode_share=share) for r, share in zip(evals, (0.8, 0.3, 0.2))]
    heights = {}
    for name, records in (("without", train + evals), ("with", train + shares),
                          ("older_log", train + evals[:1] + shares[1:])):
        output = str(tmp_path / f"{name}.png")
        plot.learning_curves(records, output)
        assert_png(output)
        heights[name] = matplotlib.image.imread(output).shape[0]
    assert heights["with"] > heights["without"]  # the panel below the curves
    assert heights["older_log"] == heights["with"]  # evaluations without a share are skipped


def test_attention_png_from_model_dir(tiny_model_dir, tmp_path):
    model_dir, _, _ = tiny_model_dir
    for tgt in (None, "Ein Hund rennt."):
        output = str(tmp_path / f"att-{tgt is None}.png")
        plot.plot_attention(model_dir, "A dog runs.", tgt, output, "last")
        assert os.path.getsize(output) > 0
        assert_png(output)


def test_read_log_skips_a_torn_last_line_and_names_the_line_of_any_other_bad_one(tmp_path):
    good = [json.dumps({"kind": "train", "step": s, "loss": 1.0}) + "\n" for s in (1, 2)]
    with open(tmp_path / "log.jsonl", "w") as f:
        f.writelines(good + ['{"kind": "eval", "st'])  # killed mid-write
    assert [r["step"] for r in model_dir.read_log(str(tmp_path))] == [1, 2]
    with open(tmp_path / "log.jsonl", "w") as f:
        f.writelines([good[0], "not json\n", good[1]])
    with pytest.raises(model_dir.LogError, match=r"log\.jsonl:2: not a JSON record$"):
        model_dir.read_log(str(tmp_path))
    cli = subprocess.run([sys.executable, "-m", "nmt.cli.plot", f"--model_dir={tmp_path}",
                          f"--output={tmp_path / 'curves.png'}"], capture_output=True, text=True)
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines()[-1] == (
        f"nmt-plot: error: {tmp_path / 'log.jsonl'}:2: not a JSON record")


def test_dev_curves_draw_one_line_per_run(tmp_path):
    runs = [("fp32", {1000: (3.0, 10.0), 2000: (2.0, 20.0)}),
            ("bf16", {1000: (3.2, 9.0), 2000: (2.1, 19.0), 3000: (1.9, 25.0)})]
    output = str(tmp_path / "dev.png")
    plot.dev_curves(runs, output)
    assert_png(output)
    one = str(tmp_path / "one.png")
    plot.dev_curves(runs[:1], one)
    assert not np.array_equal(matplotlib.image.imread(one), matplotlib.image.imread(output))
