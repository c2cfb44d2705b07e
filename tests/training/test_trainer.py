"""Tests for nmt/training/trainer.py: exact resume, skipped non-finite batches, SIGTERM."""
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from nmt import model_dir as model_dir_lib
from nmt.config import Config, DataConfig, DecodeConfig, ModelConfig, TrainConfig
from nmt.data import vocab as vocab_lib
from nmt.training import trainer as training


def tiny_config(multi30k_slice, **train):
    return Config(
        data=DataConfig(train_prefix=os.path.join(multi30k_slice.plain, "train"), vocab_size=400,
                        max_src_len=60, max_tgt_len=60, batch_size=32, bucket_width=64),
        model=ModelConfig(num_units=16, embedding_size=16, num_encoder_layers=1,
                          num_decoder_layers=1, dropout=0.0),
        train=TrainConfig(**{"steps_per_stats": 2, "steps_per_checkpoint": 2, "steps_per_eval": 0,
                             "jit_compile": False, **train}),
        decode=DecodeConfig(beam_size=1)).validate()


def values(variables):
    return [v.numpy().copy() for v in variables]


def assert_all_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def varied_config(multi30k_slice, **train):
    """tiny_config with batches of many shapes (the default bucket width)."""
    return tiny_config(multi30k_slice, **train).replace(data={"bucket_width": 8})


def test_resume_restores_step_weights_and_optimizer(multi30k_slice, tmp_path):
    out = str(tmp_path / "run")
    first = training.Trainer(varied_config(multi30k_slice, num_train_steps=3), out)
    first.run()
    weights, slots = values(first.model.trainable_variables), values(first.optimizer.variables)
    assert int(first.optimizer.iterations) == 3

    path = tf.train.latest_checkpoint(os.path.join(out, "ckpt"))
    assert path.endswith("ckpt-3")
    reader = tf.train.load_checkpoint(path)
    assert reader.get_tensor("progress/step/.ATTRIBUTES/VARIABLE_VALUE") == 3
    saved_iterations = [reader.get_tensor(k) for k, _ in reader.get_variable_to_shape_map().items()
                        if k.startswith("optimizer/") and "iteration" in k]
    assert saved_iterations == [3]

    second = training.Trainer(varied_config(multi30k_slice, num_train_steps=6), out)
    fresh = values(second.model.trainable_variables)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, weights))  # training moved them
    second.restore()
    assert int(second.progress.step) == 3
    assert int(second.optimizer.iterations) == 3
    assert_all_equal(values(second.model.trainable_variables), weights)
    assert_all_equal(values(second.optimizer.variables), slots)  # Adam moments too

    second.run()
    assert int(second.progress.step) == 6 and int(second.optimizer.iterations) == 6
    assert tf.train.latest_checkpoint(os.path.join(out, "ckpt")).endswith("ckpt-6")

    # 3 + 3 resumed steps land where 6 uninterrupted steps do, bit for bit: same data,
    # same updates, and the same graph for every batch shape
    straight = training.Trainer(varied_config(multi30k_slice, num_train_steps=6),
                                str(tmp_path / "straight"))
    straight.run()
    assert (int(straight.progress.epoch), int(straight.progress.batch_in_epoch)) == \
        (int(second.progress.epoch), int(second.progress.batch_in_epoch))
    shapes = {tuple(b.tgt_in.shape) for b in straight.epoch_dataset(0).take(6)}
    assert len(shapes) > 1  # a step traced for the first shape would differ on resume
    assert_all_equal(values(second.model.trainable_variables),
                     values(straight.model.trainable_variables))
    assert_all_equal(values(second.optimizer.variables), values(straight.optimizer.variables))


