"""One SQLite file shared by processes, as a small deployment runs it.

Indexers (``useraudit indexer run``) write, the admin UI (``useraudit web``)
reads and ``useraudit prune`` deletes, each in a process of its own. WAL
mode lets readers go on beside the one writer, and every write is a short
transaction, so a writer waits at most for another's batch: no indexer
ever meets a locked file, no page of the UI fails or stalls.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from support import CSRF_RE, free_port

from useraudit.indexer.enrich import Enricher
from useraudit.middleware.recorder import Recorder, new_event_id
from useraudit.store.query import Query
from useraudit.store.sqlite import SQLiteStore
from useraudit.webapp.users import UserStore

PASSWORD = "correct horse battery"
ACCOUNT = "acme"
OTHER = "globex"
# Every page of the UI answers within this, whatever the other processes do
# (here they take 5-250 ms while 500,000 events are pruned).
PAGE_LIMIT_S = 2.0
# An event recorded is listed in the UI within this many seconds (here at
# most 0.21 s, the indexer's idle poll, during the prune; 7 s and more when
# the prune was one transaction, and up to 3.6 s when it took the write lock
# again right after each batch).
LAG_LIMIT_S = 2.0
WORDS = (
    "role permission token project channel label report export rule template session "
    "client billing support webhook password profile access viewer editor owner deploy "
    "роль токен проект отчёт шаблон доступ"
).split()
TOTAL_RE = re.compile(r'data-testid="total"><strong>([\d,]+)</strong>')
# The page of the last 24 hours: the events recorded while a test runs.
LISTING = (("period", "24h"),)


def useraudit(*args: str) -> list[str]:
    return [sys.executable, "-m", "useraudit", *args]


@contextmanager
def running(args: list[str], log: Path, home: Path) -> Iterator[subprocess.Popen]:
    """A process of ours, its output in ``log``; SIGTERM (then SIGKILL) to its PID at the end."""
    env = {"USERAUDIT_HOME": str(home), "PATH": "/usr/bin:/bin"}
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@dataclass
class Indexer:
    """A running ``useraudit indexer run`` and the spool it ships."""

    proc: subprocess.Popen
    log: Path
    spool: Path

    def stop(self) -> dict:
        """Stop it as an operator would (SIGTERM); returns the counts it prints last."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text(errors="replace")[-3000:]
        return json.loads(self.log.read_text(errors="replace").strip().splitlines()[-1])


def start_indexer(stack: ExitStack, home: Path, spool: Path, url: str, *extra: str) -> Indexer:
    log = home / f"indexer-{spool.name}.log"
    args = useraudit("indexer", "run", "--spool", str(spool), "--store", url, *extra)
    return Indexer(stack.enter_context(running(args, log, home)), log, spool)


@dataclass(frozen=True)
class Load:
    """One page load: when it started, seconds taken, status, the total shown, its query."""

    started: float
    took: float
    status: int
    total: int | None
    params: tuple[tuple[str, str], ...]


@dataclass
class UI:
    """An admin signed in to a running ``useraudit web``; every page it loads is timed."""

    url: str
    client: httpx.Client = field(init=False)
    loads: list[Load] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def wait_until_up(self, proc: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if self.client.get("/login").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the UI did not answer: {log.read_text(errors='replace')[-3000:]}")

    def sign_in(self, username: str) -> None:
        token = CSRF_RE.search(self.client.get("/login").text)
        assert token, "no CSRF token on the sign-in page"
        response = self.client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert response.status_code == 302, response.text[:500]

    def actions(self, account: str, **params: str) -> int | None:
        """Load one actions page; returns the total it shows."""
        started = time.monotonic()
        response = self.client.get(f"/a/{account}/actions", params=params)
        took = time.monotonic() - started
        match = TOTAL_RE.search(response.text)
        if match:
            total: int | None = int(match.group(1).replace(",", ""))
        else:  # no total on an error page; the empty state says there are none
            total = 0 if 'data-testid="empty"' in response.text else None
        self.loads.append(Load(started, took, response.status_code, total, tuple(params.items())))
        return total

    def wait_for_total(self, account: str, expected: int, timeout: float, **params: str) -> None:
        deadline = time.monotonic() + timeout
        total = None
        while time.monotonic() < deadline:
            total = self.actions(account, **params)
            if total == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"the UI shows {total} events of {account}, expected {expected}")

    def slow_or_failed(self) -> list[Load]:
        return [load for load in self.loads if load.status != 200 or load.took > PAGE_LIMIT_S]


