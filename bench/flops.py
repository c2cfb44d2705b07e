"""FLOPs: this machine's peak matmul FLOP/s and the bench model's FLOPs per target piece
(the two halves of the benchmark's MFU; docs/benchmark.md derives the formula)."""
import statistics
import time

import tensorflow as tf


def matmul_flops_per_s(size, dtype, repeats):
    """FLOP/s (2 n^3 per matmul) of a [size, size] matmul in a tf.function, median of repeats."""
    a = tf.cast(tf.random.uniform([size, size]), dtype)
    b = tf.cast(tf.random.uniform([size, size]), dtype)
    matmul = tf.function(tf.linalg.matmul)
    for _ in range(2):
        matmul(a, b).numpy()  # trace, warm the thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def training_flops_per_target_token(model, vocab_size, mean_src, mean_tgt):
    """Matmul FLOPs of one training step per target piece (EOS excluded): 3 x forward.

    A sentence of S source and T target pieces costs, forward (2 FLOPs per multiply-add):
      S x (encoder input + recurrent matmuls, every layer and direction; attention keys W_a h_s)
    + (T + 1) decoder steps x (decoder LSTM input + recurrent; attention layer W_c [c; h];
                               output projection; score and context: 4 H FLOPs per source position)
    + dense bridge, once.
    Evaluated at the mean lengths (S = mean_src, T = mean_tgt), divided by T. LSTM
    encoder/decoder and Luong attention with the standard architecture only.
    """
    if model.unit_type != "lstm" or model.attention_architecture != "standard" or \
            model.attention not in ("dot", "luong", "scaled_luong"):
        return float("nan")
    E, H, V = model.embedding_size, model.num_units, vocab_size
    encoder = 0
    for i in range(model.num_encoder_layers):
        bi = model.encoder_type == "bi" or (model.encoder_type == "gnmt" and i == 0)
        units, inputs = (H // 2 if bi else H), (E if i == 0 else H)
        encoder += (2 if bi else 1) * 2 * (inputs + units) * 4 * units
    keys = 2 * H * H if model.attention != "dot" else 0
    decoder = sum(2 * ((E + H * model.input_feeding) if i == 0 else H) * 4 * H + 2 * H * 4 * H
                  for i in range(model.num_decoder_layers))
    per_step = decoder + 2 * (2 * H) * H + 2 * H * V + 4 * H * mean_src
    bridge = (2 * (2 * H * model.num_encoder_layers) * (2 * H * model.num_decoder_layers)
              if model.bridge == "dense" else 0)
    forward = mean_src * (encoder + keys) + (mean_tgt + 1) * per_step + bridge
    return 3 * forward / mean_tgt
