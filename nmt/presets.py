"""Named setups: each is a set of overrides of nmt.config fields, free of any corpus.

    nmt-train --preset=best --train_prefix=data/train --dev_prefix=data/dev ...

Precedence when a run's config is built: the dataclass defaults < the preset <
a --config JSON file < flags. The figures quoted are those of the shipped
Multi30k (recipes/multi30k.py); docs/experiments.md has the measurements.
"""
from nmt import config as config_lib
from nmt.config import ConfigError

# A model of 256 units, one bidirectional encoder layer and one decoder layer: the
# shape every preset but `tiny` shares.
_SMALL = {"model.num_units": 256, "model.embedding_size": 256, "model.num_encoder_layers": 1,
          "model.num_decoder_layers": 1, "model.dropout": 0.3, "data.batch_size": 64}

# The levers measured on val: tied embeddings, lr 0.002 with 500 warm-up steps and
# inverse square root decay, label smoothing 0.2.
_QUALITY = {**_SMALL, "model.share_embeddings": True, "model.tie_output_embeddings": True,
            "train.label_smoothing": 0.2, "train.learning_rate": 0.002,
            "train.warmup_steps": 500, "train.decay": "rsqrt", "train.num_train_steps": 0,
            "train.steps_per_eval": 2000, "train.steps_per_checkpoint": 1000}

PRESETS = {
    # A smoke run: a small model for a few hundred steps, minutes on a CPU.
    "tiny": {"model.num_units": 128, "model.embedding_size": 128, "model.num_encoder_layers": 1,
             "model.num_decoder_layers": 1, "data.vocab_size": 2000, "train.num_train_steps": 300,
             "train.steps_per_eval": 0, "train.steps_per_checkpoint": 100, "decode.beam_size": 2,
             "train.steps_per_stats": 50},
    # The benchmark model shared with the peer toolkits' harness: 20 minutes, no evaluations.
    "bench": {**_SMALL, "model.encoder_type": "bi", "model.attention": "luong",
              "model.bridge": "dense", "train.label_smoothing": 0.0,
              "train.num_train_steps": 0, "train.max_time_minutes": 20,
              "train.steps_per_eval": 0, "decode.length_penalty": 0.0},
    # The first model to train, and the best setup for an hour (_QUALITY): 54 minutes of
    # training, so that training and scoring end within the hour.
    "default": {**_QUALITY, "train.max_time_minutes": 54},
    # The quality setup for longer: 160 minutes of training (under 3 hours with scoring).
    "best": {**_QUALITY, "train.max_time_minutes": 160},
}
# `best` 1.5x wider (384 units: 6.77 M parameters on Multi30k), label smoothing 0.1;
# at equal wall time it measured better than `best` en->fr and worse en->de.
PRESETS["best_wide"] = {**PRESETS["best"], "model.num_units": 384, "model.embedding_size": 384,
                        "train.label_smoothing": 0.1}

DEFAULT_PRESET = "default"


def get(name):
    """The overrides {"section.field": value} of a preset; a one-line error if unknown."""
    if name not in PRESETS:
        raise ConfigError(f"--preset={name}: unknown preset (choose one of "
                          f"{', '.join(PRESETS)})")
    return dict(PRESETS[name])


def build(preset=DEFAULT_PRESET, config_file=None, overrides=None, base=None):
    """The config of a run: base (Config()) < preset < config_file < overrides, validated.

    overrides: {"section.field" or unambiguous "field": value}.
    """
    config = base or config_lib.Config()
    if preset:
        config = config_lib.override(config, get(preset))
    if config_file:
        config = config_lib.override(config, config_lib.read_overrides(config_file))
    return config_lib.override(config, overrides or {}).validate()
