"""Retention seen by the ledger: a signed prune checkpoint before every deletion.

``verify`` reports a sealed event that is gone as *pruned* only when a
checkpoint signed by our key says events before that time were removed on
purpose; anything else gone is *deleted*. The checkpoint is written before
the deletion, so a prune stopped half-way leaves events that are merely
still there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from useraudit.store.base import Store, StoreError
from useraudit.store.ledger import ledger_for

from .keys import SigningKey, load_current
from .sealer import Chains
from .verify import iso


def signing_key_for_prune(store: Store, key: SigningKey | None = None) -> SigningKey | None:
    """The key to record a prune with; an error when the store is sealed and none is found."""
    key = key or load_current()
    if key is None and ledger_for(store).accounts():
        raise StoreError(
            f"{store.url} keeps signed checkpoints but no signing key was found: give the "
            "indexer's key directory (--keys or USERAUDIT_KEYS) so the deletion is recorded, "
            "or `useraudit verify` will report the pruned events as deleted"
        )
    return key


def record_prune(
    store: Store, key: SigningKey, cutoff: datetime, accounts: Iterable[str] | None = None
) -> list[dict]:
    """Append a prune checkpoint (``before`` = cutoff) to each account's chain."""
    chains = Chains(ledger_for(store), key)
    names = list(accounts) if accounts is not None else chains.ledger.accounts()
    return [chains.append(name, kind="prune", before=iso(cutoff)) for name in names]