def test_init_from_starts_a_new_run_from_another_runs_weights(multi30k_slice, tmp_path):
    teacher_dir = str(tmp_path / "teacher")
    teacher = training.Trainer(tiny_config(multi30k_slice, num_train_steps=3), teacher_dir)
    teacher.run()
    weights = values(teacher.model.trainable_variables)

    student_dir = str(tmp_path / "student")
    config = tiny_config(multi30k_slice, num_train_steps=2, init_from=teacher_dir, seed=7)
    student = training.Trainer(config, student_dir)
    for name in ("spm.model", "spm.vocab"):  # the teacher's pieces, not ones trained anew
        with open(os.path.join(teacher_dir, name), "rb") as a, \
                open(os.path.join(student_dir, name), "rb") as b:
            assert a.read() == b.read()
    assert any(not np.array_equal(a, b)
               for a, b in zip(values(student.model.trainable_variables), weights))
    student.restore()
    assert_all_equal(values(student.model.trainable_variables), weights)
    assert int(student.progress.step) == 0 and int(student.optimizer.iterations) == 0
    assert all(not v.numpy().any() for v in student.optimizer.variables
               if "iteration" not in v.name and "learning_rate" not in v.name)  # fresh slots
    student.run()
    assert int(student.progress.step) == 2

    # A rerun resumes the student's own checkpoint, not the teacher's weights.
    again = training.Trainer(tiny_config(multi30k_slice, num_train_steps=4,
                                         init_from=teacher_dir, seed=7), student_dir)
    again.restore()
    assert int(again.progress.step) == 2
    assert_all_equal(values(again.model.trainable_variables),
                     values(student.model.trainable_variables))


def test_init_from_refuses_other_vocabularies_and_other_models(multi30k_slice, tmp_path):
    teacher_dir = str(tmp_path / "teacher")
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=1), teacher_dir).run()

    other_vocab = tmp_path / "other_vocab"
    other_vocab.mkdir()
    other_text = [f"word{i} other{i % 7} text{i % 13}" for i in range(200)]
    vocab_lib.train_sentencepiece(other_text, str(other_vocab / "spm"), vocab_size=60)
    with pytest.raises(model_dir_lib.ModelDirError, match="spm.model: differs from .*teacher"):
        training.Trainer(tiny_config(multi30k_slice, num_train_steps=1, init_from=teacher_dir),
                         str(other_vocab))

    wider = tiny_config(multi30k_slice, num_train_steps=1, init_from=teacher_dir)
    wider = wider.replace(model={"num_units": 32})
    trainer = training.Trainer(wider, str(tmp_path / "wider"))
    with pytest.raises(model_dir_lib.ModelDirError, match="does not fit this model"):
        trainer.restore()

    with pytest.raises(model_dir_lib.ModelDirError, match="nowhere/spm.model: sentencepiece "
                       "model missing"):
        training.Trainer(tiny_config(multi30k_slice, num_train_steps=1,
                                     init_from=str(tmp_path / "nowhere")), str(tmp_path / "x"))


def test_nonfinite_batch_is_skipped_and_counted(multi30k_slice, tmp_path):
    trainer = training.Trainer(tiny_config(multi30k_slice, num_train_steps=3), str(tmp_path))
    real_step = trainer.train_step
    table = trainer.model.src_embedding.table
    seen = {}

    def poisoned_second_step(batch):
        if int(trainer.progress.step) != 1:
            return real_step(batch)
        good = table.numpy().copy()
        before = values(trainer.model.trainable_variables) + values(trainer.optimizer.variables)
        table.assign(tf.fill(table.shape, np.nan))  # every embedding NaN: loss is NaN
        out, norm, applied = real_step(batch)
        table.assign(good)
        after = values(trainer.model.trainable_variables) + values(trainer.optimizer.variables)
        seen.update(applied=bool(applied), loss=float(out.loss_sum), before=before, after=after)
        return out, norm, applied

    trainer.train_step = poisoned_second_step
    trainer.run()
    assert seen["applied"] is False and not np.isfinite(seen["loss"])
    assert_all_equal(seen["after"], seen["before"])  # weights and Adam slots untouched
    assert int(trainer.progress.step) == 3
    assert int(trainer.progress.skipped_batches) == 1
    assert int(trainer.optimizer.iterations) == 2  # only the two good batches were applied
    assert all(np.isfinite(v).all() for v in values(trainer.model.trainable_variables))
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "ckpt")))
    assert reader.get_tensor("progress/skipped_batches/.ATTRIBUTES/VARIABLE_VALUE") == 1


def test_good_batch_is_applied(multi30k_slice, tmp_path):
    """The counterpart of the test above: without poison the step changes the weights."""
    trainer = training.Trainer(tiny_config(multi30k_slice, num_train_steps=1), str(tmp_path))
    before = values(trainer.model.trainable_variables)
    trainer.run()
    assert int(trainer.progress.skipped_batches) == 0 and int(trainer.optimizer.iterations) == 1
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, values(trainer.model.trainable_variables)))


