"""The hostile-input corpus: loader.

The data are the ``*.jsonl`` files beside this module (regenerate them with
``python tests/corpus/build.py``). :func:`load` turns each line into a
:class:`Case` whose ``value`` is the Python object to feed in: text (with
NUL, controls, RTL overrides, lone surrogates), raw ``bytes`` (from base64:
invalid UTF-8), JSON structures, or the expansion of a ``gen`` recipe (JSON
bombs and megabyte strings that are too big to keep in the repository).

``target`` says where the input goes: a header (``user_agent``, ``xff``,
``request_id``, ``path``), a ``record()`` argument (``action``, ``params``,
``comments``, ``reason``, ``project``, ``token_id``, ``user_name``,
``user``, ``target_user``, ``impersonator``, ``timestamp``, ``outcome``) or
``raw_spool`` (bytes written straight into the spool, bypassing record()).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
HEADER_TARGETS = ("user_agent", "xff", "request_id", "path")


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    target: str
    note: str
    value: Any

    def as_text(self, limit: int = 600) -> str:
        """The input as a search string (what an admin might paste into the UI)."""
        return text_of(self.value)[:limit]


def text_of(value: Any, depth: int = 0) -> str:
    if depth > 4:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return " ".join(
            f"{text_of(k, depth + 1)[:100]} {text_of(v, depth + 1)[:200]}"
            for k, v in list(value.items())[:5]
        )
    if isinstance(value, list):
        return " ".join(text_of(v, depth + 1)[:100] for v in value[:5])
    try:
        return str(value)
    except ValueError:  # int too large to print
        return "bigint"


def expand(gen: dict[str, Any]) -> Any:
    kind = gen["kind"]
    if kind == "repeat":
        return gen["unit"] * gen["times"] + gen.get("tail", "")
    if kind == "repeat_param":
        return {"v": "p" * gen["times"]}
    if kind == "bigint":
        return {"n": 10 ** gen["digits"]}
    if kind == "nest_dict":
        root: dict[str, Any] = {}
        node = root
        for _ in range(gen["depth"]):
            node["d"] = {}
            node = node["d"]
        return root
    if kind == "nest_list":
        outer: list[Any] = []
        cur = outer
        for _ in range(gen["depth"]):
            nxt: list[Any] = []
            cur.append(nxt)
            cur = nxt
        return {"deep": outer}
    if kind == "wide_list":
        return {"items": list(range(gen["n"]))}
    if kind == "wide_dict":
        return {f"k{i}": i for i in range(gen["n"])}
    if kind == "laughs":
        # Shared references: small in memory, huge when walked or serialised.
        level: Any = ["lol"]
        for _ in range(gen["levels"]):
            level = [level] * gen["fan"]
        return {"laughs": level}
    if kind == "relative_days":
        return datetime.now(UTC) + timedelta(days=gen["days"])
    if kind == "raw":
        return gen["value"]
    if kind == "raw_nest":
        return b"[" * gen["depth"] + b"]" * gen["depth"]
    if kind == "person":
        return {
            k: expand(v) if isinstance(v, dict) and "kind" in v else v
            for k, v in gen["fields"].items()
        }
    raise ValueError(f"unknown corpus recipe {kind!r}")


def _decode(row: dict[str, Any]) -> Any:
    if "b64" in row:
        return base64.b64decode(row["b64"])
    if "gen" in row:
        return expand(row["gen"])
    value = row["value"]
    if row["target"] == "timestamp" and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed
    return value


@lru_cache(maxsize=1)
def load() -> tuple[Case, ...]:
    cases: list[Case] = []
    for path in sorted(HERE.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                cases.append(Case(row["id"], path.name, row["target"], row["note"], _decode(row)))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "corpus ids must be unique"
    return tuple(cases)


def as_str(value: Any) -> Any:
    """Bytes as record() would get them from a careless host
    (surrogate-escaped); others as they are."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def as_wsgi(value: Any) -> str:
    """A header or path value as a WSGI server hands it over: bytes seen as latin-1."""
    if isinstance(value, bytes):
        raw = value
    else:
        raw = text_of(value).encode("utf-8", "surrogatepass")
    return raw.decode("latin-1")
