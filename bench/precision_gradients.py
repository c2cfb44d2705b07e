"""How far a training precision's gradients are from float32's, at the same weights.

    python -m bench.precision_gradients --model_dir=RUN --precisions=bf16 --batches=8

Loads a run dir's checkpoint, draws --batches batches of --batch_size random training
pairs (seeded), and computes the gradient of the training loss (dropout on, label
smoothing as configured) once in fp32 and once in each precision, with the same
dropout masks: every dropout generator is reset to its checkpointed state before each
gradient. Prints a Markdown table: per variable, the relative error of its gradient
against fp32's (|g - g32| / |g32|, mean over the batches), and the cosine between the
whole gradients. A quick, deterministic look at where rounding enters a training step;
it says nothing about where the training run goes, which depends on more than one
step's error (docs/distributed.md, "Gradient error is not the lag").
"""
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags

from nmt import model_dir as model_dir_lib
from nmt.config import PRECISIONS
from nmt.data import corpus as corpus_lib
from nmt.data.batching import Batch, pad_batch
from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.model import precision as precision_lib
from nmt.model.seq2seq import build_model

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model_dir", None, "A run dir with a checkpoint.")
    flags.DEFINE_enum("checkpoint", "last", ["last", "best"], "Which checkpoint.")
    flags.DEFINE_list("precisions", ["bf16"], f"Compared with fp32: any of {PRECISIONS}.")
    flags.DEFINE_integer("batches", 8, "Batches of random training pairs.")
    flags.DEFINE_integer("batch_size", 64, "Sentences per batch.")
    flags.DEFINE_integer("seed", 0, "Seeds the choice of pairs.")


def random_batches(pairs, src_vocab, tgt_vocab, num_batches, batch_size, seed=0):
    """num_batches Batches of batch_size pairs drawn without replacement per batch."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(num_batches):
        rows = rng.choice(len(pairs.src), min(batch_size, len(pairs.src)), replace=False)
        src = src_vocab.encode([pairs.src[i] for i in rows])
        tgt = tgt_vocab.encode([pairs.tgt[i] for i in rows])
        src_ids, src_len = pad_batch(src)
        tgt_in, tgt_len = pad_batch([[BOS_ID] + t for t in tgt])
        tgt_out, _ = pad_batch([t + [EOS_ID] for t in tgt])
        batches.append(Batch(*(tf.constant(a) for a in (src_ids, src_len, tgt_in, tgt_out,
                                                        tgt_len))))
    return batches


def dropout_generators(model):
    """Every tf.random.Generator held by the model's modules (dropout masks)."""
    found = {}
    for module in [model] + list(model.submodules):
        for value in vars(module).values():
            if isinstance(value, tf.random.Generator):
                found[id(value)] = value
    return list(found.values())


def gradients(model, batches, precision, label_smoothing, reset_dropout=True):
    """[(mean loss, [gradient per trainable variable])] for each batch, with the dropout
    generators reset to their present state before each batch (unless told not to)."""
    generators = dropout_generators(model)
    states = [g.state.numpy() for g in generators]
    dtypes = precision_lib.training_dtypes(precision)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            out = model.loss(batch, label_smoothing, training=True, **dtypes)
            loss = out.loss_sum / out.num_tokens
        return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    results = []
    for batch in batches:
        if reset_dropout:
            for generator, state in zip(generators, states):
                generator.state.assign(state)
        loss, grads = step(batch)
        results.append((float(loss), [g.numpy() for g in grads]))
    for generator, state in zip(generators, states):
        generator.state.assign(state)
    return results


def compare(reference, other):
    """Two `gradients` results -> (per-variable mean relative error [n_vars], mean cosine
    of the whole gradients, mean |loss difference|)."""
    errors, cosines, losses = [], [], []
    for (loss_ref, ref), (loss, grads) in zip(reference, other):
        errors.append([np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30)
                       for g, r in zip(grads, ref)])
        flat_ref = np.concatenate([r.ravel() for r in ref]).astype(np.float64)
        flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
        cosines.append(float(flat @ flat_ref / (np.linalg.norm(flat) * np.linalg.norm(flat_ref))))
        losses.append(abs(loss - loss_ref))
    return np.mean(errors, axis=0), float(np.mean(cosines)), float(np.mean(losses))


def variable_labels(variables):
    """Variable names, the second and later of a repeated name numbered (a bidirectional
    layer's two cells share names): ["a:0", "a:0 (2)", ...]."""
    seen, labels = {}, []
    for variable in variables:
        seen[variable.name] = seen.get(variable.name, 0) + 1
        count = seen[variable.name]
        labels.append(variable.name if count == 1 else f"{variable.name} ({count})")
    return labels


def main(argv):
    del argv
    if not FLAGS.model_dir:
        sys.exit("precision_gradients: --model_dir is required")
    config = model_dir_lib.load_config(FLAGS.model_dir)
    src_vocab, tgt_vocab = model_dir_lib.load_vocabs(FLAGS.model_dir, config)
    model = build_model(config.model, src_vocab.size, tgt_vocab.size)
    model_dir_lib.restore_model(model, model_dir_lib.checkpoint_path(FLAGS.model_dir,
                                                                     FLAGS.checkpoint))
    d = config.data
    pairs = corpus_lib.read_parallel(corpus_lib.find_corpus_file(d.train_prefix, d.src),
                                     corpus_lib.find_corpus_file(d.train_prefix, d.tgt))
    batches = random_batches(pairs, src_vocab, tgt_vocab, FLAGS.batches, FLAGS.batch_size,
                             FLAGS.seed)
    smoothing = config.train.label_smoothing
    reference = gradients(model, batches, "fp32", smoothing)
    columns = {name: compare(reference, gradients(model, batches, name, smoothing))
               for name in FLAGS.precisions}
    print(f"Gradient error against fp32: {FLAGS.model_dir} ({FLAGS.checkpoint}), "
          f"{FLAGS.batches} batches of {FLAGS.batch_size}\n")
    print("| variable | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for i, name in enumerate(variable_labels(model.trainable_variables)):
        print(f"| {name} | " + " | ".join(f"{c[0][i]:.4f}" for c in columns.values())
              + " |")
    print("| cosine of the whole gradient | "
          + " | ".join(f"{c[1]:.6f}" for c in columns.values()) + " |")
    print("| mean abs loss difference | "
          + " | ".join(f"{c[2]:.5f}" for c in columns.values()) + " |")


if __name__ == "__main__":
    define_flags()
    app.run(main)
