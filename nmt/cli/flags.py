"""The flags every command shares, defined once, each in a help section.

Config flags are generated from the config dataclasses, one per field, with no
restated defaults: each defaults to None, meaning "keep the config's value"; its
help text is the field's comment in nmt/config.py and the default it falls back
to. The decoding batch is --decode_batch_size (--decode_batch_tokens) in every
command, apart from the training batch --batch_size.
"""
import dataclasses
import inspect
import re

from absl import flags

from nmt import config as config_lib, presets

CHOICES = {
    "unit_type": config_lib.UNIT_TYPES, "encoder_type": config_lib.ENCODER_TYPES,
    "attention": config_lib.ATTENTIONS,
    "attention_architecture": config_lib.ATTENTION_ARCHITECTURES,
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


SECTION_TITLES = {"general": "general", "data": "data", "model": "model",
                  "train": "training", "decode": "decoding"}
SECTIONS = {}  # flag name -> key of SECTION_TITLES; flags not named here are absl's own
RENAME = {"decode.batch_size": "decode_batch_size", "decode.batch_tokens": "decode_batch_tokens"}
CHECKPOINTS = ("best", "last")


def in_section(section, *names):
    """Files the named flags under a help section (a key of SECTION_TITLES)."""
    for name in names:
        SECTIONS[name] = section


def define_model_dir(help_text="A model dir written by nmt-train (config.json, vocabularies, "
                     "checkpoints, log).", required=True):
    """--model_dir: the run directory, the same name in every command."""
    flags.DEFINE_string("model_dir", None, help_text)
    in_section("general", "model_dir")
    if required:
        flags.mark_flag_as_required("model_dir")


def define_checkpoint(training=False):
    """--checkpoint=best|last|PATH for every command that loads a model; for nmt-train
    (training=True), last|PATH: the checkpoint of the run to resume from."""
    if training:
        flags.DEFINE_string("checkpoint", "last", "Resume from this checkpoint of the run: last "
                            "(the newest, as a rerun does) or a path such as "
                            "MODEL_DIR/ckpt/ckpt-3000; newer ones stay on disk but leave the "
                            "checkpoint state file, and the run saves over them as it reaches "
                            "their steps again.")
    else:
        flags.DEFINE_string("checkpoint", "best", "Which weights to load: best (best dev BLEU, "
                            "else the newest), last (the newest), or a checkpoint path such as "
                            "MODEL_DIR/ckpt/ckpt-3000.")
    in_section("general", "checkpoint")


flags.DEFINE_boolean("version", False, "Print the nmt version and exit.")
in_section("general", "version")


def define_config_flags(sections, rename=None, skip=(), base=None, inherited=False):
    """Defines a flag per field of the given sections; returns {flag name: "section.field"}.

    base: the Config whose values the help gives as defaults (Config() if None);
    inherited: the defaults come from the loaded model dir's config.json instead.
    """
    rename = {**RENAME, **(rename or {})}
    comments = _field_comments()
    defaults = base or config_lib.Config()
    mapping = {}
    for section in sections:
        cls = config_lib.SECTIONS[section]
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            if key in skip:
                continue
            name = rename.get(key, field.name)
            default = getattr(getattr(defaults, section), field.name)
            note = (f"default: the model's, {default!r} unless trained otherwise" if inherited
                    else f"default: {default!r}")
            help_text = f"{comments.get((cls.__name__, field.name), key)} ({note})"
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
            in_section(section, name)
    return mapping


def overrides_from_flags(mapping, flag_values=flags.FLAGS):
    """{"section.field": value} for every config flag the user set."""
    return {key: flag_values[name].value for name, key in mapping.items()
            if flag_values[name].value is not None}


def define_run_config_flags(skip=()):
    """--preset, --config, --num_layers and a flag per config field, for commands that
    train. -> {flag name: "section.field"} for `run_config`."""
    flags.DEFINE_string("preset", presets.DEFAULT_PRESET,
                        f"Named setup, one of {', '.join(presets.PRESETS)} (nmt/presets.py); "
                        "--config and flags override it.")
    flags.DEFINE_string("config", None, "A JSON file of config fields, e.g. "
                        '{"model": {"num_units": 384}}; a run\'s MODEL_DIR/config.json is '
                        "one. Overrides the preset; flags override it.")
    flags.DEFINE_integer("num_layers", None, "Sets both num_encoder_layers and "
                         "num_decoder_layers (layers).")
    in_section("general", "preset", "config")
    in_section("model", "num_layers")
    base = config_lib.override(config_lib.Config(), presets.get(presets.DEFAULT_PRESET))
    return define_config_flags(["data", "model", "train", "decode"], skip=skip, base=base)


def run_config(mapping, flag_values=flags.FLAGS):
    """Config defaults < --preset < --config file < the flags given, validated."""
    overrides = overrides_from_flags(mapping, flag_values)
    if flag_values.num_layers is not None:
        overrides.setdefault("model.num_encoder_layers", flag_values.num_layers)
        overrides.setdefault("model.num_decoder_layers", flag_values.num_layers)
    return presets.build(flag_values.preset, flag_values.config, overrides)

