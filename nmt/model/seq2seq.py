"""Seq2Seq: wires embeddings, encoder, decoder and search; the training loss.

Data flows one way: source ids -> Encoder -> EncoderOutput -> AttentionDecoder
(teacher-forced for the loss, step by step for search) -> target ids.
"""
import collections

import tensorflow as tf

from nmt.data.vocab import BOS_ID, EOS_ID
from nmt.decode import search
from nmt.model import devices
from nmt.model.decoder import AttentionDecoder
from nmt.model.encoder import Encoder
from nmt.model.layers import Embedding

LossOutput = collections.namedtuple("LossOutput", ["loss_sum", "nll_sum", "num_tokens"])
# loss_sum: label-smoothed cross-entropy summed over target tokens (what is optimised);
# nll_sum: plain negative log-likelihood summed (for perplexity); num_tokens: float32.

Translation = collections.namedtuple("Translation", ["ids", "scores", "lengths"])
# ids [batch, num_hypotheses, time] int32 (no BOS, padded with EOS);
# scores, lengths [batch, num_hypotheses]


def smoothed_cross_entropy(logits, labels, label_smoothing):
    """Per-token losses `[...]` from logits `[..., vocab]` -> (smoothed, plain NLL).

    smoothed = (1 - eps) * NLL + eps * mean over the vocabulary of -log p(v)
    (Szegedy et al. 2016), computed without materialising log-softmax.

    One softmax pass (oneDNN's, fused and threaded on CPU) serves the loss and
    its gradient. The loss: NLL = -log p(target) (logsumexp = NLL + the target's
    logit), or max logit - log(max p) - target logit for a batch where some
    target's p underflows. The gradient, written by hand:
    (u_s + u_n) p - (u_n + (1 - eps) u_s) onehot - eps u_s / vocab for upstream
    u_s (smoothed) and u_n (NLL). TensorFlow's sparse softmax cross-entropy op
    takes 2.5x as long on the benchmark model's [1,100, 8,000] logits (forward
    and gradient), about a tenth of a training step.
    """
    vocab = tf.shape(logits)[-1]
    flat_logits = tf.reshape(logits, [-1, vocab])
    flat_labels = tf.reshape(labels, [-1])
    smoothed, nll = _flat_cross_entropy(flat_logits, flat_labels, float(label_smoothing))
    return tf.reshape(smoothed, tf.shape(labels)), tf.reshape(nll, tf.shape(labels))


_SMALLEST_SAFE_PROBABILITY = 1e-30  # float32 is normal down to 1.2e-38


def _flat_cross_entropy(logits, labels, eps):
    """logits [tokens, vocab] float32, labels [tokens] -> (smoothed, nll) [tokens]."""

    @tf.custom_gradient
    def losses(logits):
        probs = tf.nn.softmax(logits)
        target_probs = tf.gather(probs, labels, batch_dims=1)
        target_logits = tf.gather(logits, labels, batch_dims=1)

        def from_max():  # logsumexp = max logit - log(max p), max p >= 1 / vocab
            return (tf.reduce_max(logits, -1) - tf.math.log(tf.reduce_max(probs, -1))
                    - target_logits)

        # -log p(target) is exact to float32 rounding while p is a normal float; the
        # two [tokens, vocab] max passes run only for a batch with a smaller one.
        nll = tf.cond(tf.reduce_all(target_probs >= _SMALLEST_SAFE_PROBABILITY),
                      lambda: -tf.math.log(target_probs), from_max)
        log_normaliser = nll + target_logits
        smoothed = nll
        if eps:
            smoothed = (1.0 - eps) * nll + eps * (log_normaliser - tf.reduce_mean(logits, -1))

        def grad(d_smoothed, d_nll):
            d_smoothed = tf.zeros_like(nll) if d_smoothed is None else d_smoothed
            d_nll = tf.zeros_like(nll) if d_nll is None else d_nll
            d_logits = probs * (d_smoothed + d_nll)[:, None]
            if eps:
                vocab = tf.cast(tf.shape(logits)[-1], logits.dtype)
                d_logits -= (eps / vocab) * d_smoothed[:, None]
            rows = tf.stack([tf.range(tf.shape(labels)[0], dtype=labels.dtype), labels], 1)
            return tf.tensor_scatter_nd_sub(d_logits, rows, d_nll + (1.0 - eps) * d_smoothed)

        return (smoothed, nll), grad

    return losses(logits)


