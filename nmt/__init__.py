"""nmt: attention-LSTM neural machine translation on TensorFlow 2."""

__version__ = "0.1.0"
