"""Weight and attention-memory gradients batched after the loop (nmt.model.deferred) equal
per-step ones."""
import numpy as np
import pytest
import tensorflow as tf

from nmt.config import ModelConfig
from nmt.data.batching import Batch
from nmt.data.vocab import BOS_ID
from nmt.model import cells
from nmt.model import deferred as deferred_lib
from nmt.model import rnn
from nmt.model.seq2seq import build_model

SRC_VOCAB, TGT_VOCAB, UNITS = 19, 23, 8


def _recurrence(x, w_in, w_rec, defer):
    """h_t = tanh(x_t @ w_in + h_{t-1} @ w_rec) over x [time, batch, depth]; -> sum of h."""
    num_steps, batch = tf.shape(x)[0], tf.shape(x)[1]
    deferred = (deferred_lib.DeferredMatmuls({"in": w_in, "rec": w_rec}, num_steps, batch)
                if defer else None)
    records = deferred.records() if defer else {}
    h = tf.zeros([batch, w_rec.shape[0]])
    total = tf.zeros([])
    for t in tf.range(num_steps):
        if defer:
            step = deferred.step(t)
            h_new = tf.tanh(x[t] @ step.kernels["in"] + h @ step.kernels["rec"] + step.zeros)
            step.inputs.update({"in": x[t], "rec": h})
            records = deferred.write(records, t, step)
        else:
            h_new = tf.tanh(x[t] @ w_in + h @ w_rec)
        h = h_new
        total += tf.reduce_sum(h * tf.cast(t + 1, tf.float32))
    if defer:
        deferred.finish(records)
    return total


def _plain_and_deferred(loop, sources, compiled, atol):
    """loop(defer) -> a scalar; asserts that it and its gradients for `sources` agree
    with and without the deferral (eager, or traced if `compiled`); -> the plain ones."""
    def grads(defer):
        with tf.GradientTape() as tape:
            tape.watch(sources)
            total = loop(defer)
        return [total] + tape.gradient(total, sources)

    run = tf.function(grads) if compiled else grads
    plain, deferred = run(False), run(True)
    for a, b in zip(plain, deferred):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=atol)
    return plain


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_batched_weight_gradients_equal_per_step_ones(compiled):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 3, 4)), tf.float32)
    w_in = tf.Variable(rng.normal(size=(4, 6)) * 0.5, dtype=tf.float32)
    w_rec = tf.Variable(rng.normal(size=(6, 6)) * 0.5, dtype=tf.float32)

    plain = _plain_and_deferred(lambda defer: _recurrence(x, w_in, w_rec, defer),
                                [x, w_in, w_rec], compiled, atol=1e-5)
    assert float(tf.reduce_max(tf.abs(plain[3]))) > 0.1  # the recurrent gradient is real


def _attention_loop(keys, values, query, defer):
    """q_{t+1} = tanh(softmax(keys @ q_t) @ values) over 4 steps, a DeferredMemory for
    keys ("left") and values ("right") when `defer`; -> a weighted sum of the contexts."""
    num_steps = 4
    deferred = (deferred_lib.DeferredMemory({"keys": (keys, "left"),
                                             "values": (values, "right")}, num_steps)
                if defer else None)
    records = deferred.records() if defer else {}
    total = tf.zeros([])
    for t in tf.range(num_steps):
        if defer:
            step = deferred.step(t)
            scores = tf.linalg.matvec(step.kernels["keys"], query) + step.zeros["keys"]
            weights = tf.nn.softmax(scores)
            context = (tf.linalg.matvec(step.kernels["values"], weights, transpose_a=True)
                       + step.zeros["values"])
            step.inputs.update({"keys": query, "values": weights})
            records = deferred.write(records, t, step)
        else:
            weights = tf.nn.softmax(tf.linalg.matvec(keys, query))
            context = tf.linalg.matvec(values, weights, transpose_a=True)
        total += tf.reduce_sum(context * tf.cast(t + 1, tf.float32) * tf.range(1.0, 4.0))
        query = tf.tanh(context)
    if defer:
        deferred.finish(records)
    return total


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_batched_memory_gradients_equal_per_step_ones(compiled):
    rng = np.random.default_rng(4)
    keys = tf.constant(rng.normal(size=(2, 5, 3)), tf.float32)
    values = tf.constant(rng.normal(size=(2, 5, 3)), tf.float32)
    query = tf.constant(rng.normal(size=(2, 3)), tf.float32)

    plain = _plain_and_deferred(lambda defer: _attention_loop(keys, values, query, defer),
                                [keys, values, query], compiled, atol=1e-6)
    for gradient in plain[1:3]:  # the memory's gradients are real
        assert float(tf.reduce_max(tf.abs(gradient))) > 0.05


def test_a_memory_step_that_does_not_record_its_vectors_is_refused():
    deferred = deferred_lib.DeferredMemory({"keys": (tf.ones([1, 2, 3]), "left")}, 3)
    step = deferred.step(0)
    with pytest.raises(ValueError, match=r"did not record \['keys'\]"):
        deferred.write(deferred.records(), 0, step)


def test_a_step_that_does_not_record_its_inputs_is_refused():
    deferred = deferred_lib.DeferredMatmuls({"rec": tf.ones([2, 2])}, 3, 1)
    step = deferred.step(0)
    with pytest.raises(ValueError, match=r"did not record \['rec'\]"):
        deferred.write(deferred.records(), 0, step)


