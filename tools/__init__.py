"""What users run around the toolkit from a clone, as `python -m tools.NAME`."""
