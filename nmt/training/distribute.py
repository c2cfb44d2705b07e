"""Data parallelism for the trainer on tf.distribute (TrainConfig.strategy).

    mirrored       MirroredStrategy over the local GPUs, or without GPUs over the
                   logical CPUs (TrainConfig.num_gpus of them; 0: all)
    multi_worker   MultiWorkerMirroredStrategy over the cluster in TF_CONFIG, every
                   local GPU (or the CPU) of each worker (docs/distributed.md)

Batches and the learning rate. The pipeline's batch (data.batch_size or
batch_tokens) is the *global* batch: each global batch is cut into
`num_replicas_in_sync` row slices, one per replica, so adding replicas makes each
step cheaper rather than bigger and the learning rate needs no rescaling.
Replicas return loss and gradient *sums* over their target tokens; one all-reduce
adds them up and the sum is divided by the global token count, so the update
equals the single-device update on the same batch (up to float rounding).

Multi-worker input. Every worker builds the same global batches (same data, same
seed, same resume position), and each worker's input pipeline keeps only the
slices of its own replicas: the input is sharded per worker, and every worker
runs the same number of steps (no collective waits on a worker out of data).

Before the first step the workers compare a fingerprint of their encoded training
data (check_workers_agree): each trains or loads its own sentencepiece model, and
a different corpus, flag or sentencepiece version would otherwise go unnoticed.

Checkpoints. Only the chief writes to the run dir; the other workers write their
checkpoints, logs and summaries to a temporary dir (saving takes every worker), which
they delete when they exit, and every worker resumes from the chief's latest
checkpoint (so the run dir must be shared, e.g. NFS or GCS).

Exact resume. The step is traced once, for global batches of any shape, and after
each step every replica's dropout generators take the furthest state any replica
reached (sync_generators): a replica's generator advances by what its slice drew,
and a checkpoint holds one state for all of them, so without the sync a resumed
run would draw other masks than an unbroken one.

No XLA. The strategy's step is not XLA-compiled (jit_compile is ignored): the
all-reduce and the mirrored-variable update sit outside XLA clusters on CPUs.
"""
import atexit
import contextlib
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
from absl import logging

from nmt.config import ConfigError
from nmt.data import batching as batching_lib
from nmt.data.batching import Batch
from nmt.model import devices
from nmt.model import precision
from nmt.model.seq2seq import LossOutput
from nmt.training.train_step import TRAIN_BATCH_SIGNATURE
from nmt.training.updates import apply_clipped_gradients

SUM = tf.distribute.ReduceOp.SUM


def make_strategy(config):
    """TrainConfig -> tf.distribute.Strategy, or None for strategy="none".

    multi_worker must be built before TensorFlow runs any op (collectives are set up
    at start-up); the trainer builds it first.
    """
    if config.strategy == "none":
        return None
    if config.strategy == "mirrored":
        return mirrored_strategy(devices.replica_devices(config.num_gpus))
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("strategy=multi_worker needs the cluster in the TF_CONFIG "
                          "environment variable (see docs/distributed.md)")
    if not tf.config.list_physical_devices("GPU"):
        # CPU-only workers run one op at a time: the oneDNN heap corruption of split CPUs
        # (devices.split_cpu) also struck CPU workers, as "malloc(): mismatching
        # next->prev_size" inside a step (docs/distributed.md).
        tf.config.threading.set_inter_op_parallelism_threads(1)
        logging.info("multi_worker without GPUs: one op at a time (inter-op parallelism 1)")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    logging.info("MultiWorkerMirroredStrategy: %s, %d replicas in sync",
                 json.loads(os.environ["TF_CONFIG"]).get("task"), strategy.num_replicas_in_sync)
    return strategy


_MIRRORED = {}  # devices -> strategy: one per process, as collective keys of two would clash


def mirrored_strategy(replica_devices):
    """The process's MirroredStrategy over these devices (made on first use)."""
    key = tuple(replica_devices)
    if key not in _MIRRORED:
        logging.info("MirroredStrategy over %s", ", ".join(key))
        _MIRRORED[key] = tf.distribute.MirroredStrategy(list(key))
    return _MIRRORED[key]


