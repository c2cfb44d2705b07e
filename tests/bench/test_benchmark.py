"""bench/flops.py, bench/benchmark_report.py and bench/bench_peers.py: the FLOPs formula, the
report's peer ratios, the peer harness parsing."""
import os

import pytest

from bench import bench_peers, benchmark_report, flops
from nmt import config as config_lib
from nmt.model.seq2seq import build_model


def flops_from_kernels(model_config, src_vocab, tgt_vocab, mean_src, mean_tgt):
    """An independent count: every weight matrix is one multiply-add per entry per use."""
    model = build_model(model_config, src_vocab, tgt_vocab)
    per_source = per_step = once = 0
    for v in model.trainable_variables:
        if "kernel" not in v.name:
            continue
        size = int(v.shape.num_elements())
        if "/encoder/" in v.name or "memory_layer" in v.name:
            per_source += size
        elif "/bridge/" in v.name:
            once += size
        else:
            per_step += size
    H = model_config.num_units
    # Luong: scores and context are matmuls; Bahdanau: the context only (its score is a sum).
    attention = 4 if model_config.attention in config_lib.LUONG_ATTENTIONS else 2
    forward = (2 * (per_source * mean_src + per_step * (mean_tgt + 1) + once)
               + attention * H * mean_src * (mean_tgt + 1))
    return 3 * forward / mean_tgt


@pytest.mark.parametrize("overrides", [
    dict(encoder_type="bi", num_encoder_layers=1, num_decoder_layers=1),
    dict(encoder_type="uni", num_encoder_layers=2, num_decoder_layers=2, attention="dot"),
    dict(encoder_type="gnmt", num_encoder_layers=3, num_decoder_layers=2, bridge="zero"),
    dict(encoder_type="bi", num_encoder_layers=2, num_decoder_layers=1, input_feeding=False),
    dict(encoder_type="gnmt", num_encoder_layers=4, num_decoder_layers=4, residual=True,
         attention="normed_bahdanau", attention_architecture="gnmt", bridge="copy"),
    dict(unit_type="gru", encoder_type="bi", num_encoder_layers=2, num_decoder_layers=2),
    dict(encoder_type="uni", attention="bahdanau", attention_layer_size=24),
])
def test_flops_formula_counts_every_weight_matrix(overrides):
    model_config = config_lib.ModelConfig(num_units=32, embedding_size=16, **overrides)
    expected = flops_from_kernels(model_config, 90, 120, mean_src=11.0, mean_tgt=13.0)
    got = flops.training_flops_per_target_token(model_config, 120, 11.0, 13.0)
    assert got == pytest.approx(expected)


def test_flops_formula_matches_a_hand_count():
    """4 units, embeddings of 2, 5 target words, uni encoder, 1+1 layers, Luong
    attention, dense bridge, input feeding; 3 source pieces, 2 target pieces + EOS.
    Multiply-adds: encoder 3 x (2x16 + 4x16) = 288, keys 3 x 4x4 = 48, bridge 8x8 = 64;
    3 decoder steps x (2x16 + 4x16 fed + 4x16 recurrent + 4x3 scores + 3x4 context
    + 8x4 attention layer + 4x5 output) = 3 x 236 = 708. 1108 x 2 FLOPs x 3 (forward
    and two gradients) over 2 target pieces."""
    model = config_lib.ModelConfig(num_units=4, embedding_size=2, encoder_type="uni",
                                   num_encoder_layers=1, num_decoder_layers=1)
    assert flops.training_flops_per_target_token(model, 5, 3.0, 2.0) == 1108 * 2 * 3 / 2


TRAIN_OUT = "onmt: steps 310->1020 in 201 s: 3.532 steps/s, 226 sentences/s, 3436 target pieces/s\n"
TRANSLATE_OUT = (
    "onmt beam5: 20 lines, 1.609531 s after loading (12.4 sentences/s), whole command 0:30.14, "
    "peak RSS 558 MiB, BLEU 0.3\n"
    "onmt greedy: 20 lines, 1.395066 s after loading (14.3 sentences/s), whole command 1:02:03, "
    "peak RSS 530 MiB, BLEU 0.2\n")


def test_parse_train():
    figures = bench_peers.parse_train("noise\n" + TRAIN_OUT)
    assert figures == {"train_steps_per_s": 3.532, "train_sentences_per_s": 226.0,
                       "train_tokens_per_s": 3436.0}


def test_parse_translate_reads_both_modes():
    figures = bench_peers.parse_translate(TRANSLATE_OUT)
    assert figures["beam5_s"] == pytest.approx(1.609531)
    assert figures["beam5_sentences_per_s"] == pytest.approx(12.4)
    assert figures["beam5_command_s"] == pytest.approx(30.14)
    assert figures["greedy_command_s"] == pytest.approx(3723.0)
    assert figures["greedy_command_rss_mb"] == 530.0
    assert figures["beam5_bleu"] == pytest.approx(0.3)


