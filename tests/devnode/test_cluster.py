"""A real 3-node OpenSearch cluster losing a node while events stream in.

The suite's own node (USERAUDIT_TEST_OPENSEARCH) is not used: this module
starts its own cluster (three runner processes, see
:mod:`useraudit.devnode.cluster`) on free HTTP ports in 9261-9269, with the
runner version and Java from USERAUDIT_OPENSEARCH_VERSION /
USERAUDIT_OPENSEARCH_JAVA_HOME when set (``make compat``), and stops it at
the end whatever happens.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from useraudit.devnode import cluster as devcluster
from useraudit.devnode.node import NodeError
from useraudit.indexer.deadletter import DeadLetters
from useraudit.indexer.shipper import Indexer
from useraudit.middleware.recorder import Recorder
from useraudit.store.base import StoreUnavailable
from useraudit.store.opensearch import OpenSearchStore

NODES = 3


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _base_port() -> int:
    for port in range(9261, 9268):
        wanted = [port + i for i in range(NODES)]
        wanted += [p + devcluster.TRANSPORT_OFFSET for p in wanted]
        if all(_free(p) for p in wanted):
            return port
    pytest.fail("no 3 free consecutive HTTP (and transport) ports in 9261-9269")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devcluster.ClusterStatus]:
    """A green 3-node cluster of our own, stopped again at the end of the module."""
    home = tmp_path_factory.mktemp("cluster")
    try:
        yield devcluster.start_cluster(NODES, _base_port(), home=home, heap="512m", wait=400)
    finally:
        devcluster.stop_cluster(home)


def _store(cluster: devcluster.ClusterStatus) -> OpenSearchStore:
    store = OpenSearchStore(cluster.store_url, prefix=f"uac-{uuid.uuid4().hex[:8]}", timeout=30)
    store.install()
    return store


def _green(store: OpenSearchStore, index: str | None = None, wait: float = 120) -> dict:
    """Cluster (or index) health once green, or the last health after *wait* seconds."""
    deadline = time.monotonic() + wait
    while True:
        health = store.client.cluster.health(index=index)
        if health["status"] == "green" or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def _primary_node(store: OpenSearchStore) -> str:
    shards = store.client.cat.shards(index=f"{store.prefix}-events-*", format="json")
    (primary,) = [s for s in shards if s["prirep"] == "p"]
    return primary["node"]


# -- the store's URL --------------------------------------------------------------


def test_store_url_takes_one_host_or_several() -> None:
    """A single-host URL means what it always did; a comma list gives the client every host."""
    one = OpenSearchStore("https://u:pw@Example.org:9201/?prefix=p&verify_certs=false")
    assert one.url == "https://example.org:9201"
    assert one.client.transport.hosts == [{"host": "example.org", "port": 9201, "scheme": "https"}]
    assert one.client.transport.kwargs["http_auth"] == ("u", "pw")
    assert OpenSearchStore("127.0.0.1").url == "http://127.0.0.1:9200"
    many = OpenSearchStore("http://127.0.0.1:9261,127.0.0.1:9262, localhost/?prefix=x")
    assert many.url == "http://127.0.0.1:9261,127.0.0.1:9262,localhost:9200"
    assert [(h["host"], h["port"]) for h in many.client.transport.hosts] == [
        ("127.0.0.1", 9261),
        ("127.0.0.1", 9262),
        ("localhost", 9200),
    ]
    assert many.prefix == "x"
    assert "pw" not in one.url


def test_each_node_config_names_all_three_and_is_not_single_node() -> None:
    """Node 2's opensearch.yml fixes its own ports and lists all three seeds and names."""
    text = devcluster.render_config(2, 3, 9261, "c")
    assert "single-node" not in text
    for line in [
        "node.name: ua-node-2",
        "http.port: 9262",
        "transport.port: 9362",
        "network.host: 127.0.0.1",
        'discovery.seed_hosts: ["127.0.0.1:9361", "127.0.0.1:9362", "127.0.0.1:9363"]',
        'cluster.initial_cluster_manager_nodes: ["ua-node-1", "ua-node-2", "ua-node-3"]',
        "cluster.routing.allocation.disk.threshold_enabled: false",
    ]:
        assert line in text.splitlines(), line


# -- the cluster --------------------------------------------------------------------


