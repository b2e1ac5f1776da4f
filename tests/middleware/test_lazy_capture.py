"""A request that records nothing reads nothing it does not need; one that records gets it all.

The quiet path (most requests of a real app) reads the method and the path,
and X-Forwarded-For on the requests the proxy watch samples; headers, the
peer address, the client IP and the request id are read the first time
something records or logs.
"""

from __future__ import annotations

import contextvars
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from useraudit.middleware import _common
from useraudit.middleware.asgi import AuditMiddleware as ASGIAudit
from useraudit.middleware.context import CTX, RequestContext, bound, current
from useraudit.middleware.masking import Masker
from useraudit.middleware.proxy_watch import SAMPLE_EVERY, ProxyWatch
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.rules import Rule, Rules
from useraudit.middleware.wsgi import AuditMiddleware as WSGIAudit

from .conftest import spool_events
from .test_asgi import run as call_asgi

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"


class Watched(dict):
    """An environ or scope that remembers which keys were read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


@pytest.fixture
def rec(spool_dir: Path) -> Recorder:
    r = Recorder(spool_dir, durability="sync", account="acme")
    yield r
    r.close()


@pytest.fixture
def derived(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts client IP and request id derivations."""
    calls: list[str] = []
    client_ip, request_id = _common.client_ip, _common.request_id

    def counted_ip(*args: Any) -> Any:
        calls.append("client_ip")
        return client_ip(*args)

    def counted_id(*args: Any) -> Any:
        calls.append("request_id")
        return request_id(*args)

    monkeypatch.setattr(_common, "client_ip", counted_ip)
    monkeypatch.setattr(_common, "request_id", counted_id)
    return calls


def environ(**extra: Any) -> Watched:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/reports",
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_USER_AGENT": UA,
        "HTTP_X_FORWARDED_FOR": "198.51.100.7",
        "HTTP_X_REQUEST_ID": "req-42",
    }
    return Watched({**env, **extra})


def wsgi_app(rec: Recorder, records: bool) -> Any:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        if records:
            rec.record("user.profile_updated")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def call_wsgi(app: Any, env: dict) -> bytes:
    body = app(env, lambda status, headers, exc_info=None: None)
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


QUIET_RULES = Rules([Rule("POST", "/tokens/{token_id}", "token.created")])


def test_wsgi_quiet_request_reads_no_header_and_derives_nothing(
    rec: Recorder, derived: list[str]
) -> None:
    env = environ()
    mw = WSGIAudit(wsgi_app(rec, records=False), recorder=rec, rules=QUIET_RULES)
    assert call_wsgi(mw, env) == b"ok"
    assert env.read <= {"REQUEST_METHOD", "PATH_INFO", "SCRIPT_NAME", "HTTP_X_FORWARDED_FOR"}
    assert derived == []
    assert spool_events(rec.spool.directory) == []


def test_wsgi_recording_request_reads_everything_once(rec: Recorder, derived: list[str]) -> None:
    env = environ()
    mw = WSGIAudit(wsgi_app(rec, records=True), recorder=rec, trusted_proxies=1)
    assert call_wsgi(mw, env) == b"ok"
    assert {"REMOTE_ADDR", "HTTP_USER_AGENT", "HTTP_X_REQUEST_ID"} <= env.read
    assert sorted(derived) == ["client_ip", "request_id"]  # once each
    (ev,) = spool_events(rec.spool.directory)
    assert ev["source.address"] == "198.51.100.7"  # behind one proxy: its entry
    assert ev["user_agent.original"] == UA
    assert ev["http.request.id"] == "req-42"
    assert (ev["http.request.method"], ev["url.path"]) == ("GET", "/reports")


def scope() -> Watched:
    return Watched(
        type="http",
        method="GET",
        path="/reports",
        root_path="",
        client=("192.0.2.9", 4000),
        headers=[
            (b"user-agent", UA.encode()),
            (b"x-forwarded-for", b"198.51.100.8"),
            (b"x-request-id", b"req-43"),
        ],
    )


