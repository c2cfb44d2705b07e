"""Mixed precision: float32 master weights, bf16/fp16 compute, dynamic loss scaling."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from nmt import config as config_lib
from nmt.decode.translate import Translator
from nmt.model import precision
from nmt.model.seq2seq import build_model
from nmt.training import distribute, trainer
from tests.batches import random_batch, record_loss_dtypes

VOCAB = 20
MODEL = config_lib.ModelConfig(num_units=16, embedding_size=8, num_encoder_layers=1,
                               num_decoder_layers=1, dropout=0.0)
TWO_CPUS = ["/device:CPU:0", "/device:CPU:1"]


def train_config(**fields):
    """SGD with rate 1: a step moves every variable by exactly minus its gradient."""
    return config_lib.TrainConfig(**{"num_train_steps": 1, "optimizer": "sgd",
                                     "learning_rate": 1.0, "label_smoothing": 0.1,
                                     "max_gradient_norm": 0.0, "jit_compile": False, **fields})


def values(variables):
    return [v.numpy().copy() for v in variables]


def one_step(precision_name, batch, initial, loss_scale=None, **fields):
    """A fresh model set to `initial`, one SGD step -> (model, out, norm, applied, deltas)."""
    model = build_model(MODEL, VOCAB, VOCAB)
    for variable, value in zip(model.variables, initial):
        variable.assign(value)
    config = train_config(precision=precision_name, **fields)
    step = trainer.make_train_step(model, trainer.make_optimizer(config), config, loss_scale)
    before = values(model.trainable_variables)
    out, norm, applied = step(batch)
    deltas = [b - a for b, a in zip(before, values(model.trainable_variables))]
    return model, out, norm, applied, deltas


def relative_error(a, b):
    a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def matmul_dtypes(function, *args):
    """The dtypes of every MatMul in the traced graph, loop bodies included."""
    graph_def = function.get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    return {tf.dtypes.as_dtype(n.attr["T"].type) for n in nodes if n.op == "MatMul"}


def test_precision_is_validated_and_maps_to_a_compute_dtype():
    assert precision.compute_dtype("fp32") == tf.float32
    assert precision.compute_dtype("bf16") == tf.bfloat16
    assert precision.compute_dtype("fp16") == tf.float16
    with pytest.raises(config_lib.ConfigError, match="precision must be one of fp32, bf16, fp16"):
        train_config(precision="fp8").validate()


def test_bf16_loss_matches_fp32_to_bf16_tolerance_and_really_computes_in_bf16():
    model = build_model(MODEL, VOCAB, VOCAB)
    batch = random_batch(np.random.default_rng(0), vocab=VOCAB)
    losses = {}
    for dtype in (tf.float32, tf.bfloat16):
        loss = tf.function(lambda b, dtype=dtype: model.loss(b, 0.1, compute_dtype=dtype))
        assert matmul_dtypes(loss, batch) == {dtype}  # every matmul, none left in float32
        losses[dtype] = loss(batch)
        assert losses[dtype].loss_sum.dtype == tf.float32
    fp32, bf16 = float(losses[tf.float32].loss_sum), float(losses[tf.bfloat16].loss_sum)
    assert bf16 != fp32  # bfloat16 rounding happened
    np.testing.assert_allclose(bf16, fp32, rtol=1e-2)  # bf16 keeps ~3 significant digits

    encoded = model.encode(batch.src, batch.src_len, compute_dtype=tf.bfloat16)
    assert encoded.annotations.dtype == tf.bfloat16
    assert encoded.thought_vector[0].c.dtype == tf.float32  # the LSTM memory stays float32
    assert encoded.thought_vector[0].h.dtype == tf.bfloat16


def test_bf16_output_runs_only_the_output_projection_in_bf16():
    model = build_model(MODEL, VOCAB, VOCAB)
    batch = random_batch(np.random.default_rng(0), vocab=VOCAB)
    fp32 = float(model.loss(batch, 0.1).loss_sum)
    loss = tf.function(lambda b: model.loss(b, 0.1, projection_dtype=tf.bfloat16))
    graph_def = loss.get_concrete_function(batch).graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    bf16 = [n for n in nodes
            if n.op == "MatMul" and n.attr["T"].type == tf.bfloat16.as_datatype_enum]
    assert len(bf16) == 1  # the projection; the encoder, the loop and the attention stay float32
    assert matmul_dtypes(loss, batch) == {tf.float32, tf.bfloat16}
    mixed = float(loss(batch).loss_sum)
    assert mixed != fp32  # bfloat16 rounding happened
    np.testing.assert_allclose(mixed, fp32, rtol=1e-2)
    assert precision.projection_dtype("bf16_output") == tf.bfloat16
    assert precision.compute_dtype("bf16_output") == tf.float32
    assert precision.projection_dtype("bf16") is None  # decoding


def test_bf16_training_runs_the_output_projection_in_float32():
    """Training in bf16: every matmul of the loss in bf16 except the projection onto the
    vocabulary, whose logits are not rounded to bf16; its gradient matmuls in bf16; the
    train step asks for both."""
    model = build_model(MODEL, VOCAB, VOCAB)
    batch = random_batch(np.random.default_rng(0), vocab=VOCAB)
    assert precision.projection_dtype("bf16", training=True) == tf.float32
    assert precision.projection_dtype("fp32", training=True) is None
    assert precision.projection_dtype("bf16_output", training=True) == tf.bfloat16
    loss = tf.function(lambda b: model.loss(b, 0.1, compute_dtype=tf.bfloat16,
                                            projection_dtype=tf.float32))
    graph_def = loss.get_concrete_function(batch).graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    fp32 = [n for n in nodes
            if n.op == "MatMul" and n.attr["T"].type == tf.float32.as_datatype_enum]
    assert len(fp32) == 1  # the projection; the encoder, the loop and the attention: bf16
    assert matmul_dtypes(loss, batch) == {tf.float32, tf.bfloat16}

    def float32_matmuls_of_the_gradients(gradient_dtype):
        def gradients(b):
            with tf.GradientTape() as tape:
                loss = model.loss(b, 0.1, training=True, compute_dtype=tf.bfloat16,
                                  projection_dtype=tf.float32,
                                  projection_gradient_dtype=gradient_dtype).loss_sum
            return tape.gradient(loss, model.trainable_variables)
        graph_def = tf.function(gradients).get_concrete_function(batch).graph.as_graph_def()
        nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
        return sum(n.op == "MatMul" and n.attr["T"].type == tf.float32.as_datatype_enum
                   for n in nodes)

    # The projection's two gradient matmuls (dx, dw) move from float32 to bf16.
    assert float32_matmuls_of_the_gradients(None) - float32_matmuls_of_the_gradients(
        tf.bfloat16) == 2
    assert precision.projection_gradient_dtype("bf16") == tf.bfloat16
    assert precision.projection_gradient_dtype("fp32") is None
    assert precision.projection_gradient_dtype("bf16_output") is None

    seen = record_loss_dtypes(model)
    for name in ("fp32", "bf16", "bf16_output"):
        config = train_config(precision=name)
        trainer.make_train_step(model, trainer.make_optimizer(config), config)(batch)
    assert seen == [(tf.float32, None, None), (tf.bfloat16, tf.float32, tf.bfloat16),
                    (tf.float32, tf.bfloat16, None)]


@pytest.mark.parametrize("tied", [False, True], ids=["output_layer", "tied"])
def test_bf16_output_search_projects_in_bf16_with_weights_cast_once_before_the_loop(tied):
    fields = dict(tie_output_embeddings=True, embedding_size=16) if tied else {}
    model = build_model(dataclasses.replace(MODEL, **fields), VOCAB, VOCAB)
    batch = random_batch(np.random.default_rng(1), vocab=VOCAB)
    search = tf.function(lambda src, src_len: model.translate(
        src, src_len, beam_size=2, max_length=6, projection_dtype=tf.bfloat16),
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)])
    graph_def = search.get_concrete_function(batch.src, batch.src_len).graph.as_graph_def()
    in_loops = [(f, n) for f in graph_def.library.function for n in f.node_def
                if n.op == "MatMul" and n.attr["T"].type == tf.bfloat16.as_datatype_enum]
    assert len(in_loops) == 1  # the output projection, inside the search loop's body
    body, matmul = in_loops[0]
    loop_inputs = {arg.name for arg in body.signature.input_arg}
    assert matmul.input[1] in loop_inputs  # the bf16 weights come in: cast before the loop
    assert matmul_dtypes(search, batch.src, batch.src_len) == {tf.float32, tf.bfloat16}

    def step_logits(projection_dtype):
        step_fn, state, memory = model.search_inputs(batch.src, batch.src_len,
                                                     projection_dtype=projection_dtype)
        logits, _ = step_fn(batch.tgt_in[:, 0], state, context=memory)
        return logits.numpy()

    fp32, mixed = step_logits(None), step_logits(tf.bfloat16)
    assert mixed.dtype == np.float32 and not np.array_equal(mixed, fp32)  # rounded in bf16
    np.testing.assert_allclose(mixed, fp32, atol=3e-2 * np.abs(fp32).max())


def test_decode_precision_is_validated_and_sets_the_translators_dtypes():
    with pytest.raises(config_lib.ConfigError, match="decode_precision must be one of fp32, "
                                                     "bf16_output, bf16"):
        config_lib.DecodeConfig(decode_precision="fp16").validate()
    seen = []
    model = build_model(MODEL, VOCAB, VOCAB)
    original = model.translate

    def recording(*args, **kwargs):
        seen.append((kwargs["compute_dtype"], kwargs["projection_dtype"]))
        return original(*args, **kwargs)

    model.translate = recording
    vocab = FakeVocab()
    for name in ("fp32", "bf16_output", "bf16"):
        Translator(model, vocab, vocab, config_lib.DecodeConfig(
            beam_size=2, decode_precision=name, max_input_len=8)).translate_text(["3 4 5"])
    assert seen == [(tf.float32, None), (tf.float32, tf.bfloat16), (tf.bfloat16, None)]


class FakeVocab:
    """Ids written as numbers: "3 4 5" <-> [3, 4, 5]."""

    def encode(self, lines):
        return [[int(t) for t in line.split()] for line in lines]

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


def test_bf16_output_step_moves_the_weights_like_fp32():
    batch = random_batch(np.random.default_rng(6), vocab=VOCAB)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    *_, fp32 = one_step("fp32", batch, initial)
    *_, applied, mixed = one_step("bf16_output", batch, initial)
    assert bool(applied)
    assert 0.0 < relative_error(mixed, fp32) < 2e-2


@pytest.mark.parametrize("name", ["bf16", "fp16", "bf16_output"])
def test_variables_stay_float32(name):
    batch = random_batch(np.random.default_rng(1), vocab=VOCAB)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    scale = precision.DynamicLossScale() if name == "fp16" else None
    model, _, _, applied, deltas = one_step(name, batch, initial, scale)
    assert bool(applied)
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert all(d.dtype == np.float32 for d in deltas)
    assert any(np.abs(d).max() > 0 for d in deltas)


def test_fp16_loss_scaled_gradients_equal_fp32_gradients_and_clip_unscaled():
    batch = random_batch(np.random.default_rng(2), vocab=VOCAB)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    _, out32, norm32, _, grads32 = one_step("fp32", batch, initial)
    scale = precision.DynamicLossScale(initial_scale=2.0 ** 12)
    _, out16, norm16, applied, grads16 = one_step("fp16", batch, initial, scale)
    assert bool(applied)
    np.testing.assert_allclose(float(norm16), float(norm32), rtol=1e-2)  # unscaled norm
    assert relative_error(grads16, grads32) < 1e-2
    np.testing.assert_allclose(float(out16.loss_sum), float(out32.loss_sum), rtol=1e-2)
    assert float(scale.scale) == 2.0 ** 12 and int(scale.good_steps) == 1

    # Clipping sees the true gradients: the update's norm is max_gradient_norm, not /scale.
    clip = 0.5 * float(norm32)
    _, _, _, _, clipped32 = one_step("fp32", batch, initial, max_gradient_norm=clip)
    _, _, _, _, clipped16 = one_step("fp16", batch, initial, precision.DynamicLossScale(),
                                     max_gradient_norm=clip)
    np.testing.assert_allclose(np.sqrt(sum((d ** 2).sum() for d in clipped16)), clip, rtol=1e-3)
    assert relative_error(clipped16, clipped32) < 1e-2


def test_fp16_overflow_skips_the_step_and_lowers_the_scale():
    batch = random_batch(np.random.default_rng(3), vocab=VOCAB)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    scale = precision.DynamicLossScale(initial_scale=2.0 ** 40)  # fp16 gradients overflow
    model = build_model(MODEL, VOCAB, VOCAB)
    for variable, value in zip(model.variables, initial):
        variable.assign(value)
    config = train_config(precision="fp16")
    optimizer = trainer.make_optimizer(config)
    step = trainer.make_train_step(model, optimizer, config, scale)
    out, norm, applied = step(batch)
    assert np.isfinite(float(out.loss_sum)) and not np.isfinite(float(norm))
    assert not bool(applied)
    assert float(scale.scale) == 2.0 ** 39
    assert int(optimizer.iterations) == 0
    for a, b in zip(values(model.variables), initial):
        np.testing.assert_array_equal(a, b)  # nothing applied, no NaN anywhere
    for _ in range(30):  # halves until the gradients fit, then trains
        out, norm, applied = step(batch)
        if bool(applied):
            break
    assert bool(applied) and float(scale.scale) < 2.0 ** 39
    assert all(np.isfinite(v.numpy()).all() for v in model.variables)


def test_loss_scale_grows_after_a_run_of_finite_steps_and_never_drops_below_one():
    scale = precision.DynamicLossScale(initial_scale=2.0, growth_interval=3)
    for finite, expected in [(True, 2.0), (True, 2.0), (True, 4.0), (False, 2.0),
                             (False, 1.0), (False, 1.0), (True, 1.0)]:
        scale.update(tf.constant(finite))
        assert float(scale.scale) == expected
    assert int(scale.good_steps) == 1


def test_a_tiny_model_learns_in_bf16():
    """Copy task on one batch: the bf16 training loss falls well below its start."""
    batch = random_batch(np.random.default_rng(4), batch=8, src_time=6, tgt_time=6, vocab=VOCAB)
    batch = batch._replace(tgt_in=batch.src[:, :6], tgt_out=batch.src[:, :6],
                           tgt_len=batch.src_len)
    model = build_model(MODEL.__class__(num_units=32, embedding_size=16, num_encoder_layers=1,
                                        num_decoder_layers=1, dropout=0.0), VOCAB, VOCAB)
    config = train_config(precision="bf16", optimizer="adam", learning_rate=0.02,
                          label_smoothing=0.0, max_gradient_norm=5.0)
    step = trainer.make_train_step(model, trainer.make_optimizer(config), config)
    losses = [float(step(batch)[0].loss_sum) for _ in range(60)]
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_checkpoint_written_under_bf16_restores_into_an_fp32_model(tmp_path):
    batch = random_batch(np.random.default_rng(5), vocab=VOCAB)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    trained, *_ = one_step("bf16", batch, initial)
    path = tf.train.Checkpoint(model=trained).save(str(tmp_path / "ckpt"))
    fp32 = build_model(MODEL, VOCAB, VOCAB)
    tf.train.Checkpoint(model=fp32).restore(path).assert_consumed()
    for a, b in zip(values(fp32.variables), values(trained.variables)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fp32.loss(batch).loss_sum, trained.loss(batch).loss_sum)


def test_mirrored_fp16_step_equals_the_single_device_step_and_skips_overflows():
    """Half-precision compute and the loss scale under tf.distribute (bf16 is the same
    path without the scale)."""
    batch = random_batch(np.random.default_rng(6), batch=5)
    initial = values(build_model(MODEL, VOCAB, VOCAB).variables)
    strategy = distribute.mirrored_strategy(TWO_CPUS)
    [replica_batches] = list(distribute.distribute_dataset(
        strategy, tf.data.Dataset.from_tensors(batch)))
    _, _, norm, applied, single_moved = one_step(
        "fp16", batch, initial, precision.DynamicLossScale(initial_scale=2.0 ** 12))
    config = train_config(precision="fp16")
    with strategy.scope():
        mirrored = build_model(MODEL, VOCAB, VOCAB)
        optimizer = trainer.make_optimizer(config)
        optimizer.build(mirrored.trainable_variables)
        scale = precision.DynamicLossScale(initial_scale=2.0 ** 12)
    for variable, value in zip(mirrored.variables, initial):
        variable.assign(value)
    step = distribute.make_train_step(strategy, mirrored, optimizer, config, scale)
    start = values(mirrored.trainable_variables)
    _, norm_m, applied_m = step(replica_batches)
    assert bool(applied) and bool(applied_m)
    np.testing.assert_allclose(float(norm_m), float(norm), rtol=2e-2)
    moved = [a - b for a, b in zip(start, values(mirrored.trainable_variables))]
    assert relative_error(moved, single_moved) < 2e-2

    scale.scale.assign(2.0 ** 40)  # an overflow skips the mirrored step too
    before = values(mirrored.variables)
    _, _, applied_m = step(replica_batches)
    assert not bool(applied_m) and scale.current() == 2.0 ** 39
    for a, b in zip(values(mirrored.variables), before):
        np.testing.assert_array_equal(a, b)


def test_trainer_resumes_a_bf16_run_in_fp16_and_translates(multi30k_slice, tmp_path):
    """Training checkpoints do not depend on the precision; the loss scale is added to
    them under fp16 (and starts afresh from a checkpoint that has none)."""
    def config(name, steps):
        return config_lib.Config(
            data=config_lib.DataConfig(train_prefix=os.path.join(multi30k_slice.plain, "train"),
                                       vocab_size=400, max_src_len=60, max_tgt_len=60,
                                       batch_size=32, bucket_width=64),
            model=MODEL,
            train=config_lib.TrainConfig(num_train_steps=steps, steps_per_stats=2,
                                         steps_per_checkpoint=2, steps_per_eval=0,
                                         jit_compile=False, precision=name),
            decode=config_lib.DecodeConfig(beam_size=1, max_input_len=20)).validate()

    out = str(tmp_path / "run")
    trainer.Trainer(config("bf16", 2), out).run()
    resumed = trainer.Trainer(config("fp16", 4), out)
    resumed.run()
    assert int(resumed.progress.step) == 4 and int(resumed.optimizer.iterations) >= 1
    names = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(out, "ckpt"))) \
        .get_variable_to_shape_map()
    assert any(name.startswith("loss_scale/scale") for name in names)
    lines = ["A man is riding a bike .", "Two dogs play ."]
    translator = Translator(resumed.model, resumed.src_vocab, resumed.tgt_vocab,
                            dataclasses.replace(resumed.config.decode, decode_precision="bf16"))
    assert len(translator.translate_text(lines)) == 2  # decoding may honour the precision
