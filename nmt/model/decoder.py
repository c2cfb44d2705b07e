"""Bridge and attention decoder: step(ids, state) -> (log_probs, state).

Standard architecture (Luong et al. 2015 §3): the stacked cell reads
[embedding; previous attentional vector] (input feeding, §3.3), the top layer's
output h_t queries the attention, and the attentional vector
h~_t = tanh(W_c [c_t; h_t]) feeds the softmax and the next step.

GNMT architecture (Wu et al. 2016 §3): the bottom layer's output queries the
attention and the context c_t joins the input of every layer above it; the
top layer's output feeds the softmax.
"""
import tensorflow as tf

from nmt.model import cells as cells_lib
from nmt.model import deferred as deferred_lib
from nmt.model import devices as devices_lib
from nmt.model import rnn
from nmt.model.attention import build_attention
from nmt.model.deferred import call_on
from nmt.model.encoder import make_cell
from nmt.model.layers import Dense, add_bias, matmul
from nmt.model.precision import read


class Bridge(tf.Module):
    """Encoder final states -> decoder initial cell state.

    "copy" passes them through (layer i to layer i), "zero" starts from zeros,
    "dense" maps all of them, flattened, through one tanh layer.
    """

    def __init__(self, kind, cell, encoder_state_width, name="bridge"):
        super().__init__(name=name)
        self.kind = kind
        self.cell = cell
        self.dense = None
        if kind == "dense":
            width = sum(tf.nest.flatten(cell.state_size))
            with self.name_scope:
                self.dense = Dense(encoder_state_width, width, activation=tf.tanh, name="dense")

    def __call__(self, thought_vector, batch_size, dtype):
        if self.kind == "copy":
            return tuple(thought_vector)
        if self.kind == "zero":
            return self.cell.zero_state(batch_size, dtype)
        flat = tf.concat([tf.cast(s, dtype) for s in tf.nest.flatten(thought_vector)],
                         -1)  # [batch, encoder_state_width]
        sizes = tf.nest.flatten(self.cell.state_size)
        parts = tf.split(self.dense(flat), sizes, axis=-1)
        dtypes = tf.nest.flatten(self.cell.state_dtype(dtype))  # LSTM: c float32
        parts = [tf.cast(p, d) for p, d in zip(parts, dtypes)]
        return tf.nest.pack_sequence_as(self.cell.state_size, parts)


