"""Shared fixtures. OpenSearch is always the real node; nothing is skipped.

The node's URL comes from ``USERAUDIT_TEST_OPENSEARCH`` (``make test`` starts
one on http://127.0.0.1:9250 and sets it). If no node answers, the whole run
stops with an error instead of skipping tests that need it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

OPENSEARCH_URL = os.environ.get("USERAUDIT_TEST_OPENSEARCH", "http://127.0.0.1:9250")

# Spool writers register themselves under $USERAUDIT_HOME/spools, and the
# default spool and store live there too: the suite gets a home of its own
# so it never writes into the developer's ~/.useraudit (nor reads from it).
TEST_HOME = Path(tempfile.mkdtemp(prefix="useraudit-test-home-"))
os.environ["USERAUDIT_HOME"] = str(TEST_HOME)


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    """The real test node's URL; fails the run loudly when it is down."""
    from opensearchpy import OpenSearch

    client = OpenSearch([OPENSEARCH_URL], timeout=10)
    try:
        health = client.cluster.health(wait_for_status="yellow")
    except Exception as exc:  # noqa: BLE001 - any failure means no node
        pytest.exit(
            f"OpenSearch is not reachable at {OPENSEARCH_URL} ({exc}). "
            "Run the suite with `make test`, which starts a node, or start one with "
            "`useraudit opensearch start --port 9250`.",
            returncode=3,
        )
    assert health["status"] in ("green", "yellow"), health
    return OPENSEARCH_URL


@pytest.fixture
def os_prefix() -> str:
    """A unique index prefix, so tests never see each other's indices."""
    return f"uat-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def os_store(opensearch_url: str, os_prefix: str) -> Iterator[OpenSearchStore]:  # noqa: F821
    """An OpenSearchStore on the real node with its template installed; removed afterwards."""
    from useraudit.store.opensearch import OpenSearchStore

    store = OpenSearchStore(opensearch_url, prefix=os_prefix)
    store.install()
    try:
        yield store
    finally:
        store.uninstall()
        store.close()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def internal_errors(monkeypatch: pytest.MonkeyPatch) -> list[Exception]:
    """Every error useraudit swallowed in this test, caught through the failsafe hook."""
    from useraudit.middleware import _failsafe

    caught: list[Exception] = []
    monkeypatch.setattr(_failsafe, "on_internal_error", lambda exc, _what: caught.append(exc))
    return caught


@pytest.fixture(autouse=True)
def no_swallowed_errors(internal_errors: list[Exception]) -> Iterator[None]:
    """Fail any test in which useraudit swallowed an internal error it did not expect.

    Tests that provoke failures on purpose take ``internal_errors`` and clear it.
    """
    yield
    assert not internal_errors, f"useraudit swallowed internal errors: {internal_errors!r}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(TEST_HOME, ignore_errors=True)
