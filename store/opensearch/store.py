"""OpenSearchStore: time-based indices behind a read alias, written idempotently.

URL: ``http(s)://[user:pass@]host:9200[?prefix=useraudit&ca_certs=/ca.pem&verify_certs=true&bucket=month]``;
several nodes of one cluster as ``http://host1:9200,host2:9200,host3:9200``.

Writes go to the index named by each event's own ``@timestamp`` with
``op_type=create`` and ``_id = event.id`` (see
:mod:`.template` for why). Bulk item results are
classified per item: 201 created, 409 duplicate (already delivered),
429/5xx retry, any other 4xx rejected (mapping or parse error: dead-letter).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc
from opensearchpy.serializer import JSONSerializer

from useraudit._json import dumps, loads
from useraudit.schema import SCHEMA_VERSION, flatten, nest

from ..base import Store, StoreError, StoreUnavailable, WriteResult
from ..histogram import Bucket
from ..query import Query, SearchPage, SearchRequest
from . import template
from .errors import store_error
from .reads import Reads

log = logging.getLogger("useraudit.store.opensearch")

BUCKETS = {"month": "%Y.%m", "day": "%Y.%m.%d"}
# Kept-alive connections per node. urllib3 keeps one by default, and the UI's
# threads send at once (a page's search beside its completeness read, pages
# served in parallel): every request past the first then opened a connection
# and threw it away afterwards.
POOL_MAXSIZE = 16


class _OrjsonSerializer(JSONSerializer):
    """opensearch-py's JSON serializer, parsing responses with orjson.

    Search and export responses are megabytes of JSON; orjson parses them
    several times faster than the standard library, which is most of the
    client-side cost of a page or an export. Falls back where orjson refuses.
    """

    def loads(self, s: str) -> Any:
        try:
            return loads(s.encode() if isinstance(s, str) else s)
        except ValueError:
            return super().loads(s)


class OpenSearchStore(Store):
    def __init__(
        self,
        url: str = "http://127.0.0.1:9200",
        *,
        prefix: str | None = None,
        bucket: str | None = None,
        timeout: float = 30.0,
        client: OpenSearch | None = None,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        scheme = "https" if parts.scheme == "https" else "http"
        self.prefix = prefix or params.get("prefix") or template.DEFAULT_PREFIX
        self.bucket = bucket or params.get("bucket") or "month"
        if self.bucket not in BUCKETS:
            raise StoreError(f"bucket must be one of {sorted(BUCKETS)}, not {self.bucket!r}")
        username, password, hosts = _split_netloc(parts.netloc)
        # Never echo a password back in messages.
        self.url = urlunsplit((scheme, ",".join(f"{h}:{p}" for h, p in hosts), "", "", ""))
        kwargs: dict[str, Any] = {
            # Several hosts (a cluster): the client spreads requests over them and,
            # when one is unreachable, marks it dead and retries on the next.
            "hosts": [{"host": h.strip("[]"), "port": p, "scheme": scheme} for h, p in hosts],
            "timeout": timeout,
            "http_compress": False,
            "serializer": _OrjsonSerializer(),
            "pool_maxsize": POOL_MAXSIZE,
        }
        if username:
            kwargs["http_auth"] = (username, password or "")
        if scheme == "https":
            kwargs["use_ssl"] = True
            kwargs["verify_certs"] = params.get("verify_certs", "true").lower() not in (
                "false",
                "0",
                "no",
            )
            if params.get("ca_certs"):
                kwargs["ca_certs"] = params["ca_certs"]
            if not kwargs["verify_certs"]:
                kwargs["ssl_show_warn"] = False
        self.client = client or OpenSearch(**kwargs)
        self.alias = template.read_alias(self.prefix)
        self.reads = Reads(self.client, self.alias, self.url)
        self._time_format = BUCKETS[self.bucket]

    # -- setup ----------------------------------------------------------------

    def install(self) -> list[str]:
        """Install or upgrade the index template; refuse to downgrade."""
        name = template.template_name(self.prefix)
        body = template.render(self.prefix)
        try:
            existing = self.client.indices.get_index_template(name=name)["index_templates"][0][
                "index_template"
            ]
        except os_exc.NotFoundError:
            existing = None
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "reading the index template") from exc
        if existing is not None:
            version = int(existing.get("version") or 0)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"index template {name} on {self.url} is version {version}, newer than this "
                    f"useraudit's {SCHEMA_VERSION}: upgrade useraudit instead of downgrading "
                    "the cluster"
                )
            if version == SCHEMA_VERSION and same_template(existing, body):
                return [f"index template {name} is up to date (version {version})"]
        try:
            self.client.indices.put_index_template(name=name, body=body)
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "installing the index template") from exc
        action = (
            "installed" if existing is None else f"upgraded from version {existing.get('version')}"
        )
        return [
            f"index template {name} {action} "
            f"(version {SCHEMA_VERSION}, pattern {body['index_patterns'][0]})"
        ]

    def uninstall(self) -> None:
        """Delete the template and every index of this prefix (tests, operators)."""
        self.client.indices.delete(
            index=template.index_pattern(self.prefix), ignore_unavailable=True
        )
        try:
            self.client.indices.delete_index_template(name=template.template_name(self.prefix))
        except os_exc.NotFoundError:
            pass

    def index_for(self, doc: dict) -> str:
        # @timestamp is normalised to "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) by the
        # enricher, so the bucket is a slice of it, not a datetime parse.
        ts: str = doc["@timestamp"]
        if len(ts) == 24 and ts[4] == "-" and ts.endswith("Z"):
            bucket = (
                f"{ts[0:4]}.{ts[5:7]}"
                if self.bucket == "month"
                else f"{ts[0:4]}.{ts[5:7]}.{ts[8:10]}"
            )
        else:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
            bucket = parsed.strftime(self._time_format)
        return f"{self.prefix}-events-{bucket}"

    # -- writing --------------------------------------------------------------

    def bulk_body(self, docs: Sequence[dict]) -> bytes:
        """NDJSON for ``_bulk``: create actions with the event id as ``_id``."""
        lines: list[bytes] = []
        for doc in docs:
            action = {"create": {"_index": self.index_for(doc), "_id": doc["event.id"]}}
            lines.append(dumps(action))
            lines.append(dumps(nest(doc)))
        lines.append(b"")
        return b"\n".join(lines)

    def write(self, docs: Sequence[dict]) -> list[WriteResult]:
        if not docs:
            return []
        return self.write_body(self.bulk_body(docs), len(docs))

    def write_body(self, body: bytes, count: int) -> list[WriteResult]:
        """Send a prepared bulk body; one result per document, in order."""
        try:
            response = self.client.bulk(body=body)
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "the bulk request") from exc
        items = response.get("items", [])
        if len(items) != count:
            raise StoreUnavailable(f"bulk answered {len(items)} items for {count} documents")
        return [_classify(item["create"]) for item in items]

    # -- reading --------------------------------------------------------------

    def get(self, event_ids: Sequence[str]) -> dict[str, dict]:
        if not event_ids:
            return {}
        out: dict[str, dict] = {}
        ids = list(event_ids)
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            resp = self._search(
                index=self.alias,
                body={"query": {"ids": {"values": chunk}}, "size": len(chunk)},
                ignore_unavailable=True,
            )
            for hit in resp["hits"]["hits"]:
                out[hit["_id"]] = flatten(hit["_source"])
        return out

    def refresh(self) -> None:
        # Like the reads: a node failing over answers 503, which is "try again".
        self.reads.call(
            self.client.indices.refresh,
            index=template.index_pattern(self.prefix),
            ignore_unavailable=True,
        )

    def count_all(self) -> int:
        """Every event under this prefix, all accounts (operators, tests)."""
        return int(self.reads.call(self.client.count, index=self.alias)["count"])

    def all_ids(self) -> list[str]:
        """Every stored event id, in no particular order (for tests and checks)."""
        ids: list[str] = []
        try:
            pit = self.client.create_pit(index=self.alias, keep_alive="1m")["pit_id"]
        except os_exc.NotFoundError:
            return ids
        try:
            after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {
                    "size": 5000,
                    "_source": False,
                    "pit": {"id": pit, "keep_alive": "1m"},
                    "sort": [{"event.id": "asc"}],
                }
                if after:
                    body["search_after"] = after
                hits = self.client.search(body=body)["hits"]["hits"]
                if not hits:
                    return ids
                ids.extend(h["_id"] for h in hits)
                after = hits[-1]["sort"]
        finally:
            self.client.delete_pit(body={"pit_id": [pit]})

    def accounts(self) -> list[str]:
        resp = self._search(
            index=self.alias,
            body={"size": 0, "aggs": {"a": {"terms": {"field": "organization.id", "size": 1000}}}},
            ignore_unavailable=True,
        )
        return [b["key"] for b in resp.get("aggregations", {}).get("a", {}).get("buckets", [])]

    def search(self, request: SearchRequest) -> SearchPage:
        return self.reads.search(request)

    def count(self, query: Query) -> int:
        return self.reads.count(query)

    def histogram(self, query: Query, interval_ms: int, offset_ms: int = 0) -> list[Bucket]:
        return self.reads.histogram(query, interval_ms, offset_ms)

    def iterate(
        self, query: Query, batch_size: int = 1000, fields: Sequence[str] | None = None
    ) -> Iterator[dict]:
        return self.reads.iterate(query, batch_size, fields)

    def delete_older_than(
        self,
        cutoff: datetime,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        account: str | None = None,
    ) -> int:
        """One server-side delete-by-query; ``progress`` hears the total once."""
        query: dict[str, Any] = {
            "range": {"@timestamp": {"lt": cutoff.astimezone(UTC).isoformat()}}
        }
        if account is not None:
            query = {"bool": {"filter": [query, {"term": {"organization.id": account}}]}}
        try:
            resp = self.client.delete_by_query(
                index=self.alias,
                body={"query": query},
                params={"scroll_size": batch_size, "conflicts": "proceed", "refresh": "true"},
            )
        except os_exc.NotFoundError:
            resp = {}  # no index yet: nothing to delete
        except os_exc.TransportError as exc:
            raise store_error(self.url, exc, "the delete") from exc
        deleted = int(resp.get("deleted", 0))
        if progress is not None:
            progress(deleted)
        return deleted

    def close(self) -> None:
        self.client.close()

    def _search(self, **kwargs: Any) -> dict:
        # Shards not (yet) started answer 503: StoreUnavailable, like a search.
        return self.reads.call(self.client.search, **kwargs)


def _split_netloc(netloc: str) -> tuple[str | None, str | None, list[tuple[str, int]]]:
    """``user:pass@h1:9200,h2:9201`` → user, password, [(h1, 9200), (h2, 9201)].

    One host is the common case; a comma-separated list names several nodes
    of one cluster. A host without a port gets 9200; no host means 127.0.0.1.
    """
    userinfo, _, hostlist = netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_pass, pw = userinfo.partition(":")
        username, password = user, (pw if has_pass else None)  # as given, like urlsplit
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        item = item.strip()
        if not item:
            continue
        parsed = urlsplit(f"//{item}")
        try:
            port = parsed.port or 9200
        except ValueError as exc:
            raise StoreError(f"bad port in OpenSearch host {item!r}") from exc
        host = parsed.hostname or "127.0.0.1"
        hosts.append((f"[{host}]" if ":" in host else host, port))
    return username, password, hosts or [("127.0.0.1", 9200)]


def _classify(item: dict) -> WriteResult:
    status = int(item.get("status", 0))
    if 200 <= status < 300:
        return WriteResult("created")
    if status == 409:
        return WriteResult("duplicate")
    error = item.get("error") or {}
    reason = f"{status} {error.get('type', '')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    if cause:
        reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    if status == 429 or status >= 500:
        return WriteResult("retry", reason)
    return WriteResult("rejected", reason)


def same_template(existing: dict, wanted: dict) -> bool:
    """Compare what matters, ignoring how the server echoes settings back."""

    def norm(t: dict) -> str:
        tpl = t.get("template", {})
        return json.dumps(
            {
                "patterns": t.get("index_patterns"),
                "mappings": tpl.get("mappings"),
                "aliases": sorted(tpl.get("aliases", {})),
            },
            sort_keys=True,
        )

    return norm(existing) == norm(wanted)
