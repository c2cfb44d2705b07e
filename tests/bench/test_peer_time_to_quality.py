"""bench/peer_time_to_quality.py: which checkpoint a peer has saved, and the copy at each mark."""
import os
import sys
import textwrap
import time

from bench import peer_time_to_quality as ttq


def test_onmt_newest_checkpoint_is_the_one_its_state_file_names(tmp_path):
    for name in ("ckpt-100.index", "ckpt-100.data-00000-of-00001", "ckpt-150.index",
                 "ckpt-150.data-00000-of-00001"):
        (tmp_path / name).write_text(name)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-100"\n'
                                         'all_model_checkpoint_paths: "ckpt-100"\n')
    step, name, files = ttq.newest_checkpoint("onmt", str(tmp_path))
    assert (step, name) == (100, "ckpt-100")
    assert sorted(os.path.basename(f) for f in files) == ["ckpt-100.data-00000-of-00001",
                                                          "ckpt-100.index"]


def test_onmt_checkpoint_without_its_index_is_not_taken(tmp_path):
    (tmp_path / "ckpt-100.data-00000-of-00001").write_text("")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-100"\n')
    assert ttq.newest_checkpoint("onmt", str(tmp_path)) is None
    assert ttq.newest_checkpoint("onmt", str(tmp_path / "nowhere")) is None


def test_joey_newest_checkpoint_follows_latest_ckpt(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "50.ckpt").write_text("a")
    (model / "100.ckpt").write_text("b")
    assert ttq.newest_checkpoint("joey", str(tmp_path)) is None
    os.symlink("100.ckpt", model / "latest.ckpt")
    assert ttq.newest_checkpoint("joey", str(tmp_path)) == (100, "100.ckpt",
                                                            [str(model / "100.ckpt")])


def test_each_mark_keeps_a_copy_of_what_was_saved_by_then_and_training_stops(tmp_path):
    # a stand-in trainer that saves a JoeyNMT-style checkpoint every 0.2 s, forever
    trainer = textwrap.dedent("""
        import os, time
        os.makedirs("model", exist_ok=True)
        step = 0
        while True:
            step += 50
            with open(f"model/{step}.ckpt", "w") as f:
                f.write(str(step))
            if os.path.lexists("model/latest.ckpt"):
                os.remove("model/latest.ckpt")
            os.symlink(f"{step}.ckpt", "model/latest.ckpt")
            time.sleep(0.2)
    """)
    run_dir, kept_dir = tmp_path / "run", tmp_path / "kept"
    run_dir.mkdir()
    kept = ttq.keep_at_marks("joey", str(run_dir), [sys.executable, "-c", trainer],
                             [0.03, 0.06], str(kept_dir))
    assert [k["mark"] for k in kept] == [0.03, 0.06]
    assert 0 < kept[0]["step"] < kept[1]["step"]
    for k in kept:
        with open(k["path"]) as f:  # the copy holds the checkpoint of its step
            assert f.read() == str(k["step"])
        assert 0 <= k["minutes"] <= k["mark"]
    newest = max(int(n.split(".")[0]) for n in os.listdir(run_dir / "model") if n[0].isdigit())
    time.sleep(0.5)  # a trainer still running would have saved again by now
    assert max(int(n.split(".")[0]) for n in os.listdir(run_dir / "model")
               if n[0].isdigit()) == newest


def test_the_peer_configs_save_often(tmp_path):
    harness = tmp_path / "harness"
    (harness / "onmt").mkdir(parents=True)
    (harness / "joey").mkdir()
    (harness / "onmt" / "config.yml").write_text(
        "model_dir: @RUN@\ndata:\n  train: @DATA@/train\ntrain:\n  save_checkpoints_steps: 1000\n")
    (harness / "joey" / "config.yaml").write_text(
        'model_dir: "@RUN@"\ndata:\n    train: "@DATA@/train"\n    sample_dev_subset: -1\n'
        "training:\n    validation_freq: 100000\n    keep_best_ckpts: 3\n")
    for peer, name in (("onmt", "config.yml"), ("joey", "config.yaml")):
        run_dir = tmp_path / peer
        run_dir.mkdir()
        path, command = ttq.peer_config(peer, str(harness), str(run_dir), "/data")
        text = open(path).read()
        assert path == str(run_dir / name) and "@" not in text and "/data/train" in text
        assert command[-1] in ("train", path)
    onmt = open(tmp_path / "onmt" / "config.yml").read()
    assert f"save_checkpoints_steps: {ttq.ONMT_SAVE_STEPS}" in onmt
    joey = open(tmp_path / "joey" / "config.yaml").read()
    assert f"validation_freq: {ttq.JOEY_VALIDATE_STEPS}" in joey
    assert f"sample_dev_subset: {ttq.JOEY_DEV_SENTENCES}" in joey
    assert "keep_best_ckpts: -1" in joey
