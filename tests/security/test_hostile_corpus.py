"""Every input of the hostile corpus (tests/corpus/) through the real pipeline.

Each input goes in twice: (a) through ``record()`` inside a real request
served by a Flask host app wrapped in the WSGI middleware (headers and paths
as the WSGI server hands them over), and (b) through ``record()`` directly
(headers bound as a request context a careless integration might build).
``raw_spool`` inputs are written straight into the spool, as a buggy
producer would. Then the real Indexer ships the spool into the real
OpenSearch node, and:

* every input is a stored, sanitised document or a dead letter with a
  reason (matched by the event ids chosen here; nothing else counts);
* the host app answered every request as it meant to (201 and its body);
* the admin UI answers every hostile string, typed in the search box or
  put in any filter, with a page or a friendly 400 — never a 500 — and
  renders and exports every stored hostile document.

Run alone: ``.venv/bin/python -m pytest tests/security/test_hostile_corpus.py -s``
(``-s`` shows the figures, also written to docs/hostile-inputs.md).
"""

from __future__ import annotations

import io
import ipaddress
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import corpus
from corpus import HEADER_TARGETS, Case, as_str, as_wsgi
from flask import Flask, request
from openpyxl import load_workbook

from useraudit.indexer.deadletter import DeadLetters
from useraudit.indexer.enrich import _UNSAFE
from useraudit.indexer.shipper import Indexer
from useraudit.middleware import _failsafe
from useraudit.middleware import context as audit_context
from useraudit.middleware.recorder import Recorder, new_event_id
from useraudit.middleware.wsgi import AuditMiddleware
from useraudit.schema import FIELD_BY_NAME
from useraudit.webapp.filters import MULTI

from .conftest import make_app, signed_in

ACCOUNT = "corpus"
HOST_USER = {"id": "u-host", "name": "host-user"}


def record_kwargs(case: Case, event_id: str) -> tuple[Any, dict[str, Any]]:
    """(action, record() keyword arguments) putting the case's input where it belongs."""
    value = as_str(case.value)
    action: Any = "user.profile_updated"
    kw: dict[str, Any] = {"account": ACCOUNT, "event_id": event_id, "user": HOST_USER}
    target = case.target
    if target == "action":
        action = value
    elif target in ("comments", "reason", "project", "token_id", "params", "timestamp", "outcome"):
        kw[target] = value
    elif target == "user_name":
        kw["user"] = {"id": "u-named", "name": value}
    elif target in ("user", "target_user", "impersonator"):
        kw[target] = value
    elif target in HEADER_TARGETS:
        kw["comments"] = f"header case {case.id}"
    else:  # pragma: no cover - a corpus file with a new target
        raise AssertionError(f"unknown corpus target {target!r}")
    return action, kw


def host_app(rec: Recorder) -> Flask:
    """A host app whose one view records the case named in its headers, then answers 201."""
    app = Flask("corpus-host")
    by_id = {c.id: c for c in corpus.load()}

    # Before routing: any path (newlines, NUL, 12 kB) reaches the view.
    @app.before_request
    def view() -> Any:
        case = by_id[request.headers["X-Corpus-Case"]]
        action, kw = record_kwargs(case, request.headers["X-Corpus-Event"])
        rec.record(action, **kw)
        return f"ok {case.id}", 201

    app.wsgi_app = AuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, recorder=rec, trusted_proxies=1, get_user=lambda environ: HOST_USER
    )
    return app


def through_request(client: Any, case: Case, event_id: str) -> None:
    environ: dict[str, str] = {}
    if case.target == "user_agent":
        environ["HTTP_USER_AGENT"] = as_wsgi(case.value)
    elif case.target == "xff":
        environ["HTTP_X_FORWARDED_FOR"] = as_wsgi(case.value)
    elif case.target == "request_id":
        environ["HTTP_X_REQUEST_ID"] = as_wsgi(case.value)
    elif case.target == "path":
        path = as_wsgi(case.value)
        environ["PATH_INFO"] = path if path.startswith("/") else "/" + path
    response = client.post(
        "/corpus",
        headers={"X-Corpus-Case": case.id, "X-Corpus-Event": event_id},
        environ_overrides=environ,
    )
    assert response.status_code == 201, (case.id, response.status_code)
    assert response.get_data() == f"ok {case.id}".encode(), case.id


