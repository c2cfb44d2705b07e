"""Typed configuration: the one home of every default.

A run is described by `Config(data, model, train, decode)`. Flags and recipes
override fields; they never restate defaults. `Config.to_json()` goes into every
model dir with `CONFIG_VERSION`, and `load_config` refuses other versions.
"""
import dataclasses
import json

CONFIG_VERSION = 1

UNIT_TYPES = ("lstm", "gru")
ENCODER_TYPES = ("uni", "bi", "gnmt")
LUONG_ATTENTIONS = ("dot", "luong", "scaled_luong")  # multiplicative scores
ATTENTIONS = LUONG_ATTENTIONS + ("bahdanau", "normed_bahdanau")
ATTENTION_ARCHITECTURES = ("standard", "gnmt")
BRIDGES = ("dense", "copy", "zero")
OPTIMIZERS = ("adam", "sgd")
DECAYS = ("none", "rsqrt", "plateau", "exponential")
SP_MODEL_TYPES = ("unigram", "bpe")
STRATEGIES = ("none", "mirrored", "multi_worker")
PRECISIONS = ("fp32", "bf16", "fp16", "bf16_output")  # nmt.model.precision
DECODE_PRECISIONS = ("fp32", "bf16_output", "bf16")  # nmt.model.precision, for search


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent."""


def _check_choice(name, value, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")


def _check_positive(name, value, allow_zero=False):
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'} (got {value})")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    train_prefix: str = ""          # P: reads P.<src>[.gz] and P.<tgt>[.gz]; several corpora as P1[:W1],P2[:W2],... where W (default 1) is how many times per epoch each pair of that corpus is seen (a fraction: that share, drawn anew each epoch)
    dev_prefix: str = ""            # dev set for loss, BLEU and early stopping (optional)
    test_prefix: str = ""           # reported after training (optional)
    src: str = "en"                 # source language suffix
    tgt: str = "de"                 # target language suffix
    vocab_size: int = 8000          # sentencepiece pieces per vocabulary
    joint_vocab: bool = True        # one sentencepiece model for both languages
    sp_model_type: str = "unigram"  # unigram | bpe
    sample_alpha: float = 0.0       # >0: subword regularisation while training (Kudo 2018)
    word_dropout: float = 0.0       # >0: this fraction of source and decoder-input pieces become <unk> while training, drawn anew every epoch
    max_src_len: int = 50           # pieces; longer training pairs are dropped and counted
    max_tgt_len: int = 50           # pieces, EOS not counted
    max_line_chars: int = 1000      # characters; longer training lines are skipped and reported
    batch_size: int = 64            # sentences per batch, used when batch_tokens is 0
    batch_tokens: int = 0           # >0: batch by a padded-token budget instead
    bucket_width: int = 8           # time dims are padded to a multiple of this
    max_line_bytes: int = 65536     # bytes; a longer training line is cut at read time, never held whole, and its pair skipped and reported
    spm_model: str = ""             # PATH, or SRC_PATH,TGT_PATH when joint_vocab is false: existing sentencepiece model(s) used instead of training them, copied into the run dir (special ids pad=0 unk=1 bos=2 eos=3)
    spm_sample_size: int = 300000   # sentences drawn uniformly from the whole training corpus (one streaming pass) to train sentencepiece on; its trainer holds about 1 KB per sentence plus 19 bytes per character (650 MB for 300k sentences of 60 characters); raise it for steadier pieces in vocabularies of 32k or more where memory allows
    spm_threads: int = 0            # threads for training sentencepiece; 0: one per CPU core

    def validate(self):
        _check_choice("sp_model_type", self.sp_model_type, SP_MODEL_TYPES)
        for name in ("vocab_size", "max_src_len", "max_tgt_len", "max_line_chars", "batch_size",
                     "bucket_width"):
            _check_positive(name, getattr(self, name))
        _check_positive("batch_tokens", self.batch_tokens, allow_zero=True)
        longest = -(-max(self.max_src_len, self.max_tgt_len + 1) // self.bucket_width) * self.bucket_width
        if self.batch_tokens and self.batch_tokens < longest:
            raise ConfigError(f"batch_tokens ({self.batch_tokens}) must hold one longest padded "
                              f"sentence ({longest} tokens)")
        if not 0.0 <= self.sample_alpha < 1.0:
            raise ConfigError(f"sample_alpha must be in [0, 1) (got {self.sample_alpha})")
        if not 0.0 <= self.word_dropout < 1.0:
            raise ConfigError(f"word_dropout must be in [0, 1) (got {self.word_dropout})")
        for name in ("max_line_bytes", "spm_sample_size"):
            _check_positive(name, getattr(self, name))
        _check_positive("spm_threads", self.spm_threads, allow_zero=True)
        models = [p for p in self.spm_model.split(",") if p]
        if self.spm_model and len(models) != (1 if self.joint_vocab else 2):
            wanted = "one path" if self.joint_vocab else "two paths, SRC,TGT"
            raise ConfigError(f"spm_model needs {wanted} with joint_vocab="
                              f"{str(self.joint_vocab).lower()} (got {self.spm_model!r})")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    unit_type: str = "lstm"             # lstm | gru
    encoder_type: str = "bi"            # uni | bi (every layer bidirectional) | gnmt (bi first)
    num_encoder_layers: int = 2         # stacked encoder layers
    num_decoder_layers: int = 2         # stacked decoder layers
    num_units: int = 512                # encoder output and decoder width; bi splits it in two
    embedding_size: int = 512           # units per source and target embedding
    attention: str = "luong"            # dot | luong (general) | scaled_luong | bahdanau | normed_bahdanau
    attention_sqrt_scaling: bool = False  # dot/luong/scaled_luong: scores / sqrt(num_units), as in scaled dot-product attention; keeps attention from locking onto one source position early in training (docs/attention-collapse.md)
    attention_architecture: str = "standard"  # standard (top layer) | gnmt (bottom layer, fed to all)
    input_feeding: bool = True          # feed the attentional vector into the next step (Luong §3.3)
    attention_layer_size: int = 0       # attentional vector width (0: num_units); standard only
    bridge: str = "dense"               # dense | copy | zero: thought vector -> decoder state
    residual: bool = False              # residual connections from layer 2 up
    dropout: float = 0.3                # on layer inputs (embeddings too) and the attentional vector
    variational_dropout: bool = False   # one dropout mask per sequence (Gal & Ghahramani 2016)
    forget_bias: float = 1.0            # added to the LSTM forget gate at initialisation
    layer_norm: bool = False            # layer-normalised LSTM gates and memory (Ba et al. 2016)
    share_embeddings: bool = False      # source and target embeddings shared (needs joint vocab)
    tie_output_embeddings: bool = False  # softmax weights = target embeddings (Press & Wolf 2017)

    def validate(self):
        _check_choice("unit_type", self.unit_type, UNIT_TYPES)
        _check_choice("encoder_type", self.encoder_type, ENCODER_TYPES)
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("attention_architecture", self.attention_architecture, ATTENTION_ARCHITECTURES)
        if self.attention_sqrt_scaling and self.attention not in LUONG_ATTENTIONS:
            raise ConfigError(f"attention_sqrt_scaling applies to dot, luong and scaled_luong "
                              f"attention (got {self.attention})")
        _check_choice("bridge", self.bridge, BRIDGES)
        for name in ("num_encoder_layers", "num_decoder_layers", "num_units", "embedding_size"):
            _check_positive(name, getattr(self, name))
        if self.encoder_type != "uni" and self.num_units % 2:
            raise ConfigError(f"a bidirectional encoder splits num_units in two: it must be even "
                              f"(got {self.num_units})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.layer_norm and self.unit_type != "lstm":
            raise ConfigError(f"layer_norm applies to LSTM cells (got unit_type={self.unit_type})")
        if self.bridge == "copy" and self.num_encoder_layers != self.num_decoder_layers:
            raise ConfigError("bridge=copy needs as many encoder as decoder layers "
                              f"(got {self.num_encoder_layers} and {self.num_decoder_layers})")
        if self.attention_architecture == "gnmt" and self.num_decoder_layers < 2:
            raise ConfigError("attention_architecture=gnmt needs at least 2 decoder layers")
        _check_positive("attention_layer_size", self.attention_layer_size, allow_zero=True)
        if self.attention_layer_size and self.attention_architecture == "gnmt":
            raise ConfigError("attention_layer_size applies to the standard architecture; GNMT "
                              "attention has no attentional layer")
        if self.tie_output_embeddings and self.embedding_size != self.output_size:
            raise ConfigError("tie_output_embeddings needs embedding_size == the decoder output "
                              f"width, attention_layer_size or else num_units (got "
                              f"{self.embedding_size} and {self.output_size})")

    @property
    def output_size(self):
        """Width of the decoder output that the softmax projects: the attentional vector."""
        return self.attention_layer_size or self.num_units


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"             # adam | sgd
    learning_rate: float = 1e-3         # peak learning rate (after warm-up)
    warmup_steps: int = 0               # linear warm-up from 0
    decay: str = "none"                 # none | rsqrt | plateau (on dev BLEU) | exponential
    decay_factor: float = 0.5           # plateau and exponential: multiply the rate by this
    decay_steps: int = 0                # exponential: every this many steps after decay_start
    decay_start: int = 0                # exponential: first step that decays
    plateau_patience: int = 2           # plateau: evaluations without dev BLEU gain before decay
    min_learning_rate: float = 1e-5     # decay never goes below this rate
    anneal_fraction: float = 0.0        # >0: over this last share of the training budget (num_train_steps, or max_time_minutes of training time, whichever ends first) the rate falls linearly to min_learning_rate, so that a run whose length is fixed in advance ends at a low rate
    max_gradient_norm: float = 5.0      # global-norm clipping; 0 disables
    label_smoothing: float = 0.1        # probability mass spread over the other pieces (Szegedy et al. 2016)
    moving_average_decay: float = 0.0   # >0 (e.g. 0.9995): evaluate, save and translate an exponential moving average of the weights
    num_train_steps: int = 0            # stop after this many steps (0: use num_epochs)
    num_epochs: int = 0                 # stop after this many epochs (0: use num_train_steps)
    max_time_minutes: float = 0.0       # >0: stop after this much training wall time
    steps_per_stats: int = 100          # a progress line every this many steps
    steps_per_checkpoint: int = 1000    # save a checkpoint every this many steps
    keep_checkpoints: int = 5           # newest checkpoints kept in MODEL_DIR/ckpt
    steps_per_eval: int = 2000          # dev loss and BLEU every this many steps (0: never)
    dev_bleu_max_sentences: int = 0     # >0: decode only this many dev lines for BLEU
    early_stopping_patience: int = 0    # >0: stop after this many evals without dev BLEU gain
    seed: int = 1234                    # random seed of initialisation, dropout and shuffling
    deterministic: bool = False         # runs and resumed runs repeat bit for bit (slower): op determinism, and the training step traced for each batch shape
    jit_compile: bool = False           # XLA-compile the training step (one compile per batch shape)
    strategy: str = "none"              # none | mirrored | multi_worker (tf.distribute; docs/distributed.md)
    num_gpus: int = 0                   # N>0: layer i on device (i + base_gpu) % N; mirrored: N replicas (0: all)
    base_gpu: int = 0                   # first device of the round-robin layer placement
    num_cpu_devices: int = 0            # >0: split the CPU into this many logical devices at start-up
    precision: str = "fp32"             # fp32 | bf16 (AMX CPUs, Ampere+ GPUs) | fp16 (loss scaling) | bf16_output (only the softmax projection): compute dtype; weights stay fp32
    init_from: str = ""                 # a model dir: a new run starts from its best checkpoint's weights and its vocabularies (optimizer, step and schedule start afresh)

    def validate(self):
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("decay", self.decay, DECAYS)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_positive("learning_rate", self.learning_rate)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not 0.0 <= self.moving_average_decay < 1.0:
            raise ConfigError("moving_average_decay must be in [0, 1) "
                              f"(got {self.moving_average_decay})")
        if not (self.num_train_steps or self.num_epochs or self.max_time_minutes):
            raise ConfigError("set num_train_steps, num_epochs or max_time_minutes")
        if self.decay == "exponential" and self.decay_steps <= 0:
            raise ConfigError("decay=exponential needs decay_steps > 0")
        if not 0.0 <= self.anneal_fraction <= 1.0:
            raise ConfigError(f"anneal_fraction must be in [0, 1] (got {self.anneal_fraction})")
        if self.anneal_fraction and not (self.num_train_steps or self.max_time_minutes):
            raise ConfigError("anneal_fraction needs num_train_steps or max_time_minutes")
        for name in ("steps_per_stats", "steps_per_checkpoint", "keep_checkpoints"):
            _check_positive(name, getattr(self, name))
        for name in ("num_gpus", "base_gpu", "num_cpu_devices"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        if self.strategy == "multi_worker" and self.num_gpus:
            raise ConfigError("strategy=multi_worker uses every local GPU of each worker "
                              f"(or its CPU); leave num_gpus at 0 (got {self.num_gpus})")


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5                  # hypotheses kept per step (1: greedy search)
    length_penalty: float = 0.6         # GNMT alpha: ((5 + length) / 6) ** alpha
    coverage_penalty: float = 0.0       # GNMT beta
    num_hypotheses: int = 1             # n-best per input line
    mbr: bool = False                   # minimum Bayes risk: pick from the beam's n-best by expected sentence BLEU against it (nmt.decode.mbr)
    max_length_ratio: float = 2.0       # output steps <= ratio * source pieces + 10
    batch_size: int = 256               # sentences per batch when batch_tokens is 0
    batch_tokens: int = 0               # >0: batch by a source-token budget
    max_input_len: int = 200            # longer inputs are truncated to this many pieces
    decode_precision: str = "fp32"      # search in fp32; bf16_output: output projection in bf16 (AMX); bf16: all in bf16

    def validate(self):
        for name in ("beam_size", "num_hypotheses", "batch_size", "max_input_len"):
            _check_positive(name, getattr(self, name))
        _check_choice("decode_precision", self.decode_precision, DECODE_PRECISIONS)
        if self.num_hypotheses > self.beam_size:
            raise ConfigError(f"num_hypotheses ({self.num_hypotheses}) cannot exceed "
                              f"beam_size ({self.beam_size})")
        _check_positive("max_length_ratio", self.max_length_ratio)
        if self.mbr and self.beam_size < 2:
            raise ConfigError("mbr picks among the beam's hypotheses: it needs beam_size >= 2 "
                              f"(got {self.beam_size})")


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig(num_train_steps=10000)
    decode: DecodeConfig = DecodeConfig()

    def validate(self):
        for part in (self.data, self.model, self.train, self.decode):
            part.validate()
        if self.model.share_embeddings and not self.data.joint_vocab:
            raise ConfigError("share_embeddings needs joint_vocab")
        return self

    def replace(self, **sections):
        """Returns a copy with `section={field: value}` overrides applied."""
        parts = {name: dataclasses.replace(getattr(self, name), **fields)
                 for name, fields in sections.items()}
        return dataclasses.replace(self, **parts)

    def to_json(self):
        return json.dumps({"version": CONFIG_VERSION, **dataclasses.asdict(self)}, indent=2)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "decode": DecodeConfig}
# Fields that older model dirs' config.json still name: they changed only how training
# batched or traced its steps, never the model, so readers skip them.
RETIRED_FIELDS = {"data": ("tight_batches",), "train": ("trace_per_shape",)}


def config_from_dict(raw, source="config"):
    """Builds a Config from a dict as written by `to_json`, checking its version."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: not a config (a JSON object with its version and "
                          f"sections), but a JSON {type(raw).__name__}")
    version = raw.get("version")
    if version != CONFIG_VERSION:
        raise ConfigError(f"{source}: config version {version} is not supported "
                          f"(this nmt reads version {CONFIG_VERSION})")
    parts = {}
    for name, cls in SECTIONS.items():
        given = raw.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: section {name} must be a JSON object "
                              f"(got {type(given).__name__})")
        given = {k: v for k, v in given.items() if k not in RETIRED_FIELDS.get(name, ())}
        types = field_types(name)
        unknown = sorted(set(given) - set(types))
        if unknown:
            raise ConfigError(f"{source}: unknown {name} fields: {', '.join(unknown)}")
        for field, value in given.items():
            if not _has_type(value, types[field]):
                raise ConfigError(f"{source}: {name}.{field} must be "
                                  f"{_TYPE_NAMES[types[field]]} (got {value!r})")
        parts[name] = cls(**given)
    return Config(**parts)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _has_type(value, expected):
    """JSON types: true/false is no number, an integer serves as a float."""
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def load_config(path):
    """Reads a config JSON written by `Config.to_json`; one-line errors on bad files."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a valid config JSON ({e})") from None
    config = config_from_dict(raw, source=path)
    try:
        return config.validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def field_types(section):
    """{field name: python type} of one config section, for flag parsing."""
    return {f.name: type(f.default) for f in dataclasses.fields(SECTIONS[section])}


def override(config: Config, overrides: dict) -> Config:
    """Applies {"section.field" or "field": value}; a bare field must be unambiguous."""
    sections = {}
    for key, value in overrides.items():
        if "." in key:
            section, name = key.split(".", 1)
        else:
            owners = [s for s in SECTIONS if key in field_types(s)]
            if len(owners) != 1:
                raise ConfigError(f"unknown or ambiguous config field {key!r}")
            section, name = owners[0], key
        if section not in SECTIONS or name not in field_types(section):
            raise ConfigError(f"unknown config field {section}.{name}")
        sections.setdefault(section, {})[name] = value
    return config.replace(**sections)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _checked_value(source, key, value, expected):
    """value if it is of the field's type (an int for a float field is widened)."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: {key} must be {_TYPE_NAMES[expected]} (got {value!r})")


def overrides_from_dict(raw, source="config"):
    """{"section.field": value} from a dict shaped like `to_json`'s, any subset of its
    fields; "version", if present, must be CONFIG_VERSION. One-line errors name the field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config file holds a JSON object "
                          f"{{\"model\": {{\"num_units\": 256}}, ...}}")
    version = raw.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"{source}: config version {version} is not supported "
                          f"(this nmt reads version {CONFIG_VERSION})")
    overrides = {}
    for section, fields in raw.items():
        if section == "version":
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown section {section!r} (sections: "
                              f"{', '.join(SECTIONS)})")
        if not isinstance(fields, dict):
            raise ConfigError(f"{source}: {section} must be an object of fields")
        types = field_types(section)
        for name, value in fields.items():
            if name not in types:
                raise ConfigError(f"{source}: unknown field {section}.{name}")
            overrides[f"{section}.{name}"] = _checked_value(source, f"{section}.{name}", value,
                                                            types[name])
    return overrides


def read_overrides(path):
    """The overrides in a JSON config file (`overrides_from_dict`); one-line errors."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a config file (give DIR/config.json)") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a valid config JSON ({e})") from None
    return overrides_from_dict(raw, source=path)
