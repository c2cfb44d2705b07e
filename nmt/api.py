"""The Python API: train a model dir, load it, translate sentences (docs/api.md).

    import nmt
    nmt.train("tiny", "runs/x", train_prefix="data/train", src="en", tgt="es")
    model = nmt.load("runs/x")
    model.translate(["How are you?"])    # -> ["¿Cómo estás?"]
"""
import dataclasses

from nmt import config as config_lib, presets


class Model:
    """A loaded model dir: `translate` takes and returns lists of sentences."""

    def __init__(self, config, model, src_vocab, tgt_vocab, model_dir):
        self.config, self.model_dir = config, model_dir
        self._model, self._src_vocab, self._tgt_vocab = model, src_vocab, tgt_vocab

    def translate(self, sentences, **decode):
        """Sentences -> their best translations; decode: DecodeConfig fields to override
        (beam_size=1, length_penalty=1.0, ...)."""
        from nmt.decode.translate import Translator
        settings = dataclasses.replace(self.config.decode, **decode)
        settings.validate()
        translator = Translator(self._model, self._src_vocab, self._tgt_vocab, settings)
        return translator.translate_text(list(sentences))

    def __repr__(self):
        return (f"nmt.Model({self.model_dir!r}, {self.config.data.src}->"
                f"{self.config.data.tgt})")


def load(model_dir, checkpoint="best"):
    """The model in model_dir (A,B,...: an ensemble); checkpoint: best, last or a path."""
    from nmt.decode.ensemble import load_ensemble
    config, model, src_vocab, tgt_vocab = load_ensemble(model_dir, checkpoint)
    return Model(config, model, src_vocab, tgt_vocab, model_dir)


def make_config(config_or_preset=presets.DEFAULT_PRESET, **overrides):
    """A validated Config from a Config, a preset name or a JSON config file, then
    overrides ({field or "section.field": value}), as nmt-train builds it."""
    if isinstance(config_or_preset, config_lib.Config):
        return config_lib.override(config_or_preset, overrides).validate()
    if config_or_preset in presets.PRESETS:
        return presets.build(config_or_preset, overrides=overrides)
    return presets.build(presets.DEFAULT_PRESET, config_or_preset, overrides)


def train(config_or_preset, model_dir, **overrides):
    """Trains (or resumes) a model in model_dir; -> the last dev evaluation (None
    without a dev set). config_or_preset: as in `make_config`."""
    from nmt.model import devices
    from nmt.training import trainer
    config = make_config(config_or_preset, **overrides)
    devices.split_cpu(config.train.num_cpu_devices)
    return trainer.train(config, model_dir)
