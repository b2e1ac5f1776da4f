"""The event schema: every field of an audit event, named once.

Field names follow the Elastic Common Schema (ECS 8.x) where one fits, so the
same indices read naturally in OpenSearch Dashboards. Fields ECS has no name
for live under our own ``audit.*`` namespace.

Everything else derives from this module: the OpenSearch index template
(``useraudit.index_templates``), the indexer's normalisation, the SQLite
columns, the UI table and the XLSX export (through ``COLUMNS``).

Impersonation, decided once here: ``user.*`` is the seed's *User* column —
the user on whose behalf the action ran (whose session it was). The
administrator who acted on their behalf is ``audit.impersonator.*``. We do
not use ECS ``user.effective.*``, whose direction is the other way round
(it names the user whose privileges were assumed) and would make the User
column depend on whether an impersonation happened. Every user named in an
event — actor, modified user, impersonator — is listed in ``related.user``,
which is what the *User history* filter searches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from itertools import count
from typing import Any

ECS_VERSION = "8.11.0"

# Bumped whenever the index template changes shape; `templates install`
# refuses to downgrade a cluster that has a newer one.
SCHEMA_VERSION = 2


# Not StrEnum (UP042): that would change str() and f-string output of members
# from "Kind.FLAT" to "flat_object", e.g. in index_templates' error message.
class Kind(str, Enum):  # noqa: UP042
    """Storage kinds; each maps to one OpenSearch type and one SQLite affinity."""

    KEYWORD = "keyword"
    # Identifiers people type: matched case-insensitively via a normalizer.
    NAME = "name"
    TEXT = "text"
    IP = "ip"
    DATE = "date"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    # Structured action parameters: any shape, never grows the mapping.
    FLAT = "flat_object"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    description: str
    # Values are lists (ECS arrays), e.g. event.type, related.user.
    multi: bool = False
    # Longest value kept; longer ones are cut and flagged `truncated`.
    max_chars: int = 1024


K = Kind
FIELDS: tuple[Field, ...] = (
    Field("@timestamp", K.DATE, "When the action happened (UTC), as reported by the host app."),
    Field(
        "event.id",
        K.KEYWORD,
        "Unique event id; also the document _id, which makes redelivery a no-op.",
    ),
    Field(
        "event.action",
        K.KEYWORD,
        "Machine code of the action, from the catalog (e.g. custom_role.renamed).",
    ),
    Field("event.kind", K.KEYWORD, "Always 'event'."),
    Field(
        "event.category",
        K.KEYWORD,
        "ECS category (authentication, iam, configuration, ...).",
        multi=True,
    ),
    Field(
        "event.type",
        K.KEYWORD,
        "ECS type (start, end, creation, deletion, change, ...).",
        multi=True,
    ),
    Field("event.outcome", K.KEYWORD, "success, failure or unknown. The Result column."),
    Field("event.reason", K.TEXT, "Why the action failed, when it did.", max_chars=2048),
    Field("event.ingested", K.DATE, "When the indexer stored the event."),
    Field("message", K.TEXT, "The action's human label, for Discover's default column."),
    Field("organization.id", K.KEYWORD, "The account (tenant) the action belongs to."),
    Field("organization.name", K.NAME, "The account's display name."),
    Field("user.id", K.KEYWORD, "The User: on whose behalf the action ran."),
    Field("user.name", K.NAME, "User's login name."),
    Field("user.email", K.NAME, "User's e-mail."),
    Field("user.full_name", K.NAME, "User's display name."),
    Field("user.roles", K.KEYWORD, "User's roles at the time.", multi=True),
    Field("user.target.id", K.KEYWORD, "The Modified user: the user this action changed."),
    Field("user.target.name", K.NAME, "Modified user's login name."),
    Field("user.target.email", K.NAME, "Modified user's e-mail."),
    Field("user.target.full_name", K.NAME, "Modified user's display name."),
    Field(
        "audit.impersonator.id",
        K.KEYWORD,
        "The Impersonator: the administrator acting on the User's behalf.",
    ),
    Field("audit.impersonator.name", K.NAME, "Impersonator's login name."),
    Field("audit.impersonator.email", K.NAME, "Impersonator's e-mail."),
    Field("audit.impersonator.full_name", K.NAME, "Impersonator's display name."),
    Field("audit.product", K.KEYWORD, "Product code from the catalog (common, jaicp, ...)."),
    Field(
        "audit.group",
        K.KEYWORD,
        "The action's group in the catalog (Custom role, API tokens, ...).",
    ),
    Field("audit.project.id", K.KEYWORD, "Project the action concerns."),
    Field("audit.project.name", K.NAME, "Project's display name."),
    Field("audit.token.id", K.KEYWORD, "API token id (never the secret)."),
    Field(
        "audit.comments",
        K.TEXT,
        "Comments: the action's parameters in words; full-text searchable.",
        max_chars=32_766,
    ),
    Field("audit.params", K.FLAT, "Structured action parameters (secrets masked)."),
    Field(
        "audit.flags",
        K.KEYWORD,
        "What the indexer had to repair: unknown_action, invalid_ip, truncated, ...",
        multi=True,
    ),
    Field("source.ip", K.IP, "Client IP, proxy-aware (see the middleware's trusted_proxies)."),
    # GeoIP enrichment (docs/detections.md), when the indexer has a database.
    Field("source.geo.country_iso_code", K.KEYWORD, "Client country, ISO 3166 code (GeoIP)."),
    Field("source.geo.country_name", K.KEYWORD, "Client country name (GeoIP)."),
    Field("source.geo.city_name", K.KEYWORD, "Client city (GeoIP City database)."),
    Field("source.as.number", K.INTEGER, "Client network's autonomous system number (GeoIP ASN)."),
    Field("source.as.organization.name", K.KEYWORD, "Client network's owner (GeoIP ASN)."),
    Field(
        "source.address",
        K.KEYWORD,
        "Client address exactly as received, kept even when it is not an IP.",
    ),
    Field("user_agent.original", K.KEYWORD, "User-Agent header as sent.", max_chars=4096),
    Field("user_agent.name", K.NAME, "Browser name."),
    Field("user_agent.version", K.KEYWORD, "Browser version."),
    Field("user_agent.os.name", K.NAME, "Operating system name."),
    Field("user_agent.os.version", K.KEYWORD, "Operating system version."),
    Field("user_agent.device.name", K.NAME, "Device name (Other for desktops)."),
    Field("http.request.id", K.KEYWORD, "Request id bound by the middleware."),
    Field("http.request.method", K.KEYWORD, "HTTP method."),
    Field("url.path", K.KEYWORD, "Request path.", max_chars=2048),
    Field("http.response.status_code", K.INTEGER, "HTTP status the host app answered."),
    Field(
        "related.user",
        K.NAME,
        "Every user named in the event: id, login, e-mail and full name of the actor, "
        "modified user and impersonator.",
        multi=True,
    ),
    Field("related.ip", K.IP, "Every IP named in the event.", multi=True),
    Field("ecs.version", K.KEYWORD, "ECS version these fields follow."),
    Field(
        "audit.origin.id",
        K.KEYWORD,
        "The host process that recorded the event (random per process, new after fork).",
    ),
    Field(
        "audit.origin.seq",
        K.INTEGER,
        "The event's number within its host process, from 1 in spool order: "
        "a missing number is an event lost between the host and the store.",
    ),
)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

OUTCOMES = ("success", "failure", "unknown")

# The person-shaped field groups: (prefix, role). `related.user` collects them.
PERSONS = (("user", "actor"), ("user.target", "target"), ("audit.impersonator", "impersonator"))
PERSON_PARTS = ("id", "name", "email", "full_name")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the seed's 'Action information', in the UI and the XLSX export."""

    key: str
    label: str
    fields: tuple[str, ...]
    width: int  # characters, for the XLSX export


