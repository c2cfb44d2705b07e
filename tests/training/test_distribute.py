"""Data parallelism: MirroredStrategy on two of conftest's logical CPUs computes the
single-device update; MultiWorkerMirroredStrategy with two local worker processes
keeps both workers' weights identical and resumes from the chief's checkpoint."""
import gzip
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from bench import local_cluster
from nmt import config as config_lib
from nmt.data.batching import Batch
from nmt.model.seq2seq import build_model
from nmt.training import distribute, trainer as training
from tests.batches import random_batch, record_loss_dtypes

VOCAB = 20
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TWO_CPUS = ["/device:CPU:0", "/device:CPU:1"]  # as devices.replica_devices(2) names them
WORKER_TIMEOUT_S = 300  # per multi-worker run (about 30 s on an idle machine); then killed


def test_shards_cover_the_batch_once_in_order():
    batch = random_batch(np.random.default_rng(0), batch=5)
    for count in (1, 2, 3, 7):
        shards = [distribute.shard_batch(batch, i, count) for i in range(count)]
        for field, whole in zip(Batch._fields, batch):
            joined = tf.concat([getattr(s, field) for s in shards], 0)
            np.testing.assert_array_equal(joined, whole)


def test_distributed_dataset_gives_each_replica_its_slice():
    strategy = distribute.mirrored_strategy(TWO_CPUS)
    batches = [random_batch(np.random.default_rng(i), batch=5) for i in range(2)]
    dataset = tf.data.Dataset.from_tensors(batches[0]).concatenate(
        tf.data.Dataset.from_tensors(batches[1]))
    seen = list(distribute.distribute_dataset(strategy, dataset))
    assert len(seen) == 2
    for global_batch, per_replica in zip(batches, seen):
        parts = strategy.experimental_local_results(per_replica.src)
        assert [p.shape[0] for p in parts] == [2, 3]
        np.testing.assert_array_equal(tf.concat(parts, 0), global_batch.src)


@pytest.mark.parametrize("precision,rtol,atol", [("fp32", 1e-5, 1e-6), ("bf16", 2e-2, 2e-3)])
def test_mirrored_step_equals_the_single_device_step(precision, rtol, atol):
    """In bf16 the replicas' smaller batches round differently, hence the tolerance;
    both steps ask the model for the same dtypes."""
    model_config = config_lib.ModelConfig(num_units=16, embedding_size=8, num_encoder_layers=1,
                                          num_decoder_layers=1, dropout=0.0)
    train_config = config_lib.TrainConfig(num_train_steps=1, optimizer="sgd",
                                          learning_rate=0.5, label_smoothing=0.1,
                                          max_gradient_norm=0.1, jit_compile=False,
                                          precision=precision)
    batch = random_batch(np.random.default_rng(1), batch=5)  # 2 + 3 rows: uneven split
    single = build_model(model_config, VOCAB, VOCAB)
    initial = [v.numpy() for v in single.variables]
    seen_single = record_loss_dtypes(single)
    out, norm, applied = training.make_train_step(
        single, training.make_optimizer(train_config), train_config)(batch)

    strategy = distribute.mirrored_strategy(TWO_CPUS)
    with strategy.scope():
        mirrored = build_model(model_config, VOCAB, VOCAB)
        optim = training.make_optimizer(train_config)
        optim.build(mirrored.trainable_variables)
    for variable, value in zip(mirrored.variables, initial):
        variable.assign(value)
    seen_mirrored = record_loss_dtypes(mirrored)
    step = distribute.make_train_step(strategy, mirrored, optim, train_config)
    [replica_batches] = list(distribute.distribute_dataset(
        strategy, tf.data.Dataset.from_tensors(batch)))
    out_m, norm_m, applied_m = step(replica_batches)

    assert bool(applied) and bool(applied_m)
    assert set(seen_single) == set(seen_mirrored) == {{
        "fp32": (tf.float32, None, None),
        "bf16": (tf.bfloat16, tf.float32, tf.bfloat16)}[precision]}
    for a, b in zip(out, out_m):
        np.testing.assert_allclose(a, b, rtol=rtol)
    np.testing.assert_allclose(norm, norm_m, rtol=rtol)
    assert float(norm) > train_config.max_gradient_norm  # clipping was exercised
    for a, b in zip(single.trainable_variables, mirrored.trainable_variables):
        for replica_value in strategy.experimental_local_results(b):
            np.testing.assert_allclose(a, replica_value, rtol=rtol, atol=atol)


