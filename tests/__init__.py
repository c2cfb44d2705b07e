"""Tests mirroring nmt/; conftest.py holds the shared fixtures."""