def scope(strategy):
    """The strategy's scope (create variables in it), or a no-op without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def is_chief(strategy):
    """True unless this is a non-chief worker of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(out_dir, strategy):
    """Where this worker writes: out_dir for the chief, for the others a temporary dir,
    deleted when the process exits (also after an error): its checkpoints, logs and
    vocabularies copy the chief's, and a left-over dir would look like a run."""
    if is_chief(strategy):
        return out_dir
    resolver = strategy.cluster_resolver
    path = tempfile.mkdtemp(prefix=f"nmt-{resolver.task_type}{resolver.task_id}-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    logging.info("not the chief: writing checkpoints and logs to %s (deleted at exit)", path)
    return path


def any_worker(strategy, flag):
    """True on every worker if `flag` is True on any (stop decisions must agree, or the
    others would wait forever in the next all-reduce); `flag` itself on one machine."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return flag
    return any(_gather_from_replicas(strategy, int(flag)))


def check_workers_agree(strategy, what, value):
    """Raises ConfigError on every worker unless all workers hold the same int `value`
    (a fingerprint of `what`); a no-op on one machine. Workers that build different
    batches would train one model on inconsistent token ids without any error."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    values = _gather_from_replicas(strategy, value)
    if len(set(values)) > 1:
        raise ConfigError(f"the workers disagree on {what} (fingerprints per replica: "
                          f"{', '.join(f'{v:x}' for v in values)}); every worker needs the "
                          "same corpus files, flags and sentencepiece version")


def weights_fingerprint(variables):
    """A 63-bit digest of the variables' values (mirrored: the first replica's); equal on
    every worker of a run that stays in sync, which the trainer logs at each save."""
    digest = hashlib.blake2b(digest_size=8)
    for v in variables:
        digest.update(np.asarray(tf.convert_to_tensor(v)).tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


_GATHERS = {}  # strategy -> its compiled gather of one int64 per replica


def _gather_from_replicas(strategy, value):
    """Every replica's int `value`, on every worker, as a list in replica order. Compiled:
    run eagerly, a collective costs a graph of its own each time, and this runs twice
    a step (TensorFlow warns "Using CollectiveAllReduceStrategy eagerly")."""
    if strategy not in _GATHERS:
        @tf.function
        def gather(local):  # [1] int64
            per_replica = strategy.run(tf.identity, args=(local,))
            return strategy.gather(per_replica, axis=0)  # [replicas]

        _GATHERS[strategy] = gather
    return _GATHERS[strategy](tf.constant([value], tf.int64)).numpy().tolist()


def shard_batch(batch, index, count):
    """Rows [index * n // count, (index + 1) * n // count) of a Batch of n rows (may be
    empty); time dimensions are kept, their padding is masked anyway."""
    rows = tf.shape(batch.src, out_type=tf.int64)[0]
    index = tf.cast(index, tf.int64)
    start, end = index * rows // count, (index + 1) * rows // count
    return Batch(*[t[start:end] for t in batch])


def distribute_dataset(strategy, dataset):
    """A dataset of global Batches -> the same steps with each replica's slice (see the
    module docstring); unchanged without a strategy."""
    if strategy is None:
        return dataset
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local  # this worker's first replica

        def slices(batch):  # a global Batch
            batch = Batch(*batch)
            return tf.data.Dataset.range(local).map(
                lambda j: shard_batch(batch, first + j, replicas))

        # Consecutive elements go to the worker's replicas in order.
        return batching_lib.without_autotune(
            dataset.flat_map(slices).prefetch(batching_lib.PREFETCH_BATCHES))

    return strategy.distribute_datasets_from_function(dataset_fn)


def batch_spec(strategy):
    """The type of the distributed global batches, with every dimension open: the step
    traced for it computes every batch with one graph, fresh or resumed."""
    empty = tf.data.Dataset.from_generator(lambda: iter(()),
                                           output_signature=TRAIN_BATCH_SIGNATURE)
    return Batch(*distribute_dataset(strategy, empty).element_spec)


def sync_generators(generators, states):
    """Sets each generator, on every replica, to the furthest of its replicas' states
    (states: [replicas, generators, state size]). Counters only grow, so no replica
    draws numbers it drew before."""
    if generators:
        furthest = tf.reduce_max(states, axis=0)
        for i, generator in enumerate(generators):
            generator.state.assign(furthest[i])


def make_train_step(strategy, model, optimizer, config, loss_scale=None):
    """The trainer's step under a strategy: distributed Batch -> (LossOutput summed over
    all replicas, gradient norm, applied?), the same contract as training.make_train_step
    (config.precision's compute dtype; loss_scale: a precision.DynamicLossScale for fp16)."""
    variables = model.trainable_variables
    dtypes = precision.training_dtypes(config.precision)
    generators = list(model._flatten(predicate=lambda x: isinstance(x, tf.random.Generator)))

    def replica_step(batch):
        with tf.GradientTape() as tape:
            out = model.loss(batch, config.label_smoothing, training=True, **dtypes)
            scaled = out.loss_sum if loss_scale is None else loss_scale.scale_loss(out.loss_sum)
        grads = tape.gradient(scaled, variables)  # sums over this replica's tokens
        grads = [tf.convert_to_tensor(g) for g in grads]  # dense embedding grads
        context = tf.distribute.get_replica_context()
        states = ()
        if generators:  # one gather for all of them: [replicas, generators, state size]
            states = context.all_gather(tf.stack([g.state for g in generators])[tf.newaxis], 0)
        # One batched all-reduce: every replica gets the global sums.
        return context.all_reduce(SUM, (out, grads)), states

    @tf.function(input_signature=[batch_spec(strategy)])
    def train_step(batch):
        (out, grads), states = strategy.run(replica_step, args=(batch,))
        out, grads, states = tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0], (out, grads, states))
        sync_generators(generators, states)
        out = LossOutput(*out)
        tokens = tf.maximum(out.num_tokens, 1.0)
        grads = [g / tokens for g in grads]  # = gradients of the token-mean loss
        norm, applied = apply_clipped_gradients(optimizer, grads, variables,
                                                config.max_gradient_norm, out.loss_sum,
                                                loss_scale)
        return out, norm, applied

    return train_step