def start_ui(stack: ExitStack, home: Path, url: str, users: Path) -> UI:
    """``useraudit web`` on a free port, an admin signed in."""
    port = free_port()
    log = home / "web.log"
    args = useraudit(
        "web", "--store", url, "--port", str(port), "--users-db", str(users), "--secret-key", "k"
    )
    proc = stack.enter_context(running(args, log, home))
    ui = UI(f"http://127.0.0.1:{port}")
    stack.callback(ui.client.close)  # the server keeps connections alive
    ui.wait_until_up(proc, log)
    ui.sign_in("admin")
    return ui


@dataclass
class Traffic:
    """A thread recording audit events into a spool at a steady pace, as a host app would."""

    spool: Path
    account: str
    word: str
    every_s: float = 0.0
    limit: int | None = None
    recorded: list[tuple[float, str]] = field(default_factory=list)  # (when, event id)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name=f"traffic-{self.word}")
        self._thread.start()
        return self

    def _run(self) -> None:
        recorder = Recorder(self.spool, durability="batch", flush_interval=0.02)
        try:
            n = 0
            while not self._stop.is_set() and (self.limit is None or n < self.limit):
                event_id = recorder.record(
                    "user.signed_in",
                    account=self.account,
                    user={"id": f"u{n % 50}", "name": f"user{n % 50}"},
                    comments=f"{self.word} sign-in number {n}",
                )
                assert event_id, "record() could not spool"
                n += 1
                recorder.flush()  # on disk before it counts as recorded
                self.recorded.append((time.monotonic(), event_id))
                if self.every_s:
                    self._stop.wait(self.every_s)
        finally:
            recorder.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def recorded_by(self, when: float) -> int:
        return sum(1 for at, _id in self.recorded if at <= when)


def users_db(path: Path) -> Path:
    users = UserStore(path)
    users.add("admin", PASSWORD, email="admin@example.com", full_name="Admin")
    users.grant("admin", ACCOUNT)
    users.grant("admin", OTHER)
    return path


def seed(
    store: SQLiteStore, tag: str, count: int, start: datetime, end: datetime
) -> dict[str, int]:
    """``count`` events of both accounts (ids ``<tag><n>``) from ``start`` to ``end``.

    Returns how many each account got.

    A few hundred enriched templates (people, browsers, addresses) are reused
    with their own id, time, action and comments, so seeding costs what the
    writes cost.
    """
    rnd = random.Random(5)
    enrich = Enricher()
    agents = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    )
    templates = []
    for i in range(300):
        account = ACCOUNT if i % 10 < 7 else OTHER
        templates.append(
            enrich(
                {
                    "event.id": new_event_id(),
                    "@timestamp": start.isoformat(),
                    "event.action": "user.signed_in",
                    "event.outcome": "success",
                    "organization.id": account,
                    "user.id": f"{account}-u{i}",
                    "user.name": f"person{i}",
                    "user.email": f"person{i}@{account}.example",
                    "source.address": f"10.{i % 4}.{i % 200}.{i % 250 + 1}",
                    "user_agent.original": agents[i % len(agents)],
                    "audit.project.id": f"p-{i % 30}",
                }
            )
        )
    actions = ("user.signed_in", "user.signed_out", "token.created", "project.exported")
    step = (end - start) / count
    per_account = {ACCOUNT: 0, OTHER: 0}
    batch: list[dict] = []
    for n in range(count):
        doc = dict(rnd.choice(templates))
        doc["event.id"] = f"{tag}{n:010d}"
        doc["@timestamp"] = (start + step * n).isoformat(timespec="milliseconds")
        doc["event.action"] = actions[n % len(actions)]
        doc["audit.comments"] = " ".join(rnd.choices(WORDS, k=6)) + f" #{n}"
        per_account[doc["organization.id"]] += 1
        batch.append(doc)
        if len(batch) == 5000 or n == count - 1:
            results = store.write(batch)
            assert all(r.status == "created" for r in results), results[:3]
            batch = []
    return per_account


def lagging(loads: list[Load], traffic: Traffic) -> list[str]:
    """Pages listing ``traffic``'s events that showed fewer than it recorded LAG_LIMIT_S before."""
    out = []
    for load in loads:
        assert load.total is not None, load
        due = traffic.recorded_by(load.started - LAG_LIMIT_S)
        if load.total < due:
            out.append(f"a page loaded at {load.started:.1f} showed {load.total} of {due}")
    return out


