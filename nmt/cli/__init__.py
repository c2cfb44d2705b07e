"""Thin absl entry points behind the console scripts."""
from nmt.cli import deferred_imports

deferred_imports.install()
