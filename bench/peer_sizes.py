"""OpenNMT-tf at other model sizes, through a copy of the peer harness.

The harness (bench/bench_peers.py) trains OpenNMT-tf on the bench model: 256 units, one
bidirectional encoder layer, one decoder layer. For another width and depth this copies
the harness's scripts to a scratch dir, writes there an onmt/model.py of that size and
a config that logs progress every few steps (so that a short run of a big model still
gives many intervals) and saves a checkpoint early (so that it can translate), and runs
its train.sh. Every other setting is the harness's: data, batch, optimizer, dropout.

    peer_sizes.write_harness(DIR, units=512, encoder_layers=2, decoder_layers=2)
    peer_sizes.train(DIR, seconds=90)     # -> median target pieces/s over logged intervals
    peer_sizes.translate(DIR, lines=128)  # -> beam-5 seconds after loading, output pieces
"""
import datetime
import os
import re
import shutil
import statistics
import subprocess

from bench import bench_peers

MODEL = '''# OpenNMT-tf custom model: the harness's attention LSTM at {units} units,
# {encoder_layers} bidirectional encoder and {decoder_layers} decoder layers.
import tensorflow as tf
import tensorflow_addons as tfa
import opennmt
from opennmt import inputters, encoders, decoders, layers


def model():
    return opennmt.models.SequenceToSequence(
        source_inputter=inputters.WordEmbedder(embedding_size={units}, dropout=0.3),
        target_inputter=inputters.WordEmbedder(embedding_size={units}, dropout=0.3),
        encoder=encoders.RNNEncoder(
            num_layers={encoder_layers}, num_units={half}, bidirectional=True,
            residual_connections=False, dropout=0.3, reducer=layers.ConcatReducer(),
            cell_class=tf.keras.layers.LSTMCell),
        decoder=decoders.AttentionalRNNDecoder(
            num_layers={decoder_layers}, num_units={units}, bridge_class=layers.CopyBridge,
            attention_mechanism_class=tfa.seq2seq.LuongAttention,
            attention_layer_activation=tf.math.tanh, cell_class=tf.keras.layers.LSTMCell,
            dropout=0.3, residual_connections=False))
'''

STEP_LINE = re.compile(r"^(\S+ \S+): I runner.py:\d+\] Step = (\d+) ;")
PREDICTION_TIME = re.compile(r"Total prediction time \(s\): ([\d.]+)")


def write_harness(dest, units, encoder_layers, decoder_layers, log_steps=2,
                  checkpoint_steps=20, peers_dir=None):
    """A copy of the harness (bench_peers.harness_dir(peers_dir)) under dest whose
    OpenNMT-tf model has this size -> dest."""
    harness = bench_peers.harness_dir(peers_dir)
    if units % 2:
        raise ValueError(f"a bidirectional encoder splits the units in two (got {units})")
    os.makedirs(os.path.join(dest, "onmt"), exist_ok=True)
    for script in ("train.sh", "translate.sh", "prepare.sh"):
        shutil.copy(os.path.join(harness, script), dest)
    with open(os.path.join(harness, "onmt", "config.yml")) as f:
        config = f.read()
    config = re.sub(r"save_summary_steps: \d+", f"save_summary_steps: {log_steps}", config)
    config = re.sub(r"save_checkpoints_steps: \d+",
                    f"save_checkpoints_steps: {checkpoint_steps}", config)
    with open(os.path.join(dest, "onmt", "config.yml"), "w") as f:
        f.write(config)
    with open(os.path.join(dest, "onmt", "model.py"), "w") as f:
        f.write(MODEL.format(units=units, half=units // 2, encoder_layers=encoder_layers,
                             decoder_layers=decoder_layers))
    return dest


def interval_rates(log_text):
    """OpenNMT-tf's training log -> steps/s of each logged interval, the first third of
    the lines (warm-up, tracing) left out, as the harness does."""
    rows = [(datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp(),
             int(m.group(2))) for m in map(STEP_LINE.match, log_text.splitlines()) if m]
    rows = rows[len(rows) // 3:]
    return [(s1 - s0) / (t1 - t0) for (t0, s0), (t1, s1) in zip(rows, rows[1:]) if t1 > t0]


def run_dir():
    return os.path.join(bench_peers.PEERS_DIR, "run-onmt")


def train(harness, seconds):
    """Trains OpenNMT-tf for `seconds` with the harness copy -> {train_steps_per_s,
    train_tokens_per_s (harness definition), train_intervals}, medians over intervals."""
    bench_peers.ensure_prepared(harness)
    run = subprocess.run(["bash", os.path.join(harness, "train.sh"), "onmt", str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 600)
    log_path = os.path.join(run_dir(), "train.log")
    with open(log_path) as f:
        rates = interval_rates(f.read())
    if len(rates) < 3:
        raise bench_peers.PeerError(f"{log_path}: {len(rates)} timed intervals (need 3); "
                                    f"train.sh said {(run.stdout + run.stderr).strip()[-300:]!r}")
    steps_per_s = statistics.median(rates)
    mean_tgt = bench_peers.ensure_prepared(harness)
    return {"train_steps_per_s": steps_per_s, "train_tokens_per_s": steps_per_s * 64 * mean_tgt,
            "train_intervals": len(rates)}


def translate(harness, lines):
    """Beam 5 (the harness config) over the first `lines` test sentences with the model
    train() left -> (seconds after loading, output pieces)."""
    data = os.path.join(bench_peers.PEERS_DIR, "data")
    subset = os.path.join(run_dir(), f"test.head{lines}.sp.en")
    with open(os.path.join(data, "test_2016_flickr.sp.en")) as f, open(subset, "w") as g:
        g.writelines(line for _, line in zip(range(lines), f))
    output = os.path.join(run_dir(), "test.head.beam5.sp")
    argv = [os.path.join(bench_peers.PEERS_DIR, "onmt", "bin", "onmt-main"), "--model",
            os.path.join(harness, "onmt", "model.py"), "--config",
            os.path.join(run_dir(), "config.yml"), "infer", "--features_file", subset,
            "--predictions_file", output, "--log_prediction_time"]
    run = subprocess.run(argv, capture_output=True, text=True, cwd=run_dir(), timeout=1800)
    match = PREDICTION_TIME.search(run.stdout + run.stderr)
    if run.returncode or not match:
        raise bench_peers.PeerError(f"onmt-main infer failed ({run.returncode}): "
                                    f"{(run.stderr or run.stdout).strip()[-300:]}")
    return float(match.group(1)), bench_peers.output_pieces(output)