def test_indexers_and_the_ui_share_a_file(tmp_path: Path) -> None:
    """Two indexer processes write one file while the UI process serves pages from it:
    no indexer meets a locked file, every event arrives once, no page fails or stalls."""
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"
    SQLiteStore(url).install()
    users = users_db(tmp_path / "webusers.db")
    per_spool = 4000
    with ExitStack() as stack:
        indexers = [
            start_indexer(stack, tmp_path, tmp_path / f"spool-{name}", url, "--batch", "500")
            for name in ("one", "two")
        ]
        ui = start_ui(stack, tmp_path, url, users)
        traffic = [
            Traffic(indexer.spool, ACCOUNT, word, limit=per_spool).start()
            for indexer, word in zip(indexers, ("alpha", "bravo"), strict=True)
        ]
        began = time.monotonic()
        try:
            while any(t.alive for t in traffic):
                ui.actions(ACCOUNT, period="24h")
                ui.actions(ACCOUNT, period="24h", q="alpha")
                ui.actions(ACCOUNT, period="24h", history="user7")
        finally:
            for t in traffic:
                t.stop()
        written = time.monotonic()
        ui.wait_for_total(ACCOUNT, 2 * per_spool, timeout=60, period="24h")
        assert ui.actions(ACCOUNT, period="24h", q="bravo") == per_spool
        stats = [indexer.stop() for indexer in indexers]
    during = [load for load in ui.loads if began <= load.started <= written]
    assert len(during) >= 10, f"only {len(during)} pages loaded while the indexers wrote"
    assert not ui.slow_or_failed(), ui.slow_or_failed()[:5]
    for counts, t in zip(stats, traffic, strict=True):
        assert counts["shipped"] == len(t.recorded) == per_spool, counts
        assert counts["unavailable_waits"] == 0 and counts["retried"] == 0, counts
        assert counts["dead_lettered"] == 0 and counts["duplicates"] == 0, counts
    store = SQLiteStore(url)
    ids = [event_id for t in traffic for _at, event_id in t.recorded]
    assert len(store.get(ids)) == len(ids) == 2 * per_spool
    store.close()


@pytest.mark.slow
def test_the_ui_stays_responsive_while_prune_deletes_500k_events(tmp_path: Path) -> None:
    """`useraudit prune` deletes 500,000 events while the UI serves searches over them and an
    indexer keeps writing: every page answers within PAGE_LIMIT_S, every new event is
    searchable within LAG_LIMIT_S, and the indexer never meets a locked file."""
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}"
    now = datetime.now(UTC)
    store = SQLiteStore(url)
    old = seed(store, "old", 500_000, now - timedelta(days=400), now - timedelta(days=100))
    recent = seed(store, "recent", 2_000, now - timedelta(days=6), now - timedelta(days=2))
    store.close()
    users = users_db(tmp_path / "webusers.db")
    # Not $USERAUDIT_HOME/spool, where the UI records its own admins' actions.
    spool = tmp_path / "spool-host"
    with ExitStack() as stack:
        indexer = start_indexer(stack, tmp_path, spool, url)
        ui = start_ui(stack, tmp_path, url, users)
        everything = ui.actions(ACCOUNT, period="custom")
        assert everything == old[ACCOUNT] + recent[ACCOUNT]
        traffic = Traffic(spool, ACCOUNT, "charlie", every_s=0.02).start()
        prune_log = tmp_path / "prune.log"
        began = time.monotonic()
        try:
            with running(
                useraudit("prune", "--older-than", "90", "--store", url), prune_log, tmp_path
            ) as prune:
                pages = (
                    dict(LISTING),
                    {"period": "custom", "q": "webhook"},
                    {"period": "custom", "q": '"access token"'},
                    {"period": "custom", "history": "person7"},
                    {"period": "custom", "action": "token.created"},
                )
                n = 0
                while prune.poll() is None:
                    ui.actions(ACCOUNT, **pages[n % len(pages)])
                    n += 1
                assert prune.wait() == 0, prune_log.read_text(errors="replace")[-3000:]
            pruned = time.monotonic()
        finally:
            traffic.stop()
        ui.wait_for_total(ACCOUNT, len(traffic.recorded), timeout=60, period="24h")
        stats = indexer.stop()
    output = prune_log.read_text(errors="replace")
    assert f"Deleted {sum(old.values()):,} events" in output, output[-2000:]
    during = [load for load in ui.loads if began <= load.started <= pruned]
    assert len(during) >= 20, f"only {len(during)} pages loaded during the prune"
    assert not ui.slow_or_failed(), ui.slow_or_failed()[:5]
    # Only the traffic's own events are in the last 24 hours.
    assert not lagging([load for load in during if load.params == LISTING], traffic)
    assert stats["shipped"] == len(traffic.recorded) > 0, stats
    assert stats["unavailable_waits"] == 0 and stats["retried"] == 0, stats
    store = SQLiteStore(url)
    assert store.count(Query(ACCOUNT)) == recent[ACCOUNT] + len(traffic.recorded)
    assert store.count(Query(OTHER)) == recent[OTHER]
    store.close()
