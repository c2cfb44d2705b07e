"""Flags generated from the config dataclasses: one flag per field, no restated defaults.

Each flag defaults to None, meaning "keep the config's value"; its help text is
the field's comment in nmt/config.py and the config default. Fields named in
`rename` get another flag name (e.g. decode.batch_size -> --decode_batch_size).
"""
import dataclasses
import inspect
import re

from absl import flags

from nmt import config as config_lib

CHOICES = {
    "unit_type": config_lib.UNIT_TYPES, "encoder_type": config_lib.ENCODER_TYPES,
    "attention": config_lib.ATTENTIONS, "attention_architecture": config_lib.ATTENTION_ARCHITECTURES,
    "bridge": config_lib.BRIDGES, "optimizer": config_lib.OPTIMIZERS, "decay": config_lib.DECAYS,
    "sp_model_type": config_lib.SP_MODEL_TYPES,
    "strategy": config_lib.STRATEGIES, "precision": config_lib.PRECISIONS,
    "decode_precision": config_lib.DECODE_PRECISIONS,
}


def _field_comments():
    """{(class name, field): comment} read from nmt/config.py's source."""
    comments, current = {}, None
    for line in inspect.getsource(config_lib).splitlines():
        match = re.match(r"class (\w+)", line)
        if match:
            current = match.group(1)
        match = re.match(r"\s+(\w+): \w+ = .*?#\s*(.*)$", line)
        if match and current:
            comments[(current, match.group(1))] = match.group(2)
    return comments


def define_config_flags(sections, rename=None, skip=()):
    """Defines a flag per field of the given sections; returns {flag name: "section.field"}."""
    rename = rename or {}
    comments = _field_comments()
    defaults = config_lib.Config()
    mapping = {}
    for section in sections:
        cls = config_lib.SECTIONS[section]
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            if key in skip:
                continue
            name = rename.get(key, field.name)
            default = getattr(getattr(defaults, section), field.name)
            help_text = f"{comments.get((cls.__name__, field.name), key)} (config default: {default!r})"
            if field.name in CHOICES:
                flags.DEFINE_enum(name, None, CHOICES[field.name], help_text)
            elif field.type in (bool, "bool"):
                flags.DEFINE_boolean(name, None, help_text)
            elif field.type in (int, "int"):
                flags.DEFINE_integer(name, None, help_text)
            elif field.type in (float, "float"):
                flags.DEFINE_float(name, None, help_text)
            else:
                flags.DEFINE_string(name, None, help_text)
            mapping[name] = key
    return mapping


def overrides_from_flags(mapping, flag_values=flags.FLAGS):
    """{"section.field": value} for every config flag the user set."""
    return {key: flag_values[name].value for name, key in mapping.items()
            if flag_values[name].value is not None}