class Seq2Seq(tf.Module):
    """Attention encoder-decoder built from a ModelConfig.

    compute_dtype (tf.float32, tf.bfloat16, tf.float16; see nmt.model.precision): the dtype
    of the layers' activations and matmuls for one call; variables are float32 always,
    and the logits, loss and search scores come out float32.

    placement (optional, nmt.model.devices.model_placement builds it): {"encoder": [device per
    layer], "encoder_backward": [...], "decoder": [...], "embedding", "attention",
    "softmax": device}; a missing key or None leaves that part unplaced.
    """

    def __init__(self, config, src_vocab_size, tgt_vocab_size, placement=None, seed=0,
                 name="seq2seq"):
        super().__init__(name=name)
        self.config = config
        placement = placement or {}
        with self.name_scope:
            embedding_device = placement.get("embedding")
            self.src_embedding = Embedding(src_vocab_size, config.embedding_size,
                                           device=embedding_device, name="src_embedding")
            self.tgt_embedding = (self.src_embedding if config.share_embeddings else
                                  Embedding(tgt_vocab_size, config.embedding_size,
                                            device=embedding_device, name="tgt_embedding"))
            self.encoder = Encoder(config, self.src_embedding, devices=placement.get("encoder"),
                                   backward_devices=placement.get("encoder_backward"), seed=seed)
            per_layer = 2 * config.num_units if config.unit_type == "lstm" else config.num_units
            state_width = per_layer * config.num_encoder_layers
            self.decoder = AttentionDecoder(config, self.tgt_embedding, tgt_vocab_size,
                                            encoder_state_width=state_width,
                                            devices=placement.get("decoder"),
                                            attention_device=placement.get("attention"),
                                            softmax_device=placement.get("softmax"),
                                            seed=seed + 2 * config.num_encoder_layers)

    def encode(self, src, src_len, training=False, compute_dtype=tf.float32):
        """src `[batch, src_time]` int32, src_len `[batch]` -> EncoderOutput."""
        return self.encoder(src, src_len, training=training, dtype=compute_dtype)

    def logits(self, src, src_len, tgt_in, training=False, compute_dtype=tf.float32):
        """Teacher-forced logits `[batch, tgt_time, vocab]` float32."""
        encoded = self.encode(src, src_len, training, compute_dtype)
        outputs = self.decoder.teacher_forced(encoded, tgt_in, training=training)
        return tf.cast(self.decoder.logits(outputs, training=training), tf.float32)

    def loss(self, batch, label_smoothing=0.0, training=False, compute_dtype=tf.float32,
             projection_dtype=None, projection_gradient_dtype=None):
        """A data.Batch -> LossOutput summed over its valid target tokens (in float32).
        projection_dtype: the output projection's dtype if not compute_dtype (bf16_output);
        projection_gradient_dtype: its gradient matmuls' if not that (bf16 training).

        Only real target positions are projected onto the vocabulary: padding
        (about a fifth of a bucketed batch) costs no output-layer work.
        """
        encoded = self.encode(batch.src, batch.src_len, training, compute_dtype)
        outputs = self.decoder.teacher_forced(encoded, batch.tgt_in, training=training)
        with devices.scope(self.decoder.softmax_device):  # next to the logits
            positions = tf.where(tf.sequence_mask(batch.tgt_len, tf.shape(batch.tgt_out)[1]))
            real_outputs = tf.gather_nd(outputs, positions)  # [tokens, units]
            labels = tf.gather_nd(batch.tgt_out, positions)  # [tokens]
            logits = tf.cast(self.decoder.logits(real_outputs, training=training,
                                                 dtype=projection_dtype,
                                                 gradient_dtype=projection_gradient_dtype),
                             tf.float32)
            # the loss and its gradient [tokens, vocab] stay there (nmt.model.devices.call_on)
            smoothed, nll = devices.call_on(
                self.decoder.softmax_device,
                lambda logits, labels: smoothed_cross_entropy(logits, labels, label_smoothing),
                logits, labels)
            return LossOutput(tf.reduce_sum(smoothed), tf.reduce_sum(nll),
                              tf.cast(tf.shape(labels)[0], tf.float32))

    def alignments(self, src, src_len, tgt_in):
        """Attention weights `[batch, tgt_time, src_time]` for given target prefixes."""
        encoded = self.encode(src, src_len)
        _, weights = self.decoder.teacher_forced(encoded, tgt_in, return_alignments=True)
        return weights

    def search_inputs(self, src, src_len, max_length_ratio=None, compute_dtype=tf.float32,
                      projection_dtype=None, input_table=False):
        """-> (step_fn, initial_state, context) for nmt.decode.search; the context is the
        encoder memory, which the search tiles for its beam and drops rows of.

        With max_length_ratio, a hypothesis must end (EOS is forced) after
        ratio * source length + 10 steps, so each sentence stops on its own.
        projection_dtype: the output projection's dtype (None: compute_dtype).
        input_table: step from a table of every target token's prepared embedding
        (Decoder.inference_inputs), which pays for beam search.
        """
        memory, state = self.decoder.initial_state(
            self.encode(src, src_len, compute_dtype=compute_dtype))
        projection = self.decoder.inference_projection(projection_dtype or compute_dtype)
        inputs = self.decoder.inference_inputs(compute_dtype) if input_table else None
        if max_length_ratio is not None:
            state["limit"] = tf.cast(max_length_ratio * tf.cast(src_len, tf.float32), tf.int32) + 9
            state["time"] = tf.zeros_like(src_len)

        def step_fn(ids, state, rows=None, *, context):
            logits, new_state = self.decoder.step(ids, state, context, rows, projection,
                                                  inputs)
            if max_length_ratio is not None:
                new_state["limit"], new_state["time"] = state["limit"], state["time"] + 1
                must_end = state["time"] >= state["limit"]
                if rows is not None:
                    must_end = tf.gather(must_end, rows)
                must_end = must_end[:, None]  # [n or m, 1]
                eos_only = tf.where(tf.range(tf.shape(logits)[1]) == EOS_ID, 0.0, -1e9)
                logits = tf.cond(  # a full [n, vocab] pass only on steps that need it
                    tf.reduce_any(must_end),
                    lambda: tf.where(must_end, eos_only[None, :], logits),
                    lambda: logits)
            return logits, new_state

        return step_fn, state, memory

    def translate(self, src, src_len, beam_size=1, length_penalty=0.0, coverage_penalty=0.0,
                  num_hypotheses=1, max_length=200, max_length_ratio=None,
                  compute_dtype=tf.float32, projection_dtype=None, compact=True):
        """src `[batch, src_time]` -> Translation.

        max_length (a Python int) bounds the search loop; max_length_ratio, if
        given, ends each hypothesis after ratio * its source length + 10 steps.
        compact: drop finished sentences from the search batch (nmt.decode.search); pass
        False inside `tf.function(jit_compile=True)`.
        """
        batch_size = tf.shape(src)[0]
        greedy = uses_greedy_search(beam_size, num_hypotheses, coverage_penalty)
        step_fn, state, context = self.search_inputs(src, src_len, max_length_ratio,
                                                     compute_dtype, projection_dtype,
                                                     input_table=not greedy)
        if greedy:
            result = search.greedy_search(step_fn, state, batch_size, BOS_ID, EOS_ID, max_length,
                                          context=context, compact=compact)
        else:
            result = search.beam_search(step_fn, state, batch_size, BOS_ID, EOS_ID, beam_size,
                                        max_length, length_penalty=length_penalty,
                                        coverage_penalty=coverage_penalty,
                                        num_hypotheses=num_hypotheses, source_length=src_len,
                                        context=context, compact=compact,
                                        max_lengths=state.get("limit"))
        return Translation(*result)


def uses_greedy_search(beam_size, num_hypotheses, coverage_penalty):
    """True if `translate` runs greedy search for these settings, which then ignores the
    length penalty (so settings differing only in it give the same translations)."""
    return beam_size == 1 and num_hypotheses == 1 and not coverage_penalty


def build_model(config, src_vocab_size, tgt_vocab_size, placement=None, seed=0):
    """ModelConfig (validated) -> Seq2Seq with all variables created; `seed` seeds the
    dropout generators (their state is part of every checkpoint)."""
    config.validate()
    return Seq2Seq(config, src_vocab_size, tgt_vocab_size, placement=placement, seed=seed)
