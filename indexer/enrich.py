"""Normalise and enrich raw spooled events into stored documents.

Every raw event becomes a document: nothing is refused here for being odd.
What had to be repaired is listed in ``audit.flags`` so it can be found:

* ``unknown_action``  the code is not in the catalog (label = the code);
* ``invalid_ip``      ``source.address`` is not an IP (kept raw, no ``source.ip``);
* ``truncated``       a string was longer than its field allows (cut, marked);
* ``sanitized``       NUL/control characters or invalid UTF-8 were replaced;
* ``invalid_outcome`` the outcome was not success/failure/unknown (stored as unknown);
* ``invalid_timestamp`` / ``clock_skew``  the time was unparseable or far off (ingest time used);
* ``missing_account`` / ``invalid_account``  no account, or an id the UI cannot open: filed
  under ``unassigned`` (``schema.UNASSIGNED_ACCOUNT``), the given id kept as the account name.

User agents are parsed with ua-parser, through its Rust backend
(``ua-parser-rs``) when installed, behind a cache; the parser is built when
the :class:`Enricher` is created, not on the first event.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from useraudit.catalog import CATALOG, Catalog
from useraudit.schema import (
    ACCOUNT_ID,
    ECS_VERSION,
    FIELDS,
    OUTCOMES,
    PERSON_PARTS,
    PERSONS,
    UNASSIGNED_ACCOUNT,
    Kind,
)

TRUNCATION_MARK = "…[truncated]"
# Control characters other than tab/newline, plus bidi overrides that can
# make a log line read differently from what it says.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
MAX_PARAMS_CHARS = 64 * 1024
MAX_PARAM_DEPTH = 8
MAX_FUTURE = timedelta(days=1)
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


def build_ua_parser(cache_size: int = 10_000) -> Any:
    """The fastest ua-parser available (Rust if installed) behind an LRU-ish cache."""
    import ua_parser

    resolver = ua_parser.BestAvailableResolver(ua_parser.load_builtins())
    return ua_parser.Parser(ua_parser.CachingResolver(resolver, ua_parser.Cache(cache_size)))


def ua_backend_name() -> str:
    import ua_parser

    return getattr(ua_parser.BestAvailableResolver, "__module__", "?").rsplit(".", 1)[-1]


class Enricher:
    """Turns raw events (flat dicts from ``record()``) into stored documents."""

    def __init__(
        self, catalog: Catalog = CATALOG, ua_parser: Any = None, clock: Any = time.time
    ) -> None:
        self.catalog = catalog
        self.ua = ua_parser or build_ua_parser()
        self.clock = clock
        # user agent string → its parsed fields: most events repeat a few agents.
        self._ua_fields: dict[str, dict[str, str]] = {}

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        # record() may already have cut an oversized event; keep that fact.
        flags: list[str] = ["truncated"] if "truncated" in (raw.get("audit.flags") or ()) else []
        doc: dict[str, Any] = {}
        now = datetime.fromtimestamp(self.clock(), UTC)
        for name, value in raw.items():
            plan = _PLAN.get(name)
            if plan is None or value is None or value == "":
                continue  # unknown keys never reach the mapping
            how, limit = plan
            if how is _STR:
                # The common case, kept cheap: a clean string within its limit.
                if type(value) is str and len(value) <= limit and not _UNSAFE.search(value):
                    doc[name] = value
                else:
                    doc[name] = _text(value, limit, flags)
            elif how is _MULTI:
                values = value if isinstance(value, list) else [value]
                cleaned = [_text(v, limit, flags) for v in values[:64] if v not in (None, "")]
                if cleaned:
                    doc[name] = cleaned
            elif how is _FLAT:
                doc[name] = _params(value, flags)
            elif how is _INT:
                try:
                    doc[name] = int(value)
                except (TypeError, ValueError):
                    flags.append("invalid_number")
            # _SKIP: dates are handled below; flags and ingest time are ours to set

        if "event.id" not in doc:
            doc["event.id"] = _fallback_id(raw)
        doc["@timestamp"] = _timestamp(
            raw.get("@timestamp"), _id_time(doc["event.id"]) or now, flags
        )
        doc["event.ingested"] = _iso(now)
        doc["event.kind"] = "event"
        doc["ecs.version"] = ECS_VERSION

        account = doc.get("organization.id")
        if account is None or not ACCOUNT_ID.match(account):
            # Never invisible: the UI lists the unassigned account and warns.
            flags.append("missing_account" if account is None else "invalid_account")
            if account is not None:
                doc.setdefault("organization.name", account)
            doc["organization.id"] = UNASSIGNED_ACCOUNT

        outcome = str(doc.get("event.outcome") or "unknown").lower()
        if outcome not in OUTCOMES:
            flags.append("invalid_outcome")
            outcome = "unknown"
        doc["event.outcome"] = outcome

        code = str(doc.get("event.action") or "")
        action = self.catalog.get(code)
        if action is None:
            flags.append("unknown_action")
            doc["message"] = code or "(no action)"
            if not code:
                doc["event.action"] = "unknown"
            doc.setdefault("audit.product", "unknown")
        else:
            doc["message"] = action.label
            doc["audit.product"] = action.product
            doc["audit.group"] = action.group
            doc["event.category"] = list(action.category)
            doc["event.type"] = list(action.type)

        self._ip(doc, flags)
        self._user_agent(doc)
        related = {
            doc[f"{prefix}.{part}"]
            for prefix, _role in PERSONS
            for part in ("id", "name", "email", "full_name")
            if doc.get(f"{prefix}.{part}")
        }
        if related:
            doc["related.user"] = sorted(related)
        if doc.get("source.ip"):
            doc["related.ip"] = [doc["source.ip"]]
        if flags:
            doc["audit.flags"] = sorted(set(flags))
        return doc

    def _ip(self, doc: dict[str, Any], flags: list[str]) -> None:
        raw = doc.get("source.ip") or doc.get("source.address")
        if not raw:
            return
        doc["source.address"] = raw
        candidate = raw.strip()
        if candidate.startswith("[") and "]" in candidate:
            candidate = candidate[1 : candidate.index("]")]
        candidate = candidate.split("%", 1)[0]  # IPv6 zone ids are not part of the address
        try:
            # Fast path: a canonical dotted quad is its own normal form.
            if (
                socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, candidate))
                == candidate
            ):
                doc["source.ip"] = candidate
                return
        except OSError:
            pass
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            doc.pop("source.ip", None)
            flags.append("invalid_ip")
            return
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        doc["source.ip"] = str(ip)

    def _user_agent(self, doc: dict[str, Any]) -> None:
        original = doc.get("user_agent.original")
        if not original:
            return
        fields = self._ua_fields.get(original)
        if fields is None:
            fields = self._parse_ua(original)
            if len(self._ua_fields) >= 10_000:
                self._ua_fields.clear()  # a crude bound; the parser keeps its own cache too
            self._ua_fields[original] = fields
        doc.update(fields)

    def _parse_ua(self, original: str) -> dict[str, str]:
        doc: dict[str, str] = {}
        result = self.ua.parse(original[:1024])
        ua, os_, device = result.user_agent, result.os, result.device
        if ua is not None:
            doc["user_agent.name"] = ua.family
            version = ".".join(p for p in (ua.major, ua.minor) if p)
            if version:
                doc["user_agent.version"] = version
        if os_ is not None:
            doc["user_agent.os.name"] = os_.family
            version = ".".join(p for p in (os_.major, os_.minor) if p)
            if version:
                doc["user_agent.os.version"] = version
        if device is not None:
            doc["user_agent.device.name"] = device.family
        return doc


_STR, _MULTI, _FLAT, _INT, _SKIP = "str", "multi", "flat", "int", "skip"


def _how(field: Any) -> str:
    if field.name in ("audit.flags", "event.ingested") or field.kind is Kind.DATE:
        return _SKIP
    if field.kind is Kind.FLAT:
        return _FLAT
    if field.multi:
        return _MULTI
    if field.kind is Kind.INTEGER:
        return _INT
    return _STR


# Field name → (how to clean it, longest value kept), computed once.
_PLAN: dict[str, tuple[str, int]] = {f.name: (_how(f), f.max_chars) for f in FIELDS}


def _text(value: Any, limit: int, flags: list[str]) -> str:
    if not isinstance(value, str):
        value = str(value)
    if _UNSAFE.search(value):
        value = _UNSAFE.sub("\ufffd", value)
        flags.append("sanitized")
    if len(value) > limit:
        value = value[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK
        flags.append("truncated")
    return value


def _params(value: Any, flags: list[str]) -> Any:
    """Params as a JSON object of bounded depth and size, strings sanitised."""

    def walk(v: Any, depth: int) -> Any:
        if isinstance(v, dict):
            if depth >= MAX_PARAM_DEPTH:
                flags.append("truncated")
                return "[too deep]"
            return {
                _text(str(k), 128, flags).replace(".", "_"): walk(x, depth + 1)
                for k, x in list(v.items())[:200]
            }
        if isinstance(v, list):
            if depth >= MAX_PARAM_DEPTH:
                flags.append("truncated")
                return "[too deep]"
            return [walk(x, depth + 1) for x in v[:200]]
        if v is None or isinstance(v, bool):
            return v
        # flat_object indexes leaves as strings; store them so, and the same
        # key can never have two mapping types.
        return _text(str(v), 2048, flags)

    out = walk(value if isinstance(value, dict) else {"value": value}, 0)
    if len(repr(out)) > MAX_PARAMS_CHARS:
        flags.append("truncated")
        return {"truncated": _text(repr(out), MAX_PARAMS_CHARS // 4, [])}
    return out


def _id_time(event_id: str) -> datetime | None:
    """The creation time inside ids made by ``new_event_id`` (12 hex digits of ms)."""
    try:
        ts = datetime.fromtimestamp(int(event_id[:12], 16) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return ts if MIN_TIMESTAMP <= ts <= datetime.now(UTC) + MAX_FUTURE else None


def _timestamp(value: Any, reference: datetime, flags: list[str]) -> str:
    """The event time, or ``reference`` when it is missing or implausible.

    ``reference`` is the time inside the event id when it has one, so the
    answer — and with it the target index — is the same on every redelivery.
    """
    ts: datetime | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            ts = datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        except (OverflowError, OSError, ValueError):
            ts = None
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if ts.tzinfo is None:
                ts = ts.replace(tzinfo=UTC)
        except ValueError:
            ts = None
    if ts is None:
        flags.append("invalid_timestamp")
        return _iso(reference)
    if ts > reference + MAX_FUTURE or ts < MIN_TIMESTAMP:
        # A wildly wrong clock must not scatter events into far-off indices.
        flags.append("clock_skew")
        return _iso(reference)
    return _iso(ts)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fallback_id(raw: dict[str, Any]) -> str:
    # Deterministic, so a redelivered id-less event still deduplicates.
    import hashlib
    import json

    body = json.dumps(raw, sort_keys=True, default=str, ensure_ascii=True).encode()
    return hashlib.sha256(body).hexdigest()[:32]


def timestamp_ms(doc: dict[str, Any]) -> int:
    ts = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
    return int(ts.timestamp() * 1000)


__all__ = [
    "Enricher",
    "PERSON_PARTS",
    "TRUNCATION_MARK",
    "build_ua_parser",
    "timestamp_ms",
    "ua_backend_name",
]
