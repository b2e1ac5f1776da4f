"""Merkle trees exactly as RFC 6962 §2.1 (and RFC 9162 §2.1.3 for proofs).

Leaves are hashed ``SHA-256(0x00 ‖ data)``, interior nodes
``SHA-256(0x01 ‖ left ‖ right)``; a tree of n leaves splits at the largest
power of two below n. Built bottom-up, an odd node at the end of a level is
carried up unchanged, which gives the same tree. About sixty lines of
standard construction: no library we found is both maintained and this small.
"""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last."""
    out = [list(leaves)]
    while len(out[-1]) > 1:
        below = out[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        out.append(above)
    return out


def root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return levels(leaves)[-1][0]


def inclusion_path(tree: list[list[bytes]], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` (RFC 6962 PATH), from ``levels()``."""
    path: list[bytes] = []
    for level in tree[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index //= 2
    return path


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root a path leads to, or None if it cannot fit the tree."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
