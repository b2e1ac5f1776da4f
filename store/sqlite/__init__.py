"""SQLiteStore: the embedded backend, one file, same answers as OpenSearch.

URL: ``sqlite:///var/lib/useraudit/audit.db`` (absolute; ``sqlite:////abs``
works too) or ``sqlite:relative/audit.db``.

Layout, derived from :data:`useraudit.schema.FIELDS`:

* ``events``: one column per field (dots → underscores, ``@timestamp`` →
  ``timestamp``); multi-valued fields and ``audit.params`` as JSON text.
  Extra columns: ``ts_ms`` (epoch milliseconds, the sort key with
  ``event_id``), ``<name>_fold`` beside the person name and e-mail fields
  (lowercased, Latin accents folded, like OpenSearch's ``.lower``
  normalizer; NULL when that changes nothing, as for most e-mail
  addresses, and read as ``coalesce(<name>_fold, <name>)``; the other NAME
  fields are not filtered on), ``ip_key``
  (16-byte IPv6 form of ``source.ip``, IPv4 mapped) so CIDR filters are
  index range scans, ``week`` (``ts_ms // WEEK_MS``) and ``combo``: the id
  in ``facet_combos`` of the event's result, product, browser, OS, device
  and impersonator together (see :mod:`.facet_combos`), and
  ``<column>_vid`` beside the action, user name, target name and project:
  the value's id in ``facet_values`` (see :mod:`.facet_values`).
* ``events_fts``: FTS5 over the *stems* of ``audit_comments`` (English and
  Russian Snowball, :mod:`.stems`) and an account token, with the view
  ``events_fts_source`` over ``events`` as external content (the text is
  stored once; the view stems it through a function each connection
  registers), ``unicode61 remove_diacritics 2`` (Cyrillic is case-folded;
  Latin accents are ignored), prefix indexes for 2 and 3 characters. Every
  MATCH names the account.
* ``related_users``: (account, week, person, row) for every person of an
  event, and ``person_values``: (account, folded value, person) for every
  ``related.user`` value (see :mod:`.related_users`): the User history
  filter is one index lookup per week of the period and person carrying
  the value, and the person filters (User, Modified user, Impersonator)
  find their candidates there before checking the role's own columns.
  People and IP addresses arrive in no order, so these keys lead with the
  week: new events only touch the current week's pages.
* ``facet_counts``: per account, facet, UTC month and value, how many
  events; updated in the same transaction as every write and delete. The
  landing page (account and period only) takes its facets and total from
  it for the whole months in the period and counts the partial months at
  its ends from ``events_hot``. Any other filter or search text counts the
  matching rows in one pass over ``events_hot``.

Indexes are few on purpose (each one costs ingest, most of all when its
keys arrive scattered and every batch rewrites hundreds of pages): event id;
``events_hot`` = account, time, event id, ``combo``, the value ids and the
token and group columns (the sort order, retention per account, and
counting/faceting without reading wide rows; action, outcome, project,
browser... filters scan it);
account + token; account + week + IP.

Where SQLite answers differently from OpenSearch (held by the contract
suite, ``tests/store/test_contract.py``):

* full text: FTS5's unicode61 ignores Latin accents (``cafe`` finds
  ``Café``; OpenSearch's standard analyzer does not) and splits on every
  non-alphanumeric character (``example`` finds ``alice@example.com``;
  OpenSearch keeps ``example.com`` as one token). Quoted phrases and whole
  addresses match on both.
* highlighting: computed in Python from the stems (:mod:`.stems`), one
  ``<mark>`` per word, as on OpenSearch.

Connections are per thread, in WAL mode with ``synchronous=FULL`` and a
busy timeout: readers never block the writer, and writes are short
``BEGIN IMMEDIATE`` transactions. Retention deletes in small batches, each
its own transaction, and pauses after each as long as it held the lock.
Every SQLite failure surfaces as a :class:`~useraudit.store.base.StoreError`
naming the file.

The package, one concern per module:

* :mod:`.layout`: tables, columns and indexes, derived from the schema;
* :mod:`.versions`: the file version, upgrades, columns of new fields;
* :mod:`.rows`: an event as a row and back;
* :mod:`.writes`: writing and deleting, with the side tables;
* :mod:`.rollup`: the monthly facet counts;
* :mod:`.search`: the query plan, the page, the total and the facets;
* :mod:`.highlight`, :mod:`.stems`: search words as stems, marked in the comments;
* :mod:`.facet_combos`, :mod:`.facet_values`, :mod:`.related_users`: the id tables;
* :mod:`.store`: :class:`SQLiteStore`, connections and errors.

The measurements behind the layout are in docs/sqlite.md.
"""

from __future__ import annotations

from .layout import column
from .rows import ip_key, ip_range
from .store import SQLiteStore, path_from_url
from .versions import FILE_VERSION

__all__ = ["FILE_VERSION", "SQLiteStore", "column", "ip_key", "ip_range", "path_from_url"]
