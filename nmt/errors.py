"""Errors about a run directory and its log, apart from the modules that raise them:
those import TensorFlow, and commands that only read text (`nmt-train
--validate_only`) report these errors without it."""


class ModelDirError(ValueError):
    """The model dir is missing, incomplete or incompatible."""


class LogError(ValueError):
    """A run's log.jsonl holds a line that is not a JSON record."""
