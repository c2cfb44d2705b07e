"""bench/bench_training.py: config variants for the side-by-side training benchmark."""

import pytest

from bench import bench_training
from nmt.config import Config, ConfigError, TrainConfig


def test_variants_parse_to_typed_overrides_train_section_by_default():
    assert bench_training.parse_variant("base") == {}
    assert bench_training.parse_variant("precision=bf16_output") == {
        "train.precision": "bf16_output"}
    assert bench_training.parse_variant("deterministic=true+model.dropout=0.2+data.batch_size=16") \
        == {"train.deterministic": True, "model.dropout": 0.2, "data.batch_size": 16}


@pytest.mark.parametrize("spec, message", [
    ("precision", "is not field=value"),
    ("no_such_field=1", "no config field train.no_such_field"),
    ("other.dropout=0.1", "no config field other.dropout"),
    ("deterministic=maybe", "is not a bool"),
    ("model.num_units=wide", "is not a int"),
])
def test_bad_variants_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        bench_training.parse_variant(spec)


def test_variant_applies_and_validates():
    base = Config(train=TrainConfig(num_train_steps=10))
    config = bench_training.apply_variant(base, bench_training.parse_variant(
        "precision=bf16_output+model.dropout=0.2"))
    assert config.train.precision == "bf16_output" and config.model.dropout == 0.2
    assert config.train.num_train_steps == 10  # the rest is the base's
    with pytest.raises(ConfigError, match="precision"):
        bench_training.apply_variant(base, bench_training.parse_variant("precision=fp8"))


class FakeTrainer:
    def __init__(self, deterministic, batches, jit_compile=False):
        self.config = Config(train=TrainConfig(num_train_steps=1, deterministic=deterministic,
                                               jit_compile=jit_compile))
        self.batches = batches

    def epoch_dataset(self, epoch):
        return iter(range(self.batches))


def test_a_per_shape_trace_or_compile_warms_up_for_a_whole_epoch():
    assert bench_training.warmup_steps(FakeTrainer(False, 453), 30) == 30
    assert bench_training.warmup_steps(FakeTrainer(True, 453), 30) == 453
    assert bench_training.warmup_steps(FakeTrainer(False, 453, jit_compile=True), 30) == 453
    assert bench_training.warmup_steps(FakeTrainer(True, 10), 30) == 30
