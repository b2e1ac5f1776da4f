"""SQLite-only behaviour: file settings, failure messages, retention beside live traffic."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from useraudit.store import open_store
from useraudit.store.base import StoreError, StoreUnavailable
from useraudit.store.query import Query, SearchRequest
from useraudit.store.sqlite import FILE_VERSION, SQLiteStore, path_from_url
from useraudit.store.sqlite.related_users import People
from useraudit.store.sqlite.rows import fold_value, timestamp_ms

from .conftest import ACCOUNT, DATASET, write_all


def test_url_forms() -> None:
    """sqlite:///abs, sqlite:////abs and sqlite:relative all name the
    expected file; :memory: is refused."""
    assert path_from_url("sqlite:///var/lib/useraudit/audit.db") == Path(
        "/var/lib/useraudit/audit.db"
    )
    assert path_from_url("sqlite:////root/.useraudit/audit.db") == Path("/root/.useraudit/audit.db")
    assert path_from_url("sqlite:data/audit.db") == Path("data/audit.db")
    with pytest.raises(StoreError):
        path_from_url("sqlite:///:memory:")


def test_pragmas(tmp_path: Path) -> None:
    """The file is in WAL mode with synchronous=FULL (a commit is on disk before the spool
    moves past it) and a busy timeout, and open_store picks SQLite."""
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(store, SQLiteStore)
    con = store._con
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert con.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 16384  # 64 MiB of WAL
    store.close()


def test_corrupt_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    """A file that is not a database gives a StoreError that names it, on any call."""
    bad = tmp_path / "audit.db"
    bad.write_bytes(b"\x00garbage" * 1000)
    store = SQLiteStore(f"sqlite:///{bad}")
    for call in (
        store.install,
        lambda: store.count(Query(ACCOUNT)),
        lambda: store.write(DATASET[:1]),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert str(bad) in str(info.value)


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    """A path whose directory cannot be created gives a StoreError naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = SQLiteStore(f"sqlite:///{blocker / 'sub' / 'audit.db'}")
    with pytest.raises(StoreError) as info:
        store.install()
    assert str(blocker / "sub" / "audit.db") in str(info.value)


def test_locked_database_is_unavailable_not_a_crash(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """While another process holds the write lock, write raises StoreUnavailable naming the file."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}", busy_timeout_ms=200)
    store.install()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.write([enricher(DATASET[0])])
        assert str(path) in str(info.value)
        # Readers are not blocked by a writer in WAL mode.
        assert store.count(Query(ACCOUNT)) == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.write([enricher(DATASET[0])])[0].status == "created"
    store.close()


def test_bad_documents_are_rejected_per_item(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """A document without event.id or with an unparseable timestamp is rejected
    alone; the rest are stored."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'a.db'}")
    good = enricher(DATASET[0])
    results = store.write(
        [
            {"@timestamp": "2026-01-01T00:00:00Z"},
            {**good, "event.id": "x1", "@timestamp": "soon"},
            good,
        ]
    )
    assert [r.status for r in results] == ["rejected", "rejected", "created"]
    assert "event.id" in results[0].reason and "@timestamp" in results[1].reason
    store.close()