def test_cluster_forms_with_named_nodes_and_replicates(cluster: devcluster.ClusterStatus) -> None:
    """Three separate processes form one green cluster, and our indices get one replica."""
    pids = {n.pid for n in cluster.nodes}
    assert len(pids) == NODES and None not in pids
    store = _store(cluster)
    try:
        nodes = store.client.cat.nodes(format="json", h="name,ip,node.role")
        names = [devcluster.node_name(i + 1) for i in range(NODES)]
        assert sorted(n["name"] for n in nodes) == names
        assert all(n["ip"] == "127.0.0.1" for n in nodes)
        doc = {
            "event.id": "e-1",
            "@timestamp": "2026-11-27T12:00:00.000Z",
            "event.action": "user.signed_in",
            "organization.id": "a",
        }
        assert [r.status for r in store.write([doc])] == ["created"]
        assert _green(store, store.alias)["status"] == "green"
        settings = store.client.indices.get_settings(index=store.alias)
        (index_settings,) = settings.values()
        assert index_settings["settings"]["index"]["number_of_replicas"] == "1"
        shards = store.client.cat.shards(index=store.alias, format="json")
        assert len({s["node"] for s in shards}) == 2  # primary and replica apart
    finally:
        store.uninstall()
        store.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_losing_a_node_mid_stream_loses_and_duplicates_nothing(
    cluster: devcluster.ClusterStatus, tmp_path: Path, sig: signal.Signals
) -> None:
    """The primary's node dies mid-stream; after its restart every event is stored exactly once."""
    store = _store(cluster)
    spool = tmp_path / "spool"
    recorded: list[str] = []
    stop_recording, stop_indexing = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def record() -> None:
        rec = Recorder(spool, durability="batch")
        try:
            n = 0
            while not stop_recording.is_set():
                for _ in range(10):
                    event_id = rec.record("bot_project.exported", account="acc-c", project=f"p{n}")
                    assert event_id is not None
                    recorded.append(event_id)
                    n += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            rec.close()

    # A failover can hold items for tens of seconds: retry them patiently
    # rather than dead-letter (the assertion below is "zero dead letters").
    ix = Indexer(spool, store, batch_records=500, max_item_retries=40, backoff_cap=2.0)

    def index() -> None:
        try:
            ix.run(stop_indexing, idle=0.05)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=record, name="recorder"),
        threading.Thread(target=index, name="indexer"),
    ]
    for t in threads:
        t.start()
    victim = None
    try:

        def stored() -> int:
            # While the dead node's shards move, the cluster answers "try
            # again" (503, all shards failed) for a moment: poll through it.
            deadline = time.monotonic() + 120
            while True:
                try:
                    store.refresh()
                    return store.count_all()
                except StoreUnavailable:
                    assert time.monotonic() < deadline, "unavailable for 120 s"
                    time.sleep(0.5)

        deadline = time.monotonic() + 120
        while stored() < 2000:
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.2)
        name = _primary_node(store)
        victim = int(name.rsplit("-", 1)[1])
        before = stored()
        t0 = time.monotonic()
        assert devcluster.stop_node(cluster.home, victim, sig=sig, timeout=60)
        # Shipping goes on through the two survivors (quorum 2 of 3).
        deadline = time.monotonic() + 120
        while stored() < before + 3000:
            assert time.monotonic() < deadline and not errors, (errors, ix.stats.as_dict())
            time.sleep(0.5)
        assert _primary_node(store) != name  # the replica was promoted
        devcluster.start_node(cluster.home, victim, wait=400)
        victim = None
        recovered_s = time.monotonic() - t0
        # A little more traffic on the healed cluster, then drain everything.
        time.sleep(2)
        stop_recording.set()
        threads[0].join(60)
        deadline = time.monotonic() + 300
        while ix.stats.read < len(recorded) or ix.reader.pending_bytes():
            assert time.monotonic() < deadline and not errors, (errors, ix.stats.as_dict())
            time.sleep(0.2)
    finally:
        stop_recording.set()
        stop_indexing.set()
        for t in threads:
            t.join(120)
        ix.close()
        if victim is not None:  # the test failed with the node down: bring it back
            try:
                devcluster.start_node(cluster.home, victim, wait=400)
            except NodeError:
                pass
    try:
        assert not errors, errors
        health = _green(store)
        assert health["status"] == "green" and health["number_of_nodes"] == NODES
        store.refresh()
        ids = store.all_ids()
        assert len(ids) == len(set(ids)), "duplicates stored"
        assert set(ids) == set(recorded) and len(recorded) == len(set(recorded))
        assert store.count_all() == len(recorded)
        letters = DeadLetters(spool / "deadletter.sqlite")
        try:
            assert letters.count() == 0
        finally:
            letters.close()
        stats = ix.stats.as_dict()
        assert stats["dead_lettered"] == 0 and stats["damaged"] == 0
        assert stats["shipped"] + stats["duplicates"] == len(recorded)
        print(
            f"\n{sig.name}: {len(recorded)} events, node {name} back and green after "
            f"{recovered_s:.0f}s, indexer {stats}"
        )
    finally:
        store.uninstall()
        store.close()
