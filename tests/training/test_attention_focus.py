"""The attention-collapse check: the mode share on hand-built alignments, and the
trainer's eval record and warning."""
import json
import logging
import os
import types

import numpy as np
import pytest

from nmt import model_dir as model_dir_lib
from nmt.data import corpus as corpus_lib
from nmt.training import attention_focus
from nmt.training import trainer
from tests.training.test_summaries import tiny_run_config


def one_hot_rows(argmaxes, src_len):
    """[len(argmaxes), src_len] attention with 0.7 on each row's argmax."""
    w = np.full([len(argmaxes), src_len], 0.3 / (src_len - 1))
    w[np.arange(len(argmaxes)), argmaxes] = 0.7
    return w


def test_diagonal_attention_has_one_row_per_mode():
    assert attention_focus.mode_share([np.eye(5)]) == pytest.approx(1 / 5)


def test_collapsed_attention_has_every_row_in_the_mode():
    assert attention_focus.mode_share([one_hot_rows([0] * 7, 6)]) == 1.0


def test_mode_share_pools_rows_over_pairs():
    # pair 1: argmaxes 0,1,1,2 -> 2 rows in its mode; pair 2: 3,3 -> 2; pair 3: 4 -> 1
    weights = [one_hot_rows([0, 1, 1, 2], 4), one_hot_rows([3, 3], 5), one_hot_rows([4], 5)]
    assert attention_focus.mode_share(weights) == pytest.approx((2 + 2 + 1) / 7)


def test_mode_share_needs_rows():
    with pytest.raises(ValueError, match="no attention rows"):
        attention_focus.mode_share([np.zeros([0, 3])])


def test_dev_share_pools_every_pair_across_batches(monkeypatch):
    # Pair i's fake attention: i + 2 target rows, i + 1 of them in its mode.
    def fake_weights(model, src_ids, tgt_ids):
        return [one_hot_rows([0] * (ids[0] + 1) + [1], 3) for ids in src_ids]

    monkeypatch.setattr(attention_focus, "attention_weights", fake_weights)
    monkeypatch.setattr(attention_focus, "BATCH_PAIRS", 3)  # batches of 3, 3 and 1 pairs
    src_vocab = types.SimpleNamespace(encode=lambda lines: [[int(line)] for line in lines])
    tgt_vocab = types.SimpleNamespace(encode=lambda lines: [[0] for _ in lines])
    pairs = types.SimpleNamespace(src=[str(i) for i in range(7)], tgt=["x"] * 7)
    share = attention_focus.dev_mode_share(None, src_vocab, tgt_vocab, pairs)
    assert share == pytest.approx(sum(i + 1 for i in range(7)) / sum(i + 2 for i in range(7)))
    first_two = attention_focus.dev_mode_share(None, src_vocab, tgt_vocab, pairs, num_pairs=2)
    assert first_two == pytest.approx((1 + 2) / (2 + 3))


def test_collapse_warning_only_above_the_threshold():
    assert attention_focus.collapse_warning(2000, attention_focus.COLLAPSED_SHARE) is None
    warning = attention_focus.collapse_warning(2000, 0.93)
    assert warning.startswith("step 2000: the attention looks collapsed: 93% ")
    assert "--attention=scaled_luong --attention_sqrt_scaling" in warning


def test_collapse_warning_is_quiet_before_the_first_judged_step():
    first = attention_focus.FIRST_JUDGED_STEP
    assert 250 < first <= 500  # healthy runs read 0.47 at 250 steps, <= 0.32 from 500
    assert attention_focus.collapse_warning(20, 0.99) is None
    assert attention_focus.collapse_warning(first - 1, 0.99) is None
    assert attention_focus.collapse_warning(first, 0.99).startswith(f"step {first}: ")


@pytest.mark.parametrize("judged", [True, False], ids=["judged", "too_early"])
def test_each_evaluation_records_the_share_and_warns_on_a_collapse(tmp_path, monkeypatch,
                                                                    caplog, judged):
    """Step 4's evaluation records the share; it warns only once steps are judged."""
    monkeypatch.setattr(attention_focus, "COLLAPSED_SHARE", -1.0)  # every share "collapses"
    if judged:
        monkeypatch.setattr(attention_focus, "FIRST_JUDGED_STEP", 4)
    run_dir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        trainer.train(tiny_run_config(tmp_path), run_dir)
    with open(os.path.join(run_dir, model_dir_lib.LOG_FILE)) as f:
        evals = [r for r in map(json.loads, f) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4]

    # The recorded share is the evaluated model's: the step-4 checkpoint's, recomputed.
    _, model, src_vocab, tgt_vocab = model_dir_lib.load(run_dir, "last")
    dev = corpus_lib.read_parallel(str(tmp_path / "dev.en"), str(tmp_path / "dev.de"))
    share = attention_focus.dev_mode_share(model, src_vocab, tgt_vocab, dev)
    assert 0.0 < share <= 1.0
    assert evals[0]["attention_mode_share"] == pytest.approx(share, abs=1e-6)
    assert (f"step 4: the attention looks collapsed: {share:.0%}" in caplog.text) == judged
