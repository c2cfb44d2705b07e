"""Config: validation messages, JSON round trip, versions, overrides."""
import dataclasses
import json

import pytest

from nmt import config as config_lib
from nmt.config import (ATTENTIONS, CONFIG_VERSION, Config, ConfigError, DataConfig,
                        DecodeConfig, ModelConfig, TrainConfig)


def _error(part):
    with pytest.raises(ConfigError) as info:
        part.validate()
    message = str(info.value)
    assert "\n" not in message, f"error spans lines: {message!r}"
    return message


def test_defaults_are_valid():
    config = Config()
    assert config.validate() is config


@pytest.mark.parametrize("encoder_type", ["bi", "gnmt"])
def test_odd_num_units_with_a_bidirectional_layer(encoder_type):
    message = _error(ModelConfig(encoder_type=encoder_type, num_units=7))
    assert "num_units" in message and "7" in message
    ModelConfig(encoder_type="uni", num_units=7).validate()


def test_bad_choice_lists_the_choices():
    message = _error(ModelConfig(attention="cosine"))
    assert message.startswith("attention ")
    assert all(choice in message for choice in ATTENTIONS) and "'cosine'" in message


@pytest.mark.parametrize("part,field", [
    (DataConfig(vocab_size=0), "vocab_size"),
    (DataConfig(sp_model_type="word"), "sp_model_type"),
    (DataConfig(batch_tokens=10), "batch_tokens"),
    (DataConfig(sample_alpha=1.0), "sample_alpha"),
    (ModelConfig(unit_type="rnn"), "unit_type"),
    (ModelConfig(num_decoder_layers=0), "num_decoder_layers"),
    (ModelConfig(dropout=1.0), "dropout"),
    (ModelConfig(unit_type="gru", layer_norm=True), "layer_norm"),
    (ModelConfig(bridge="copy", num_encoder_layers=2, num_decoder_layers=3), "bridge"),
    (ModelConfig(attention_architecture="gnmt", num_decoder_layers=1), "attention_architecture"),
    (ModelConfig(tie_output_embeddings=True, embedding_size=8, num_units=16),
     "tie_output_embeddings"),
    (ModelConfig(tie_output_embeddings=True, embedding_size=16, num_units=16,
                 attention_layer_size=8), "tie_output_embeddings"),
    (ModelConfig(attention_architecture="gnmt", attention_layer_size=8), "attention_layer_size"),
    (ModelConfig(attention="bahdanau", attention_sqrt_scaling=True), "attention_sqrt_scaling"),
    (TrainConfig(num_train_steps=1, optimizer="adagrad"), "optimizer"),
    (TrainConfig(num_train_steps=1, learning_rate=0.0), "learning_rate"),
    (TrainConfig(num_train_steps=1, label_smoothing=1.0), "label_smoothing"),
    (TrainConfig(), "num_train_steps"),
    (TrainConfig(num_train_steps=1, decay="exponential"), "decay_steps"),
    (DecodeConfig(beam_size=2, num_hypotheses=3), "num_hypotheses"),
    (DecodeConfig(max_length_ratio=0.0), "max_length_ratio"),
    (DecodeConfig(beam_size=1, mbr=True), "mbr"),
    (Config(data=DataConfig(joint_vocab=False), model=ModelConfig(share_embeddings=True)),
     "share_embeddings"),
])
def test_errors_are_one_line_and_name_the_field(part, field):
    assert field in _error(part)


def _non_default_config():
    return Config().replace(
        data=dict(train_prefix="corpus/train", src="fr", vocab_size=300, joint_vocab=False),
        model=dict(unit_type="gru", encoder_type="gnmt", num_units=64, attention="bahdanau",
                   residual=True, dropout=0.1),
        train=dict(learning_rate=3e-4, decay="rsqrt", num_train_steps=50, jit_compile=False),
        decode=dict(beam_size=3, num_hypotheses=2, max_length_ratio=1.5))


def test_json_round_trip(tmp_path):
    config = _non_default_config().validate()
    raw = json.loads(config.to_json())
    assert raw["version"] == CONFIG_VERSION
    assert config_lib.config_from_dict(raw) == config
    path = tmp_path / "config.json"
    path.write_text(config.to_json())
    assert config_lib.load_config(str(path)) == config


