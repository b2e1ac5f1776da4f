"""The time zones the page offers: canonical IANA names people look for.

``zoneinfo.available_timezones()`` holds ~600 names, many of them aliases
kept for compatibility, among them ``Etc/GMT+7`` (which is UTC−7: the sign
reads backwards). Offered instead: the zones of ``zone.tab`` and
``zone1970.tab`` (one or more per country, all geographic) plus ``UTC``.
A browser reporting an old alias (``Europe/Kiev``) is mapped to its
canonical name through the ``L`` lines of ``tzdata.zi``.
"""

from __future__ import annotations

import time
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape


def _data(name: str) -> str:
    return (resources.files("tzdata") / "zoneinfo" / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def offered() -> tuple[str, ...]:
    """The curated names, sorted; UTC first."""
    names: set[str] = set()
    for table in ("zone.tab", "zone1970.tab"):
        for line in _data(table).splitlines():
            if line and not line.startswith("#"):
                names.add(line.split("\t")[2])
    return ("UTC", *sorted(names))


@lru_cache(maxsize=1)
def _links() -> dict[str, str]:
    out = {}
    for line in _data("tzdata.zi").splitlines():
        if line.startswith("L "):
            _l, target, alias = line.split()[:3]
            out[alias] = target
    return out


def canonical(name: str) -> str:
    """``name`` itself when offered, else the zone it is an alias of (or ``name``)."""
    if name in _offered_set():
        return name
    if name in ("Etc/UTC", "Etc/UCT", "UCT", "Etc/Zulu", "Zulu", "GMT", "Etc/GMT", "Universal"):
        return "UTC"
    return _links().get(name, name)


@lru_cache(maxsize=1)
def _offered_set() -> frozenset[str]:
    return frozenset(offered())


def is_offered(name: str) -> bool:
    return name in _offered_set()


def _key(text: str) -> str:
    """``São Paulo`` / ``sao_paulo`` / ``SAO-PAULO`` → ``sao paulo``: how a city is compared."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return " ".join(plain.replace("_", " ").replace("-", " ").casefold().split())


@lru_cache(maxsize=1)
def _by_city() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for name in offered():
        for key in {_key(name), _key(name.rsplit("/", 1)[-1])}:
            out.setdefault(key, []).append(name)
    return {k: tuple(v) for k, v in out.items()}


def find(text: str) -> str | None:
    """The offered zone a typed name means: the name itself, an old alias's zone, or a
    city ("berlin", "new york", "sao paulo") when exactly one zone has it; else None."""
    text = text.strip()
    if is_offered(text):
        return text
    if canonical(text) != text and is_offered(canonical(text)):
        return canonical(text)
    found = _by_city().get(_key(text), ())
    return found[0] if len(found) == 1 else None


def offset_label(tz: ZoneInfo | str, at: datetime | None = None) -> str:
    """``UTC+05:30`` / ``UTC−07:00`` / ``UTC`` for the zone at ``at`` (now by default)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    delta = (at or datetime.now(UTC)).astimezone(zone).utcoffset()
    minutes = int(delta.total_seconds() // 60) if delta else 0
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "\u2212"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


@lru_cache(maxsize=4)
def _options(_hour: int) -> Markup:
    now = datetime.now(UTC)
    out = []
    for name in offered():
        try:
            label = offset_label(ZoneInfo(name), now)
        except ZoneInfoNotFoundError:  # pragma: no cover - tzdata without that zone
            continue
        out.append(f'<option value="{escape(name)}">{escape(label)}</option>')
    return Markup("".join(out))


def datalist_options() -> Markup:
    """``<option>`` elements (name, current offset) for the zone input's datalist.

    Rebuilt once an hour, so offsets follow daylight-saving changes.
    """
    return _options(int(time.time() // 3600))