def test_text_never_reaches_fts5_raw(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """FTS5 syntax typed by a user (NEAR, column filters, ^, AND) is
    searched as words, never run."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'a.db'}")
    write_all(store, [enricher(e) for e in DATASET])
    for text in (
        "NEAR(read write)",
        "audit_comments:token",
        "^custom",
        "read AND write",
        "{a b}: c",
        "rowid",
    ):
        store.search(SearchRequest(Query(ACCOUNT, text=text)))
    assert store.count(Query(ACCOUNT, text="read AND write")) == 1  # 'and' is a word of a01
    store.close()


def test_prune_does_not_lock_out_readers_or_writers(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """While retention deletes 20,000 events in batches, searches and writes keep
    going without waiting long."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'a.db'}")
    template = enricher(DATASET[0])
    start = datetime(2025, 1, 1, tzinfo=UTC)
    old = [
        {
            **template,
            "event.id": f"old{i:06d}",
            "@timestamp": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(20_000)
    ]
    write_all(store, old)
    stop = threading.Event()
    worst = {"read": 0.0, "write": 0.0}
    errors: list[BaseException] = []

    def traffic() -> None:
        n = 0
        try:
            while not stop.is_set():
                t = time.perf_counter()
                store.search(SearchRequest(Query(ACCOUNT), size=10))
                worst["read"] = max(worst["read"], time.perf_counter() - t)
                t = time.perf_counter()
                store.write(
                    [{**template, "event.id": f"new{n:06d}", "@timestamp": "2026-06-01T00:00:00Z"}]
                )
                worst["write"] = max(worst["write"], time.perf_counter() - t)
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        deleted = store.delete_older_than(datetime(2026, 1, 1, tzinfo=UTC), batch_size=500)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert deleted == 20_000
    assert worst["write"] < 2.0 and worst["read"] < 2.0, worst
    assert store.count(Query(ACCOUNT)) >= 1
    store.close()


# events_hot as file versions 1 to 3 had it: the six few-valued facets as strings.
_HOT_BEFORE_4 = (
    "CREATE INDEX events_hot ON events(organization_id, ts_ms, event_id, event_action, "
    "event_outcome, user_name, user_target_name, audit_impersonator_name, audit_project_id, "
    "audit_product, user_agent_name, user_agent_os_name, user_agent_device_name, "
    "audit_token_id, audit_group)"
)


# events_hot as file version 4 and 5 had it: action, user, target and project as strings.
_HOT_BEFORE_6 = (
    "CREATE INDEX events_hot ON events(organization_id, ts_ms, event_id, combo, event_action, "
    "user_name, user_target_name, audit_project_id, audit_token_id, audit_group)"
)


def _as_file_version_7(path: Path) -> None:
    """Turn a current file back into the version-7 layout (words, not stems, in events_fts)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(
        """
        DROP TABLE events_fts;
        DROP VIEW events_fts_source;
        CREATE VIEW events_fts_source AS
          SELECT rid, 'a' || hex(organization_id) AS account, audit_comments FROM events
          WHERE audit_comments IS NOT NULL;
        CREATE VIRTUAL TABLE events_fts USING fts5(
          account, audit_comments, content='events_fts_source', content_rowid='rid',
          tokenize='unicode61 remove_diacritics 2', prefix='2 3');
        INSERT INTO events_fts(events_fts) VALUES ('rebuild');
        PRAGMA user_version = 7;
        """
    )
    con.close()


def test_a_version_7_file_is_reindexed_with_stems(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """A file that indexed words is upgraded once: its comments are found by word forms."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, [enricher(e) for e in DATASET])
    store.close()
    _as_file_version_7(path)
    old = SQLiteStore(f"sqlite:///{path}")
    # Opened without the upgrade, the words index would not find "creating"...
    with sqlite3.connect(path) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'audit_comments : creat'"
            ).fetchone()[0]
            == 0
        )
    assert f"file version {FILE_VERSION}" in old.install()[0]
    found = [h["event.id"] for h in old.search(SearchRequest(Query(ACCOUNT, text="creating"))).hits]
    assert found == ["a04", "a01"]
    # ...and deleting an upgraded row removes its stems from the index.
    assert old.delete_older_than(datetime(2026, 1, 6, tzinfo=UTC)) == 1
    found = [h["event.id"] for h in old.search(SearchRequest(Query(ACCOUNT, text="creating"))).hits]
    assert found == ["a04"]
    con = old._con
    con.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")
    old.close()


