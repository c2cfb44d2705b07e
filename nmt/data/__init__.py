"""Text to batches: reading and checking corpora, vocabularies, batching."""
