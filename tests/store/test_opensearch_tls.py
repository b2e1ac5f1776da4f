"""OpenSearch over HTTPS with basic auth and a CA bundle, as a secured cluster runs.

The real test node sits behind :class:`~support.secure_front.SecureFront`,
which adds TLS (a certificate signed by a private test CA) and checks
credentials, answering refusals as the security plugin does. Everything
that works must work through it; everything that is refused must say what
to fix, stop one-off commands cleanly and never cost an event.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.secure_front import SecureFront
from support.tls import Certificates, make_certificates

from useraudit.indexer.enrich import Enricher
from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.store.base import StoreRefused, StoreUnavailable
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.query import Query, SearchRequest

from .conftest import ACCOUNT, DATASET, write_all

USER, PASSWORD = "auditor", "s3cret-pass"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def front(opensearch_url: str, certificates: Certificates) -> Iterator[SecureFront]:
    """The test node behind HTTPS and basic auth (user ``auditor``)."""
    server = SecureFront(
        opensearch_url, certificates.cert, certificates.key, {USER: PASSWORD}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def useraudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "useraudit", *args], capture_output=True, text=True, timeout=120
    )


def test_https_with_basic_auth_and_a_ca_bundle(
    front: SecureFront, certificates: Certificates, os_store: OpenSearchStore, enricher: Enricher
) -> None:
    """With ?ca_certs= and user:password in the URL, install, write, search, count, export,
    get and prune all go through TLS and authentication to the node."""
    url = front.url(USER, PASSWORD, prefix=os_store.prefix, ca_certs=str(certificates.ca))
    store = OpenSearchStore(url)
    assert PASSWORD not in store.url
    assert "up to date" in store.install()[0]
    docs = [enricher(e) for e in DATASET]
    write_all(store, docs)
    assert store.count(Query(ACCOUNT)) == len(docs) == os_store.count(Query(ACCOUNT))
    page = store.search(SearchRequest(Query(ACCOUNT, text="role"), highlight=True))
    assert page.total == os_store.search(SearchRequest(Query(ACCOUNT, text="role"))).total > 0
    assert len(list(store.iterate(Query(ACCOUNT), batch_size=3))) == len(docs)
    assert set(store.get([d["event.id"] for d in docs])) == {d["event.id"] for d in docs}
    assert store.accounts() == [ACCOUNT]
    store.close()
    statuses = [status for _method, _path, status in front.requests]
    assert len(statuses) >= 8 and 401 not in statuses, front.requests


def test_an_untrusted_certificate_is_refused_before_credentials_leave(
    front: SecureFront, os_store: OpenSearchStore
) -> None:
    """Without the CA bundle every call is refused, saying to pass ?ca_certs=, and no
    request (with its password) reaches the server whose certificate was not trusted."""
    store = OpenSearchStore(front.url(USER, PASSWORD, prefix=os_store.prefix))
    calls = {
        "install": store.install,
        "search": lambda: store.search(SearchRequest(Query(ACCOUNT))),
        "count": lambda: store.count(Query(ACCOUNT)),
        "write": lambda: store.write([{"event.id": "e1", "@timestamp": "2026-01-01T00:00:00Z"}]),
        "refresh": store.refresh,
    }
    for name, call in calls.items():
        with pytest.raises(StoreRefused) as info:
            call()
        message = str(info.value)
        assert "not trusted" in message and "?ca_certs=" in message, (name, message)
        assert PASSWORD not in message
    store.close()
    assert front.requests == []


def test_verify_certs_false_skips_the_check_quietly(
    front: SecureFront, os_store: OpenSearchStore
) -> None:
    """?verify_certs=false connects without the CA bundle and without a warning per request
    (pytest turns warnings into errors)."""
    store = OpenSearchStore(front.url(USER, PASSWORD, prefix=os_store.prefix, verify_certs="false"))
    assert store.count(Query(ACCOUNT)) == 0
    store.close()


@pytest.mark.parametrize(
    "user, password", [(USER, "wrong"), ("nobody", PASSWORD), (None, None)], ids=str
)
def test_refused_credentials_say_what_to_fix(
    front: SecureFront,
    certificates: Certificates,
    os_store: OpenSearchStore,
    user: str | None,
    password: str | None,
) -> None:
    """A wrong password, an unknown user or no credentials: every call raises StoreRefused
    (401, check the user and password), never the client's own exception or the password."""
    url = front.url(user, password, prefix=os_store.prefix, ca_certs=str(certificates.ca))
    store = OpenSearchStore(url)
    doc = {"event.id": "e1", "@timestamp": "2026-01-01T00:00:00Z", "organization.id": ACCOUNT}
    calls = {
        "install": store.install,
        "search": lambda: store.search(SearchRequest(Query(ACCOUNT))),
        "iterate": lambda: list(store.iterate(Query(ACCOUNT))),
        "write": lambda: store.write([doc]),
        "prune": lambda: store.delete_older_than(datetime.now(UTC)),
    }
    for name, call in calls.items():
        with pytest.raises(StoreRefused) as info:
            call()
        message = str(info.value)
        assert "401" in message and "user and password" in message, (name, message)
        assert "wrong" not in message
    store.close()
    assert {status for _m, _p, status in front.requests} == {401}