@pytest.mark.parametrize("parse", [bench_peers.parse_train, bench_peers.parse_translate])
def test_parse_failures_say_what_was_printed(parse):
    with pytest.raises(bench_peers.PeerError, match="too few progress lines"):
        parse("onmt: too few progress lines in run/train.log")


def test_run_peer_on_a_fake_harness(tmp_path, monkeypatch):
    harness, peers = tmp_path / "harness", tmp_path / "peers"
    (peers / "run-onmt").mkdir(parents=True)
    harness.mkdir()
    (harness / "train.sh").write_text(f"printf '%s' '{TRAIN_OUT}'\n")
    (harness / "translate.sh").write_text(
        f"printf 'a b c\\nd\\n' > {peers}/run-onmt/test.beam5.sp\n"
        f"printf '%s' '{TRANSLATE_OUT}'\n")
    monkeypatch.setattr(bench_peers, "PEERS_DIR", str(peers))
    figures = bench_peers.run_peer(str(harness), "onmt", 1)
    assert figures["train_tokens_per_s"] == 3436.0
    assert figures["beam5_tokens_per_s"] == pytest.approx(4 / 1.609531)
    assert "greedy_tokens_per_s" not in figures  # no hypothesis file
    assert "onmt greedy" in figures["raw"] and "onmt: steps" in figures["raw"]


def test_train_peer_runs_only_the_training(tmp_path):
    (tmp_path / "train.sh").write_text(f"printf '%s' '{TRAIN_OUT}'\n")
    (tmp_path / "translate.sh").write_text("exit 7\n")  # would fail if it ran
    figures = bench_peers.train_peer(str(tmp_path), "onmt", 1)
    assert figures["train_steps_per_s"] == 3.532 and figures["train_tokens_per_s"] == 3436.0


def test_failing_harness_raises(tmp_path):
    (tmp_path / "train.sh").write_text("echo boom >&2; exit 3\n")
    with pytest.raises(bench_peers.PeerError, match="boom"):
        bench_peers.run_peer(str(tmp_path), "joey", 1)


def test_table_has_ratio_columns_for_each_peer():
    results = {"train_tokens_per_s": 2000.0, "beam5_sentences_per_s": 50.0,
               "peers": {"onmt": {"train_tokens_per_s": 4000.0}, "joey": {"error": "x"}},
               "ratios": {"onmt": {"train_tokens_per_s": 0.5}}}
    lines = benchmark_report.main_table(results)
    assert lines[0] == "| figure | nmt | onmt | nmt/onmt |"
    assert any("| 2,000 | 4,000 | 0.500 |" in line for line in lines)
    assert any("| 50 | n/a | n/a |" in line for line in lines)


def test_bf16_training_is_compared_with_the_peers_fp32_figure():
    ours = {"train_tokens_per_s": 3000.0, "train_bf16_tokens_per_s": 4500.0, "beam5_bleu": 30.0}
    ratios = benchmark_report.peer_ratios(ours, {"train_tokens_per_s": 1500.0, "beam5_bleu": 0.0})
    assert ratios == {"train_tokens_per_s": 2.0, "train_bf16_tokens_per_s": 3.0}


def test_bf16_decoding_is_compared_with_the_peers_fp32_decoding():
    ours = {"beam5_sentences_per_s": 100.0, "beam5_bf16_sentences_per_s": 150.0,
            "greedy_bf16_command_s": 4.0}
    ratios = benchmark_report.peer_ratios(
        ours, {"beam5_sentences_per_s": 50.0, "greedy_command_s": 8.0})
    assert ratios == {"beam5_sentences_per_s": 2.0, "beam5_bf16_sentences_per_s": 3.0,
                      "greedy_bf16_command_s": 0.5}


def test_the_peer_harness_is_the_flag_else_the_environment_else_beside_the_checkout(
        monkeypatch, tmp_path):
    monkeypatch.delenv("NMT_PEERS_DIR", raising=False)
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(bench_peers.__file__)))
    assert bench_peers.harness_dir() == os.path.normpath(
        os.path.join(checkout, "..", "shared", "bench", "peers"))
    monkeypatch.setenv("NMT_PEERS_DIR", str(tmp_path / "env"))
    assert bench_peers.harness_dir() == str(tmp_path / "env")
    assert bench_peers.harness_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")


def test_a_folder_without_the_harness_fails_in_one_line_naming_the_flag(tmp_path):
    with pytest.raises(bench_peers.PeerError, match=r"^--peers_dir=.*: no train\.sh there"):
        bench_peers.train_peer(str(tmp_path), "onmt", 1)