COLUMNS: tuple[Column, ...] = (
    Column("action", "Action", ("event.action", "message"), 34),
    Column("timestamp", "Date and time", ("@timestamp",), 20),
    Column("user", "User", tuple(f"user.{p}" for p in PERSON_PARTS), 30),
    Column("token", "Token ID", ("audit.token.id",), 16),
    Column("target", "Modified user", tuple(f"user.target.{p}" for p in PERSON_PARTS), 30),
    Column("project", "Project", ("audit.project.name", "audit.project.id"), 20),
    Column("comments", "Comments", ("audit.comments",), 60),
    Column(
        "ip_device",
        "IP and device",
        (
            "source.ip",
            "source.address",
            "user_agent.name",
            "user_agent.version",
            "user_agent.os.name",
            "user_agent.os.version",
            "user_agent.device.name",
        ),
        34,
    ),
    Column("result", "Result", ("event.outcome",), 10),
    Column(
        "impersonator", "Impersonator", tuple(f"audit.impersonator.{p}" for p in PERSON_PARTS), 30
    ),
)


# Every field some column shows: what a table or an export needs to fetch.
COLUMN_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(f for c in COLUMNS for f in c.fields))


def person_label(doc: dict, prefix: str) -> str:
    """'Full Name <email>' style text for a person field group; '' when absent."""
    name = doc.get(f"{prefix}.full_name") or doc.get(f"{prefix}.name")
    email = doc.get(f"{prefix}.email")
    ident = doc.get(f"{prefix}.id")
    if name and email:
        return f"{name} <{email}>"
    return str(name or email or ident or "")


