"""bench.middleware: says what to install before it runs; keeps servers and load apart."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import middleware as bench_mw

REPO = Path(__file__).resolve().parents[1]


def test_missing_peer_stops_the_run_at_once_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(bench_mw, "PEER_MODULES", ("json", "opentelemetry.no_such_instrumentation"))
    monkeypatch.setattr(bench_mw.tempfile, "tempdir", str(tmp_path))
    began = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        bench_mw.main(["-n", "10"])
    message = str(stopped.value.code)
    assert "opentelemetry.no_such_instrumentation" in message
    assert "pip install -e '.[bench]'" in message
    assert "json," not in message  # what is installed is not listed
    # Before anything ran: no spool made, no in-process loops, no server.
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - began < 5


def test_a_missing_parent_package_counts_as_missing() -> None:
    with pytest.raises(SystemExit, match="no_such_package_here.sub"):
        bench_mw.check_peers(("no_such_package_here.sub",))


def test_installed_peers_and_servers_pass() -> None:
    bench_mw.check_peers(("json", "useraudit.middleware.wsgi"))  # gunicorn, uvicorn: dev extras


def test_the_command_line_says_it_without_a_traceback(tmp_path: Path) -> None:
    """As a user runs it: a venv without sentry-sdk gets one clear line, exit status 1."""
    blocker = tmp_path / "sitecustomize.py"
    # Hide sentry_sdk from this interpreter, as in a venv without the bench extra.
    blocker.write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sentry_sdk' or name.startswith('sentry_sdk.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "bench.middleware", "-n", "10"],
        cwd=REPO,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "sentry_sdk" in run.stderr and "pip install -e '.[bench]'" in run.stderr
    assert "Traceback" not in run.stderr


def test_servers_and_wrk_get_cores_of_their_own() -> None:
    available = sorted(os.sched_getaffinity(0))
    server, load = bench_mw._cores(pin=True)
    if len(available) < 2:
        assert (server, load) == (None, None)
        return
    assert server and load and not server & load
    assert server | load == set(available)
    assert bench_mw._cores(pin=False) == (None, None)


def test_a_pinned_process_runs_only_on_its_core() -> None:
    core = max(os.sched_getaffinity(0))
    run = subprocess.run(
        [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
        preexec_fn=bench_mw._pinned({core}),  # noqa: PLW1509 - as the bench does
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == f"[{core}]"
    assert bench_mw._pinned(None) is None


def test_every_run_carries_its_own_a_a_test() -> None:
    for kind in bench_mw.SERVERS:
        configs = bench_mw.targets(kind, floor=False)
        assert configs["bare_again"] == configs["bare"]


def test_the_floor_run_adds_a_do_nothing_middleware_beside_the_floor_app() -> None:
    for kind in bench_mw.SERVERS:
        configs = bench_mw.targets(kind, floor=True)
        assert {"passthrough", "floor"} <= set(configs)
        assert "passthrough" not in bench_mw.targets(kind, floor=False)


def test_the_do_nothing_middlewares_answer_like_the_bare_app() -> None:
    import asyncio

    from bench import _hello

    started: list[str] = []
    body = _hello.wsgi_passthrough()({}, lambda status, headers: started.append(status))
    assert (started, list(body)) == (["200 OK"], [_hello.BODY])
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(_hello.asgi_passthrough()({"type": "http"}, None, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["body"] == _hello.BODY


def test_the_median_interval_holds_the_median_and_widens_with_the_spread() -> None:
    tight = [0.93, 0.94, 0.93, 0.95, 0.94, 0.93, 0.94, 0.95, 0.94, 0.93]
    spread = [0.83, 1.03, 0.91, 1.19, 0.89, 0.97, 0.93, 0.90, 0.98, 0.93]
    for rounds in (tight, spread):
        low, high = bench_mw.median_interval(rounds)
        assert min(rounds) <= low <= statistics.median(rounds) <= high <= max(rounds)
        assert bench_mw.median_interval(rounds) == (low, high)  # a fixed seed: reproducible
        inner = bench_mw.median_interval(rounds, level=0.5)
        assert low <= inner[0] <= inner[1] <= high
    t_low, t_high = bench_mw.median_interval(tight)
    s_low, s_high = bench_mw.median_interval(spread)
    assert t_high - t_low <= 0.02 < s_high - s_low
    # Not just the range of the rounds: one wild round moves neither end.
    assert (s_low, s_high) == (0.90, 0.98)
    assert bench_mw.median_interval(spread, level=0.5) == (0.92, 0.95)
    assert bench_mw.median_interval([0.97] * 10) == (0.97, 0.97)


def test_the_ratio_of_means_weighs_every_round_alike_and_its_interval_holds_it() -> None:
    bare = [5000.0, 4000.0, 5200.0, 4800.0, 4600.0, 5100.0, 4300.0, 4900.0]
    quiet = [4850.0, 3950.0, 5000.0, 4700.0, 4400.0, 4950.0, 4200.0, 4750.0]
    low, high = bench_mw.mean_ratio_interval(quiet, bare)
    ratio = sum(quiet) / sum(bare)
    assert low <= ratio <= high
    assert 0.95 < low and high < 0.99
    assert bench_mw.mean_ratio_interval(quiet, bare) == (low, high)  # a fixed seed
    assert bench_mw.mean_ratio_interval(bare, bare) == (1.0, 1.0)


def test_only_runs_bare_and_its_twin_beside_the_configurations_named() -> None:
    assert list(bench_mw.chosen("uvicorn", "quiet,floor", floor=False)) == [
        "bare",
        "bare_again",
        "quiet",
        "floor",
    ]
    assert bench_mw.chosen("gunicorn", "", floor=False) == bench_mw.targets("gunicorn", False)
    with pytest.raises(SystemExit, match="no configuration qiet .*there are bare, bare_again"):
        bench_mw.chosen("gunicorn", "qiet", floor=False)


def test_a_wrong_server_or_configuration_stops_before_any_measuring() -> None:
    for argv in (["--servers", "nginx"], ["--only", "qiet"]):
        run = subprocess.run(
            [sys.executable, "-m", "bench.middleware", *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 1
        assert ("nginx" if argv[0] == "--servers" else "qiet") in run.stderr
        assert "in-process" not in run.stdout and "Traceback" not in run.stderr


@pytest.mark.parametrize("factory", ["asgi_floor", "asgi_record_floor"])
def test_the_asgi_floors_let_go_of_the_scope_a_copied_context_outlives(
    factory: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context copied during the request (uvicorn's timer handles do) must not keep the scope."""
    import asyncio
    import contextvars

    from bench import _hello

    monkeypatch.setenv("USERAUDIT_SPOOL", str(tmp_path))
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": None}
    copies: list[contextvars.Context] = []

    async def send(message: dict) -> None:
        copies.append(contextvars.copy_context())

    asyncio.run(getattr(_hello, factory)()(scope, None, send))
    bound = [copy[_hello._floor_context] for copy in copies]
    assert len(bound) == 2 and bound[0] is bound[1]
    assert bound[0] == [None, 200]  # the status noted, the scope let go


