"""Ids to text: search, translation, ensembles, MBR, forced scoring, metrics, export."""
