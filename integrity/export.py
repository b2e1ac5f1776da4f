"""Proof-carrying NDJSON exports, and checking one offline with only a public key.

File layout (UTF-8, one JSON object per line)::

    {"@timestamp": ..., "event": {"id": ...}, ...}     one line per event, as the NDJSON export
    ...
    {"useraudit.checkpoint": {signed body + "sig"}}     each checkpoint the proofs need
    {"useraudit.proof": {"line": 1, "checkpoint": "acme/3", "index": 17, "path": [hex, ...]}}

The event lines are the plain export, so a reader that ignores the
trailer sees ordinary events. To check line n, :func:`verify_file` hashes
the event on that line (the canonical form of docs/integrity.md), builds
its checkpoint entry from the event's own fields, walks the Merkle path to
the checkpoint's root, and checks the checkpoint's Ed25519 signature with
the published key. Nothing else is needed: not the store, not our code's
state, not the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from useraudit.schema import flatten, nest
from useraudit.store.base import Store
from useraudit.store.ledger import ledger_for
from useraudit.store.query import Query

from . import checkpoint, merkle
from .canonical import canonical, project
from .keys import Keyring
from .sealer import entry_of

CHECKPOINT = "useraudit.checkpoint"
PROOF = "useraudit.proof"


@dataclass
class ExportStats:
    events: int = 0
    proven: int = 0
    checkpoints: int = 0
    unsealed: list[str] = field(default_factory=list)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Proofs:
    """The proof of each line of an account's NDJSON export, as the lines are written.

    Call :meth:`line` with each event document in the order its lines are
    written; :meth:`trailer` then gives the checkpoint and proof lines that
    follow the last event. The webapp's NDJSON export uses it through a
    writer of its own (``webapp/ndjson.py``), the CLI through :func:`write_export`.
    """

    def __init__(self, store: Store, account: str) -> None:
        self.account = account
        self.where: dict[str, tuple[int, int]] = {}  # event id -> (checkpoint seq, leaf index)
        self.chain: dict[int, dict[str, Any]] = {}
        for doc in ledger_for(store).iterate(account):
            if doc.get("kind") != "events":
                continue
            self.chain[doc["seq"]] = doc
            for index, entry in enumerate(doc.get("leaves") or ()):
                self.where.setdefault(entry[0], (doc["seq"], index))
        self.stats = ExportStats()
        self._trees: dict[int, list[list[bytes]]] = {}
        self._proofs: list[dict[str, Any]] = []

    def line(self, doc: dict[str, Any]) -> None:
        self.stats.events += 1
        event_id = str(doc.get("event.id"))
        found = self.where.get(event_id)
        if found is None:
            self.stats.unsealed.append(event_id)
            return
        seq, index = found
        tree = self._trees.get(seq)
        if tree is None:
            leaves = [checkpoint.entry_leaf(e) for e in self.chain[seq]["leaves"]]
            tree = self._trees[seq] = merkle.levels(leaves)
        self._proofs.append(
            {
                "line": self.stats.events,
                "checkpoint": checkpoint.checkpoint_id(self.account, seq),
                "index": index,
                "path": [p.hex() for p in merkle.inclusion_path(tree, index)],
            }
        )
        self.stats.proven += 1

    def trailer(self) -> bytes:
        lines = []
        for seq in sorted(self._trees):
            signed = {**checkpoint.body_of(self.chain[seq]), "sig": self.chain[seq]["sig"]}
            lines.append(_dumps({CHECKPOINT: signed}))
            self.stats.checkpoints += 1
        lines += [_dumps({PROOF: proof}) for proof in self._proofs]
        return "".join(line + "\n" for line in lines).encode()


def write_export(
    store: Store,
    out: IO[str],
    account: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ExportStats:
    """Write ``account``'s events (newest first, ECS-nested) and their proof to ``out``."""
    proofs = Proofs(store, account)
    for doc in store.iterate(Query(account, start=start, end=end), batch_size=2000):
        flat = project(doc)
        out.write(_dumps(nest(flat)) + "\n")
        proofs.line(flat)
    out.write(proofs.trailer().decode())
    return proofs.stats


@dataclass(frozen=True)
class LineProblem:
    line: int
    reason: str


@dataclass
class ExportCheck:
    events: int = 0
    checkpoints: int = 0
    problems: list[LineProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.events > 0


def _lines(fh: IO[str]) -> Iterator[tuple[int, str]]:
    for number, text in enumerate(fh, 1):
        if text.strip():
            yield number, text


def verify_file(fh: IO[str], keyring: Keyring) -> ExportCheck:
    """Check every line of a proof-carrying export; problems name the line."""
    result = ExportCheck()
    events: dict[int, dict[str, Any]] = {}
    checkpoints: dict[str, dict[str, Any]] = {}
    proofs: dict[int, dict[str, Any]] = {}
    for number, text in _lines(fh):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            result.problems.append(LineProblem(number, f"not JSON ({exc})"))
            continue
        if not isinstance(obj, dict):
            result.problems.append(LineProblem(number, "not a JSON object"))
        elif CHECKPOINT in obj:
            cp = obj[CHECKPOINT]
            body = checkpoint.body_of(cp)
            cid = checkpoint.checkpoint_id(str(cp.get("account")), cp.get("seq", -1))
            if not keyring.verify(str(cp.get("key")), str(cp.get("sig")), canonical(body)):
                result.problems.append(
                    LineProblem(number, f"checkpoint {cid}: signature does not verify")
                )
                continue
            checkpoints[cid] = cp
        elif PROOF in obj:
            proof = obj[PROOF]
            if not isinstance(proof, dict) or not isinstance(proof.get("line"), int):
                result.problems.append(LineProblem(number, "proof without a line number"))
                continue
            proofs[proof["line"]] = proof
        else:
            events[number] = flatten(obj)  # nested ECS lines and flat ones alike
    result.checkpoints = len(checkpoints)
    for number, doc in sorted(events.items()):
        result.events += 1
        eid = doc.get("event.id")
        proof = proofs.get(number)
        if proof is None:
            result.problems.append(LineProblem(number, f"event {eid}: no proof (inserted?)"))
            continue
        cp = checkpoints.get(str(proof.get("checkpoint")))
        if cp is None:
            result.problems.append(
                LineProblem(number, f"event {eid}: checkpoint {proof.get('checkpoint')} missing")
            )
            continue
        try:
            leaf = checkpoint.entry_leaf(entry_of(doc))
            path = [bytes.fromhex(p) for p in proof.get("path") or ()]
            root = merkle.root_from_path(leaf, int(proof.get("index", -1)), int(cp["size"]), path)
        except (KeyError, TypeError, ValueError) as exc:
            result.problems.append(LineProblem(number, f"event {eid}: unreadable ({exc})"))
            continue
        if root is None or root.hex() != cp.get("root"):
            result.problems.append(
                LineProblem(
                    number,
                    f"event {eid}: does not match checkpoint {proof['checkpoint']} "
                    "(changed, or not the event sealed there)",
                )
            )
        elif str(doc.get("organization.id") or "") != cp.get("account"):
            result.problems.append(LineProblem(number, f"event {eid}: belongs to another account"))
    for line in sorted(set(proofs) - set(events)):
        result.problems.append(LineProblem(line, "a proof names this line, which has no event"))
    return result
