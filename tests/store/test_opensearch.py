"""OpenSearch-only behaviour of OpenSearchStore, on the real node."""

from __future__ import annotations

import pytest

from useraudit import index_templates
from useraudit.store.base import StoreUnavailable
from useraudit.store.opensearch import OpenSearchStore
from useraudit.store.query import Query, SearchRequest


def test_shards_not_started_are_unavailable_not_a_crash(os_store: OpenSearchStore) -> None:
    """An index whose primary is not started (just created, or its node gone) answers 503:
    searches, counts and lookups raise StoreUnavailable, which callers retry or show as
    "try again" — not the client's raw TransportError."""
    index = index_templates.index_pattern(os_store.prefix).replace("*", "2099.01.01")
    os_store.client.indices.create(
        index=index,
        body={"settings": {"index.routing.allocation.require._name": "no-such-node"}},
        params={"wait_for_active_shards": "0"},
    )
    health = os_store.client.cluster.health(index=index)
    assert health["unassigned_shards"] >= 1, health
    with pytest.raises(StoreUnavailable, match="503"):
        os_store.count_all()
    with pytest.raises(StoreUnavailable, match="503"):
        os_store.search(SearchRequest(Query("acme")))
    with pytest.raises(StoreUnavailable, match="503"):
        os_store.get(["some-id"])


def test_concurrent_requests_reuse_kept_alive_connections(os_store: OpenSearchStore) -> None:
    """The UI searches and reads the completeness mark at once, on several threads: those
    requests reuse the store's kept-alive connections instead of opening (and then
    discarding) a new one for every request past the first."""
    from concurrent.futures import ThreadPoolExecutor

    from useraudit.store.completeness import complete_up_to

    os_store.search(SearchRequest(Query("acme")))
    pool = os_store.client.transport.connection_pool.connections[0].pool
    opened = pool.num_connections
    with ThreadPoolExecutor(max_workers=4) as threads:
        for _ in range(20):
            jobs = [threads.submit(os_store.search, SearchRequest(Query("acme")))]
            jobs += [threads.submit(complete_up_to, os_store, "acme") for _ in range(3)]
            for job in jobs:
                job.result()
    assert pool.num_requests >= 80
    assert pool.num_connections - opened <= 4, "connections were opened per request"
