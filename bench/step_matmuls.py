"""The matmuls of one training step, listed from a model config and a batch's shape.

Every implementation of a model multiplies the same matrices: each forward matmul and
its two gradient matmuls (with respect to its input and to its weight). This list is
the model's FLOP count (tools/benchmark.py's MFU) and the training floor's work
(tools/training_floor.py). It covers LSTM and GRU cells, uni, bi and gnmt encoders, the
standard and gnmt attention architectures, Luong, dot and Bahdanau scores.

Per-step matmuls ("chain": recurrent kernels, the decoder's fed-back inputs, the
attention's scores, context and output layer) have a row per sentence and run once per
time step; the rest ("bulk": input projections over the whole sequence, attention keys,
bridge, output projection, and the weight gradients of the chain) run once per batch.
Elementwise work (gates, softmax, Bahdanau's tanh and sum over v) is not counted.
"""
import collections

from nmt.config import LUONG_ATTENTIONS

Matmul = collections.namedtuple(
    "Matmul", ("part", "role", "kind", "batch", "m", "k", "n", "transpose_a", "transpose_b",
               "count"))
Matmul.__doc__ = """`count` matmuls of [batch,] m x k by k x n (transposed operands are
stored the other way round); role "forward", "dX" or "dW"; kind "chain" (once per time
step) or "bulk" (once per batch)."""

GATES = {"lstm": 4, "gru": 3}  # fused gate blocks of a cell's input and recurrent kernels


def flops(matmul):
    return 2 * matmul.batch * matmul.m * matmul.k * matmul.n * matmul.count


def shape_key(matmul):
    return matmul[3:9]


def with_gradients(part, kind, batch, m, k, n, count=1):
    """x [m, k] @ w [k, n] (`count` times) and its gradients: dx = g @ w^T (same kind),
    and dw = x^T @ g, bulk: a chain's weight gradient summed over its steps is one matmul
    over all of them."""
    return [Matmul(part, "forward", kind, batch, m, k, n, False, False, count),
            Matmul(part, "dX", kind, batch, m, n, k, False, True, count),
            Matmul(part, "dW", "bulk", batch, k, round(m * count), n, True, False, 1)]


def check_supported(model):
    """A one-line error for a config the list does not cover."""
    if model.unit_type not in GATES:
        raise ValueError(f"step_matmuls: unit_type={model.unit_type} is not covered "
                         f"(choose one of {', '.join(GATES)})")


def encoder_matmuls(model, batch, src_positions):
    """Each encoder layer: its input projection over the sequence and its recurrent chain."""
    gates, H, E = GATES[model.unit_type], model.num_units, model.embedding_size
    out = []
    for i in range(model.num_encoder_layers):
        bi = model.encoder_type == "bi" or (model.encoder_type == "gnmt" and i == 0)
        units, inputs, directions = (H // 2 if bi else H), (E if i == 0 else H), (2 if bi else 1)
        out += with_gradients(f"encoder {i} inputs", "bulk", 1, src_positions, inputs,
                              directions * gates * units)  # both directions in one matmul
        for d in range(directions):
            out += with_gradients(f"encoder {i}.{d} recurrent", "chain", 1, batch, units,
                                  gates * units, count=src_positions / batch)
    return out


def decoder_matmuls(model, batch, tgt_positions):
    """Each decoder layer per step (recurrent, fed-back or lower inputs), and layer 0's
    target embeddings over the sequence. gnmt: the layers above 0 also read the context."""
    gates, H, E = GATES[model.unit_type], model.num_units, model.embedding_size
    gnmt = model.attention_architecture == "gnmt"
    fed = (H if gnmt else model.output_size) if model.input_feeding else 0
    out = with_gradients("decoder 0 embeddings", "bulk", 1, tgt_positions, E, gates * H)
    for i in range(model.num_decoder_layers):
        step_inputs = H + (fed if i == 0 else H * (2 if gnmt else 1))
        out += with_gradients(f"decoder {i} step", "chain", 1, batch, step_inputs, gates * H,
                              count=tgt_positions / batch)
    return out


def attention_matmuls(model, batch, src_time, src_positions, tgt_positions):
    """Keys over the source; per step the query layer (Bahdanau), scores (Luong), the
    context and the attentional layer (standard architecture)."""
    H, steps = model.num_units, tgt_positions / batch
    out = []
    if model.attention != "dot":
        out += with_gradients("attention keys", "bulk", 1, src_positions, H, H)
    if model.attention in LUONG_ATTENTIONS:
        out += with_gradients("attention scores", "chain", batch, 1, H, src_time, count=steps)
    else:  # v . tanh(keys + U q): the query layer is a matmul, the score is elementwise
        out += with_gradients("attention query", "chain", 1, batch, H, H, count=steps)
    out += with_gradients("attention context", "chain", batch, 1, src_time, H, count=steps)
    if model.attention_architecture == "standard":
        out += with_gradients("attention layer", "chain", 1, batch, 2 * H, model.output_size,
                              count=steps)
    return out


def step_matmuls(model, vocab_size, batch, src_time, tgt_time, src_positions=None,
                 tgt_positions=None):
    """The matmuls of one training step on a [batch, src_time] -> [batch, tgt_time] batch
    (tgt_time: decoder steps, EOS included), forward and backward.

    src_positions, tgt_positions: the batch's real (non-pad) positions, EOS included. When
    given, padding costs nothing: matmuls over whole sequences take only real positions,
    and each per-step matmul runs positions / batch times (a batch that shrinks as its
    sentences end, at the full batch's speed); attention scores stay [batch, src_time]."""
    check_supported(model)
    src_positions = src_positions or batch * src_time
    tgt_positions = tgt_positions or batch * tgt_time
    out = encoder_matmuls(model, batch, src_positions)
    if model.bridge == "dense":
        state = 2 if model.unit_type == "lstm" else 1  # (c, h) or h per layer
        out += with_gradients("bridge", "bulk", 1, batch,
                              state * model.num_units * model.num_encoder_layers,
                              state * model.num_units * model.num_decoder_layers)
    out += attention_matmuls(model, batch, src_time, src_positions, tgt_positions)
    out += decoder_matmuls(model, batch, tgt_positions)
    out += with_gradients("output projection", "bulk", 1, tgt_positions,
                          model.num_units if model.attention_architecture == "gnmt"
                          else model.output_size, vocab_size)
    return out


def training_flops_per_target_token(model, vocab_size, mean_src, mean_tgt):
    """Matmul FLOPs of one training step (forward and both gradients) per target piece,
    EOS excluded, for a sentence of the mean lengths: mean_tgt + 1 decoder steps."""
    matmuls = step_matmuls(model, vocab_size, 1, mean_src, mean_tgt + 1)
    return sum(flops(m) for m in matmuls) / mean_tgt