def test_deterministic_enables_op_determinism_and_still_trains(multi30k_slice, tmp_path):
    from tensorflow.python.framework import config as tf_config
    assert not tf_config.is_op_determinism_enabled()
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=1), str(tmp_path / "default"))
    assert not tf_config.is_op_determinism_enabled()  # the default leaves it off
    try:
        trainer = training.Trainer(tiny_config(multi30k_slice, num_train_steps=2,
                                               deterministic=True), str(tmp_path / "det"))
        assert tf_config.is_op_determinism_enabled()
        before = values(trainer.model.trainable_variables)
        trainer.run()
    finally:
        tf_config.disable_op_determinism()  # process-wide: keep it out of other tests
    assert int(trainer.progress.step) == 2 and int(trainer.optimizer.iterations) == 2
    assert int(trainer.progress.skipped_batches) == 0
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, values(trainer.model.trainable_variables)))


def _stream_lines(stream, lines):
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def test_sigterm_saves_a_checkpoint_and_exits_0(multi30k_slice, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "nmt.cli.train",
               f"--train_prefix={os.path.join(multi30k_slice.plain, 'train')}",
               f"--model_dir={out}", "--src=en", "--tgt=de", "--num_units=16",
               "--embedding_size=16", "--num_layers=1", "--vocab_size=400", "--max_src_len=60",
               "--max_tgt_len=60", "--batch_size=32", "--num_train_steps=100000",
               "--steps_per_stats=1", "--steps_per_checkpoint=100000", "--steps_per_eval=0",
               "--nojit_compile"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines, log = queue.Queue(), []
    threading.Thread(target=_stream_lines, args=(proc.stderr, lines), daemon=True).start()
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                line = lines.get(timeout=deadline - time.time())
            except queue.Empty:
                break
            if line is None:
                break
            log.append(line)
            if "step 1 epoch" in line:  # the first progress line: the handler is installed
                break
        assert any("step 1 epoch" in line for line in log), "".join(log)
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := lines.get(timeout=10)) is not None:
        log.append(line)
    text = "".join(log)
    assert code == 0, text
    assert "received SIGTERM" in text and "Traceback" not in text
    path = tf.train.latest_checkpoint(str(out / "ckpt"))
    assert path is not None, text
    step = tf.train.load_checkpoint(path).get_tensor("progress/step/.ATTRIBUTES/VARIABLE_VALUE")
    assert 1 <= step < 100000
    assert path.endswith(f"ckpt-{step}")


def _signal_at_step(trainer, step, signum, times=1):
    """Wraps trainer.train_step to send this process `signum` `times` during `step`.
    raise_signal delivers to the calling (main) thread before it returns, so each signal
    reaches the handler; os.kill may land on another thread, and two signals pending at
    once merge into one."""
    real_step = trainer.train_step

    def step_then_signal(batch):
        out = real_step(batch)
        if int(trainer.progress.step) + 1 == step:  # the step counter moves after the call
            for _ in range(times):
                signal.raise_signal(signum)
        return out

    trainer.train_step = step_then_signal


def test_signal_stops_after_the_step_saves_and_skips_the_final_evaluation(
        multi30k_slice, tmp_path, monkeypatch):
    config = tiny_config(multi30k_slice, num_train_steps=50, steps_per_checkpoint=1000)
    config = config.replace(data={"dev_prefix": os.path.join(multi30k_slice.plain, "val")})
    trainer = training.Trainer(config, str(tmp_path))
    evaluations = []
    monkeypatch.setattr(trainer, "evaluate_and_keep_best", lambda: evaluations.append(1))
    before = signal.getsignal(signal.SIGTERM)
    _signal_at_step(trainer, 3, signal.SIGTERM)
    assert trainer.run() is None
    assert trainer.stop_signal == signal.SIGTERM and int(trainer.progress.step) == 3
    assert evaluations == []  # an interrupted run ends without evaluating
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-3")
    assert signal.getsignal(signal.SIGTERM) is before  # run() puts the handlers back


def test_second_signal_interrupts_at_once(multi30k_slice, tmp_path):
    trainer = training.Trainer(tiny_config(multi30k_slice, num_train_steps=50,
                                           steps_per_checkpoint=1000), str(tmp_path))
    # Python's own Ctrl-C handler before the run, whatever earlier tests left installed
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _signal_at_step(trainer, 2, signal.SIGINT, times=2)
        with pytest.raises(KeyboardInterrupt):  # the first asked for a stop, the second is Ctrl-C
            trainer.run()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")) is None  # nothing saved


