"""Retention on the real node: old indices become read-only, expired ones
go, new ones are untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from opensearchpy import exceptions as os_exc

from useraudit.cli import main as cli
from useraudit.indexer.enrich import Enricher
from useraudit.store.opensearch import OpenSearchStore, retention

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "index,expected",
    [
        pytest.param("p-events-2026.11", "keep", id="current-month"),
        pytest.param("p-events-2026.10", "keep", id="last-month-ends-27-days-ago"),
        pytest.param("p-events-2026.09", "read_only", id="ended-57-days-ago"),
        pytest.param("p-events-2025.11", "delete", id="ended-361-days-ago-with-300-day-limit"),
        pytest.param("p-events-2026.11.20", "keep", id="daily-bucket-7-days"),
        pytest.param("p-events-2026.09.01", "read_only", id="daily-bucket-87-days"),
        pytest.param("p-other-2020.01", None, id="not-ours-ignored"),
    ],
)
def test_plan_decides_by_the_end_of_each_indexs_bucket(index: str, expected: str | None) -> None:
    """An index's age counts from the end of its time bucket, so no event is cut early."""
    decisions = retention.plan([index], NOW, warm_after=30, delete_after=300)
    assert [d.action for d in decisions] == ([expected] if expected else [])


def test_ism_policy_is_read_only_then_delete_and_attaches_itself() -> None:
    """The ISM policy moves hot → warm (read-only, force merge) → delete
    and targets our index pattern."""
    body = retention.ism_policy("useraudit", warm_after=30, delete_after=365)["policy"]
    states = {s["name"]: s for s in body["states"]}
    assert states["hot"]["transitions"] == [
        {"state_name": "warm", "conditions": {"min_index_age": "30d"}}
    ]
    assert {"read_only": {}} in states["warm"]["actions"]
    assert states["warm"]["transitions"][0]["conditions"] == {"min_index_age": "365d"}
    assert states["delete"]["actions"] == [{"delete": {}}]
    assert body["ism_template"][0]["index_patterns"] == ["useraudit-events-*"]
    with pytest.raises(ValueError):
        retention.ism_policy("x", warm_after=400, delete_after=365)


def _seed(store: OpenSearchStore, months: list[str]) -> None:
    enrich = Enricher(clock=lambda: NOW.timestamp())
    docs = []
    for i, month in enumerate(months):
        raw = {
            "event.id": f"ret-{i}",
            "event.action": "task.created",
            "organization.id": "a",
            "@timestamp": f"{month}-15T10:00:00.000Z",
        }
        docs.append(enrich(raw))
    assert all(r.delivered for r in store.write(docs))
    store.refresh()


def test_apply_on_the_real_node(os_store: OpenSearchStore) -> None:
    """Without ISM, `retention apply` makes old indices read-only, deletes
    expired ones, keeps new ones."""
    _seed(os_store, ["2025-06", "2026-08", "2026-11"])
    p = os_store.prefix
    assert not retention.has_ism(os_store.client)  # the dev node runs plain OpenSearch
    done = retention.apply(os_store.client, p, warm_after=30, delete_after=365, now=NOW)
    assert {d.index: what for d, what in done} == {
        f"{p}-events-2025.06": "deleted",
        f"{p}-events-2026.08": "made read-only, force-merged to 1 segment",
        f"{p}-events-2026.11": "kept",
    }
    indices = set(os_store.client.indices.get(index=f"{p}-events-*"))
    assert indices == {f"{p}-events-2026.08", f"{p}-events-2026.11"}
    with pytest.raises(os_exc.AuthorizationException):
        os_store.client.index(index=f"{p}-events-2026.08", body={"event": {"id": "late"}})
    os_store.client.index(
        index=f"{p}-events-2026.11", body={"event": {"id": "fresh"}}
    )  # still writable
    segments = os_store.client.indices.segments(index=f"{p}-events-2026.08")["indices"]
    shards = segments[f"{p}-events-2026.08"]["shards"]["0"]
    assert sum(s["num_search_segments"] for s in shards) == 1
    again = retention.apply(os_store.client, p, warm_after=30, delete_after=365, now=NOW)
    assert dict((d.index, w) for d, w in again)[f"{p}-events-2026.08"] == "already read-only"
    # The read alias still searches what is left: two seeded events and the fresh one.
    os_store.refresh()
    assert os_store.count_all() == 3


def test_retention_cli_reports_and_dry_run_changes_nothing(os_store: OpenSearchStore) -> None:
    """`useraudit retention apply --dry-run` lists decisions;
    `templates install` says ISM is missing."""
    _seed(os_store, ["2020-01"])
    url = f"{os_store.url}/?prefix={os_store.prefix}"
    result = CliRunner().invoke(cli, ["retention", "apply", "--store", url, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"{os_store.prefix}-events-2020.01: would delete" in result.output
    assert os_store.client.indices.exists(index=f"{os_store.prefix}-events-2020.01")
    installed = CliRunner().invoke(cli, ["templates", "install", "--store", url])
    assert "ISM plugin not available" in installed.output and "retention apply" in installed.output
