"""nmt: attention-LSTM neural machine translation on TensorFlow 2.

    import nmt
    model = nmt.load("runs/en-es")
    model.translate(["How are you?"])

`load`, `train` and `make_config` are nmt.api's (docs/api.md); importing nmt
alone does not import TensorFlow.
"""

__version__ = "0.1.0"


def load(model_dir, checkpoint="best"):
    """A trained model dir, ready to translate (nmt.api.load)."""
    from nmt import api
    return api.load(model_dir, checkpoint)


def train(config_or_preset, model_dir, **overrides):
    """Trains (or resumes) a model dir (nmt.api.train)."""
    from nmt import api
    return api.train(config_or_preset, model_dir, **overrides)


def make_config(config_or_preset="default", **overrides):
    """The config nmt.train would use (nmt.api.make_config)."""
    from nmt import api
    return api.make_config(config_or_preset, **overrides)
