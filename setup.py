"""nmt: attention-LSTM neural machine translation on TensorFlow 2 (metadata in setup.cfg)."""
from setuptools import setup

setup()
