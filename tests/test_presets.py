"""nmt/presets.py and config files: defaults < preset < config file < overrides, and
one-line errors naming the file and field for unknown presets, fields and wrong types."""
import json

import pytest

from nmt import config as config_lib, presets


def write(tmp_path, obj, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(path)


def test_every_preset_names_real_fields_and_validates():
    for name in presets.PRESETS:
        config = presets.build(name)
        for key, value in presets.PRESETS[name].items():
            section, field = key.split(".")
            assert getattr(getattr(config, section), field) == value, (name, key)


def test_no_preset_is_the_default_preset():
    assert presets.build() == presets.build("default")
    assert presets.build().model.num_units == 256  # not the dataclass default
    assert config_lib.Config().model.num_units == 512


def test_precedence_defaults_preset_file_flags(tmp_path):
    path = write(tmp_path, {"model": {"num_units": 64, "embedding_size": 64},
                            "decode": {"beam_size": 3}})
    config = presets.build("tiny", path, {"decode.beam_size": 4})
    assert config.model.num_units == 64            # the file beats the preset (128)
    assert config.decode.beam_size == 4            # the overrides beat the file (3)
    assert config.train.steps_per_stats == 50      # the preset beats the default (100)
    assert config.train.keep_checkpoints == 5      # the default, untouched


def test_a_runs_config_json_is_a_config_file(tmp_path):
    run_config = presets.build("best", overrides={"data.src": "en", "data.tgt": "es",
                                                  "data.train_prefix": "/data/train"})
    path = write(tmp_path, run_config.to_json())
    assert presets.build("tiny", path) == run_config  # every field of the file wins


def test_int_fields_widen_to_float_but_not_to_bool(tmp_path):
    config = presets.build("tiny", write(tmp_path, {"train": {"learning_rate": 1}}))
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    with pytest.raises(config_lib.ConfigError, match=r"model.layer_norm must be true or false"):
        presets.build("tiny", write(tmp_path, {"model": {"layer_norm": 1}}))


@pytest.mark.parametrize("content, message", [
    ({"model": {"num_unitz": 3}}, r"c\.json: unknown field model\.num_unitz$"),
    ({"model": {"num_units": "big"}}, r"c\.json: model\.num_units must be an integer "
                                      r"\(got 'big'\)$"),
    ({"modle": {}}, r"c\.json: unknown section 'modle'"),
    ({"model": 3}, r"c\.json: model must be an object of fields$"),
    ({"version": 7}, r"c\.json: config version 7 is not supported"),
    ("[1, 2]", r"c\.json: a config file holds a JSON object"),
    ("{not json", r"c\.json: not a valid config JSON"),
])
def test_bad_config_files_get_one_line_naming_file_and_field(tmp_path, content, message):
    with pytest.raises(config_lib.ConfigError, match=message) as error:
        presets.build("default", write(tmp_path, content))
    assert "\n" not in str(error.value)


def test_missing_config_file_and_unknown_preset(tmp_path):
    with pytest.raises(config_lib.ConfigError, match=r"none\.json: no such config file"):
        presets.build("default", str(tmp_path / "none.json"))
    with pytest.raises(config_lib.ConfigError,
                       match=r"--preset=huge: unknown preset \(choose one of tiny, bench, "):
        presets.build("huge")


def test_every_config_field_has_a_comment_for_its_flag_help():
    import dataclasses
    from nmt.cli.flags import _field_comments
    comments = _field_comments()
    for cls in config_lib.SECTIONS.values():
        for field in dataclasses.fields(cls):
            assert comments.get((cls.__name__, field.name)), f"{cls.__name__}.{field.name}"