def _as_file_version_6(path: Path) -> None:
    """Turn a current file back into the version-6 layout (comments alone in events_fts)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(
        """
        DROP TABLE events_fts;
        DROP VIEW events_fts_source;
        CREATE VIRTUAL TABLE events_fts USING fts5(
          audit_comments, content='events', content_rowid='rid',
          tokenize='unicode61 remove_diacritics 2', prefix='2 3');
        INSERT INTO events_fts(events_fts) VALUES ('rebuild');
        PRAGMA user_version = 6;
        """
    )
    con.close()


def _as_file_version_5(path: Path) -> None:
    """Turn a current file back into the version-5 layout (no value ids)."""
    _as_file_version_6(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(
        f"""
        DROP INDEX events_hot;
        ALTER TABLE events DROP COLUMN event_action_vid;
        ALTER TABLE events DROP COLUMN user_name_vid;
        ALTER TABLE events DROP COLUMN user_target_name_vid;
        ALTER TABLE events DROP COLUMN audit_project_id_vid;
        DROP TABLE facet_values;
        {_HOT_BEFORE_6};
        PRAGMA user_version = 5;
        """
    )
    con.close()


def _related_users_by_value(con: sqlite3.Connection) -> None:
    """related_users as versions 1 to 4 had it: every folded related.user value, no persons."""
    con.executescript(
        """
        DROP TABLE related_users;
        DROP TABLE people;
        DROP TABLE person_values;
        CREATE TABLE related_users (
          organization_id TEXT NOT NULL, week INTEGER NOT NULL, value TEXT NOT NULL,
          rid INTEGER NOT NULL,
          PRIMARY KEY (organization_id, week, value, rid)) WITHOUT ROWID;
        """
    )
    con.executemany(
        "INSERT INTO related_users VALUES (?, ?, ?, ?)",
        [
            (account or "", week, value, rid)
            for rid, account, week, users in con.execute(
                "SELECT rid, organization_id, week, related_user FROM events "
                "WHERE related_user IS NOT NULL"
            ).fetchall()
            for value in {fold_value(u) for u in json.loads(users)}
        ],
    )


def _as_file_version_4(path: Path) -> None:
    """Turn a current file back into the version-4 layout (related_users by value)."""
    _as_file_version_5(path)
    con = sqlite3.connect(path, isolation_level=None)
    _related_users_by_value(con)
    con.execute("PRAGMA user_version = 4")
    con.close()


def _as_file_version_3(path: Path) -> None:
    """Turn a current file back into the version-3 layout: version 4 without the facet
    combinations."""
    _as_file_version_5(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(
        f"""
        DROP INDEX events_hot;
        ALTER TABLE events DROP COLUMN combo;
        DROP TABLE facet_combos;
        {_HOT_BEFORE_4};
        """
    )
    _related_users_by_value(con)
    con.execute("PRAGMA user_version = 3")
    con.close()


def _as_file_version_1(path: Path) -> None:
    """Turn a current file back into the version-1 layout (no week column)."""
    _as_file_version_3(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(
        """
        BEGIN;
        DROP INDEX events_ip;
        CREATE INDEX events_ip_key ON events(organization_id, ip_key, ts_ms);
        CREATE TABLE old_related (organization_id TEXT NOT NULL, value TEXT NOT NULL,
          rid INTEGER NOT NULL, PRIMARY KEY (organization_id, value, rid)) WITHOUT ROWID;
        INSERT INTO old_related SELECT organization_id, value, rid FROM related_users;
        DROP TABLE related_users;
        ALTER TABLE old_related RENAME TO related_users;
        CREATE INDEX related_users_rid ON related_users(rid);
        ALTER TABLE events DROP COLUMN week;
        PRAGMA user_version = 1;
        COMMIT;
        """
    )
    con.close()


def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Files from before the week column open, are upgraded once, and answer as before."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, [enricher(e) for e in DATASET])
    queries = [
        Query(ACCOUNT, history=("bob",)),
        Query(ACCOUNT, users=("carol",)),
        Query(ACCOUNT, target_users=("bob@example.com",)),
        Query(ACCOUNT, impersonators=("root",)),
        Query(ACCOUNT, ips=("10.1.0.0/16",)),
        Query(ACCOUNT, ips=("2001:db8::/32", "192.168.5.20")),
    ]
    before = [[h["event.id"] for h in store.search(SearchRequest(q)).hits] for q in queries]
    assert all(before) and len({tuple(b) for b in before}) == len(before)
    store.close()

    _as_file_version_1(path)
    with sqlite3.connect(path) as con:
        assert "week" not in {r[1] for r in con.execute("PRAGMA table_info(events)")}
    upgraded = SQLiteStore(f"sqlite:///{path}")
    assert f"file version {FILE_VERSION}" in upgraded.install()[0]
    after = [[h["event.id"] for h in upgraded.search(SearchRequest(q)).hits] for q in queries]
    assert after == before
    # New writes after the upgrade are found through the week-led indexes too.
    late = enricher({**DATASET[1], "event.id": "late", "@timestamp": "2026-03-01T00:00:00Z"})
    assert upgraded.write([late])[0].status == "created"
    assert "late" in {
        h["event.id"] for h in upgraded.search(SearchRequest(Query(ACCOUNT, history=("bob",)))).hits
    }
    upgraded.close()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == FILE_VERSION
        assert not con.execute(
            "SELECT 1 FROM sqlite_master WHERE name IN ('related_users_v1', 'events_ip_key')"
        ).fetchall()


def test_a_version_2_file_loses_its_copy_of_related_users(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Version 2 kept related_users twice (an index on rid) and indexes on time, outcome,
    action, project and product/group: the upgrade drops them, answers and retention stay."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, [enricher(e) for e in DATASET])
    history = Query(ACCOUNT, history=("bob",))
    before = [h["event.id"] for h in store.search(SearchRequest(history)).hits]
    assert before
    store.close()
    _as_file_version_3(path)
    with sqlite3.connect(path) as con:
        con.execute("CREATE INDEX related_users_rid ON related_users(rid)")
        con.execute("CREATE INDEX events_ts ON events(ts_ms)")
        con.execute(
            "CREATE INDEX events_event_action ON events(organization_id, event_action, ts_ms)"
        )
        con.execute(
            "CREATE INDEX events_event_outcome ON events(organization_id, event_outcome, ts_ms)"
        )
        con.execute(
            "CREATE INDEX events_groups "
            "ON events(organization_id, audit_product, audit_group, ts_ms)"
        )
        con.execute(
            "CREATE INDEX events_audit_project_id "
            "ON events(organization_id, audit_project_id, ts_ms)"
        )
        con.execute("PRAGMA user_version = 2")

    upgraded = SQLiteStore(f"sqlite:///{path}")
    assert f"file version {FILE_VERSION}" in upgraded.install()[0]
    assert [h["event.id"] for h in upgraded.search(SearchRequest(history)).hits] == before
    failures = Query(ACCOUNT, outcomes=("failure",))
    assert upgraded.search(SearchRequest(failures)).total > 0
    action = DATASET[0]["event.action"]
    assert upgraded.search(SearchRequest(Query(ACCOUNT, actions=(action,)))).total > 0
    project = next(e["audit.project.id"] for e in DATASET if e.get("audit.project.id"))
    assert upgraded.search(SearchRequest(Query(ACCOUNT, projects=(project,)))).total > 0
    assert upgraded.delete_older_than(datetime(2026, 1, 10, 9, tzinfo=UTC)) > 0
    upgraded.close()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == FILE_VERSION == 9
        assert not con.execute(
            "SELECT name FROM sqlite_master WHERE name IN "
            "('related_users_rid', 'events_ts', 'events_event_outcome', 'events_groups', "
            "'events_event_action', 'events_audit_project_id')"
        ).fetchall()


def _facet_answers(store: SQLiteStore) -> list:
    """Totals, facets and pages of searches that count facets from events_hot."""
    action = DATASET[0]["event.action"]
    queries = [
        Query(ACCOUNT),  # the rollup
        Query(ACCOUNT, start=datetime(2026, 1, 10, 9, 30, tzinfo=UTC)),  # rollup + edges
        Query(ACCOUNT, actions=(action,)),
        Query(ACCOUNT, outcomes=("failure",)),
        Query(ACCOUNT, browsers=("Firefox", "Chrome")),
        Query(ACCOUNT, products=("common",)),
        Query(ACCOUNT, text="token"),
    ]
    out = []
    for q in queries:
        page = store.search(SearchRequest(q))
        out.append((page.total, page.facets, [h["event.id"] for h in page.hits]))
    return out


def _upgraded(
    path: Path,
    docs: list[dict],
    older: Callable[[Path], None],
    answers: Callable[[SQLiteStore], list],
) -> tuple[SQLiteStore, list]:
    """A store over ``docs`` turned into an ``older`` layout and opened again (upgrading
    it): its ``answers`` must not change. Returns the upgraded store and those answers."""
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, docs)
    before = answers(store)
    store.close()
    older(path)
    upgraded = SQLiteStore(f"sqlite:///{path}")
    assert f"file version {FILE_VERSION}" in upgraded.install()[0]
    assert answers(upgraded) == before
    return upgraded, before


def test_a_version_3_file_gets_facet_combinations(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Version 3 kept the six few-valued facets as strings in events_hot: the upgrade gives
    every event its combination id and rebuilds events_hot; totals, facets, filters and
    pages answer as before, and new events reuse the ids."""
    path = tmp_path / "audit.db"
    docs = [enricher(e) for e in DATASET]
    upgraded, before = _upgraded(path, docs, _as_file_version_3, _facet_answers)
    assert all(total for total, _f, _h in before)
    assert any(facets.get("browser") and facets.get("result") for _t, facets, _h in before)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM events WHERE combo IS NULL").fetchone()[0] == 0
        combos = con.execute("SELECT count(*) FROM facet_combos").fetchone()[0]
        hot = [r[2] for r in con.execute("PRAGMA index_info(events_hot)")]
    assert 1 < combos < len(DATASET)
    assert "combo" in hot and "user_agent_name" not in hot
    # A second copy of every event under new ids: no new combinations, every count doubles.
    again = [enricher({**e, "event.id": e["event.id"] + "-2"}) for e in DATASET]
    assert all(r.status == "created" for r in upgraded.write(again))
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM facet_combos").fetchone()[0] == combos
    doubled = Query(ACCOUNT, outcomes=("failure",))
    page = upgraded.search(SearchRequest(doubled))
    assert page.total == 2 * before[3][0]
    assert page.facets["result"] == [("failure", 2 * before[3][0])]
    upgraded.close()