class AttentionDecoder(tf.Module):
    """Teacher-forced decoding over a whole target, and a single inference step.

    Global attention with input feeding (Luong et al. 2015 §3.1, §3.3), multiplicative
    or additive scores (Bahdanau et al. 2015 A.1.2); `_step` holds the equations."""

    def __init__(self, config, embedding, vocab_size, encoder_state_width, devices=None,
                 attention_device=None, softmax_device=None, seed=0, name="decoder"):
        """devices[i]: layer i's device; attention_device: the attention and attentional
        layer's; softmax_device: the output projection's (None: unplaced; nmt.model.devices)."""
        super().__init__(name=name)
        self.attention_device = attention_device
        self.softmax_device = softmax_device
        units = config.num_units
        self.embedding = embedding
        self.units = units
        self.output_size = config.output_size  # the attentional vector's width
        self.gnmt = config.attention_architecture == "gnmt"
        self.input_feeding = config.input_feeding
        # GNMT: residual from layer 3 up, added around the concat
        self.gnmt_residual = config.residual
        self.dropout = config.dropout
        devices = devices or [None] * config.num_decoder_layers
        self.layer_devices = list(devices)
        self.layer_input_sizes = []  # layer i's input depth, for its dropout masks
        with self.name_scope:
            layers = []
            for i in range(config.num_decoder_layers):
                if i == 0:
                    input_size = embedding.size + (self.output_size if self.input_feeding else 0)
                else:
                    input_size = units * (2 if self.gnmt else 1)
                self.layer_input_sizes.append(input_size)
                residual = config.residual and i >= 1 and not self.gnmt
                layers.append(make_cell(config.unit_type, units, input_size, config.dropout,
                                        config.variational_dropout, config.forget_bias,
                                        residual=residual, device=devices[i], seed=seed + 1 + i,
                                        layer_norm=config.layer_norm))
            self.layers = layers
            self.cell = cells_lib.MultiRNNCell(layers)
            with devices_lib.scope(attention_device):
                self.attention = build_attention(config.attention, units, units,
                                                 sqrt_scaling=config.attention_sqrt_scaling)
                self.attention_layer = (None if self.gnmt else
                                        Dense(2 * units, self.output_size, use_bias=False,
                                              activation=tf.tanh, name="attention_layer"))
            self.rng = tf.random.Generator.from_seed(seed)  # output dropout, checkpointed
            self.bridge = Bridge(config.bridge, self.cell, encoder_state_width)
            with devices_lib.scope(softmax_device):
                if config.tie_output_embeddings:
                    self.output_bias = tf.Variable(tf.zeros([vocab_size]), name="output_bias")
                    self.output_layer = None
                else:
                    self.output_layer = Dense(self.output_size, vocab_size, name="output_layer")

    def initial_state(self, encoder_output):
        """EncoderOutput -> (memory, state dict with cell, attention and alignments)."""
        annotations = encoder_output.annotations
        batch_size = tf.shape(annotations)[0]
        memory = devices_lib.call_on(self.attention_device, self.attention.prepare,
                                     annotations, encoder_output.lengths)
        state = {
            "cell": self.bridge(encoder_output.thought_vector, batch_size, annotations.dtype),
            "attention": tf.zeros([batch_size, self.output_size], annotations.dtype),
            "alignments": tf.zeros(tf.shape(annotations)[:2], annotations.dtype),
        }
        return memory, state

    def _noise(self, batch_size, num_steps, training):
        """Each layer's dropout masks for a whole target: one per sequence if variational
        (Gal & Ghahramani 2016), one per step otherwise; empty when not training."""
        return tuple(layer.sample_noise(batch_size, num_steps, size, training)
                     for layer, size in zip(self.layers, self.layer_input_sizes))

    def _prepare(self, inputs, training, noise=None):
        """Embedded targets `[batch, time, embedding_size]` -> the stacked cell's prepared
        inputs (cells.MultiPrepared): layer 0's input matmul and dropout for every step at
        once; with input feeding the attentional vector joins at each step as a late
        input. noise: `_noise` (None: cells draw their own)."""
        late_size = self.output_size if self.input_feeding else 0
        return self.cell.prepare_inputs(inputs, training=training, noise=noise,
                                        late_size=late_size)

    def _step(self, x_t, state, memory, training=False):
        """One target position t (Luong et al. 2015 §3.1, input feeding §3.3):

            h_t  = LSTM stack([emb(y_{t-1}); h~_{t-1}], h_{t-1})
            a_t  = softmax(score(h_t, hbar_s))     the weights over the source states
            c_t  = sum_s a_t(s) hbar_s             the context
            h~_t = tanh(W_c [c_t; h_t])            the attentional vector
            p(y_t | y_<t, x) = softmax(W_s h~_t)   `logits`, for every t at once

        x_t: emb(y_{t-1}) through layer 0's input kernel (`_prepare`, the whole target at
        once). -> (h~_t `[batch, output_size]`, next state)."""
        if self.gnmt:
            return self._gnmt_step(x_t, state, memory, training)
        fed_back = state["attention"] if self.input_feeding else None  # h~_{t-1}
        h_t, cell_state = self.cell.step(x_t, state["cell"], training=training,
                                         late_inputs=fed_back)

        def attend(h_t, memory):  # on the attention device
            c_t, a_t = self.attention(h_t, memory)
            return a_t, self.attention_layer(tf.concat([c_t, h_t], -1))

        a_t, attentional = call_on(self.attention_device, attend, h_t, memory)
        return attentional, {"cell": cell_state, "attention": attentional, "alignments": a_t}

    def _gnmt_step(self, x_t, state, memory, training):
        """GNMT (Wu et al. 2016 §3): the bottom layer's output queries the attention; the
        context joins the input of every layer above it. -> (top output, next state)."""
        fed_back = state["attention"] if self.input_feeding else None
        bottom, bottom_state = self.layers[0].step(x_t.first, state["cell"][0],
                                                   training=training, late_inputs=fed_back)
        context, weights = call_on(self.attention_device, self.attention, bottom, memory)
        new_states, output = [bottom_state], bottom
        for i, layer in enumerate(self.layers[1:], start=1):
            layer_out, layer_state = layer(tf.concat([output, context], -1), state["cell"][i],
                                           training=training, noise=x_t.upper_noise[i - 1])
            output = layer_out + output if i >= 2 and self.gnmt_residual else layer_out
            new_states.append(layer_state)
        return output, {"cell": tuple(new_states), "attention": context, "alignments": weights}

    def logits(self, outputs, training=False, dtype=None, gradient_dtype=None):
        """Decoder outputs `[..., output_size]` -> logits `[..., vocab]` (dropout before
        projection), computed in `dtype` if given, else in the outputs' dtype; the
        projection's gradient matmuls in `gradient_dtype` if given (`layers.matmul`)."""
        return devices_lib.call_on(
            self.softmax_device, lambda o: self._logits(o, training, dtype, gradient_dtype),
            outputs)

    def _logits(self, outputs, training, dtype=None, gradient_dtype=None):
        if training and self.dropout > 0.0:
            keep = self.rng.uniform(tf.shape(outputs)) >= self.dropout
            outputs = tf.where(keep, outputs / (1.0 - self.dropout), tf.zeros_like(outputs))
        if dtype is not None:
            outputs = tf.cast(outputs, dtype)  # the variables are read in it (precision.read)
        if self.output_layer is not None:
            return self.output_layer(outputs, gradient_dtype=gradient_dtype)
        table = read(self.embedding.table, outputs)  # [vocab, output_size]
        return add_bias(matmul(outputs, table, transpose_b=True, gradient_dtype=gradient_dtype),
                        read(self.output_bias, outputs))

    def teacher_forced(self, encoder_output, tgt_in, training=False, return_alignments=False):
        """tgt_in `[batch, tgt_time]` -> outputs `[batch, tgt_time, output_size]` (and alignments
        `[batch, tgt_time, src_time]` when asked). When training, layer 0's recurrent and
        late-input kernels and the attention's keys and values get their gradients after
        the loop (nmt.model.deferred, run by nmt.model.rnn.loop)."""
        memory, state = self.initial_state(encoder_output)
        dtype = encoder_output.annotations.dtype  # the compute dtype
        batch_size, num_steps = tf.shape(tgt_in)[0], tf.shape(tgt_in)[1]
        noise = self._noise(batch_size, num_steps, training)  # once per target
        prepared = rnn.step_slices(self._prepare(self.embedding(tgt_in, dtype), training, noise),
                                   num_steps)
        # Only what is asked for is carried (XLA cannot differentiate an unwritten list).
        names = ("outputs", "alignments") if return_alignments else ("outputs",)

        def step(t, state):
            output, state = self._step(rnn.read_step(prepared, t), state, memory, training)
            values = {"outputs": output, "alignments": state["alignments"]}
            return {name: values[name] for name in names}, state

        deferrals = [d for d in (self._deferred(training, num_steps, batch_size, dtype),
                                 self._deferred_memory(training, memory, num_steps))
                     if d is not None]
        arrays, _ = rnn.loop(step, state, num_steps,
                             {name: tf.TensorArray(dtype, size=num_steps) for name in names},
                             deferrals)
        stacked = {name: tf.transpose(array.stack(), [1, 0, 2]) for name, array in arrays.items()}
        if not return_alignments:
            return stacked["outputs"]
        return stacked["outputs"], stacked["alignments"]

    def _deferred(self, training, num_steps, batch_size, dtype):
        """nmt.model.deferred.DeferredMatmuls for layer 0's kernels when training and its cell
        can defer them (LSTM), else None."""
        if not training:
            return None
        late_size = self.output_size if self.input_feeding else 0
        like = tf.zeros([], dtype)
        deferrable = self.layers[0].deferrable_kernels(late_size, like)
        if not deferrable:
            return None
        return deferred_lib.DeferredMatmuls(deferrable.kernels, num_steps, batch_size,
                                            device=self.layer_devices[0],
                                            owner=deferrable.owner)

    def _deferred_memory(self, training, memory, num_steps):
        """nmt.model.deferred.DeferredMemory for the attention's keys and values when training,
        else None."""
        if not training:
            return None
        return deferred_lib.DeferredMemory(self.attention.deferrable(memory), num_steps,
                                           device=self.attention_device, owner=self.attention)

    def inference_projection(self, dtype):
        """-> project(outputs `[n, output_size]`) -> float32 logits `[n, vocab]`, the matmul
        in `dtype`, for a search. The weights are read and cast once, here, before the
        loop (a bf16 projection on AMX then costs no per-step cast of the [vocab,
        output_size] table), and the bias is added in float32 after the matmul (a bf16
        bias add costs about as much as the bf16 matmul itself)."""
        def weights():
            if self.output_layer is not None:
                layer = self.output_layer
                bias = layer.bias if layer.bias is not None else tf.zeros([layer.units])
                return tf.cast(layer.kernel, dtype), tf.cast(bias, tf.float32)
            return tf.cast(self.embedding.table, dtype), tf.cast(self.output_bias, tf.float32)

        kernel, bias = devices_lib.call_on(self.softmax_device, weights)
        tied = self.output_layer is None  # the table is [vocab, output_size]

        def project(outputs):
            return devices_lib.call_on(
                self.softmax_device,
                lambda o: tf.cast(tf.matmul(tf.cast(o, dtype), kernel, transpose_b=tied),
                                  tf.float32) + bias, outputs)

        return project

    def inference_inputs(self, dtype):
        """-> prepare(ids `[n]`) -> the stacked cell's prepared inputs for one search step,
        gathered from a table of every target token's (`_prepare` of the whole embedding
        table in `dtype`, computed here, once per search). With input feeding the table
        holds the embeddings' share of layer 0's input matmul and the attentional vector
        joins at each step as a late input, as in training. A beam search's steps then
        skip a [rows, embedding_size] x [embedding_size, 4 units] matmul each, for one
        [vocab, embedding_size] x [embedding_size, 4 units] matmul per search: worth it
        when rows x steps exceeds the vocabulary (beams, not greedy batches)."""
        every_token = tf.range(self.embedding.vocab_size)[None]  # [1, vocab]
        table = self._prepare(self.embedding(every_token, dtype), training=False)
        return lambda ids: tf.nest.map_structure(lambda t: tf.gather(t[0], ids), table)

    def step(self, ids, state, memory, rows=None, projection=None, inputs=None):
        """ids `[n]` int32 -> logits `[n, vocab]` float32, next state (inference).

        The logits are not normalised: nmt.decode.search normalises only what it ranks.
        rows: optional `[m]` int32; then the logits are those rows' only, `[m, vocab]`
        (the state still advances for all n). Search skips finished rows this way.
        projection: `inference_projection(dtype)` (None: the output projection in the
        compute dtype, its weights read at this step, as when training).
        inputs: `inference_inputs(dtype)` (None: embed and prepare the ids at this step).
        """
        if inputs is not None:
            x_t = inputs(ids)
        else:
            embedded = self.embedding(ids, memory.values.dtype)[:, None]  # [n, 1, embedding_size]
            x_t = tf.nest.map_structure(lambda p: p[:, 0], self._prepare(embedded, False))
        output, state = self._step(x_t, state, memory)
        if rows is not None:
            output = tf.gather(output, rows)
        logits = projection(output) if projection is not None else self.logits(output)
        return tf.cast(logits, tf.float32), state