@pytest.mark.parametrize("deterministic", [True, False])
def test_the_step_is_traced_once_for_batches_of_every_shape(deterministic):
    """One graph for every batch shape, so that a resumed process runs the same graph as
    an unbroken one; --deterministic changes kernels, not tracing."""
    from nmt.data.batching import Batch
    from nmt.model.seq2seq import build_model
    model = build_model(ModelConfig(num_units=8, embedding_size=8, num_encoder_layers=1,
                                    num_decoder_layers=1, dropout=0.0), 20, 20)
    config = TrainConfig(jit_compile=False, deterministic=deterministic)
    step = training.make_train_step(model, tf.keras.optimizers.Adam(1e-3), config)
    rng = np.random.default_rng(0)

    def batch(size, src_time, tgt_time):
        ids = lambda t: tf.constant(rng.integers(4, 20, [size, t]), tf.int32)  # noqa: E731
        return Batch(ids(src_time), tf.fill([size], src_time), ids(tgt_time), ids(tgt_time),
                     tf.fill([size], tgt_time))

    shapes = [(4, 8, 8), (3, 16, 16), (4, 16, 8), (3, 8, 16), (4, 24, 24), (4, 8, 8)]
    for shape in shapes:
        out, _, applied = step(batch(*shape))
        assert bool(applied) and np.isfinite(float(out.loss_sum))
    assert step.experimental_get_tracing_count() == 1


def test_word_dropout_reaches_the_trainers_batches(multi30k_slice, tmp_path):
    config = tiny_config(multi30k_slice, num_train_steps=1)
    noisy = config.replace(data={"word_dropout": 0.3})
    unks = []
    for i, c in enumerate((config, noisy)):
        batch = next(iter(training.Trainer(c, str(tmp_path / f"run{i}")).epoch_dataset(0)))
        unks.append(int(np.sum(batch.src.numpy() == 1)) + int(np.sum(batch.tgt_in.numpy() == 1)))
    assert unks[0] == 0 and unks[1] > 0  # UNK_ID 1: byte fallback leaves none of its own


def test_the_trainers_batches_are_padded_to_multiples_of_the_bucket_width(
        multi30k_slice, tmp_path):
    config = tiny_config(multi30k_slice, num_train_steps=1)
    batches = list(training.Trainer(config, str(tmp_path)).epoch_dataset(0))
    width = config.data.bucket_width
    for b in batches:
        src_time, tgt_time = b.src.shape[1], b.tgt_in.shape[1]
        assert src_time % width == 0 and src_time - width < int(max(b.src_len)) <= src_time
        assert tgt_time % width == 0 and tgt_time - width < int(max(b.tgt_len)) <= tgt_time


def test_resume_from_a_truncated_checkpoint_is_a_one_line_error(multi30k_slice, tmp_path):
    out = str(tmp_path)
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=2), out).run()
    index = tf.train.latest_checkpoint(os.path.join(out, "ckpt")) + ".index"
    with open(index, "r+b") as f:
        f.truncate(10)
    resumed = training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out)
    with pytest.raises(model_dir_lib.ModelDirError,
                       match=r"ckpt-2\.index: checkpoint index file truncated .*cannot resume"):
        resumed.restore()


# --- a run dir is resumed exactly or refused, never reused silently ---

def _train(multi30k_slice, out, steps, **train):
    trainer = training.Trainer(tiny_config(multi30k_slice, num_train_steps=steps, **train), out)
    trainer.run()
    return trainer


