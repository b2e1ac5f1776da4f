"""Merkle trees and inclusion paths against RFC 6962's recursive definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from useraudit.integrity import merkle


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written as the RFC states it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def make(n: int) -> list[bytes]:
    return [merkle.leaf_hash(str(i).encode()) for i in range(n)]


@given(st.integers(min_value=0, max_value=70))
def test_root_is_rfc6962_mth(n: int) -> None:
    assert merkle.root(make(n)) == mth(make(n))


@given(st.integers(min_value=1, max_value=70), st.data())
def test_paths_are_rfc6962_and_verify(n: int, data: st.DataObject) -> None:
    leaves = make(n)
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    tree = merkle.levels(leaves)
    got = merkle.inclusion_path(tree, m)
    assert got == path(m, leaves)
    assert merkle.root_from_path(leaves[m], m, n, got) == mth(leaves)


def test_a_wrong_leaf_index_or_size_does_not_verify() -> None:
    leaves = make(11)
    tree = merkle.levels(leaves)
    good = merkle.inclusion_path(tree, 6)
    root = merkle.root(leaves)
    assert merkle.root_from_path(leaves[6], 6, 11, good) == root
    assert merkle.root_from_path(leaves[7], 6, 11, good) != root
    assert merkle.root_from_path(leaves[6], 5, 11, good) != root
    assert merkle.root_from_path(leaves[6], 6, 7, good) != root
    assert merkle.root_from_path(leaves[6], 11, 11, good) is None
