"""What every entry point shares: --help and --version, one-line errors, config building.

TensorFlow is quiet already: nmt/cli/__init__.py imports it with stderr muted.
"""
import faulthandler
import sys

from absl import app, logging

from nmt import config as config_lib
from nmt.data.corpus import CorpusError
from nmt.data.textio import OutputError
from nmt.files import LockError
from nmt.errors import LogError, ModelDirError

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


def app_run(main, program, doc, main_flags=()):
    """absl's app.run(main) after --version, --help and --helpfull (each exits 0)."""
    from nmt.cli import helptext
    helptext.handle(program, doc, main_flags)
    app.run(main)


def build_config(overrides, base=None):
    """Config defaults (or `base`) with {"section.field": value} overrides, validated."""
    config = config_lib.override(base or config_lib.Config(), overrides)
    return config.validate()