def asgi_app(rec: Recorder, records: bool) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if records:
            rec.record("user.profile_updated")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_asgi_quiet_request_reads_no_client_and_derives_nothing(
    rec: Recorder, derived: list[str]
) -> None:
    sc = scope()
    during: set[str] = set()
    contexts: list[Any] = []
    quiet = asgi_app(rec, records=False)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await quiet(scope, receive, send)
        during.update(sc.read)  # the response is sent: what the request itself read
        contexts.append(current.get())

    mw = ASGIAudit(app, recorder=rec, rules=QUIET_RULES)
    assert [m["type"] for m in call_asgi(mw, sc)] == ["http.response.start", "http.response.body"]
    assert "client" not in during
    assert derived == []
    assert spool_events(rec.spool.directory) == []
    # Afterwards the context keeps a few of the scope's values by reference,
    # not the scope (see the end of asgi.AuditMiddleware.__call__), and derives nothing from them.
    (ctx,) = contexts
    assert ctx.request is not sc and set(ctx.request) <= {"headers", "client", "user", "route"}
    assert derived == []


class CountedHeaders(list):
    """A scope's header list that counts how often it is walked."""

    walks = 0

    def __iter__(self) -> Any:
        CountedHeaders.walks += 1
        return super().__iter__()


def capture_file(rec: Recorder) -> dict[str, Any]:
    (path,) = rec.spool.directory.glob("capture-*.json")
    return json.loads(path.read_text())


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The paths of the requests a context was made for."""
    paths: list[str | None] = []
    new = _common.Capture._new

    def counted(self: _common.Capture, request: Any, reader: Any, method: Any, path: Any) -> Any:
        paths.append(path)
        return new(self, request, reader, method, path)

    monkeypatch.setattr(_common.Capture, "_new", counted)
    return paths


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_quiet_request_makes_no_context_a_recording_one_makes_one(
    kind: str, rec: Recorder, made: list[str | None]
) -> None:
    """What a quiet request binds is a list; the context is made only when something asks."""
    bindings: list[Any] = []

    def note() -> None:
        bindings.append(bound.get())

    if kind == "wsgi":
        quiet, recording = wsgi_app(rec, records=False), wsgi_app(rec, records=True)

        def wrap(app: Any) -> Any:
            def noted(environ: dict, start_response: Any) -> Any:
                note()
                return app(environ, start_response)

            return WSGIAudit(noted, recorder=rec, rules=QUIET_RULES)

        def call(app: Any) -> None:
            assert call_wsgi(app, environ()) == b"ok"
    else:
        quiet, recording = asgi_app(rec, records=False), asgi_app(rec, records=True)

        def wrap(app: Any) -> Any:
            async def noted(scope: Any, receive: Any, send: Any) -> None:
                note()
                await app(scope, receive, send)

            return ASGIAudit(noted, recorder=rec, rules=QUIET_RULES)

        def call(app: Any) -> None:
            call_asgi(app, scope())

    call(wrap(quiet))
    assert made == [] and bindings[0][CTX] is None
    call(wrap(recording))
    assert made == ["/reports"]  # once, for the event
    assert isinstance(bindings[1][CTX], RequestContext)
    (ev,) = spool_events(rec.spool.directory)
    request_id = {"wsgi": "req-42", "asgi": "req-43"}[kind]
    assert (ev["http.request.id"], ev["http.response.status_code"]) == (request_id, 200)


def test_asgi_event_recorded_after_the_response_started_spools_at_once_with_its_status(
    rec: Recorder, made: list[str | None]
) -> None:
    spooled_before_body: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        rec.record("user.profile_updated")
        spooled_before_body.append(len(spool_events(rec.spool.directory)))
        await send({"type": "http.response.body", "body": b"ok"})

    call_asgi(ASGIAudit(app, recorder=rec, rules=QUIET_RULES), scope())
    assert made == ["/reports"] and spooled_before_body == [1]
    (ev,) = spool_events(rec.spool.directory)
    assert (ev["http.response.status_code"], ev["source.address"]) == (202, "192.0.2.9")


def test_threads_that_ask_at_once_share_one_context(rec: Recorder) -> None:
    """Threads of one request (copied contexts) asking first, together, get the same context."""
    threads = 8
    barrier = threading.Barrier(threads)
    got: list[RequestContext | None] = []

    def ask() -> None:
        barrier.wait()
        got.append(current.get())
        rec.record("user.profile_updated")

    def app(environ: dict, start_response: Any) -> list[bytes]:
        workers = [
            threading.Thread(target=contextvars.copy_context().run, args=(ask,))
            for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        start_response("201 Created", [])
        return [b"ok"]

    assert call_wsgi(WSGIAudit(app, recorder=rec, rules=QUIET_RULES), environ()) == b"ok"
    assert len(got) == threads and len({id(ctx) for ctx in got}) == 1
    events = spool_events(rec.spool.directory)
    # Held until the response started, then spooled with its status: none lost.
    assert [e["http.response.status_code"] for e in events] == [201] * threads


def test_the_proxy_watch_looks_at_the_first_request_and_one_in_sixteen(rec: Recorder) -> None:
    """Quiet ASGI requests walk their headers only when sampled; the counts say how many."""
    mw = ASGIAudit(asgi_app(rec, records=False), recorder=rec, rules=QUIET_RULES)
    CountedHeaders.walks = 0
    for _ in range(2 * SAMPLE_EVERY + 1):
        sc = scope()
        sc["headers"] = CountedHeaders(sc["headers"])
        call_asgi(mw, sc)
    assert CountedHeaders.walks == 3  # requests 1, 17 and 33
    mw.capture.proxy_watch.write(rec.spool.directory, 0)
    counts = capture_file(rec)
    assert counts["requests"] == counts["forwarded_untrusted"] == 3
    assert counts["sample_every"] == SAMPLE_EVERY


def test_a_watch_count_a_race_took_below_zero_samples_again() -> None:
    """Threads racing on the countdown can leave it at -1: the next request is looked at."""
    watch = ProxyWatch()
    watch.skip = -1
    assert watch.due()
    assert [watch.due() for _ in range(SAMPLE_EVERY)] == [False] * (SAMPLE_EVERY - 1) + [True]


def test_the_wsgi_proxy_watch_samples_alike(rec: Recorder) -> None:
    mw = WSGIAudit(wsgi_app(rec, records=False), recorder=rec, trusted_proxies=2)
    read = 0
    for _ in range(SAMPLE_EVERY + 1):
        env = environ()
        call_wsgi(mw, env)
        read += "HTTP_X_FORWARDED_FOR" in env.read
    assert read == 2
    mw.capture.proxy_watch.write(rec.spool.directory, 2)
    assert capture_file(rec)["direct_trusted"] == 2  # one entry where two proxies were promised


def test_asgi_context_lets_go_of_the_rule_match_once_the_rule_decided(rec: Recorder) -> None:
    """The context can outlive the request; the rule's match it held is done with."""
    contexts: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        contexts.append(current.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    rules = Rules([Rule("GET", "/reports", "client_report.downloaded")])
    call_asgi(ASGIAudit(app, recorder=rec, rules=rules), scope())
    (ctx,) = contexts
    assert ctx.rule_hit is None  # the rule waited in the request's binding, decided once
    (ev,) = spool_events(rec.spool.directory)
    assert ev["event.action"] == "client_report.downloaded"
    assert ev["http.request.id"] == ctx.request_id  # recorded through the request's context


def test_asgi_context_read_after_the_response_gives_the_request_fields(
    rec: Recorder, derived: list[str]
) -> None:
    """A task started by the request may record once the response is gone."""
    sc = scope()
    contexts: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        contexts.append(current.get())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    call_asgi(ASGIAudit(app, recorder=rec, rules=QUIET_RULES), sc)
    (ctx,) = contexts
    assert ctx.request is not sc
    assert ctx.seen() == ("192.0.2.9", UA, "req-43")
    assert sorted(derived) == ["client_ip", "request_id"]


def test_asgi_recording_request_gets_every_field(rec: Recorder, derived: list[str]) -> None:
    sc = scope()
    call_asgi(ASGIAudit(asgi_app(rec, records=True), recorder=rec), sc)
    assert "client" in sc.read
    assert sorted(derived) == ["client_ip", "request_id"]
    (ev,) = spool_events(rec.spool.directory)
    assert ev["source.address"] == "192.0.2.9"  # no trusted proxy: the peer, not the header
    assert (ev["user_agent.original"], ev["http.request.id"]) == (UA, "req-43")


def test_asgi_route_is_asked_only_when_read_after_the_response_started(rec: Recorder) -> None:
    asked: list[Any] = []
    seen: list[RequestContext] = []

    def get_route(scope: Any) -> str:
        asked.append(scope["path"])
        return "/reports/{kind}"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ctx = current.get()
        assert ctx is not None and ctx.route is None  # not routed yet: nothing asked
        seen.append(ctx)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = ASGIAudit(app, recorder=rec, rules=QUIET_RULES, get_route=get_route)
    call_asgi(mw, scope())
    call_asgi(mw, scope())
    assert asked == []  # two quiet requests, nobody read the route
    assert seen[0].route == "/reports/{kind}" and seen[0].route == "/reports/{kind}"
    assert asked == ["/reports"]  # asked once, when first read


def test_a_failing_asgi_route_callback_costs_the_field_not_the_request(
    rec: Recorder, internal_errors: list
) -> None:
    def get_route(scope: Any) -> str:
        raise RuntimeError("router exploded")

    seen: list[RequestContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        ctx = current.get()
        assert ctx is not None
        seen.append(ctx)
        assert ctx.route is None  # read by a log line while the body is sent
        await send({"type": "http.response.body", "body": b"ok"})

    mw = ASGIAudit(app, recorder=rec, rules=QUIET_RULES, get_route=get_route, fail_closed=True)
    messages = call_asgi(mw, scope())
    assert (messages[0]["status"], messages[-1]["body"]) == (200, b"ok")
    assert len(internal_errors) == 1
    internal_errors.clear()


def test_a_field_set_before_it_was_read_is_kept(rec: Recorder) -> None:
    """The admin UI fills fields the middleware did not have: the late read must not undo it."""
    reads: list[RequestContext] = []

    def reader(ctx: RequestContext) -> None:
        reads.append(ctx)
        ctx._client_ip, ctx._user_agent, ctx._request_id = "192.0.2.1", "from-reader", "r-1"

    covered = Rules([Rule("GET", "/", "client_report.downloaded")])  # so begin makes it now
    ctx = _common.Capture(recorder=rec, rules=covered).begin({}, reader, "GET", "/", lambda r: None)
    assert ctx is not None
    ctx.user_agent = "set-by-hand"
    assert (ctx.user_agent, ctx.client_ip, ctx.request_id) == ("set-by-hand", "192.0.2.1", "r-1")
    assert len(reads) == 1


def test_a_request_that_cannot_be_read_still_records_its_event(
    rec: Recorder, internal_errors: list[Exception]
) -> None:
    """A server handing over a non-text header costs the request fields, never the event."""
    env = environ(HTTP_USER_AGENT=12345)  # not a str: header_text cannot read it
    call_wsgi(WSGIAudit(wsgi_app(rec, records=True), recorder=rec), env)
    (ev,) = spool_events(rec.spool.directory)
    assert ev["event.action"] == "user.profile_updated"
    assert "user_agent.original" not in ev
    assert len(internal_errors) == 1
    internal_errors.clear()
    assert current.get() is None


@pytest.mark.parametrize("method", ["GET", "get", "POST", "PUT", "DELETE", "BREW"])
@pytest.mark.parametrize(
    "path", ["/", "/tokens/7", "/tokens/7/", "/tokens/7/x", "/files/a/b.txt", "/login", "/x"]
)
def test_may_match_agrees_with_match(method: str, path: str) -> None:
    """The one-regex pre-check and the rule found at response start agree with every rule."""
    rules = Rules(
        [
            Rule("DELETE", "/tokens/{token_id}", "token.deleted"),
            Rule("GET", "/tokens/{token_id}", "token.viewed"),
            Rule("*", "/files/{name:path}", "file.touched"),
            Rule("POST", "/login", "user.signed_in"),
            Rule("GET", "/login", "login.viewed"),
        ]
    )
    firing = [rule for rule in rules.rules if rule.match(method, path, 200, None) is not None]
    assert rules.may_match(method, path) is bool(firing)
    found = rules.find(method, path)
    assert (found[0] if found else None) is (firing[0] if firing else None)
    assert rules.match(method, path, 200) == (
        firing[0].match(method, path, 200, None) if firing else None
    )


def test_masking_remembers_only_clean_texts() -> None:
    masker = Masker()
    secret = "reset with password=hunter2"
    for _ in range(3):  # every time, not only the first
        assert masker.text(secret) == "reset with password=[MASKED]"
    assert masker.text("/reports") == "/reports"
    assert masker.text("/reports") == "/reports"
    assert secret not in masker._clean and "/reports" in masker._clean


def test_masking_cache_is_bounded() -> None:
    masker = Masker()
    for i in range(10_000):
        masker.text(f"/reports/{i}")
    assert 0 < len(masker._clean) <= 4096
    assert masker.text("token=abcdef123456") == "token=[MASKED]"


def test_extra_value_patterns_are_applied_to_remembered_texts_too() -> None:
    masker = Masker(extra_values=[r"card-\d{4}"])
    assert masker.text("paid by card-1234") == "paid by [MASKED]"
    assert masker.text("paid by card-1234") == "paid by [MASKED]"


def test_context_takes_its_fields_by_keyword_and_nothing_else() -> None:
    ctx = RequestContext(client_ip="192.0.2.5", method="GET", pending=[])
    assert (ctx.client_ip, ctx.method, ctx.pending, ctx.user) == ("192.0.2.5", "GET", [], None)
    for wrong in ("actor", "lazy", "_reader", "no_such_field"):
        with pytest.raises(TypeError, match=wrong):
            RequestContext(**{wrong: 1})


def test_a_task_holding_a_quiet_requests_context_gets_the_light_view_of_the_scope(
    rec: Recorder,
) -> None:
    """A copied context outlives the request: what it binds lets go of the scope, not the fields."""

    sc = scope()
    copies: list[contextvars.Context] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        copies.append(contextvars.copy_context())  # what asyncio.create_task does
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    call_asgi(ASGIAudit(app, recorder=rec, rules=QUIET_RULES), sc)
    (copy,) = copies
    binding = copy[bound]
    assert binding[CTX] is None and binding[2] is not sc  # not the scope itself
    ctx = copy.run(current.get)  # the task records after the response
    assert ctx is not None and ctx.request is not sc
    assert (ctx.started, ctx.status) == (True, 200)
    assert ctx.seen() == ("192.0.2.9", UA, "req-43")


def test_a_method_no_rule_names_skips_the_rule_lookup(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[str] = []
    find = Rules.find

    def counted(self: Rules, method: str, path: str) -> Any:
        looked.append(method)
        return find(self, method, path)

    monkeypatch.setattr(Rules, "find", counted)
    capture = _common.Capture(recorder=rec, rules=QUIET_RULES)  # one POST rule
    assert capture.begin({}, None, "GET", "/tokens/1", lambda r: None) is None  # type: ignore[arg-type]
    assert looked == []
    ctx = capture.begin({}, None, "POST", "/tokens/1", lambda r: None)  # type: ignore[arg-type]
    assert ctx is not None and ctx.rule_hit is not None
    # Not a standard spelling: looked up, and matched as before (find upper-cases it).
    ctx = capture.begin({}, None, "post", "/tokens/1", lambda r: None)  # type: ignore[arg-type]
    assert looked == ["POST", "post"] and ctx is not None and ctx.rule_hit is not None
    wildcard = _common.Capture(recorder=rec, rules=Rules([Rule("*", "/a", "token.created")]))
    assert wildcard.begin({}, None, "GET", "/a", lambda r: None) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_a_quiet_request_skips_capture_setup_unless_capture_may_fail_closed(
    kind: str, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common request binds its method and path and nothing more; setup runs when needed.

    Setup (``Capture.begin``) runs for a method a rule names, for the
    requests the proxy watch samples, and for every request of a capture
    that may fail closed, also when the process-wide recorder is configured
    so after the middleware was installed.
    """
    from useraudit.middleware import recorder as recorder_module

    began: list[str | None] = []
    begin = _common.Capture.begin

    def counted(self: _common.Capture, request: Any, reader: Any, method: Any, *rest: Any) -> Any:
        began.append(method)
        return begin(self, request, reader, method, *rest)

    monkeypatch.setattr(_common.Capture, "begin", counted)
    monkeypatch.setattr(recorder_module, "_default", None)

    def requests(method: str, n: int, **options: Any) -> list[Any]:
        """``n`` requests of ``method``; what each bound."""
        bindings: list[Any] = []
        if kind == "wsgi":

            def app(environ: dict, start_response: Any) -> list[bytes]:
                bindings.append(bound.get())
                start_response("200 OK", [])
                return [b"ok"]

            mw = WSGIAudit(app, rules=QUIET_RULES, **options)
            for _ in range(n):
                call_wsgi(mw, environ(REQUEST_METHOD=method))
        else:

            async def asgi(scope: Any, receive: Any, send: Any) -> None:
                bindings.append(bound.get())
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})

            mw = ASGIAudit(asgi, rules=QUIET_RULES, **options)
            for _ in range(n):
                sc = scope()
                sc["method"] = method
                call_asgi(mw, sc)
        return bindings

    open_rec = Recorder(spool_dir / "open", account="acme")
    closed_rec = Recorder(spool_dir / "closed", account="acme", fail_closed=True)
    try:
        n = 2 * SAMPLE_EVERY + 1
        bindings = requests("GET", n, recorder=open_rec)
        assert began == ["GET"] * 3  # requests 1, 17 and 33: the proxy watch's samples
        assert all(b[CTX] is None for b in bindings)
        assert {(b[3], b[4]) for b in bindings} == {("GET", "/reports")}  # method and path bound
        began.clear()
        requests("POST", 4, recorder=open_rec)  # a rule names POST
        assert began == ["POST"] * 4
        began.clear()
        requests("GET", 4, recorder=closed_rec)
        assert began == ["GET"] * 4
        began.clear()
        requests("GET", 4, recorder=open_rec, fail_closed=True)
        assert began == ["GET"] * 4
        began.clear()
        # No recorder given: the process-wide one decides, on every request.
        recorder_module._default = open_rec
        requests("GET", 4)
        assert began == ["GET"]
        began.clear()
        recorder_module._default = closed_rec
        bindings = requests("GET", 4)
        assert began == ["GET"] * 4
        assert all(b[CTX] is not None and b[CTX].fail_closed for b in bindings)
    finally:
        recorder_module._default = None
        open_rec.close()
        closed_rec.close()


def test_an_app_without_rules_binds_every_quiet_request_without_setup(
    rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    began: list[str] = []
    begin = _common.Capture.begin
    monkeypatch.setattr(
        _common.Capture, "begin", lambda self, *a: began.append(a[2]) or begin(self, *a)
    )
    mw = WSGIAudit(wsgi_app(rec, records=True), recorder=rec)  # records, no rules
    for method in ("GET", "POST", "DELETE", "PATCH"):
        assert call_wsgi(mw, environ(REQUEST_METHOD=method)) == b"ok"
    assert began == ["GET"]  # the proxy watch's first sample only
    events = spool_events(rec.spool.directory)
    assert [e["http.request.method"] for e in events] == ["GET", "POST", "DELETE", "PATCH"]
    assert {e["organization.id"] for e in events} == {"acme"}
