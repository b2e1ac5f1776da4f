"""Heads kept elsewhere: the defence against truncating an account's newest checkpoints.

Deleting the newest checkpoints of a chain together with the events they seal
leaves a shorter chain that is consistent in itself. Only a copy of a later
checkpoint kept outside the store shows it: ``useraudit integrity heads``
prints each account's newest (signed, with its entries) as NDJSON for a sink
or a file elsewhere, and ``useraudit verify --heads FILE`` compares the
store's chains with them. A head whose signature does not verify is not
trusted (reported, never used); a trusted head the store's chain does not
reach, or reaches with a different checkpoint, is reported, with the event
ids the head seals.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from useraudit.store.ledger import Ledger

from . import checkpoint
from .keys import Keyring
from .verify import Finding


def read_heads(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Checkpoint documents from NDJSON lines; a line that is not one raises ValueError."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"heads line {number} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int):
            raise ValueError(f"heads line {number} is not a checkpoint")
        yield doc


def newest(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest checkpoint of each account among ``docs``."""
    heads: dict[str, dict[str, Any]] = {}
    for doc in docs:
        account = str(doc.get("account"))
        if account not in heads or doc["seq"] > heads[account]["seq"]:
            heads[account] = doc
    return heads


def compare(
    heads: Iterable[dict[str, Any]],
    ledger: Ledger,
    keyring: Keyring,
    account: str | None = None,
) -> list[Finding]:
    """Findings for each head the store's chain does not hold as it was signed."""
    findings: list[Finding] = []
    for doc in heads:
        name = str(doc.get("account"))
        if account is not None and name != account:
            continue
        cid = checkpoint.checkpoint_id(name, doc["seq"])
        problem = checkpoint.check(doc, keyring)
        if problem is not None:
            findings.append(Finding("untrusted-head", name, cid, problem))
            continue
        stored = ledger.get(name, doc["seq"])
        if stored is not None and checkpoint.checkpoint_hash(stored) == checkpoint.checkpoint_hash(
            doc
        ):
            continue
        top = ledger.head(name)
        if stored is None:
            why = f"the store's chain ends at checkpoint {top}; a head kept elsewhere is {cid}"
        else:
            why = f"the store's {cid} differs from the head kept elsewhere"
        findings.append(Finding("truncated", name, cid, why))
        for entry in doc.get("leaves") or []:
            findings.append(Finding("truncated", name, str(entry[0]), f"sealed in {cid}: {why}"))
    return findings


def write_heads(ledger: Ledger, out: IO[str], account: str | None = None) -> int:
    """Each account's newest checkpoint as NDJSON; how many were written."""
    names = [account] if account is not None else ledger.accounts()
    n = 0
    for name in names:
        top = ledger.head(name)
        doc = ledger.get(name, top) if top else None
        if doc is not None:
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n