WHICH_BUILD = """
import asyncio, sys

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    parsers = sorted(
        name.rsplit(".", 1)[1] for name in sys.modules
        if name.startswith("uvicorn.protocols.http.") and name.endswith("_impl")
    )
    body = f"{loop} {','.join(parsers)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.mark.parametrize(
    ("kind", "build"),
    [("uvicorn", "asyncio h11_impl"), ("uvicorn-standard", "uvloop httptools_impl")],
)
def test_each_uvicorn_runs_the_loop_and_parser_it_is_named_for(
    kind: str, build: str, tmp_path: Path
) -> None:
    """uvloop and httptools are installed here, so an unpinned uvicorn would pick them."""
    import urllib.request

    (tmp_path / "which_build.py").write_text(WHICH_BUILD)
    port = bench_mw._free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            bench_mw.server_command(kind, "which_build:app", port),
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    served = answer.read().decode()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"{kind} did not answer"
                time.sleep(0.1)
    finally:
        bench_mw._stop(proc)
    assert served == build


def test_a_standard_uvicorn_run_names_what_it_needs_installed() -> None:
    assert {"uvloop", "httptools"} <= set(bench_mw.server_modules(["uvicorn-standard"]))
    assert bench_mw.server_modules(["gunicorn", "uvicorn"]) == bench_mw.PEER_MODULES


def test_only_app_quiet_brings_the_app_it_is_measured_against() -> None:
    assert list(bench_mw.chosen("uvicorn", "app_quiet", floor=False)) == [
        "bare",
        "bare_again",
        "app_bare",
        "app_quiet",
    ]
    assert "app_quiet" not in bench_mw.targets("uvicorn", floor=False)
    assert bench_mw.baseline("app_quiet") == "app_bare" and bench_mw.baseline("quiet") == "bare"


def test_the_framework_apps_answer_like_the_bare_app_and_only_one_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    from typing import Any

    import httpx

    from bench import _apps, _hello
    from useraudit.middleware.asgi import AuditMiddleware as ASGIAudit
    from useraudit.middleware.wsgi import AuditMiddleware as WSGIAudit

    monkeypatch.setenv("USERAUDIT_SPOOL", str(tmp_path))
    for factory in (_apps.wsgi_app_bare, _apps.wsgi_app_quiet):
        app = factory()
        answer = app.test_client().get("/")
        assert (answer.status_code, answer.data) == (200, _hello.BODY)
        assert isinstance(app.wsgi_app, WSGIAudit) == (factory is _apps.wsgi_app_quiet)

    for factory in (_apps.asgi_app_bare, _apps.asgi_app_quiet):
        app = factory()

        async def get(app: Any = app) -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return await client.get("/")

        answer = asyncio.run(get())
        assert (answer.status_code, answer.content) == (200, _hello.BODY)
        audited = any(m.cls is ASGIAudit for m in app.user_middleware)
        assert audited == (factory is _apps.asgi_app_quiet)
