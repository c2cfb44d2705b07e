"""bench/bench_sizes.py and bench/peer_sizes.py: the size presets, the figures, the peer copy."""
import os

import pytest


from bench import bench_peers, bench_sizes, peer_sizes, step_matmuls
from nmt import presets
from nmt.model.seq2seq import build_model


def kernel_shapes(name):
    """[(variable path without the model's name, shape)] of size `name`'s kernels (cells
    of a stack share a path), 10-word vocabularies."""
    config = bench_sizes.size_config(name, base=presets.build("bench"))
    model = build_model(config.model, 10, 10)
    return config, [(v.name.split("/", 1)[1], tuple(v.shape))
                    for v in model.trainable_variables if "kernel" in v.name]


def test_sizes_share_the_bench_data_batch_and_training():
    bench = presets.build("bench")
    for name in bench_sizes.SIZES:
        config = bench_sizes.size_config(name, base=bench)
        assert config.data == bench.data and config.train == bench.train


@pytest.mark.parametrize("name, units, encoder, decoder", [
    ("bench", 256, 1, 1), ("w512", 512, 2, 2), ("w1024", 1024, 2, 2)])
def test_standard_sizes_build_their_width_and_depth(name, units, encoder, decoder):
    config, shapes = kernel_shapes(name)
    assert config.model.encoder_type == "bi" and config.model.embedding_size == units
    encoder_inputs = sorted(s for p, s in shapes
                            if p.startswith("encoder/") and "input_kernel" in p)
    # Every layer bidirectional: two cells of units / 2, the first reading embeddings.
    assert len(encoder_inputs) == 2 * encoder
    assert all(s == (units, 4 * units // 2) for s in encoder_inputs)
    recurrent = [s for p, s in shapes if p.startswith("decoder/") and "recurrent" in p]
    assert recurrent == [(units, 4 * units)] * decoder


def test_gnmt4_is_the_gnmt_layout():
    config, shapes = kernel_shapes("gnmt4")
    model = config.model
    assert (model.num_units, model.num_encoder_layers, model.num_decoder_layers) == (1024, 4, 4)
    assert (model.attention, model.attention_architecture) == ("normed_bahdanau", "gnmt")
    encoder = sorted(s for p, s in shapes if p.startswith("encoder/") and "input" in p)
    assert encoder == [(1024, 2048)] * 2 + [(1024, 4096)] * 3  # bi bottom, 3 uni above
    decoder = sorted(s for p, s in shapes if p.startswith("decoder/") and "input" in p)
    # bottom: embeddings + fed context; above: the layer below + the context
    assert decoder == [(2048, 4096)] * 4
    assert not any("attention_layer" in p or "bridge" in p for p, _ in shapes)


def test_unknown_size_is_named():
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        bench_sizes.size_config("huge", base=presets.build("bench"))


def test_window_figures_are_medians_and_mfu_is_flops_over_peak():
    windows = [(10, 5.0, 1000, 1e11), (9, 5.0, 900, 1e11), (12, 5.0, 1300, 2e11)]
    figures = bench_sizes.window_figures(windows, batch_size=64, mean_tgt=15.0,
                                         flops_per_piece=1e8)
    assert figures["steps_per_s"] == 2.0
    assert figures["tokens_per_s"] == 2.0 * 64 * 15.0
    assert figures["measured_tokens_per_s"] == 200.0
    # each window against its own round's peak: 0.2, 0.18 and 0.13
    assert figures["mfu"] == pytest.approx(1e8 * 180.0 / 1e11)


def test_step_matmuls_name_the_cells_they_do_not_cover():
    class Model:
        unit_type = "rnn"
    with pytest.raises(ValueError, match="unit_type=rnn"):
        step_matmuls.check_supported(Model())


def fake_harness(tmp_path, monkeypatch):
    harness = tmp_path / "harness"
    (harness / "onmt").mkdir(parents=True)
    for script in ("train.sh", "translate.sh", "prepare.sh"):
        (harness / script).write_text("exit 0\n")
    (harness / "onmt" / "config.yml").write_text(
        "train:\n  save_checkpoints_steps: 100\n  save_summary_steps: 50\n")
    monkeypatch.setenv("NMT_PEERS_DIR", str(harness))


def test_peer_harness_copy_has_the_size_and_logs_often(tmp_path, monkeypatch):
    fake_harness(tmp_path, monkeypatch)
    dest = peer_sizes.write_harness(str(tmp_path / "w512"), 512, 2, 2, log_steps=5,
                                    checkpoint_steps=20)
    model = open(os.path.join(dest, "onmt", "model.py")).read()
    assert "num_layers=2, num_units=256, bidirectional=True" in model
    assert "num_layers=2, num_units=512, bridge_class" in model
    assert "embedding_size=512" in model
    config = open(os.path.join(dest, "onmt", "config.yml")).read()
    assert "save_summary_steps: 5" in config and "save_checkpoints_steps: 20" in config
    assert os.path.exists(os.path.join(dest, "train.sh"))
    compile(model, "model.py", "exec")


def test_peer_intervals_skip_the_first_third():
    log = "\n".join([
        "2026-01-01 10:00:00.000000: I runner.py:310] Step = 5 ; steps/s = 0.1",
        "2026-01-01 10:00:30.000000: I runner.py:310] Step = 10 ; steps/s = 0.2",
        "some other line",
        "2026-01-01 10:00:40.000000: I runner.py:310] Step = 15 ; steps/s = 0.5",
        "2026-01-01 10:00:50.000000: I runner.py:310] Step = 20 ; steps/s = 0.5",
        "2026-01-01 10:00:52.000000: I runner.py:310] Step = 25 ; steps/s = 2.5",
        "2026-01-01 10:01:02.000000: I runner.py:310] Step = 30 ; steps/s = 0.5"])
    assert peer_sizes.interval_rates(log) == [0.5, 2.5, 0.5]


def test_ratios_set_our_fp32_training_against_the_peer():
    row = {"fp32": {"tokens_per_s": 3000.0}, "beam5_sentences_per_s": 30.0,
           "onmt": {"train_tokens_per_s": 1500.0, "beam5_sentences_per_s": 10.0}}
    assert bench_sizes.ratio(row, "train_tokens_per_s") == "2.00"
    assert bench_sizes.ratio(row, "beam5_sentences_per_s") == "3.00"
    assert bench_sizes.ratio({"fp32": {"tokens_per_s": 1.0}}, "train_tokens_per_s") == "n/a"


def test_peer_training_reads_the_rate_from_the_copy_it_runs(tmp_path, monkeypatch):
    harness, peers = tmp_path / "harness", tmp_path / "peers"
    (peers / "data").mkdir(parents=True)
    (peers / "data" / "mean_target_pieces.txt").write_text("15.0")
    harness.mkdir()
    # One step every 0.5 s: 2 steps/s once the first third of the lines is left out.
    lines = [f"2026-12-07 10:00:{s // 2:02d}.{5 * (s % 2)}00000: I runner.py:1] Step = {s} ; x"
             for s in range(1, 13)]
    log = peers / "run-onmt" / "train.log"
    (harness / "train.sh").write_text(f"mkdir -p {log.parent}\ncat > {log} <<'END'\n"
                                      + "\n".join(lines) + "\nEND\n")
    monkeypatch.setattr(bench_peers, "PEERS_DIR", str(peers))
    figures = peer_sizes.train(str(harness), 1)
    assert figures["train_steps_per_s"] == pytest.approx(2.0)
    assert figures["train_tokens_per_s"] == pytest.approx(2.0 * 64 * 15.0)
