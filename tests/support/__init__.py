"""Test helpers shared across suites (importable as ``support``)."""