def test_a_version_5_file_gets_value_ids(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Version 5 kept action, user, target and project as strings in events_hot: the
    upgrade gives each stored value an id and rebuilds events_hot on the ids; totals,
    facets, action and project filters and pages answer as before, new events reuse the ids."""
    path = tmp_path / "audit.db"
    project = next(d["audit.project.id"] for d in DATASET if d.get("audit.project.id"))
    queries = [
        Query(ACCOUNT, projects=(project,)),
        Query(ACCOUNT, text="token", outcomes=("success",)),
    ]

    def answers(s: SQLiteStore) -> list:
        pages = [s.search(SearchRequest(q)) for q in queries]
        return _facet_answers(s) + [
            (p.total, p.facets, [h["event.id"] for h in p.hits]) for p in pages
        ]

    docs = [enricher(e) for e in DATASET]
    upgraded, before = _upgraded(path, docs, _as_file_version_5, answers)
    assert all(total for total, _f, _h in before)
    assert any(facets.get("user") and facets.get("target") for _t, facets, _h in before)
    with sqlite3.connect(path) as con:
        unset = con.execute(
            "SELECT count(*) FROM events WHERE (event_action IS NULL) != (event_action_vid IS NULL)"
            " OR (user_target_name IS NULL) != (user_target_name_vid IS NULL)"
        ).fetchone()[0]
        ids = con.execute("SELECT count(*) FROM facet_values").fetchone()[0]
        hot = [r[2] for r in con.execute("PRAGMA index_info(events_hot)")]
    assert unset == 0 and ids > 1
    assert "user_name_vid" in hot and "user_name" not in hot
    # A second copy of every event under new ids: no new values, every count doubles.
    again = [enricher({**e, "event.id": e["event.id"] + "-2"}) for e in DATASET]
    assert all(r.status == "created" for r in upgraded.write(again))
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM facet_values").fetchone()[0] == ids
    page = upgraded.search(SearchRequest(queries[0]))
    assert page.total == 2 * before[-2][0]
    assert page.facets["project"] == [(project, 2 * before[-2][0])]
    upgraded.close()


def _fts_is_whole(con: sqlite3.Connection) -> None:
    """FTS5's own check of events_fts against its content (raises when they differ)."""
    con.execute("INSERT INTO events_fts(events_fts, rank) VALUES ('integrity-check', 1)")


def test_a_version_6_file_gets_account_tokens_in_its_text_index(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Version 6 matched search text across every account: the upgrade rebuilds events_fts
    with each account's token; searches answer as before, and writes and prunes keep the
    index equal to its content."""
    path = tmp_path / "audit.db"
    # Every other event again in a second account: the same words in both.
    other = [
        {**e, "event.id": e["event.id"] + "-o", "organization.id": "другая"} for e in DATASET[::2]
    ]
    docs = [enricher(e) for e in DATASET + other]
    words = ["token", "tok*", '"api token"', "token -export", "экспорт", "nothing-like-it"]
    accounts = [ACCOUNT, "другая"]

    def answers(s: SQLiteStore) -> list:
        out = []
        for account in accounts:
            for text in words:
                page = s.search(SearchRequest(Query(account, text=text), highlight=True))
                out.append((page.total, [(h["event.id"], h.get("_highlight")) for h in page.hits]))
        return out

    upgraded, before = _upgraded(path, docs, _as_file_version_6, answers)
    assert sum(total for total, _h in before) > 0
    assert any("<mark>" in (hl or "") for _t, hits in before for _id, hl in hits)
    con = upgraded._con
    _fts_is_whole(con)
    assert upgraded.delete_older_than(datetime(2026, 1, 10, 9, tzinfo=UTC)) > 0
    again = [enricher({**e, "event.id": e["event.id"] + "-2"}) for e in DATASET + other]
    assert all(r.status == "created" for r in upgraded.write(again))
    # The check reads the view: tokens written by Python equal SQL's hex().
    _fts_is_whole(con)
    upgraded.close()


def test_stores_sharing_a_file_agree_on_combination_ids(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Two stores (as two indexer processes) give one id per combination, and a write
    that rolls back leaves no id behind in either store's cache."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    one, two = SQLiteStore(url), SQLiteStore(url)
    docs = [enricher(e) for e in DATASET]
    write_all(one, docs[: len(docs) // 2])
    write_all(two, docs[len(docs) // 2 :])
    # Counted from events_hot (an outcome filter keeps the rollup out of it).
    mine = [d for d in docs if d.get("organization.id") == ACCOUNT]
    every = Query(ACCOUNT, outcomes=("success", "failure", "unknown"))
    for name, field in (("browser", "user_agent.name"), ("result", "event.outcome")):
        expected = Counter(d[field] for d in mine if d.get(field))
        for store in (one, two):
            assert dict(store.search(SearchRequest(every)).facets[name]) == expected
    with sqlite3.connect(tmp_path / "audit.db") as con:
        keys = [r[0] for r in con.execute("SELECT key FROM facet_combos")]
    assert len(keys) == len(set(keys))
    assert _facet_answers(one) == _facet_answers(two)

    # A new combination, person and user name first seen in a write that rolls back are not
    # cached: their ids went back to the file's pool, and another writer gets them first.
    def newcomer(name: str, browser: str) -> dict:
        doc = enricher(
            {
                **DATASET[0],
                "event.id": name,
                "user.id": f"{name}-id",
                "user.name": name,
                "user.email": f"{name}@example.com",
            }
        )
        doc["user_agent.name"] = browser
        return doc

    con = one._con
    con.execute(
        "CREATE TEMP TRIGGER fail_once BEFORE INSERT ON person_values "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    with pytest.raises(StoreError):
        one.write([newcomer("odd", "Odd browser")])
    con.execute("DROP TRIGGER fail_once")
    assert two.write([newcomer("other", "Other browser")])[0].status == "created"
    assert one.write([newcomer("odd", "Odd browser")])[0].status == "created"
    for name, browser in (("odd", "Odd browser"), ("other", "Other browser")):
        for store in (one, two):
            page = store.search(SearchRequest(Query(ACCOUNT, browsers=(browser,))))
            assert dict(page.facets["browser"]) == {browser: 1}
            assert dict(page.facets["user"]) == {name: 1}
            found = store.search(SearchRequest(Query(ACCOUNT, history=(f"{name}@example.com",))))
            assert [h["event.id"] for h in found.hits] == [name]
    one.close()
    two.close()


def test_related_users_hold_one_row_per_person(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """An event's actor, target and impersonator are one related_users row each (not one
    per id, name and e-mail); every value of related.user finds the event, and a value a
    document's related.user does not hold does not, as on OpenSearch."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    base = {k: v for k, v in DATASET[0].items() if not k.startswith(("user.target", "audit.imp"))}
    alone = enricher({**base, "event.id": "alone"})
    both = enricher(
        {
            **base,
            "event.id": "both",
            "user.target.id": "t-1",
            "user.target.name": "Tess",
            "user.target.email": "tess@example.com",
        }
    )
    # Not made by the enricher: its related.user leaves out the target's e-mail.
    partial = dict(both, **{"event.id": "partial"})
    partial["related.user"] = [v for v in both["related.user"] if v != "tess@example.com"]
    write_all(store, [alone, both, partial])
    rows = dict(
        store._con.execute(
            "SELECT e.event_id, count(*) FROM related_users r JOIN events e ON e.rid = r.rid "
            "GROUP BY e.event_id"
        ).fetchall()
    )
    assert rows["alone"] == 1 and rows["both"] == 2
    assert rows["partial"] == 3  # the actor, and the target's two listed values alone

    def history(value: str) -> list[str]:
        page = store.search(SearchRequest(Query(ACCOUNT, history=(value,))))
        return sorted(h["event.id"] for h in page.hits)

    assert history("TESS@example.com") == ["both"]
    assert history("t-1") == history("tess") == ["both", "partial"]
    assert history(alone["user.email"]) == ["alone", "both", "partial"]
    targets = store.search(SearchRequest(Query(ACCOUNT, target_users=("Tess",)))).hits
    assert sorted(h["event.id"] for h in targets) == ["both", "partial"]
    store.close()


def test_unhashable_person_values_are_stored_and_found(tmp_path: Path) -> None:
    """A document not made by the enricher, with a mapping among its people, is stored
    (one person per related.user value) and found by its other values."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    doc = {
        "event.id": "odd",
        "@timestamp": "2026-01-10T10:00:00Z",
        "organization.id": ACCOUNT,
        "event.action": "role.changed",
        "user.id": {"not": "a string"},
        "related.user": [{"not": "a string"}, "Bob"],
    }
    assert store.write([doc])[0].status == "created"
    page = store.search(SearchRequest(Query(ACCOUNT, history=("bob",))))
    assert [h["event.id"] for h in page.hits] == ["odd"]
    store.close()


def test_small_caches_start_over_and_answer_the_same(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """The combination and person caches are bounded: past their limit they start again from
    the file, and totals, facets, history and filters stay what an unbounded cache gives."""
    people = People()
    people.limit = 1
    people.remember({frozenset({"a"}): 1}, set())
    people.remember({frozenset({"b"}): 2}, set())
    assert people.known(frozenset({"a"})) is None and people.known(frozenset({"b"})) == 2

    docs = [enricher(e) for e in DATASET]
    roomy = SQLiteStore(f"sqlite:///{tmp_path / 'roomy.db'}")
    tight = SQLiteStore(f"sqlite:///{tmp_path / 'tight.db'}")
    tight._ids.combos.limit = tight._ids.people.limit = tight._ids.values.limit = 2
    for start in range(0, len(docs), 3):  # many small batches: the caches start over often
        for store in (roomy, tight):
            assert all(r.status == "created" for r in store.write(docs[start : start + 3]))
    history = [Query(ACCOUNT, history=(v,)) for v in ("bob", "carol@example.com", "root")]
    answers = {}
    for name, store in (("roomy", roomy), ("tight", tight)):
        answers[name] = _facet_answers(store) + [
            [h["event.id"] for h in store.search(SearchRequest(q)).hits] for q in history
        ]
    assert answers["tight"] == answers["roomy"]
    with sqlite3.connect(tmp_path / "tight.db") as con:
        keys = [r[0] for r in con.execute("SELECT key FROM people")]
        assert len(keys) == len(set(keys))
    roomy.close()
    tight.close()


def test_a_version_4_file_gets_persons(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Version 4 listed every related.user value in related_users: the upgrade lists
    persons instead; history, person filters and retention answer as before."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(f"sqlite:///{path}")
    write_all(store, [enricher(e) for e in DATASET])
    queries = [
        Query(ACCOUNT, history=("bob",)),
        Query(ACCOUNT, history=("carol@example.com", "root")),
        Query(ACCOUNT, users=("carol",)),
        Query(ACCOUNT, target_users=("bob@example.com",)),
        Query(ACCOUNT, impersonators=("root",)),
    ]
    before = [[h["event.id"] for h in store.search(SearchRequest(q)).hits] for q in queries]
    assert all(before)
    per_person = store._con.execute("SELECT count(*) FROM related_users").fetchone()[0]
    store.close()

    _as_file_version_4(path)
    with sqlite3.connect(path) as con:
        by_value = con.execute("SELECT count(*) FROM related_users").fetchone()[0]
    assert by_value > per_person
    upgraded = SQLiteStore(f"sqlite:///{path}")
    assert f"file version {FILE_VERSION}" in upgraded.install()[0]
    after = [[h["event.id"] for h in upgraded.search(SearchRequest(q)).hits] for q in queries]
    assert after == before
    con = upgraded._con
    assert con.execute("SELECT count(*) FROM related_users").fetchone()[0] == per_person
    assert upgraded.delete_older_than(datetime(2026, 1, 10, 9, tzinfo=UTC)) > 0
    orphans = con.execute(
        "SELECT count(*) FROM related_users WHERE rid NOT IN (SELECT rid FROM events)"
    ).fetchone()[0]
    assert orphans == 0
    upgraded.close()


def test_prune_leaves_no_people_rows_behind(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Deleting events deletes their related_users rows (found by their whole key, no rid index)."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    write_all(store, [enricher(e) for e in DATASET])
    con = store._con
    people = con.execute("SELECT count(*) FROM related_users").fetchone()[0]
    assert people > 0
    cutoff = datetime(2026, 1, 10, 9, tzinfo=UTC)
    kept = con.execute(
        "SELECT count(*) FROM related_users r JOIN events e ON e.rid = r.rid WHERE e.ts_ms >= ?",
        (int(cutoff.timestamp() * 1000),),
    ).fetchone()[0]
    assert 0 < kept < people
    assert store.delete_older_than(cutoff, batch_size=2) > 0
    assert con.execute("SELECT count(*) FROM related_users").fetchone()[0] == kept
    orphans = con.execute(
        "SELECT count(*) FROM related_users WHERE rid NOT IN (SELECT rid FROM events)"
    ).fetchone()[0]
    assert orphans == 0


def test_prune_reaches_events_without_an_account(tmp_path: Path, enricher) -> None:  # noqa: ANN001
    """Retention walks account by account; events with no account are deleted too."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    # The enricher files accountless events under 'unassigned' now; a file written
    # before that (or by hand) can still hold events without one.
    orphan = enricher({**DATASET[0], "event.id": "no-account"})
    orphan.pop("organization.id")
    orphan.pop("organization.name", None)
    write_all(store, [orphan, enricher(DATASET[0])])
    assert store.count_all() == 2
    assert store.accounts() == [ACCOUNT]
    assert store.delete_older_than(datetime(2100, 1, 1, tzinfo=UTC)) == 2
    assert store.count_all() == 0


def test_folded_person_columns_are_stored_only_when_folding_changes_them(
    tmp_path: Path,
    enricher,  # noqa: ANN001
) -> None:
    """Lowercase ASCII names and addresses keep no copy; others do, and both are found."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    events = [
        enricher(
            {
                **DATASET[0],
                "event.id": "lower",
                "user.name": "dana",
                "user.email": "dana@example.com",
            }
        ),
        enricher(
            {
                **DATASET[0],
                "event.id": "upper",
                "user.name": "Émile",
                "user.email": "Emile@Example.com",
            }
        ),
    ]
    write_all(store, events)
    rows = dict(
        (r[0], r[1:])
        for r in store._con.execute("SELECT event_id, user_name_fold, user_email_fold FROM events")
    )
    assert rows["lower"] == (None, None)
    assert rows["upper"] == ("emile", "emile@example.com")
    for who, expected in (("DANA", "lower"), ("emile", "upper"), ("EMILE@example.COM", "upper")):
        hits = store.search(SearchRequest(Query(ACCOUNT, users=(who,)))).hits
        assert [h["event.id"] for h in hits] == [expected], who


def test_absent_values_are_stored_as_null_and_zeros_as_themselves(
    tmp_path: Path,
    enricher,  # noqa: ANN001
) -> None:
    """Write rows carry NULL as 0 (text, blob) or '' (integer) for cheap binding; the
    file holds NULL for absent fields, and real "0", 0 and "" values unchanged."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'audit.db'}")
    base = {k: v for k, v in DATASET[0].items() if k != "source.address"}
    absent = enricher({**base, "event.id": "absent"})
    for field in ("user.target.id", "audit.project.id", "http.response.status_code", "source.ip"):
        absent.pop(field, None)
    zeros = enricher({**base, "event.id": "zeros", "user.target.id": "0"})
    zeros["audit.project.id"] = ""  # (the enricher drops empty strings; the store keeps them)
    zeros["http.response.status_code"] = 0
    write_all(store, [absent, zeros])
    rows = {
        r[0]: r[1:]
        for r in store._con.execute(
            "SELECT event_id, user_target_id, audit_project_id, http_response_status_code, "
            "ip_key, user_target_name_fold FROM events"
        )
    }
    assert rows["absent"] == (None, None, None, None, None)
    assert rows["zeros"] == ("0", "", 0, None, None)
    got = store.get(["absent", "zeros"])
    assert "user.target.id" not in got["absent"]
    assert "http.response.status_code" not in got["absent"]
    assert got["zeros"]["user.target.id"] == "0"
    assert got["zeros"]["http.response.status_code"] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04T05:06:07.891Z", datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)),
        (
            "2026-03-04T08:06:07.891+03:00",
            datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=UTC),
        ),
        ("2026-03-04T05:06:07", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),  # naive: UTC
        ("1969-12-31T23:59:59.999Z", datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_as_the_queries_compare_them(value: str, expected: datetime) -> None:
    """Rows and query bounds meet on the same epoch milliseconds, offsets and all."""
    from useraudit.store.query import to_ms

    assert timestamp_ms(value) == to_ms(expected)
    assert timestamp_ms(to_ms(expected)) == to_ms(expected)  # epoch ms stay as given


def test_a_newer_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SQLiteStore(f"sqlite:///{path}").install()
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="file version 99, newer"):
        SQLiteStore(f"sqlite:///{path}").install()
