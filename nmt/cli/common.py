"""What every entry point shares: quiet TensorFlow, one-line errors, config building."""
import faulthandler
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import logging  # noqa: E402

from nmt import config as config_lib  # noqa: E402
from nmt.corpus import CorpusError  # noqa: E402
from nmt.files import LockError  # noqa: E402
from nmt.textio import OutputError  # noqa: E402
from nmt.model_dir import LogError, ModelDirError  # noqa: E402

USER_ERRORS = (CorpusError, config_lib.ConfigError, ModelDirError, LogError,
               FileNotFoundError, LockError, OutputError)


def run_main(program, function, *args, user_errors=(), **kwargs):
    """Calls function; a user error (USER_ERRORS or one of user_errors) becomes one line
    on stderr and exit status 1.

    A crash in native code (SIGSEGV, SIGABRT, ...) prints the Python stack of every
    thread to stderr first, so a rare one names its place in the test that saw it.
    """
    faulthandler.enable()
    logging.set_verbosity(logging.INFO)
    try:
        return function(*args, **kwargs)
    except USER_ERRORS + tuple(user_errors) as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(1)


def build_config(overrides, base=None):
    """Config defaults (or `base`) with {"section.field": value} overrides, validated."""
    config = config_lib.override(base or config_lib.Config(), overrides)
    return config.validate()
