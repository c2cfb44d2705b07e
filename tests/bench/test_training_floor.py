"""bench/training_floor.py: the step's matmul list and how the floor adds it up."""
import collections

import pytest

from bench import flops, training_floor
from nmt import config as config_lib

ARCHITECTURES = [
    dict(encoder_type="bi", num_encoder_layers=1, num_decoder_layers=1),
    dict(encoder_type="uni", num_encoder_layers=2, num_decoder_layers=2, attention="dot"),
    dict(encoder_type="gnmt", num_encoder_layers=3, num_decoder_layers=2, bridge="zero"),
    dict(encoder_type="bi", num_encoder_layers=2, num_decoder_layers=1, input_feeding=False),
]


@pytest.mark.parametrize("overrides", ARCHITECTURES)
def test_forward_matmuls_are_the_benchmark_formula_and_gradients_twice_that(overrides):
    model = config_lib.ModelConfig(num_units=32, embedding_size=16, **overrides)
    matmuls = training_floor.step_matmuls(model, 120, batch=1, src_time=11, tgt_time=14)
    forward = sum(training_floor.flops(m) for m in matmuls if m.role == "forward")
    total = sum(training_floor.flops(m) for m in matmuls)
    # The formula counts tgt_time - 1 pieces plus EOS: 14 decoder steps.
    per_piece = flops.training_flops_per_target_token(model, 120, 11.0, 13.0)
    assert forward == pytest.approx(per_piece * 13 / 3)
    assert total == 3 * forward
    assert {m.role for m in matmuls} == {"forward", "dX", "dW"}


@pytest.mark.slow
def test_every_listed_matmul_has_shapes_that_multiply():
    model = config_lib.ModelConfig(num_units=8, embedding_size=4, encoder_type="bi")
    for matmul in training_floor.step_matmuls(model, 10, batch=3, src_time=5, tgt_time=4):
        assert training_floor.seconds_per_matmul(*training_floor.shape_key(matmul), 1) > 0


def test_floor_adds_each_shape_time_once_per_use_over_the_batches(monkeypatch):
    model = config_lib.ModelConfig(num_units=16, embedding_size=8, encoder_type="bi")
    rate = 1e11  # a machine that multiplies at 100 GFLOP/s whatever the shape
    timed = []

    def fake_seconds(batch, m, k, n, transpose_a, transpose_b, repeats):
        timed.append((batch, m, k, n, transpose_a, transpose_b))
        return 2 * batch * m * k * n / rate

    monkeypatch.setattr(training_floor, "seconds_per_matmul", fake_seconds)
    Shape = collections.namedtuple("Shape", "shape")
    Batch = collections.namedtuple("Batch", "src tgt_out src_len tgt_len")
    batches = [Batch(Shape((4, 6)), Shape((4, 5)), [6, 6, 2, 3], [5, 5, 5, 1]),
               Batch(Shape((4, 9)), Shape((4, 7)), [9, 9, 9, 9], [7, 7, 7, 7])]
    trainer = collections.namedtuple("Trainer", "config tgt_vocab")(
        config_lib.Config(model=model), collections.namedtuple("Vocab", "size")(50))
    per_part, per_kind, gflop = training_floor.floor(trainer, batches, repeats=1)
    expected_flops = sum(training_floor.flops(m) for b in ((4, 6, 5, 17, 16), (4, 9, 7, 36, 28))
                         for m in training_floor.step_matmuls(model, 50, *b)) / 2
    assert sum(per_kind.values()) == pytest.approx(1000 * expected_flops / rate)
    assert sum(per_part.values()) == pytest.approx(sum(per_kind.values()))
    assert sum(gflop.values()) == pytest.approx(expected_flops / 1e9)
    assert len(timed) == len(set(timed))  # each distinct shape timed once
    assert gflop["chain"] < gflop["bulk"]


def test_padding_costs_nothing_when_real_positions_are_given():
    model = config_lib.ModelConfig(num_units=16, embedding_size=8, encoder_type="bi")

    def total(*args):
        return sum(training_floor.flops(m) for m in training_floor.step_matmuls(model, 50, *args))

    def projection(*args):
        return sum(training_floor.flops(m) for m in training_floor.step_matmuls(model, 50, *args)
                   if m.part == "output projection")

    assert total(4, 6, 5, 24, 20) == pytest.approx(total(4, 6, 5))  # no padding
    assert total(4, 6, 5, 12, 10) < total(4, 6, 5)
    assert projection(4, 6, 5, 12, 10) == 3 * 2 * 10 * 16 * 50  # real target positions only
