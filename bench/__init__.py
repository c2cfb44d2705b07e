"""Measurement and experiment scripts, each run from a clone as `python -m bench.NAME`."""