def test_commands_stop_with_the_message_not_a_traceback(
    front: SecureFront, certificates: Certificates, os_prefix: str, tmp_path: Path
) -> None:
    """`templates install`, `indexer run --once` and `prune` against a refused store exit 1
    with one line saying what to fix."""
    bad_password = front.url(USER, "wrong", prefix=os_prefix, ca_certs=str(certificates.ca))
    no_ca = front.url(USER, PASSWORD, prefix=os_prefix)
    runs = {
        "templates": useraudit("templates", "install", "--store", bad_password),
        "indexer": useraudit(
            "indexer", "run", "--once", "--spool", str(tmp_path / "spool"), "--store", no_ca
        ),
        "prune": useraudit("prune", "--older-than", "30", "--store", bad_password),
    }
    for name, done in runs.items():
        output = done.stdout + done.stderr
        assert done.returncode == 1, (name, output)
        assert "Traceback" not in output, (name, output)
        expected = "?ca_certs=" if name == "indexer" else "user and password"
        assert "Error: " in output and expected in output, (name, output)


def record(spool: Path, n: int) -> list[str]:
    recorder = Recorder(spool, durability="sync")
    ids = [
        recorder.record("user.signed_in", account=ACCOUNT, user=f"u{i}", comments=f"held {i}")
        for i in range(n)
    ]
    recorder.close()
    assert all(ids)
    return [i for i in ids if i]


def test_the_indexer_holds_events_while_refused_and_ships_them_once_fixed(
    front: SecureFront, certificates: Certificates, os_store: OpenSearchStore, tmp_path: Path
) -> None:
    """While the cluster refuses the indexer's password, nothing is dead-lettered or dropped;
    when an operator fixes the account, every held event is shipped."""
    spool = tmp_path / "spool"
    ids = record(spool, 50)
    front.users[USER] = "rotated-by-someone"
    url = front.url(USER, PASSWORD, prefix=os_store.prefix, ca_certs=str(certificates.ca))
    store = OpenSearchStore(url)
    stop = threading.Event()
    with Indexer(spool, store, backoff_cap=0.3) as ix:
        thread = threading.Thread(target=ix.run, args=(stop,), kwargs={"idle": 0.05})
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while ix.stats.unavailable_waits < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ix.stats.unavailable_waits >= 3, ix.stats
            assert ix.stats.shipped == 0 and ix.stats.dead_lettered == 0, ix.stats
            front.users[USER] = PASSWORD  # the operator puts the account right
            while ix.stats.shipped < len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(timeout=30)
        assert ix.stats.shipped == len(ids) and ix.stats.dead_lettered == 0, ix.stats
        assert ix.dead_letters.count() == 0
    store.close()
    os_store.refresh()
    assert set(os_store.get(ids)) == set(ids)


def test_a_refused_indexer_daemon_waits_at_start_instead_of_exiting(
    front: SecureFront, certificates: Certificates, os_store: OpenSearchStore, tmp_path: Path
) -> None:
    """`useraudit indexer run` started while its credentials are refused logs why and
    waits; once the account is fixed it installs the template and ships the spool."""
    spool = tmp_path / "spool"
    ids = record(spool, 20)
    front.users[USER] = "not-yet"
    url = front.url(USER, PASSWORD, prefix=os_store.prefix, ca_certs=str(certificates.ca))
    log = tmp_path / "indexer.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "useraudit", "indexer", "run", "--spool", str(spool),
             "--store", url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "refused the credentials" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            assert proc.poll() is None, log.read_text()
            front.users[USER] = PASSWORD
            while time.monotonic() < deadline:
                try:
                    os_store.refresh()
                    if len(os_store.get(ids)) == len(ids):
                        break
                except StoreUnavailable:
                    pass  # the indexer is creating the index: its shard is not started yet
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    output = log.read_text()
    assert proc.returncode == 0, output
    assert "Traceback" not in output and PASSWORD not in output, output
    assert set(os_store.get(ids)) == set(ids)