def device_label(doc: dict) -> str:
    """'Chrome 120 · Windows 10 · Other' style text for the IP and device column."""
    browser = " ".join(
        str(v) for v in (doc.get("user_agent.name"), doc.get("user_agent.version")) if v
    )
    os_ = " ".join(
        str(v) for v in (doc.get("user_agent.os.name"), doc.get("user_agent.os.version")) if v
    )
    device = doc.get("user_agent.device.name")
    parts = [p for p in (browser, os_, device if device and device != "Other" else "") if p]
    return " · ".join(parts)


def flatten(doc: dict, prefix: str = "") -> dict:
    """Nested document → flat dotted keys (the shape code works with).

    On every search and export hit: one output dict filled in place, no
    intermediate dicts merged.
    """
    out: dict = {}
    fields = FIELD_BY_NAME

    def walk(node: dict, at: str) -> None:
        for key, value in node.items():
            name = at + key
            if type(value) is dict and name not in fields:
                walk(value, name + ".")
            else:
                out[name] = value

    walk(doc, prefix)
    return out


@lru_cache(maxsize=32)
def picker(fields: tuple[str, ...]) -> Callable[[dict], dict]:
    """A :func:`flatten` that keeps only ``fields``, as one generated function.

    Exports flatten every hit of hundreds of thousands; walking each nested
    document costs several times these straight-line lookups. A document
    holding dotted keys at its top level (written by another tool) takes
    the general :func:`flatten`.
    """
    tree: dict = {}
    for name in fields:
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if not isinstance(node, dict) or not isinstance(node.setdefault(leaf, name), str):
            raise ValueError(f"{name!r} is both a field and a parent of fields here")

    lines = [
        "def pick(doc):",
        "    for key in doc:",
        "        if '.' in key:",
        "            flat = flatten(doc)",
        "            return {k: flat[k] for k in wanted if k in flat}",
        "    out = {}",
    ]
    counter = count()

    def emit(node: dict, var: str, indent: str) -> None:
        for key, sub in node.items():
            if isinstance(sub, str):
                lines.append(f"{indent}if (v := {var}.get({key!r})) is not None: out[{sub!r}] = v")
            else:
                child = f"n{next(counter)}"
                lines.append(f"{indent}if type({child} := {var}.get({key!r})) is dict:")
                emit(sub, child, indent + "    ")

    emit(tree, "doc", "    ")
    lines.append("    return out")
    namespace: dict[str, Any] = {"flatten": flatten, "wanted": fields}
    exec(compile("\n".join(lines), "<useraudit.schema picker>", "exec"), namespace)  # noqa: S102 - our own code
    return namespace["pick"]


def nest(flat: dict) -> dict:
    """Flat dotted keys → nested document (the shape ECS tools expect)."""
    out: dict = {}
    for name, value in flat.items():
        if name == "@timestamp":
            out[name] = value
            continue
        node = out
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def fields_markdown() -> str:
    """The field table of ``docs/fields.md`` (kept in sync by a test)."""
    seed_column = {f: c.label for c in COLUMNS for f in c.fields}
    rows = ["| field | type | seed column | description |", "|---|---|---|---|"]
    for f in FIELDS:
        kind = f.kind.value + ("[]" if f.multi else "")
        rows.append(f"| `{f.name}` | {kind} | {seed_column.get(f.name, '')} | {f.description} |")
    return "\n".join(rows) + "\n"


# The account contract (docs/capture.md, "Which account an event belongs to").
# An account id the admin UI can open: what `useraudit users grant` takes.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}\Z")
# Events that reach the indexer without a usable account are filed here and
# flagged (missing_account / invalid_account): never stored invisibly. The
# admin UI tells every admin when this account holds events.
UNASSIGNED_ACCOUNT = "unassigned"
# The scheduled canaries' account (useraudit/canary.py): reserved, no user can
# be granted it, so no account admin is shown canaries as user actions.
CANARY_ACCOUNT = "useraudit:canary"
RESERVED_ACCOUNTS = frozenset({CANARY_ACCOUNT})