def test_a_damaged_checkpoint_state_is_refused_not_started_over(multi30k_slice, tmp_path):
    out = str(tmp_path)
    _train(multi30k_slice, out, 4)
    ckpt = os.path.join(out, "ckpt")
    os.remove(os.path.join(ckpt, "ckpt-4.index"))
    with pytest.raises(model_dir_lib.ModelDirError) as error:
        training.Trainer(tiny_config(multi30k_slice, num_train_steps=6), out).run()
    assert str(error.value) == (
        f"{ckpt}/ckpt-4.index: checkpoint index file missing; the run cannot resume: restore "
        f"the file, resume from a complete checkpoint with --checkpoint={ckpt}/ckpt-2, or "
        f"train in a new --model_dir")
    assert os.path.exists(os.path.join(ckpt, "ckpt-2.index"))  # nothing swept
    for text in ("", "garbage {"):
        with open(os.path.join(ckpt, "checkpoint"), "w") as f:
            f.write(text)
        with pytest.raises(model_dir_lib.ModelDirError,
                           match=f"^{ckpt}/checkpoint: unreadable checkpoint state file; the "
                                 f"run cannot resume: .*--checkpoint={ckpt}/ckpt-2, "):
            training.Trainer(tiny_config(multi30k_slice, num_train_steps=6), out).run()
    assert sorted(os.listdir(ckpt)) == ["checkpoint", "ckpt-2.data-00000-of-00001",
                                        "ckpt-2.index", "ckpt-4.data-00000-of-00001"]


def test_the_final_checkpoint_is_written_once_and_a_rerun_writes_none(multi30k_slice, tmp_path):
    out = str(tmp_path)
    saved = []

    def spy(trainer):
        real = trainer.manager.save
        trainer.manager.save = lambda checkpoint_number, **kw: (
            saved.append(checkpoint_number), real(checkpoint_number=checkpoint_number, **kw))[1]
        return trainer

    spy(training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out)).run()
    assert saved == [2, 4]  # step 4 is a checkpoint step and the last one: saved once
    index = os.path.join(out, "ckpt", "ckpt-4.index")
    before = os.stat(index)
    spy(training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out)).run()
    assert saved == [2, 4]  # the finished command, rerun, rewrites nothing
    after = os.stat(index)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_log_records_of_a_run_killed_before_its_first_checkpoint_go(multi30k_slice, tmp_path):
    old = "".join(f'{{"kind": "train", "step": {s}}}\n' for s in range(1, 6))
    (tmp_path / "log.jsonl").write_text(old + '{"kind": "tr', encoding="utf-8")
    _train(multi30k_slice, str(tmp_path), 4)
    records = model_dir_lib.read_log(str(tmp_path))
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4]


def test_a_failed_first_run_does_not_fix_its_settings(multi30k_slice, tmp_path):
    out = str(tmp_path)
    typo = tiny_config(multi30k_slice, num_train_steps=2).replace(
        data={"train_prefix": "/no/such/train"})
    with pytest.raises(Exception, match="/no/such/train"):
        training.Trainer(typo, out)
    assert not os.path.exists(os.path.join(out, "config.json"))
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=2), out)  # the corrected one
    assert os.path.exists(os.path.join(out, "config.json"))


def test_the_trainer_anneals_the_rate_to_the_floor_at_the_end_of_its_steps(
        multi30k_slice, tmp_path):
    config = tiny_config(multi30k_slice, num_train_steps=8, learning_rate=0.01,
                         min_learning_rate=0.001, anneal_fraction=0.5)
    training.Trainer(config, str(tmp_path)).run()
    rates = {r["step"]: r["lr"] for r in model_dir_lib.read_log(str(tmp_path))
             if r["kind"] == "train"}
    # the rate of each logged step: full until half the steps, then linear to the floor
    assert rates == pytest.approx({2: 0.01, 4: 0.01, 6: 0.001 + 0.009 * 0.5, 8: 0.001})


def test_resume_keeps_how_the_vocabulary_was_made_and_still_refuses_other_data(
        multi30k_slice, tmp_path):
    out = str(tmp_path)
    made = tiny_config(multi30k_slice, num_train_steps=2).replace(
        data={"spm_sample_size": 1_000_000, "spm_threads": 2})
    training.Trainer(made, out).run()
    # Other sampling settings: the vocabulary exists, so the run resumes as it was made.
    later = tiny_config(multi30k_slice, num_train_steps=4).replace(
        data={"spm_sample_size": 300_000, "spm_threads": 1})
    resumed = training.Trainer(later, out)
    resumed.run()
    resumed.close()
    assert tf.train.latest_checkpoint(os.path.join(out, "ckpt")).endswith("ckpt-4")
    saved = model_dir_lib.load_config(out).data
    assert (saved.spm_sample_size, saved.spm_threads) == (1_000_000, 2)
    with pytest.raises(model_dir_lib.ModelDirError, match="other data settings \\(max_src_len\\)"):
        training.Trainer(later.replace(data={"max_src_len": 61}), out)