def _encoder_cell(seed, layer_norm=False):
    """Two stacked LSTM layers with dropout (one of them projected, with peepholes)."""
    return cells.MultiRNNCell([
        cells.DropoutWrapper(cells.LSTMCell(5, use_peepholes=True, num_proj=4, input_size=3,
                                            layer_norm=layer_norm),
                             input_keep_prob=0.7, state_keep_prob=0.8, seed=seed),
        cells.DropoutWrapper(cells.LSTMCell(4, input_size=4, layer_norm=layer_norm),
                             input_keep_prob=0.7, seed=seed + 1)])


def _encoder_gradients(defer, monkeypatch, layer_norm=False):
    """A bidirectional run over padded sequences (one of length 0) -> the gradients of a
    weighted sum of its outputs and final states, for the inputs and every variable."""
    if not defer:
        monkeypatch.setattr(rnn, "_deferred", lambda *args: None)
    tf.random.set_seed(3)
    cell_fw, cell_bw = _encoder_cell(1, layer_norm), _encoder_cell(11, layer_norm)
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 6, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        (out_fw, out_bw), states = rnn.bidirectional_dynamic_rnn(
            cell_fw, cell_bw, x, sequence_length=[6, 2, 4, 0], training=True)
        weights = tf.range(1.0, 7.0)[None, :, None]
        total = (tf.reduce_sum(out_fw * weights) + tf.reduce_sum(out_bw * weights ** 2)
                 + sum(tf.reduce_sum(s) for s in tf.nest.flatten(states)))
    variables = cell_fw.trainable_variables + cell_bw.trainable_variables
    grads = tape.gradient(total, [x] + list(variables))
    if not defer:
        monkeypatch.undo()
    return [total.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_encoder_gradients_are_the_same_with_batched_weight_gradients(monkeypatch, layer_norm):
    assert rnn._deferred(_encoder_cell(0, layer_norm), True, tf.float32, 6, 4) is not None
    plain = _encoder_gradients(False, monkeypatch, layer_norm)
    deferred = _encoder_gradients(True, monkeypatch, layer_norm)
    for a, b in zip(plain, deferred):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def _model(**fields):
    defaults = dict(num_encoder_layers=1, num_decoder_layers=2, num_units=UNITS,
                    embedding_size=UNITS, dropout=0.3)
    tf.random.set_seed(0)
    return build_model(ModelConfig(**{**defaults, **fields}), SRC_VOCAB, TGT_VOCAB)


def _batch():
    rng = np.random.default_rng(1)
    tgt = rng.integers(4, TGT_VOCAB, size=(3, 6)).astype(np.int32)
    tgt_in = np.concatenate([np.full((3, 1), BOS_ID, np.int32), tgt[:, :-1]], 1)
    return Batch(src=tf.constant(rng.integers(4, SRC_VOCAB, size=(3, 5)), tf.int32),
                 src_len=tf.constant([5, 3, 1], tf.int32), tgt_in=tf.constant(tgt_in),
                 tgt_out=tf.constant(tgt), tgt_len=tf.constant([6, 4, 2], tf.int32))


def _training_gradients(model, batch, saved):
    """The training loss and its gradients from the model state in checkpoint `saved`
    (weights and dropout generators: every call draws the same masks)."""
    tf.train.Checkpoint(model=model).read(saved).assert_consumed()
    with tf.GradientTape() as tape:
        loss = model.loss(batch, label_smoothing=0.1, training=True).loss_sum
    grads = tape.gradient(loss, model.trainable_variables)
    return loss.numpy(), [tf.convert_to_tensor(g).numpy() for g in grads]


@pytest.mark.parametrize("fields", [
    dict(),
    dict(variational_dropout=True, num_decoder_layers=1),
    dict(attention_architecture="gnmt", num_decoder_layers=3, bridge="zero"),
    dict(input_feeding=False, attention="bahdanau"),
    dict(attention_layer_size=6, residual=True, num_decoder_layers=3),
    dict(layer_norm=True),
], ids=["standard", "variational", "gnmt", "no_input_feeding", "narrow_attentional_residual",
        "layer_norm"])
def test_decoder_training_gradients_are_the_same_with_batched_weight_gradients(
        fields, monkeypatch, tmp_path):
    model, batch = _model(**fields), _batch()
    saved = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    assert model.decoder._deferred(True, 6, 3, tf.float32) is not None
    memory = model.decoder.attention.prepare(tf.ones([3, 5, UNITS]), tf.constant([5, 3, 1]))
    assert model.decoder._deferred_memory(True, memory, 6) is not None
    loss, grads = _training_gradients(model, batch, saved)
    monkeypatch.setattr(model.decoder, "_deferred", lambda *args: None)  # per-step gradients
    monkeypatch.setattr(model.decoder, "_deferred_memory", lambda *args: None)
    plain_loss, plain = _training_gradients(model, batch, saved)
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-6)
    for v, a, b in zip(model.trainable_variables, plain, grads):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=v.name)


def test_gru_decoders_keep_per_step_gradients():
    assert _model(unit_type="gru").decoder._deferred(True, 6, 3, tf.float32) is None
