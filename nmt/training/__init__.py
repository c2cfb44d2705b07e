"""The trainer and its parts: schedule, optimizers, averaging, distribution."""
