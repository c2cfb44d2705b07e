"""bench/time_to_quality.py: which checkpoint stands for each minute mark."""
from bench import time_to_quality


def test_each_mark_takes_the_last_checkpoint_saved_by_then():
    minutes_at = {1000: 6.1, 2000: 11.5, 3000: 16.9, 4000: 22.0}
    picked = time_to_quality.checkpoints_at([5, 10, 20, 60], [1000, 2000, 3000, 4000],
                                            minutes_at)
    # no checkpoint by minute 5; minute 10 has only step 1000; 60 takes the newest
    assert picked == [(10, 1000, 6.1), (20, 3000, 16.9), (60, 4000, 22.0)]


def test_a_checkpoint_without_a_logged_time_is_not_placed():
    picked = time_to_quality.checkpoints_at([60], [1000, 5000], {1000: 6.1})
    assert picked == [(60, 1000, 6.1)]


def test_checkpoint_steps_reads_the_index_files(tmp_path):
    for name in ("ckpt-1000.index", "ckpt-1000.data-00000-of-00001", "ckpt-30.index",
                 "checkpoint", "ckpt-x.index"):
        (tmp_path / name).write_text("")
    found = time_to_quality.checkpoint_steps(str(tmp_path))
    assert found == {1000: str(tmp_path / "ckpt-1000"), 30: str(tmp_path / "ckpt-30")}


def test_a_checkpoint_that_several_marks_take_is_scored_once(monkeypatch, tmp_path):
    scored = []
    monkeypatch.setattr(time_to_quality, "checkpoint_steps",
                        lambda d: {200: "ckpt-200", 1000: "ckpt-1000"})
    monkeypatch.setattr(time_to_quality, "elapsed_minutes", lambda d: {200: 2.2, 1000: 11.0})
    monkeypatch.setattr(time_to_quality, "score_checkpoint",
                        lambda run_dir, path, test_set, data_dir: scored.append(path) or 10.0)
    points = time_to_quality.run_points("nmt", str(tmp_path), str(tmp_path), [3, 6, 12, 20],
                                       "test")
    assert scored == ["ckpt-200", "ckpt-1000"]
    assert [(p["mark"], p["step"], p["minutes"]) for p in points] == [(3, 200, 2.2),
                                                                       (12, 1000, 11.0)]
