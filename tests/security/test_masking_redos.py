"""The masker is linear in its input: crafted text cannot stall the host.

Masking runs inside ``record()``, in the host's request thread and holding
the GIL, so a pattern that backtracks on crafted text stalls every request
of the process. The text rules run on RE2 (linear whatever the pattern) and
the Python around them does bounded work per match.

* Known-bad shapes for every rule — the prefixes and near-misses that make
  a backtracking engine retry from every position — repeated to 1 MiB:
  each masked within 50 ms of CPU.
* Hypothesis builds more such texts from the rules' building blocks; the
  budget is 50 ms plus 10 µs per secret actually masked (a text made of
  real secrets costs per secret, never per pair of positions).
* A real threaded WSGI server: while one request records a crafted 64 KiB
  comment, another request of the same process still answers within 0.5 s.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from useraudit.middleware.masking import MASK, Masker
from useraudit.middleware.recorder import Recorder
from useraudit.middleware.wsgi import AuditMiddleware

MIB = 1 << 20
BUDGET = 0.050

# Per rule: units that, repeated, keep a backtracking engine retrying.
BAD_SHAPES = {
    "scheme": ["bearer ", "Bearer\t", "token ", "basic  x", "bearer" + " " * 9],
    "jwt": ["eyJ-", "eyJaaaaa.", "eyJaaaaa.aaaaa", "eyJ" + "a" * 40 + "."],
    "userinfo": ["a://", "http://a:", "h://" + "u" * 300, "x://u:" + "p" * 300],
    "pem": ["-----BEGIN PRIVATE KEY", "-----BEGIN ", "-----BEGIN RSA PRIVATE KEY----"],
    "known": ["ghp_", "xoxb-", "AKIA", "sk_live_", "AIza", "github_pat_"],
    "pair": [
        "password",
        "password ",
        "pass_",
        "token" + "a" * 70,
        "api key ",
        "secret\t\t\t\t",
        "pw'",
        "session.",
        "aa=aa ",
        "x:",
        "=",
    ],
    "plain": ["a", "the quick brown fox ", "é€😀", "\x00\n", " "],
}


def _fill(unit: str, size: int = MIB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _cpu_seconds(masker: Masker, text: str) -> tuple[float, str]:
    best, out = float("inf"), text
    for _ in range(3):
        started = time.process_time()
        out = masker.text(text)
        best = min(best, time.process_time() - started)
    return best, out


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param(u, id=f"{rule}-{i}")
        for rule, units in BAD_SHAPES.items()
        for i, u in enumerate(units)
    ],
)
def test_one_mib_of_a_bad_shape_is_masked_within_50_ms(unit: str) -> None:
    """Near-misses hold no secret: 50 ms flat. A few shapes repeat into real
    secrets (``eyJaaaaa.`` makes JWTs): those also get 10 µs per secret."""
    seconds, out = _cpu_seconds(Masker(), _fill(unit))
    allowed = BUDGET + 10e-6 * out.count(MASK)
    assert seconds <= allowed, f"{seconds * 1000:.0f} ms for 1 MiB of {unit!r}"


BLOCKS = [
    "eyJ",
    "-",
    ".",
    "_",
    "a",
    "Z9",
    " ",
    "\t",
    "=",
    ":",
    "=>",
    "'",
    '"',
    "@",
    "/",
    "://",
    "?",
    "&",
    "\n",
    "token",
    "Bearer",
    "password",
    "api_key",
    "session",
    "-----BEGIN",
    "PRIVATE KEY-----",
    "ghp_",
    "xoxb-",
    "AKIA",
    "sk_live_",
    "é",
]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=12))
def test_any_mix_of_the_rules_building_blocks_is_masked_in_linear_time(blocks: list[str]) -> None:
    seconds, out = _cpu_seconds(Masker(), _fill("".join(blocks)))
    allowed = BUDGET + 10e-6 * out.count(MASK)
    assert seconds <= allowed, f"{seconds * 1000:.0f} ms for 1 MiB of {''.join(blocks)!r}"


def test_the_hosts_other_requests_answer_while_one_records_a_crafted_comment(
    tmp_path: Path,
) -> None:
    """A real threaded server: one request records 64 KiB shaped to backtrack,
    the others keep answering (masking holds the GIL while it runs)."""
    rec = Recorder(tmp_path / "spool")
    app = Flask("host")

    @app.post("/comment")
    def comment() -> Any:
        rec.record("bot_project.settings_updated", account="acme", comments=request.get_data(True))
        return "recorded"

    @app.get("/ping")
    def ping() -> Any:
        return "pong"

    app.wsgi_app = AuditMiddleware(app.wsgi_app, recorder=rec)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.server_port
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    crafted = _fill("eyJ-", 64 * 1024).encode()
    done: dict[str, float] = {}

    def heavy() -> None:
        started = time.monotonic()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/comment", data=crafted)
        with urllib.request.urlopen(req, timeout=120) as response:
            assert response.read() == b"recorded"
        done["heavy"] = time.monotonic() - started

    try:
        worker = threading.Thread(target=heavy)
        answered = [time.monotonic()]
        worker.start()
        # Keep asking for as long as the crafted request is being recorded.
        # Gaps between answers, not each request's own time: a stalled
        # process also stalls this thread before it can start its clock.
        while worker.is_alive() or len(answered) < 20:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=60) as response:
                assert response.read() == b"pong"
            answered.append(time.monotonic())
            time.sleep(0.01)
        gaps = [b - a for a, b in zip(answered, answered[1:], strict=False)]
        worker.join(120)
        assert max(gaps) < 0.5, f"the host stalled for {max(gaps):.2f} s"
        assert done.get("heavy", 99) < 5, done
    finally:
        server.shutdown()
        rec.close()