def test_resume_refuses_a_missing_or_another_vocabulary(multi30k_slice, tmp_path):
    from nmt.data import vocab as vocab_lib
    out = str(tmp_path / "run")
    _train(multi30k_slice, out, 2)
    spm = os.path.join(out, "spm.model")
    os.rename(spm, spm + ".away")
    with pytest.raises(model_dir_lib.ModelDirError,
                       match=f"^{spm}: sentencepiece model missing$"):
        training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out)
    assert not os.path.exists(spm)  # not trained afresh
    # Another vocabulary of the same size: the embedding shapes fit, the pieces do not.
    src, tgt = (open(os.path.join(multi30k_slice.plain, f"train.{lang}"), encoding="utf-8")
                .read().splitlines() for lang in ("en", "de"))
    other = vocab_lib.train_sentencepiece(src + tgt, str(tmp_path / "other"), 400,
                                          model_type="bpe")
    os.rename(other, spm)
    resumed = training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out)
    with pytest.raises(model_dir_lib.ModelDirError,
                       match=f"^{spm}: not the vocabulary .*ckpt-2 was trained with"):
        resumed.run()
    assert tf.train.latest_checkpoint(os.path.join(out, "ckpt")).endswith("ckpt-2")


def test_a_trainer_with_lock_refuses_a_second_one(multi30k_slice, tmp_path):
    from nmt import files
    out = str(tmp_path)
    first = training.Trainer(tiny_config(multi30k_slice, num_train_steps=2), out, lock=True)
    try:
        with pytest.raises(files.LockError, match=f"the run dir {out} is in use by process "
                                                  f"{os.getpid()} on "):
            training.Trainer(tiny_config(multi30k_slice, num_train_steps=2), out, lock=True)
    finally:
        first.close()
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=2), out, lock=True).close()


def test_a_refused_config_write_is_one_line_and_the_rerun_starts(multi30k_slice, tmp_path,
                                                                 monkeypatch):
    from nmt import files
    out = str(tmp_path)
    config = tiny_config(multi30k_slice, num_train_steps=2)
    monkeypatch.setenv(files.FAULT_ENV, "EACCES@write:config.json")
    with pytest.raises(model_dir_lib.ModelDirError) as error:
        training.Trainer(config, out)
    assert str(error.value) == (
        f"{out}/config.json: cannot write (Permission denied); the checkpoints saved before "
        f"are intact: fix this and rerun the same command")
    assert not [f for f in os.listdir(out) if "config.json" in f]  # no file, no temporary
    monkeypatch.delenv(files.FAULT_ENV)
    training.Trainer(config, out).run()
    assert model_dir_lib.load_config(out) == config


# --- resuming from an older checkpoint of the run ---

def test_checkpoint_resumes_from_an_older_one_and_keeps_the_newer_on_disk(multi30k_slice,
                                                                          tmp_path):
    out = str(tmp_path / "run")
    ckpt = os.path.join(out, "ckpt")
    _train(multi30k_slice, out, 6)
    newer = {n: os.stat(os.path.join(ckpt, n)).st_ino for n in os.listdir(ckpt)
             if n.startswith(("ckpt-4.", "ckpt-6."))}
    resumed = training.Trainer(tiny_config(multi30k_slice, num_train_steps=3), out,
                               checkpoint=os.path.join(ckpt, "ckpt-2"))
    resumed.run()
    assert int(resumed.progress.step) == 3
    state = model_dir_lib.read_checkpoint_state(ckpt)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == \
        ["ckpt-2", "ckpt-3"]
    assert state.model_checkpoint_path.endswith("ckpt-3")
    # The newer ones left the state file (no manager sweeps them) and stay untouched.
    assert {n: os.stat(os.path.join(ckpt, n)).st_ino for n in newer} == newer
    records = model_dir_lib.read_log(out)
    assert [r["step"] for r in records if r["kind"] == "train"] == [2]  # 4 and 6 went


