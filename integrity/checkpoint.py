"""Checkpoints: signed links of one account's chain (see docs/integrity.md).

A checkpoint document is its signed *body* plus ``leaves`` (bound by the
body's Merkle ``root``) and ``sig``. An ``events`` checkpoint seals entries
``[event id, @timestamp, origin id, origin seq, event hash]``; a ``prune``
checkpoint records a retention cutoff before the deletion it announces.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import merkle
from .canonical import canonical, canonical_entry
from .keys import Keyring, SigningKey

VERSION = 1
BODY_KEYS = (
    "v",
    "account",
    "seq",
    "kind",
    "prev",
    "size",
    "root",
    "first",
    "last",
    "time",
    "key",
    "before",
)
# An entry: event id, @timestamp, origin id, origin seq, event hash (a tuple
# as the sealer makes it, a list as read back from a checkpoint).
Entry = Sequence[Any]


def entry_leaf(entry: Sequence[Any]) -> bytes:
    return merkle.leaf_hash(canonical_entry(entry))


def body_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in BODY_KEYS if k in doc}


def checkpoint_hash(doc: dict[str, Any]) -> str:
    """What the next checkpoint of the chain names as ``prev``."""
    return hashlib.sha256(canonical(body_of(doc))).hexdigest()


def checkpoint_id(account: str, seq: int) -> str:
    return f"{account}/{seq}"


def now_iso() -> str:
    ms = time.time_ns() // 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def make(
    key: SigningKey,
    account: str,
    seq: int,
    prev: str,
    *,
    entries: Sequence[Entry] = (),
    kind: str = "events",
    before: str | None = None,
    leaves: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """A signed checkpoint document, ready for the ledger.

    ``leaves``, when given, are ``entry_leaf`` of each entry, worked out earlier.
    """
    if leaves is None:
        leaves = [entry_leaf(e) for e in entries]
    elif len(leaves) != len(entries):
        raise ValueError(f"{len(leaves)} leaves for {len(entries)} entries")
    times = [e[1] for e in entries if isinstance(e[1], str)]
    doc: dict[str, Any] = {
        "v": VERSION,
        "account": account,
        "seq": seq,
        "kind": kind,
        "prev": prev,
        "size": len(leaves),
        "root": merkle.root(list(leaves)).hex(),
        "time": now_iso(),
        "key": key.id,
    }
    if times:
        doc["first"], doc["last"] = min(times), max(times)
    if before is not None:
        doc["before"] = before
    doc["sig"] = key.sign(canonical(body_of(doc)))
    # Entries as they are (tuples from the sealer): the ledger writes them as
    # JSON arrays, and reads give lists back.
    doc["leaves"] = list(entries)
    return doc


@dataclass(frozen=True)
class Problem:
    """Why a checkpoint cannot be trusted."""

    checkpoint: str
    reason: str


def check(doc: dict[str, Any], keyring: Keyring) -> str | None:
    """None when the signature holds and the leaves give the signed root; else why not."""
    body = body_of(doc)
    if not keyring.verify(str(doc.get("key")), str(doc.get("sig")), canonical(body)):
        known = "unknown key " if doc.get("key") not in keyring.keys else ""
        return f"signature does not verify ({known}{doc.get('key')})"
    leaves = doc.get("leaves") or []
    if len(leaves) != doc.get("size"):
        return f"lists {len(leaves)} entries, signed for {doc.get('size')}"
    try:
        computed = merkle.root([entry_leaf(e) for e in leaves]).hex()
    except (TypeError, ValueError) as exc:
        return f"entries cannot be read: {exc}"
    if computed != doc.get("root"):
        return "entries do not give the signed Merkle root"
    return None