def write_tiny_corpus(directory, num_lines=200):
    """The first num_lines Multi30k en-de training pairs as DIR/train.{en,de}."""
    for lang in ("en", "de"):
        with gzip.open(os.path.join(REPO, "data", "multi30k", f"train.{lang}.gz"), "rt",
                       encoding="utf-8") as f:
            lines = [next(f) for _ in range(num_lines)]
        with open(os.path.join(directory, f"train.{lang}"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    return os.path.join(directory, "train")


TINY = {"model.num_units": 16, "model.embedding_size": 16, "model.num_encoder_layers": 1,
        "model.num_decoder_layers": 1, "model.dropout": 0.1, "data.vocab_size": 300,
        "data.batch_size": 16, "train.steps_per_eval": 0, "train.steps_per_stats": 2,
        "train.steps_per_checkpoint": 2, "train.jit_compile": False}


def test_trainer_trains_and_resumes_under_mirrored(tmp_path):
    prefix = write_tiny_corpus(str(tmp_path))
    config = config_lib.override(config_lib.Config(), {
        **TINY, "data.train_prefix": prefix, "train.num_train_steps": 3,
        "train.strategy": "mirrored", "train.num_gpus": 2})
    out_dir = str(tmp_path / "run")
    trainer = training.Trainer(config, out_dir)
    assert trainer.strategy.num_replicas_in_sync == 2
    trainer.run()
    assert tf.train.latest_checkpoint(os.path.join(out_dir, "ckpt")).endswith("ckpt-3")
    resumed = training.Trainer(config.replace(train={"num_train_steps": 4}), out_dir)
    resumed.restore()
    assert int(resumed.progress.step) == 3
    for a, b in zip(trainer.model.trainable_variables, resumed.model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_resumed_mirrored_run_ends_with_the_unbroken_runs_weights(tmp_path):
    """Batches of many shapes: the step must compute each with one graph, whether the
    process started fresh or resumed, for the weights to agree bit for bit."""
    prefix = write_tiny_corpus(str(tmp_path))
    config = config_lib.override(config_lib.Config(), {
        **TINY, "data.train_prefix": prefix, "data.bucket_width": 4,
        "train.num_train_steps": 6, "train.strategy": "mirrored", "train.num_gpus": 2})
    straight = training.Trainer(config, str(tmp_path / "straight"))
    straight.run()
    out_dir = str(tmp_path / "resumed")
    training.Trainer(config.replace(train={"num_train_steps": 3}), out_dir).run()
    resumed = training.Trainer(config, out_dir)
    resumed.run()
    assert int(resumed.progress.step) == 6
    for a, b in zip(straight.model.trainable_variables, resumed.model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_moving_average_under_mirrored_is_saved_and_resumed(tmp_path):
    """The weight average's variables are mirrored like the weights: updated after each
    step, written as the checkpoint's model, swapped back on resume."""
    prefix = write_tiny_corpus(str(tmp_path))
    config = config_lib.override(config_lib.Config(), {
        **TINY, "data.train_prefix": prefix, "train.num_train_steps": 3,
        "train.strategy": "mirrored", "train.num_gpus": 2, "train.moving_average_decay": 0.5})
    out_dir = str(tmp_path / "run")
    trainer = training.Trainer(config, out_dir)
    trainer.run()
    weights = [v.numpy() for v in trainer.model.trainable_variables]
    averages = [v.numpy() for v in trainer.weight_average.values]
    assert any(not np.array_equal(a, b) for a, b in zip(weights, averages))
    resumed = training.Trainer(config.replace(train={"num_train_steps": 4}), out_dir)
    resumed.restore()
    for a, b in zip(weights + averages, list(resumed.model.trainable_variables) +
                    list(resumed.weight_average.values)):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.slow
def test_init_from_gives_every_mirrored_replica_the_other_runs_weights(tmp_path):
    """A run under MirroredStrategy started with --init_from holds the first run's
    weights on every replica, with fresh optimizer slots, and trains from there."""
    prefix = write_tiny_corpus(str(tmp_path))
    base = config_lib.override(config_lib.Config(), {
        **TINY, "data.train_prefix": prefix, "train.num_train_steps": 2})
    teacher_dir = str(tmp_path / "teacher")
    teacher = training.Trainer(base, teacher_dir)
    teacher.run()
    weights = [v.numpy() for v in teacher.model.trainable_variables]

    student = training.Trainer(base.replace(train={
        "strategy": "mirrored", "num_gpus": 2, "init_from": teacher_dir, "seed": 7,
        "num_train_steps": 1}), str(tmp_path / "student"))
    student.restore()
    for expected, variable in zip(weights, student.model.trainable_variables):
        replicas = student.strategy.experimental_local_results(variable)
        assert len(replicas) == 2
        for value in replicas:
            np.testing.assert_array_equal(value.numpy(), expected)
    assert int(tf.convert_to_tensor(student.optimizer.iterations)) == 0
    student.run()
    assert int(student.progress.step) == 1
    assert any(not np.array_equal(v.numpy(), w)
               for v, w in zip(student.model.trainable_variables, weights))


# ---------------------------------------------------------------------------
# Two worker processes on 127.0.0.1 running nmt-train with strategy=multi_worker.

def worker_report(tmp_path, index, returncode, err):
    """A worker's exit, its fatal lines (a C++ CHECK, an error log line or glibc's heap
    check comes long before the Python stack dump) and its log's tail; the whole log is
    kept in tmp_path."""
    path = tmp_path / f"worker{index}.log"
    path.write_text(err)
    fatal = [line for line in err.splitlines()
             if re.match(r"[FE]\d{4} |Fatal Python error|.*Check failed|"
                         r"(malloc|free|realloc)\(\): |corrupted |double free", line)]
    return (f"worker {index} (exit {returncode}, whole log in {path}):\n"
            + "\n".join(fatal[:20]) + "\n...\n" + err[-2000:])


def run_workers(tmp_path, prefix, out_dir, steps, worker_flags=((), ()), succeed=True):
    """Runs both workers to the end (or kills them at the timeout), worker i with its
    own worker_flags[i] too; asserts all succeed, or with succeed=False that all fail.
    -> their stderr."""
    flags = [f"--train_prefix={prefix}", f"--model_dir={out_dir}", "--strategy=multi_worker",
             f"--num_train_steps={steps}", "--logtostderr"]
    flags += [f"--{key.split('.')[1]}={value}" for key, value in TINY.items()
              if not isinstance(value, bool)] + ["--nojit_compile"]
    envs = local_cluster.worker_envs(2, dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    for index, env in enumerate(envs):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir(exist_ok=True)
        env["TMPDIR"] = str(scratch)
    commands = [[sys.executable, "-m", "nmt.cli.train", *flags, *worker_flags[index]]
                for index in range(2)]
    results = local_cluster.run_processes(commands, envs, REPO, WORKER_TIMEOUT_S)
    assert all((code == 0) == succeed for code, _ in results), "\n\n".join(
        worker_report(tmp_path, index, code, err) for index, (code, err) in enumerate(results))
    return [err for _, err in results]


def saved_fingerprints(err):
    """{step: weights fingerprint} of the checkpoints a worker's log says it saved."""
    return {int(step): fingerprint for step, fingerprint in
            re.findall(r"saved \S*ckpt-(\d+) \(weights fingerprint ([0-9a-f]+)\)", err)}


def test_two_workers_stay_in_sync_and_resume_from_the_chief(tmp_path):
    """Both workers save the same weights at every checkpoint, run their steps compiled
    (no eager collectives), resume from the chief's checkpoint, and the non-chief leaves
    nothing behind: no dir of its own, nothing in the chief's."""
    prefix = write_tiny_corpus(str(tmp_path))
    out_dir = str(tmp_path / "run")
    logs = run_workers(tmp_path, prefix, out_dir, steps=2)
    assert tf.train.latest_checkpoint(os.path.join(out_dir, "ckpt")).endswith("ckpt-2")
    chief, worker = (saved_fingerprints(err) for err in logs)
    assert sorted(chief) == [2] and chief == worker
    run_files = sorted(os.listdir(out_dir))
    for err in logs:
        assert "eagerly has significant overhead" not in err
    assert not list((tmp_path / "tmp1").iterdir())  # the non-chief's dir is gone

    logs = run_workers(tmp_path, prefix, out_dir, steps=4)
    for err in logs:
        assert "resuming from" in err and "at step 2" in err
    chief, worker = (saved_fingerprints(err) for err in logs)
    assert sorted(chief) == [4] and chief == worker
    assert sorted(os.listdir(out_dir)) == run_files
    assert not list((tmp_path / "tmp1").iterdir())


def test_workers_that_encode_different_training_data_stop_before_training(tmp_path):
    prefix = write_tiny_corpus(str(tmp_path))
    logs = run_workers(tmp_path, prefix, str(tmp_path / "run"), steps=2,
                       worker_flags=((), ("--max_tgt_len=12",)), succeed=False)
    for err in logs:
        assert "the workers disagree on the encoded training data" in err, err[-3000:]
        assert " tgt tokens/s" not in err  # no training step ran
