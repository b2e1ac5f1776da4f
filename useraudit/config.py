"""Where useraudit keeps its state, and the defaults every part falls back to.

The bottom layer: capture, the indexer, the stores, the admin UI and the
command line all read their default paths and URLs here, so a default is
changed in one place. Every function reads the environment when called
(never at import), so a host app, a test or a command may set
``USERAUDIT_HOME`` and friends at any time before it asks.

variable               what                                         default
=====================  ===========================================  =====================
``USERAUDIT_HOME``     local state: spool, SQLite store, web users  ``~/.useraudit``
``USERAUDIT_SPOOL``    the durable spool directory                  ``$USERAUDIT_HOME/spool``
``USERAUDIT_STORE``    the store URL (SQLite or OpenSearch)         ``sqlite:///$USERAUDIT_HOME/audit.db``
``USERAUDIT_WEBUSERS`` the admin UI's user database                 ``$USERAUDIT_HOME/webusers.db``
=====================  ===========================================  =====================

The host app's recorder also reads ``USERAUDIT_ACCOUNT`` (the account of
events that name none; unset: see docs/capture.md, "Which account an event
belongs to") and ``USERAUDIT_DURABILITY`` (``batch`` or ``sync``). The whole
table, and how to give the app, the indexer and the UI the same values, is
in docs/configuration.md.
=======
* ``USERAUDIT_HOME``: local state (spool, SQLite store, web users), ``~/.useraudit``;
* ``USERAUDIT_SPOOL``: the durable spool, ``$USERAUDIT_HOME/spool``;
* ``USERAUDIT_STORE``: the store URL, ``sqlite:///$USERAUDIT_HOME/audit.db``;
* ``USERAUDIT_WEBUSERS``: the admin UI's users, ``$USERAUDIT_HOME/webusers.db``;
* ``USERAUDIT_KEYS``: integrity signing keys, ``$USERAUDIT_HOME/integrity/keys``.

The host app's recorder also reads ``USERAUDIT_ACCOUNT`` (the account of
events that name none; unset: see docs/capture.md, "Which account an event
belongs to") and ``USERAUDIT_DURABILITY`` (``batch`` or ``sync``). The whole
table, and how to give the app, the indexer and the UI the same values, is
in docs/configuration.md.
"""

from __future__ import annotations

import os
from pathlib import Path

# Retention (store/retention.py): indices read-only after, events deleted after, days.
DEFAULT_WARM_AFTER_DAYS = 30
DEFAULT_DELETE_AFTER_DAYS = 365


def home() -> Path:
    """Where useraudit keeps its local state unless told otherwise."""
    return Path(os.environ.get("USERAUDIT_HOME") or Path.home() / ".useraudit")


def default_spool_dir() -> Path:
    """The spool ``record()`` writes and the indexer reads."""
    return Path(os.environ.get("USERAUDIT_SPOOL") or home() / "spool")


def default_store_url() -> str:
    """The store every command and the UI open unless given ``--store``."""
    return os.environ.get("USERAUDIT_STORE") or f"sqlite:///{home() / 'audit.db'}"


def default_users_db() -> Path:
    """The admin UI's user database (accounts, password hashes, grants)."""
    return Path(os.environ.get("USERAUDIT_WEBUSERS") or home() / "webusers.db")


def default_key_dir() -> Path:
    """The integrity signing keys (``useraudit integrity keygen``)."""
    return Path(os.environ.get("USERAUDIT_KEYS") or home() / "integrity" / "keys")


def devnode_home() -> Path:
    """The development OpenSearch node's folder (``useraudit opensearch``)."""
    return home() / "opensearch"


def devcluster_home() -> Path:
    """The development three-node cluster's folder."""
    return home() / "opensearch-cluster"


def default_account() -> str | None:
    """The account of events that name none, for a single-tenant app (``USERAUDIT_ACCOUNT``)."""
    return os.environ.get("USERAUDIT_ACCOUNT") or None


def default_durability() -> str:
    """``batch`` (group commit every 50 ms) or ``sync`` (``USERAUDIT_DURABILITY``)."""
    return os.environ.get("USERAUDIT_DURABILITY") or "batch"