def directly(rec: Recorder, case: Case, event_id: str) -> None:
    action, kw = record_kwargs(case, event_id)
    ctx = None
    if case.target in HEADER_TARGETS:
        value = as_str(case.value)
        value = value if isinstance(value, str) else corpus.text_of(value)
        field = {
            "user_agent": "user_agent",
            "xff": "client_ip",
            "request_id": "request_id",
            "path": "path",
        }[case.target]
        ctx = audit_context.RequestContext(**{field: value})
    token = audit_context.current.set(ctx)
    try:
        assert rec.record(action, **kw) == event_id, case.id
    finally:
        audit_context.current.reset(token)


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_of(k), *strings_of(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return []


def assert_sanitised(doc: dict[str, Any], label: str) -> None:
    for name, value in doc.items():
        for text in strings_of(value):
            assert not _UNSAFE.search(text), (label, name, text[:80])
            field = FIELD_BY_NAME.get(name)
            limit = field.max_chars if field and field.kind.value != "flat_object" else 64 * 1024
            assert len(text) <= limit, (label, name, len(text))
    if doc.get("source.ip"):
        ipaddress.ip_address(doc["source.ip"])
    ts = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
    assert datetime(2000, 1, 1, tzinfo=UTC) <= ts <= datetime.now(UTC) + timedelta(days=2), label


def test_every_hostile_input_is_stored_or_dead_lettered_and_nothing_breaks(
    os_store: Any, tmp_path: Path, security_users: Any, ui_spool: Any
) -> None:
    """Corpus × (request, direct, raw spool) → stored+sanitised or
    dead-lettered; no host error, no UI 500."""
    started = time.monotonic()
    cases = corpus.load()
    spool = tmp_path / "spool"
    rec = Recorder(spool, durability="batch")
    internal_before = _failsafe.stats.internal_errors
    expected: dict[tuple[str, str], str] = {}  # (path, case id) -> event id
    raw_inputs: dict[tuple[str, str], bytes] = {}
    client = host_app(rec).test_client()
    for case in cases:
        if case.target == "raw_spool":
            eid = new_event_id()
            payload = case.value.replace(b"@ID@", eid.encode())
            rec.spool.append(payload)
            expected[("raw", case.id)] = eid
            raw_inputs[("raw", case.id)] = payload
            continue
        eid = new_event_id()
        through_request(client, case, eid)
        expected[("request", case.id)] = eid
        eid = new_event_id()
        directly(rec, case, eid)
        expected[("direct", case.id)] = eid
    rec.close()
    assert rec.stats.errors == 0 and rec.stats.recorded == len(expected) - len(raw_inputs)
    assert _failsafe.stats.internal_errors == internal_before, "the middleware swallowed an error"
    captured = time.monotonic()

    with Indexer(spool, os_store) as ix:
        stats = ix.drain()
    os_store.refresh()
    letters = DeadLetters(spool / "deadletter.sqlite").list(100_000)
    stored_ids = set(os_store.all_ids())
    docs = os_store.get(sorted(stored_ids))

    stored, dead, lost = [], [], []
    unclaimed_letters = list(letters)
    for key, eid in expected.items():
        letter = next(
            (
                lt
                for lt in unclaimed_letters
                if lt.event_id == eid or eid.encode() in lt.raw or lt.raw == raw_inputs.get(key)
            ),
            None,
        )
        in_store = eid in stored_ids or any(eid in sid for sid in stored_ids)
        if letter is not None:
            assert letter.reason, key
            unclaimed_letters.remove(letter)
            dead.append((key, letter.reason))
        if in_store:
            stored.append(key)
        if letter is None and not in_store:
            lost.append(key)
    assert not lost, f"inputs neither stored nor dead-lettered: {lost}"
    assert not unclaimed_letters, [lt.reason for lt in unclaimed_letters]
    assert not set(stored) & {k for k, _ in dead}, "an input was both stored and dead-lettered"
    assert len(stored) + len(dead) == len(expected)
    assert len(docs) == len(stored), "the store holds documents nobody sent"
    for sid, doc in docs.items():
        assert_sanitised(doc, sid)
    # Spool records that are not JSON objects are the only ones expected to be refused.
    assert all(k[0] == "raw" for k, _ in dead), dead
    indexed = time.monotonic()

    # -- the admin UI: every hostile string in the search box and the filters --------
    app = make_app(os_store, security_users)
    admin = signed_in(app, "cid")
    statuses: dict[int, int] = {}
    texts = sorted({c.as_text() for c in cases if c.as_text().strip()})
    names = [n for n in MULTI if n != "ip"]
    for i, text in enumerate(texts):
        queries: list[Any] = [
            {"q": text, "period": "30d"},
            {**{n: text for n in names}, "period": "30d"},
            {
                "ip": text,
                "group": text,
                "tz": text[:80],
                "period": "custom",
                "from": text,
                "to": text,
                "size": text[:20],
                "c": text,
                "q": text,
            },
            {MULTI_NAMES[i % len(MULTI_NAMES)]: text, "q": text[:40], "period": "30d"},
        ]
        for args in queries:
            # As a browser sends them: UTF-8, percent-encoded (lone surrogates as raw bytes).
            qs = urlencode(args, encoding="utf-8", errors="surrogatepass")
            response = admin.get(f"/a/{ACCOUNT}/actions?{qs}")
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 400), (
                text[:80],
                args.keys(),
                response.status_code,
            )
    # Every stored hostile document rendered: page through everything.
    pages, url = 0, f"/a/{ACCOUNT}/actions?period=30d&size=100"
    seen: set[str] = set()
    while url and pages < 50:
        response = admin.get(url)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        seen |= set(re.findall(r'data-event="([^"]+)"', html))
        nxt = re.search(
            r'data-testid="next"[^>]*href="([^"]+)"|href="([^"]+)"[^>]*data-testid="next"', html
        )
        url = (nxt.group(1) or nxt.group(2)).replace("&amp;", "&") if nxt else None
        pages += 1
    assert len(seen) >= len(
        [d for d in docs.values() if d.get("organization.id") == ACCOUNT and _recent(d)]
    ), "some stored documents were never rendered"
    export = admin.get(f"/a/{ACCOUNT}/actions.xlsx?period=30d")
    assert export.status_code == 200
    sheet = load_workbook(io.BytesIO(export.data), read_only=True)["User actions"]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows and all(not (isinstance(v, str) and v[:1] in "=+-@\t\r") for r in rows for v in r)
    done = time.monotonic()

    figures = {
        "corpus entries": len(cases),
        "inputs tried": len(expected),
        "indexed": len(stored),
        "dead-lettered": len(dead),
        "host errors (status not 201 or swallowed)": 0,
        "UI searches": sum(statuses.values()),
        "stored documents rendered (pages)": f"{len(seen)} ({pages})",
        "rows exported": len(rows),
        "UI answers": ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
        "UI 500s": statuses.get(500, 0),
        "crashes": 0,
        "indexer stats": stats.as_dict(),
        "seconds (capture / index / UI)": f"{captured - started:.1f} / {indexed - captured:.1f} / "
        f"{done - indexed:.1f}",
    }
    print("\nhostile corpus figures:")
    for key, value in figures.items():
        print(f"  {key}: {value}")


MULTI_NAMES = list(MULTI)


def _recent(doc: dict[str, Any]) -> bool:
    ts = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
    return ts >= datetime.now(UTC) - timedelta(days=29)
