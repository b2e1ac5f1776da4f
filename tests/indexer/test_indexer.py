"""The indexer against the real OpenSearch node: mappings, round trips,
crashes, outages, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.tcpproxy import TcpProxy

from useraudit import index_templates
from useraudit.cli import main as cli
from useraudit.indexer.enrich import TRUNCATION_MARK, Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.middleware import context
from useraudit.middleware.recorder import Recorder
from useraudit.schema import FIELDS, SCHEMA_VERSION, Kind
from useraudit.spool import frame
from useraudit.store.base import StoreError, StoreUnavailable
from useraudit.store.opensearch import OpenSearchStore

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def ship(spool_dir: Path, store: OpenSearchStore, **kw) -> Indexer:
    ix = Indexer(spool_dir, store, **kw)
    ix.drain()
    ix.close()
    store.refresh()
    return ix


def mapping_of(store: OpenSearchStore) -> dict:
    mappings = store.client.indices.get_mapping(index=store.alias)
    (index_mapping,) = mappings.values()
    return index_mapping["mappings"]


def leaf(mapping: dict, dotted: str) -> dict:
    node = mapping
    parts = ["@timestamp"] if dotted == "@timestamp" else dotted.split(".")
    for part in parts:
        node = node["properties"][part]
    return node


# -- templates ------------------------------------------------------------------


def test_golden_template_matches_the_schema() -> None:
    """The committed events.json is exactly what the schema renders (regenerate if this fails)."""
    assert index_templates.load_golden() == index_templates.render()


def test_template_install_creates_explicit_mappings(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """Every schema field gets its declared type on a real index, and
    unknown fields map to nothing."""
    rec = Recorder(spool_dir, durability="sync")
    rec.record("user.signed_in", account="a1", user="u1")
    rec.close()
    spool_dir.joinpath("stray.seg").write_bytes(
        frame(
            json.dumps(
                {
                    "event.id": "stray-1",
                    "event.action": "user.signed_in",
                    "organization.id": "a1",
                    "surprise.field": "x",
                }
            ).encode()
        )
    )
    ship(spool_dir, os_store)
    mapping = mapping_of(os_store)
    assert mapping["dynamic"] == "false"
    expected = {
        Kind.KEYWORD: "keyword",
        Kind.NAME: "keyword",
        Kind.TEXT: "text",
        Kind.IP: "ip",
        Kind.DATE: "date",
        Kind.INTEGER: "integer",
        Kind.FLAT: "flat_object",
        Kind.BOOLEAN: "boolean",
    }
    for field in FIELDS:
        assert leaf(mapping, field.name)["type"] == expected[field.kind], field.name
    assert leaf(mapping, "user.name")["fields"]["lower"]["normalizer"] == index_templates.NORMALIZER
    assert leaf(mapping, "audit.comments")["fields"]["keyword"]["type"] == "keyword"
    assert "surprise" not in mapping["properties"]
    aliases = os_store.client.indices.get_alias(index=os_store.alias)
    assert all(os_store.alias in v["aliases"] for v in aliases.values())


def test_reinstall_is_a_noop_and_says_so(os_store: OpenSearchStore) -> None:
    """Installing the same template version again changes nothing and reports 'up to date'."""
    name = index_templates.template_name(os_store.prefix)
    before = os_store.client.indices.get_index_template(name=name)
    assert os_store.install() == [f"index template {name} is up to date (version {SCHEMA_VERSION})"]
    assert os_store.client.indices.get_index_template(name=name) == before


def test_older_template_is_upgraded(os_store: OpenSearchStore) -> None:
    """A template from an older schema version is replaced, and the report says from which."""
    name = index_templates.template_name(os_store.prefix)
    old = index_templates.load_golden(os_store.prefix)
    old["version"] = SCHEMA_VERSION - 1
    del old["template"]["mappings"]["properties"]["audit"]
    os_store.client.indices.put_index_template(name=name, body=old)
    (line,) = os_store.install()
    assert f"upgraded from version {SCHEMA_VERSION - 1}" in line
    got = os_store.client.indices.get_index_template(name=name)["index_templates"][0][
        "index_template"
    ]
    assert got["version"] == SCHEMA_VERSION
    assert "audit" in got["template"]["mappings"]["properties"]


def test_newer_template_is_never_downgraded(os_store: OpenSearchStore) -> None:
    """A cluster holding a newer template version refuses the install with a clear message."""
    name = index_templates.template_name(os_store.prefix)
    newer = index_templates.load_golden(os_store.prefix)
    newer["version"] = SCHEMA_VERSION + 5
    os_store.client.indices.put_index_template(name=name, body=newer)
    with pytest.raises(StoreError, match="newer than this useraudit"):
        os_store.install()
    result = CliRunner().invoke(
        cli, ["templates", "install", "--store", f"{os_store.url}/?prefix={os_store.prefix}"]
    )
    assert result.exit_code == 1
    assert "newer than this useraudit" in result.output


# -- round trip -----------------------------------------------------------------


def test_every_field_round_trips_with_its_type(os_store: OpenSearchStore, spool_dir: Path) -> None:
    """An event with every field goes spool → indexer → OpenSearch and queries by type work."""
    rec = Recorder(spool_dir, durability="sync")
    token = context.current.set(
        context.RequestContext(
            request_id="req-1",
            client_ip="10.1.2.3",
            user_agent=CHROME,
            method="POST",
            path="/roles/7",
            account_id="acc-1",
            account_name="Acme",
            status=200,
            user={
                "id": "u-1",
                "name": "Alice",
                "email": "alice@example.com",
                "full_name": "Alice Liddell",
            },
            impersonator={"id": "adm-9", "name": "root", "email": "root@example.com"},
        )
    )
    try:
        event_id = rec.record(
            "user.roles_updated",
            target_user={"id": "u-2", "name": "Bob", "email": "BOB@example.com"},
            project="p-42",
            project_name="Support bot",
            token_id="tok-7",
            params={"roles": ["ADMIN", "USER_ADMIN"], "api_key": "s3cr3t", "nested": {"depth": 2}},
            comments="Granted administrator rights after review",
        )
    finally:
        context.current.reset(token)
    rec.close()
    ship(spool_dir, os_store)
    doc = os_store.get([event_id])[event_id]
    assert doc["event.action"] == "user.roles_updated"
    assert doc["message"] == "User roles updated"
    assert doc["event.category"] == ["iam"] and doc["event.type"] == ["user", "group", "change"]
    assert doc["organization.id"] == "acc-1" and doc["organization.name"] == "Acme"
    assert doc["user.full_name"] == "Alice Liddell"
    assert doc["user.target.name"] == "Bob"
    assert doc["audit.impersonator.name"] == "root"
    assert doc["audit.project.id"] == "p-42" and doc["audit.token.id"] == "tok-7"
    assert doc["audit.params"]["api_key"] == "[MASKED]"
    assert "s3cr3t" not in json.dumps(doc)
    assert doc["source.ip"] == "10.1.2.3"
    assert (doc["user_agent.name"], doc["user_agent.os.name"]) == ("Chrome", "Windows")
    assert doc["http.response.status_code"] == 200
    assert set(doc["related.user"]) >= {"u-1", "Alice", "u-2", "Bob", "adm-9", "root"}

    def hits(query: dict) -> list[str]:
        resp = os_store.client.search(index=os_store.alias, body={"query": query})
        return [h["_id"] for h in resp["hits"]["hits"]]

    assert hits({"term": {"source.ip": "10.0.0.0/8"}}) == [event_id]
    assert hits({"term": {"source.ip": "192.168.0.0/16"}}) == []
    assert hits({"range": {"@timestamp": {"gte": "now-1h"}}}) == [event_id]
    assert hits({"match": {"audit.comments": "administrator review"}}) == [event_id]
    assert hits({"term": {"user.target.email.lower": "bob@example.com"}}) == [event_id]
    assert hits({"term": {"audit.params.nested.depth": "2"}}) == [event_id]
    assert hits({"term": {"related.user": "adm-9"}}) == [event_id]


# -- crashes and outages ----------------------------------------------------------


def test_kill_9_mid_batch_then_restart_delivers_every_event_exactly_once(
    os_store: OpenSearchStore, spool_dir: Path, tmp_path: Path
) -> None:
    """An indexer killed with -9 while shipping, then restarted, leaves each event stored once."""
    rec = Recorder(spool_dir, durability="batch")
    ids = {
        rec.record("bot_project.exported", account="acc-k", project=f"p{i}") for i in range(30_000)
    }
    rec.close()
    url = f"{os_store.url}/?prefix={os_store.prefix}"
    env = {**os.environ, "USERAUDIT_HOME": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "useraudit",
        "indexer",
        "run",
        "--spool",
        str(spool_dir),
        "--store",
        url,
        "--batch",
        "500",
        "--no-install",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                os_store.refresh()
                if os_store.count_all() >= 5000:
                    break
            except StoreUnavailable:
                pass  # the indexer's first write created the day's index; its shard is starting
            time.sleep(0.05)
    finally:
        # Also when the polling above fails: an indexer left running would
        # make wait() block until the suite's timeout instead of failing here.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    os_store.refresh()
    shipped_before_kill = os_store.count_all()
    assert 0 < shipped_before_kill < 30_000, "the kill must land mid-stream"
    done = subprocess.run([*cmd, "--once"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    os_store.refresh()
    stored = os_store.all_ids()
    assert len(stored) == len(set(stored)) == 30_000
    assert set(stored) == ids
    assert stats["dead_lettered"] == 0
    assert stats["shipped"] + stats["duplicates"] == stats["read"]


def test_bulk_partial_failure_dead_letters_only_the_bad_document(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """One mapping-conflicting document among good ones: the good are indexed, the bad one is
    dead-lettered with its reason."""
    real = Enricher()

    def careless(raw: dict) -> dict:
        doc = real(raw)
        if raw.get("audit.comments") == "poison":
            doc["source.ip"] = "not-an-ip"  # what a buggy enricher could send
        return doc

    rec = Recorder(spool_dir, durability="sync")
    good = [rec.record("task.created", account="a", comments=f"ok {i}") for i in range(20)]
    bad = rec.record(
        "task.created",
        account="a",
        comments="poison",
    )
    rec.close()
    ix = ship(spool_dir, os_store, enricher=careless)
    assert ix.stats.shipped == 20 and ix.stats.dead_lettered == 1
    assert set(os_store.get(good)) == set(good)
    assert os_store.get([bad]) == {}
    runner = CliRunner()
    listed = runner.invoke(cli, ["indexer", "dlq", "list", "--spool", str(spool_dir), "--json"])
    (letter,) = [json.loads(line) for line in listed.output.splitlines()]
    assert letter["event_id"] == bad
    assert "mapper_parsing_exception" in letter["reason"] and "source.ip" in letter["reason"]
    assert json.loads(letter["raw"])["audit.comments"] == "poison"
    # With the enricher fixed, a retry delivers it and empties the queue.
    retried = runner.invoke(
        cli,
        [
            "indexer",
            "dlq",
            "retry",
            "--spool",
            str(spool_dir),
            "--store",
            f"{os_store.url}/?prefix={os_store.prefix}",
        ],
    )
    assert json.loads(retried.output.splitlines()[-1]) == {"delivered": 1, "still_failing": 0}
    os_store.refresh()
    assert bad in os_store.get([bad])


def test_items_answered_429_are_retried_until_they_succeed(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """Items refused with 429 (read-only-allow-delete block) are retried
    alone with backoff, then stored."""
    rec = Recorder(spool_dir, durability="sync")
    first = rec.record("token.created", account="a")
    ship(spool_dir, os_store)
    index = os_store.index_for(os_store.get([first])[first])
    os_store.client.indices.put_settings(
        index=index, body={"index.blocks.read_only_allow_delete": True}
    )
    ids = [rec.record("token.refreshed", account="a", token_id=f"t{i}") for i in range(50)]
    rec.close()
    ix = Indexer(spool_dir, os_store, backoff_base=0.05, backoff_cap=0.3, max_item_retries=1000)
    worker = threading.Thread(target=ix.drain)
    try:
        worker.start()
        time.sleep(1.5)
        assert worker.is_alive() and ix.stats.retried > 0
        assert ix.stats.shipped == 0
    finally:
        os_store.client.indices.put_settings(
            index=index, body={"index.blocks.read_only_allow_delete": None}
        )
        worker.join(60)
        ix.close()
    assert ix.stats.shipped == 50 and ix.stats.dead_lettered == 0
    os_store.refresh()
    assert set(os_store.get(ids)) == set(ids)


def test_opensearch_outage_mid_stream_loses_and_duplicates_nothing(
    os_store: OpenSearchStore, opensearch_url: str, spool_dir: Path
) -> None:
    """The node becomes unreachable mid-stream; the indexer waits, then
    delivers every event exactly once."""
    host, port = opensearch_url.rsplit("//", 1)[1].split(":")
    proxy = TcpProxy(host, int(port))
    via_proxy = OpenSearchStore(proxy.url, prefix=os_store.prefix, timeout=5)
    rec = Recorder(spool_dir, durability="batch")
    ids = {
        rec.record("session_label.updated", account="a", comments=f"n{i}") for i in range(10_000)
    }
    rec.close()
    real = Enricher()

    def paced(raw: dict) -> dict:  # ~5 s of shipping, so the outage lands mid-stream
        time.sleep(0.0005)
        return real(raw)

    ix = Indexer(
        spool_dir, via_proxy, enricher=paced, batch_records=250, backoff_base=0.05, backoff_cap=0.5
    )
    worker = threading.Thread(target=ix.drain)
    try:
        worker.start()
        while ix.stats.shipped < 1000:
            time.sleep(0.01)
        proxy.cut()
        time.sleep(2)
        assert worker.is_alive() and ix.stats.unavailable_waits > 0
        proxy.restore()
        worker.join(120)
    finally:
        proxy.close()
        ix.close()
        via_proxy.close()
    os_store.refresh()
    stored = os_store.all_ids()
    assert len(stored) == len(set(stored)) == 10_000
    assert set(stored) == ids
    assert ix.stats.dead_lettered == 0


# -- bad input ----------------------------------------------------------------------


def test_bad_inputs_become_sanitised_flagged_events(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """Invalid IPs, 1 MB comments, invalid UTF-8, NUL bytes, 10 kB user agents, unknown
    codes: all stored, flagged."""
    rec = Recorder(spool_dir, durability="sync")
    cases: dict[str, tuple[dict, dict]] = {}

    def case(name: str, ctx: dict, **kw) -> None:
        token = context.current.set(context.RequestContext(**ctx))
        try:
            cases[name] = (
                rec.record(kw.pop("action", "user.profile_updated"), account="bad", **kw),
                kw,
            )
        finally:
            context.current.reset(token)

    case("invalid_ip", {"client_ip": "999.1.1.1, <script>"})
    case("ipv6_zone", {"client_ip": "fe80::1%eth0"})
    case("huge_comment", {}, comments="x" * 1_000_000)
    invalid_utf8 = b"caf\xe9 \xff\xfe".decode("utf-8", "surrogateescape")
    case(
        "invalid_utf8",
        {"user_agent": invalid_utf8},
        comments="nul\x00byte and \u202eoverride " + invalid_utf8,
    )
    case("huge_ua", {"user_agent": CHROME + " " + "A" * 10_000})
    case("unknown_action", {}, action="billing.invoice_paid")
    case("bare", {}, action="user.signed_out")
    rec.close()
    ix = ship(spool_dir, os_store)
    assert ix.stats.dead_lettered == 0
    docs = os_store.get([eid for eid, _ in cases.values()])
    assert len(docs) == len(cases)

    def doc(name: str) -> dict:
        return docs[cases[name][0]]

    assert (
        "source.ip" not in doc("invalid_ip")
        and doc("invalid_ip")["source.address"] == "999.1.1.1, <script>"
    )
    assert "invalid_ip" in doc("invalid_ip")["audit.flags"]
    assert doc("ipv6_zone")["source.ip"] == "fe80::1"
    comment = doc("huge_comment")["audit.comments"]
    assert comment.endswith(TRUNCATION_MARK) and len(comment) <= 32_766
    assert "truncated" in doc("huge_comment")["audit.flags"]
    text = doc("invalid_utf8")["audit.comments"]
    assert "\x00" not in text and "\u202e" not in text and "byte" in text
    assert "sanitized" in doc("invalid_utf8")["audit.flags"]
    assert doc("huge_ua")["user_agent.name"] == "Chrome"
    assert doc("huge_ua")["user_agent.original"].endswith(TRUNCATION_MARK)
    assert doc("unknown_action")["event.action"] == "billing.invoice_paid"
    assert doc("unknown_action")["audit.flags"] == ["unknown_action"]
    assert doc("unknown_action")["message"] == "billing.invoice_paid"
    assert doc("bare")["message"] == "User signed out" and "audit.flags" not in doc("bare")


def test_undecodable_spool_records_are_dead_lettered_not_dropped(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """Spool records that are not JSON objects reach the dead-letter store with a reason."""
    spool_dir.joinpath("0-1-a.seg").write_bytes(
        frame(b"\xff\xfe not json")
        + frame(b"[1, 2]")
        + frame(json.dumps({"event.action": "task.closed"}).encode())
    )
    ix = ship(spool_dir, os_store)
    assert (ix.stats.shipped, ix.stats.dead_lettered) == (1, 2)
    letters = ix.dead_letters.__class__(spool_dir / "deadletter.sqlite").list()
    assert [letter.raw for letter in letters] == [b"\xff\xfe not json", b"[1, 2]"]
    assert all("undecodable spool record" in letter.reason for letter in letters)


def test_timestamps_far_off_are_clamped_to_the_event_ids_time(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """A far-future or ancient timestamp is replaced by the id's own time, so
    redelivery picks the same index."""
    rec = Recorder(spool_dir, durability="sync")
    future = rec.record("task.updated", account="a", timestamp=datetime(2999, 1, 1, tzinfo=UTC))
    ancient = rec.record("task.updated", account="a", timestamp=datetime(1970, 1, 2, tzinfo=UTC))
    rec.close()
    ship(spool_dir, os_store)
    docs = os_store.get([future, ancient])
    this_year = str(datetime.now(UTC).year)
    for eid in (future, ancient):
        assert docs[eid]["@timestamp"].startswith(this_year)
        assert "clock_skew" in docs[eid]["audit.flags"]


def test_spool_full_is_counted_and_logged_never_raised_into_the_host(
    spool_dir: Path,
    caplog,
    internal_errors: list[Exception],
) -> None:
    """When the spool is full, record() returns None, counts it and logs
    an error instead of raising."""

    rec = Recorder(spool_dir, durability="sync", max_spool_bytes=1500, full_policy="reject")
    results = [rec.record("task.created", account="a", comments="x" * 200) for _ in range(10)]
    rec.close()
    assert None in results and results[0] is not None
    assert rec.stats.rejected_full == results.count(None)
    assert "could not record 'task.created'" in caplog.text
    internal_errors.clear()  # provoked on purpose


def test_fail_closed_recorder_raises_instead(
    spool_dir: Path, internal_errors: list[Exception]
) -> None:
    """A fail_closed recorder raises AuditError when the event cannot be spooled."""
    from useraudit.middleware import recorder as recorder_module

    rec = Recorder(
        spool_dir, durability="sync", max_spool_bytes=100, full_policy="reject", fail_closed=True
    )
    with pytest.raises(recorder_module.AuditError, match="not recorded"):
        rec.record("task.created", account="a", comments="x" * 200)
    rec.close()
    internal_errors.clear()


def test_writer_keeps_appending_while_the_indexer_ships(
    os_store: OpenSearchStore, spool_dir: Path
) -> None:
    """A live writer and the indexer run together; everything written is
    shipped once the writer stops."""
    rec = Recorder(spool_dir, durability="batch", flush_interval=0.01)
    ids: list[str] = []
    stop = threading.Event()
    ix = Indexer(spool_dir, os_store, batch_records=100)
    worker = threading.Thread(target=ix.run, args=(stop,), kwargs={"idle": 0.02})
    worker.start()
    try:
        for i in range(3000):
            ids.append(rec.record("phrase_label.updated", account="a", comments=f"c{i}"))
        rec.close()
        deadline = time.monotonic() + 60
        while ix.stats.shipped < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(30)
        ix.close()
    os_store.refresh()
    assert sorted(os_store.all_ids()) == sorted(ids)


def test_two_indexer_processes_share_one_spool(
    os_store: OpenSearchStore, spool_dir: Path, tmp_path: Path
) -> None:
    """Two indexers on one spool both ship, and every event is stored
    once with no duplicate writes."""
    ids: set[str] = set()
    for _ in range(4):  # four host processes' segments
        rec = Recorder(spool_dir, durability="batch")
        rec.spool._open_segment()
        ids |= {rec.record("client.blocked", account="a", comments=f"c{i}") for i in range(5000)}
        rec.close()
    cmd = [
        sys.executable,
        "-m",
        "useraudit",
        "indexer",
        "run",
        "--spool",
        str(spool_dir),
        "--once",
        "--store",
        f"{os_store.url}/?prefix={os_store.prefix}",
        "--batch",
        "500",
        "--no-install",
    ]
    env = {**os.environ, "USERAUDIT_HOME": str(tmp_path)}
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    both = [p.communicate(timeout=300) for p in procs]
    outputs = [b[0] for b in both]
    assert all(o.strip() for o in outputs), [b[1][-3000:] for b in both]
    stats = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert all(s["shipped"] > 0 for s in stats), stats
    assert sum(s["shipped"] for s in stats) == 20_000
    assert sum(s["duplicates"] for s in stats) == 0
    os_store.refresh()
    stored = os_store.all_ids()
    assert len(stored) == len(set(stored)) == 20_000 and set(stored) == ids