def test_checkpoint_recovers_from_a_damaged_newest_one_exactly(multi30k_slice, tmp_path):
    out = str(tmp_path / "run")
    ckpt = os.path.join(out, "ckpt")
    training.Trainer(varied_config(multi30k_slice, num_train_steps=6), out).run()
    os.remove(os.path.join(ckpt, "ckpt-6.index"))
    with pytest.raises(model_dir_lib.ModelDirError, match=f"--checkpoint={ckpt}/ckpt-4, "):
        training.Trainer(varied_config(multi30k_slice, num_train_steps=6), out).run()
    with open(os.path.join(ckpt, "checkpoint"), "w") as f:
        f.write("garbage {")  # an unreadable state file is replaced too
    with pytest.raises(Exception, match="train_prefix"):  # a failed start changes nothing
        training.Trainer(varied_config(multi30k_slice, num_train_steps=6).replace(
            data={"train_prefix": "/no/such/train"}), out, checkpoint=f"{ckpt}/ckpt-4")
    assert open(os.path.join(ckpt, "checkpoint")).read() == "garbage {"
    training.train(varied_config(multi30k_slice, num_train_steps=6), out,
                   checkpoint=os.path.join(ckpt, "ckpt-4"))
    straight = training.Trainer(varied_config(multi30k_slice, num_train_steps=6),
                                str(tmp_path / "straight"))
    straight.run()
    _, resumed, _, _ = model_dir_lib.load(out, "last")
    assert model_dir_lib.checkpoint_path(out, "last").endswith("ckpt-6")
    assert_all_equal(values(resumed.trainable_variables),
                     values(straight.model.trainable_variables))


def _scored_by_step(monkeypatch, bleu_by_step):
    """Dev evaluations score bleu_by_step[step], so which one is best is known."""
    from nmt.training import dev_evaluation

    def evaluate(trainer, eval_set):
        return dev_evaluation.EvalResult(1.0, 2.7, bleu_by_step[int(trainer.progress.step)], 0.0)
    monkeypatch.setattr(dev_evaluation, "evaluate", evaluate)


def test_checkpoint_to_before_the_best_sets_the_abandoned_best_aside(multi30k_slice, tmp_path,
                                                                     monkeypatch):
    out = str(tmp_path / "run")
    config = tiny_config(multi30k_slice, steps_per_eval=2, num_train_steps=6).replace(
        data={"dev_prefix": os.path.join(multi30k_slice.plain, "val")})
    _scored_by_step(monkeypatch, {2: 1.0, 4: 5.0, 6: 9.0, 3: 0.5})
    training.Trainer(config.replace(train={"num_train_steps": 6}), out).run()
    assert model_dir_lib.checkpoint_path(out, "best").endswith("best/ckpt-6")
    training.Trainer(config.replace(train={"num_train_steps": 3}), out,
                     checkpoint=os.path.join(out, "ckpt", "ckpt-2")).run()
    # best/ is this history's best (step 3), though it scores below step 2's, whose
    # model step 4 replaced; the abandoned step 6 is kept aside, whole.
    assert model_dir_lib.checkpoint_path(out, "best").endswith("best/ckpt-3")
    aside = os.path.join(out, "best-abandoned-6")
    assert model_dir_lib.checkpoint_path(out, aside).endswith("best-abandoned-6/ckpt-6")
    model_dir_lib.check_checkpoint(model_dir_lib.checkpoint_path(out, aside))


@pytest.mark.parametrize("where, why", [("best/ckpt-2", "not a checkpoint of this run"),
                                        ("ckpt/ckpt-5", "ckpt-5.index: checkpoint index "
                                                        "file missing")])
def test_checkpoint_refuses_another_dirs_or_a_missing_one(multi30k_slice, tmp_path, where,
                                                           why):
    out = str(tmp_path)
    _train(multi30k_slice, out, 2)
    os.makedirs(os.path.join(out, "best"), exist_ok=True)
    state = open(os.path.join(out, "ckpt", "checkpoint")).read()
    with pytest.raises(model_dir_lib.ModelDirError, match=why) as error:
        training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out,
                         checkpoint=os.path.join(out, where))
    assert "\n" not in str(error.value)
    assert open(os.path.join(out, "ckpt", "checkpoint")).read() == state  # unchanged


def test_opening_a_run_dir_removes_what_killed_writers_left(multi30k_slice, tmp_path):
    out = str(tmp_path)
    _train(multi30k_slice, out, 2)
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    stale = [os.path.join(out, f".config.json.{exited}.0123abcd.tmp"),
             os.path.join(out, "ckpt", f".checkpoint.{exited}.4567cdef.tmp")]
    for path in stale:
        with open(path, "w") as f:
            f.write("torn")
    training.Trainer(tiny_config(multi30k_slice, num_train_steps=4), out, lock=True).close()
    assert not any(os.path.exists(p) for p in stale)
