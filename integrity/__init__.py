"""Proof of integrity: canonical hashes, Merkle trees, signed checkpoints, verification.

Design and threat model: ``docs/integrity.md``.
"""