@pytest.mark.parametrize("version", [CONFIG_VERSION + 1, None])
def test_other_versions_are_refused(version):
    raw = json.loads(Config().to_json())
    if version is None:
        del raw["version"]
    else:
        raw["version"] = version
    with pytest.raises(ConfigError, match=f"config version {version} is not supported") as info:
        config_lib.config_from_dict(raw, source="m/config.json")
    assert f"version {CONFIG_VERSION}" in str(info.value) and "m/config.json" in str(info.value)


def test_model_dirs_naming_retired_fields_still_load():
    raw = json.loads(Config().to_json())
    raw["data"]["tight_batches"] = True
    raw["train"]["trace_per_shape"] = False
    assert config_lib.config_from_dict(raw) == Config()
    raw["model"]["tight_batches"] = True  # retired from data only
    with pytest.raises(ConfigError, match="unknown model fields: tight_batches"):
        config_lib.config_from_dict(raw)


def test_unknown_fields_and_bad_files_are_refused(tmp_path):
    raw = json.loads(Config().to_json())
    raw["model"]["num_unit"] = 3
    with pytest.raises(ConfigError, match="unknown model fields: num_unit"):
        config_lib.config_from_dict(raw)
    with pytest.raises(ConfigError, match="no such config file"):
        config_lib.load_config(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid config JSON"):
        config_lib.load_config(str(bad))


def test_override_dotted_and_bare_names():
    config = Config()
    new = config_lib.override(config, {"model.num_units": 64, "beam_size": 3,
                                       "data.batch_size": 16, "label_smoothing": 0.0})
    assert new.model.num_units == 64 and new.decode.beam_size == 3
    assert new.data.batch_size == 16 and new.decode.batch_size == config.decode.batch_size
    assert new.train.label_smoothing == 0.0
    # Everything else is untouched, and the original is unchanged.
    assert dataclasses.replace(new.model, num_units=config.model.num_units) == config.model
    assert config.model.num_units == ModelConfig().num_units


@pytest.mark.parametrize("key", ["batch_size", "batch_tokens"])  # in data and in decode
def test_override_refuses_ambiguous_bare_names(key):
    with pytest.raises(ConfigError, match=key):
        config_lib.override(Config(), {key: 8})


@pytest.mark.parametrize("key", ["num_unit", "model.num_unit", "nosuch.num_units"])
def test_override_refuses_unknown_names(key):
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        config_lib.override(Config(), {key: 8})


def test_spm_model_needs_one_path_per_vocabulary():
    from nmt.config import ConfigError, DataConfig
    DataConfig(spm_model="a.model").validate()
    DataConfig(spm_model="s.model,t.model", joint_vocab=False).validate()
    for bad in (DataConfig(spm_model="s.model,t.model"),
                DataConfig(spm_model="a.model", joint_vocab=False),
                DataConfig(spm_model=",", joint_vocab=False)):
        with pytest.raises(ConfigError, match="spm_model needs"):
            bad.validate()


@pytest.mark.parametrize("section, field, value, expected", [
    ("model", "num_units", "16", "an integer"),
    ("model", "num_units", True, "an integer"),
    ("model", "dropout", "0.1", "a number"),
    ("train", "jit_compile", 1, "true or false"),
    ("data", "src", 3, "a string"),
])
def test_config_json_values_are_type_checked(tmp_path, section, field, value, expected):
    raw = json.loads(Config().to_json())
    raw[section][field] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError) as info:
        config_lib.load_config(str(path))
    assert str(info.value) == f"{path}: {section}.{field} must be {expected} (got {value!r})"


def test_an_integer_serves_as_a_float_in_config_json(tmp_path):
    raw = json.loads(Config().to_json())
    raw["model"]["dropout"] = 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    assert config_lib.load_config(str(path)).model.dropout == 0


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "not a config (a JSON object with its version and sections), but a JSON list"),
    ('{"version": %d, "model": [16]}' % CONFIG_VERSION,
     "section model must be a JSON object (got list)"),
    ('{"version": %d, "model": {"num_units": -4}}' % CONFIG_VERSION, "num_units"),
])
def test_config_json_of_the_wrong_shape_or_range_is_one_line(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config_lib.load_config(str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)
