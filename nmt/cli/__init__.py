"""Thin absl entry points behind the console scripts.

Importing this package imports TensorFlow with stderr sent to /dev/null: its
start-up lines (oneDNN, CUDA, CPU features) are written before its log level
applies. --verbosity=1 or more, or TF_CPP_MIN_LOG_LEVEL in the environment,
keeps them. --version is answered before that.
"""
import os
import re
import sys

from nmt.cli import lazy_imports

lazy_imports.install()


def _verbose(argv):
    for arg in argv[1:]:
        match = re.fullmatch(r"--?(?:verbosity|v)=(-?\d+)", arg)
        if match and int(match.group(1)) >= 1:
            return True
    return False


def _quiet_import():
    """Imports TensorFlow (and lists its devices) with fd 2 pointed at /dev/null."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _print_version(argv):
    """--version answers before TensorFlow is imported."""
    import nmt
    name = os.path.basename(argv[0])
    print(f"{name if name.startswith('nmt-') else 'nmt'} (nmt-lstm) {nmt.__version__}")
    sys.exit(0)


if "--version" in sys.argv[1:]:
    _print_version(sys.argv)
# --validate_only reads text alone, and starts faster without TensorFlow.
if ("TF_CPP_MIN_LOG_LEVEL" not in os.environ and not _verbose(sys.argv)
        and not any(re.fullmatch(r"--validate_only(=(true|1))?", a) for a in sys.argv[1:])):
    _quiet_import()
