"""Regenerate the hostile-input corpus files (``python tests/corpus/build.py``).

The JSON-lines files next to this script are the corpus; this script only
writes them, so a reviewer can see where each line came from. Each line is
one input: ``{"id", "target", "note"}`` plus exactly one of

* ``"value"``: the input itself (JSON escapes carry NUL, controls, RTL
  overrides and lone surrogates);
* ``"b64"``: raw bytes, base64 (invalid UTF-8 for headers and spool records);
* ``"gen"``: a recipe for inputs too big to store (JSON bombs, 1 MB strings),
  expanded by :func:`corpus.expand`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

HERE = Path(__file__).parent

# Hostile strings that every text-ish target gets.
STRINGS: list[tuple[str, object]] = [
    ("empty", ""),
    ("spaces", "   \t  "),
    ("nul", "a\x00b\x00"),
    ("c0-controls", "".join(chr(c) for c in range(32))),
    ("del-c1", "x\x7f\x80\x85\x9fy"),
    ("crlf-injection", "ok\r\nX-Injected: yes\r\n\r\n<html>"),
    ("rtl-override", "invoice\u202egnp.exe"),
    ("bidi-isolates", "\u2066admin\u2069\u2067x\u2068"),
    ("homoglyph-admin", "\u0430dmin"),  # Cyrillic a
    ("homoglyph-mixed", "p\u0430yp\u0430l.com"),
    ("zero-width", "ad\u200bmin\u200d\ufeff"),
    ("bom", "\ufeffbom"),
    ("zalgo", "z" + "\u0336\u0334\u0337" * 300),
    ("emoji-zwj", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466" * 20),
    ("max-codepoint", "\U0010ffff\U000e0001"),
    ("lone-surrogate", "a\ud800b\udfffc"),
    ("xss-script", '<script>window.__pwned=1;alert("x")</script>'),
    ("xss-img", '"><img src=x onerror="window.__pwned=1">'),
    ("xss-svg", "<svg/onload=window.__pwned=1>"),
    ("formula", '=HYPERLINK("http://127.0.0.1/?"&A1,"x")'),
    ("formula-plus", "+cmd|' /C calc'!A0"),
    ("formula-at", "@SUM(1+1)"),
    ("sql", "' OR 1=1; DROP TABLE events; --"),
    ("jndi", "${jndi:ldap://127.0.0.1/a}"),
    ("format-string", "%s%s%n%x{0}{__class__}"),
    ("path-traversal", "../../../../etc/passwd%00"),
    ("json-looking", '{"organization.id":"other","$where":"1"}'),
    ("os-query-syntax", 'a~2 /re.*gex/ field:value *wild ?x "unclosed'),
    (
        "masking-trigger",
        "password=hunter2 token abcdefgh12345678 Bearer eyJabcdef.eyJabcdef.sigsigsig",
    ),
    ("redos-a", {"kind": "repeat", "unit": "a", "times": 50_000, "tail": "!"}),
    ("long-10k", {"kind": "repeat", "unit": "x", "times": 10_000}),
    ("long-1M", {"kind": "repeat", "unit": "y", "times": 1_000_000}),
    ("long-words", {"kind": "repeat", "unit": "word ", "times": 20_000}),
    ("number", 12345),
    ("float-nan-like", "NaN"),
    ("bool-like", "true"),
]

# Raw header bytes that are not UTF-8.
BAD_BYTES: list[tuple[str, bytes]] = [
    ("ff-fe", b"\xff\xfe"),
    ("bad-continuation", b"caf\xc3\x28"),
    ("overlong-slash", b"\xc0\xaf\xe0\x80\xaf"),
    ("encoded-surrogate", b"\xed\xa0\x80\xed\xbf\xbf"),
    ("above-max", b"\xf4\x90\x80\x80"),
    ("lone-continuations", b"\x80" * 1000),
    ("latin1", b"Mozilla/5.0 (Windows; \xe9\xe8\xe0)"),
    ("nul-in-bytes", b"Mozilla\x00/5.0"),
    ("truncated-utf8", b"abc\xe2\x82"),
    ("all-bytes", bytes(range(256))),
]

UA = [
    (
        "ua-chrome-ok",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Safari/537.36",
    ),
    ("ua-16k", {"kind": "repeat", "unit": "Mozilla/5.0 ", "times": 1400}),
    ("ua-parens", "(" * 5000 + ")" * 5000),
    ("ua-regex-bomb", "Mozilla/5.0 (" + "iPhone; " * 2000 + ")"),
]

XFF = [
    ("xff-spoof-left", "6.6.6.6, 1.2.3.4"),
    ("xff-garbage", "garbage;;; DROP TABLE"),
    ("xff-only-commas", ",,,,,,"),
    ("xff-huge", {"kind": "repeat", "unit": "1.1.1.1,", "times": 5000}),
    ("xff-ipv6-zone", "fe80::1%eth0, [2001:db8::5%1]:8080"),
    ("xff-bad-octet", "999.1.1.1"),
    ("xff-script", "<script>x</script>"),
    ("xff-unknown", "unknown"),
    ("xff-quoted", '"[::1]"'),
    ("xff-port-only", ":8080"),
    ("xff-mapped", "::ffff:10.0.0.1"),
    ("xff-newline", "1.2.3.4\r\n5.6.7.8"),
]

REQUEST_IDS = [
    ("rid-crlf", "\r\n" * 100),
    ("rid-long", {"kind": "repeat", "unit": "r", "times": 5000}),
    ("rid-script", "<script>x</script>"),
    ("rid-spaces", "a b\tc"),
]

PATHS = [
    ("path-traversal", "/../../etc/passwd"),
    ("path-nul", "/a\x00b"),
    ("path-long", {"kind": "repeat", "unit": "/seg", "times": 3000}),
    ("path-encoded", "/%2e%2e/%00/%ff"),
    ("path-unicode", "/\u202e/\u0430dmin"),
]

ACTIONS = [
    ("unknown-code", "billing.invoice_paid"),
    ("upper", "USER.SIGNED_IN"),
    ("words", "user signed in"),
    ("dots", "....."),
    ("deep-dots", "a." * 500),
    ("wildcard", "user.*"),
    ("regex", "/.*/"),
    ("none", None),
    ("int", 404),
]

PARAMS = [
    ("conflict-str", {"shape": "text"}),
    ("conflict-obj", {"shape": {"nested": {"deeper": 1}}}),
    ("conflict-list", {"shape": [1, "two", {"three": 3}]}),
    ("conflict-num", {"shape": 3.5}),
    ("conflict-bool", {"shape": True}),
    ("conflict-null", {"shape": None}),
    ("conflict-ip", {"shape": "10.0.0.1"}),
    ("conflict-date", {"shape": "2026-01-01T00:00:00Z"}),
    ("key-with-dots", {"a.b.c": 1, "a": {"b": {"c": 2}}}),
    ("key-empty", {"": "empty key", " ": "space"}),
    ("key-controls", {"k\x00\u202e\n": "v"}),
    ("key-long", {"k" * 5000: "v"}),
    ("key-homoglyph", {"p\u0430ssword": "hunter2", "password": "hunter2"}),
    ("secret-nested", {"auth": {"Authorization": "Bearer abcdefghijklmnop"}}),
    ("scalar-list", [1, 2, 3]),
    ("scalar-str", "just a string"),
    ("big-int", {"n": 10**30}),
    ("huge-int", {"kind": "bigint", "digits": 5000}),
    ("floats", {"a": 1e308, "b": -1e-308, "c": 0.1}),
    ("deep-dict-50", {"kind": "nest_dict", "depth": 50}),
    ("deep-dict-5000", {"kind": "nest_dict", "depth": 5000}),
    ("deep-list-100k", {"kind": "nest_list", "depth": 100_000}),
    ("wide-list-100k", {"kind": "wide_list", "n": 100_000}),
    ("wide-dict-20k", {"kind": "wide_dict", "n": 20_000}),
    ("billion-laughs", {"kind": "laughs", "levels": 6, "fan": 8}),
    ("long-value", {"kind": "repeat_param", "times": 200_000}),
    ("mixed-types-list", {"v": [None, True, 1, 1.5, "s", [], {}]}),
    ("numbers-as-text", {"status": "200", "count": "NaN", "ip": 3232235777}),
]

PERSONS = [
    (
        "dict-all-hostile",
        {"id": "u\x00", "name": "\u0430dmin", "email": "<script>@x", "full_name": "\u202eevil"},
    ),
    ("dict-nested-values", {"id": {"a": [1, 2]}, "name": ["x", "y"], "email": 5}),
    ("dict-extra-keys", {"id": "u1", "organization.id": "other", "password": "x"}),
    ("dict-empty", {}),
    ("int-id", 4242),
    ("long-name", {"name": {"kind": "repeat", "unit": "n", "times": 100_000}}),
    ("email-homoglyph", {"id": "u2", "email": "\u0430lice@ex\u0430mple.com"}),
    ("rtl-full-name", {"id": "u3", "full_name": "Mallory \u202eAdmin"}),
    ("xss-name", {"id": "u4", "name": '<img src=x onerror="window.__pwned=1">'}),
    ("formula-name", {"id": "u5", "full_name": "=1+1", "email": "-2+3@x"}),
]

TIMESTAMPS = [
    ("year-1", "0001-01-01T00:00:00+00:00"),
    ("year-1-plus14", "0001-01-01T00:00:00+14:00"),
    ("year-9999", "9999-12-31T23:59:59+00:00"),
    ("year-9999-minus14", "9999-12-31T23:00:00-14:00"),
    ("epoch", "1970-01-01T00:00:00+00:00"),
    ("y2038", "2038-01-19T03:14:08+00:00"),
    ("year-2999", "2999-01-01T00:00:00+00:00"),
    ("tomorrow-plus-2d", {"kind": "relative_days", "days": 3}),
    ("naive", "2026-01-01T00:00:00"),
    ("odd-offset", "2026-01-01T00:00:00+13:59"),
    ("leap-day", "2024-02-29T23:59:59.999999+00:00"),
    ("as-string", {"kind": "raw", "value": "yesterday"}),
    ("as-int", {"kind": "raw", "value": 1_700_000_000}),
    ("as-huge-int", {"kind": "raw", "value": 10**20}),
    ("as-float", {"kind": "raw", "value": 1.7e9}),
    ("as-iso-string", {"kind": "raw", "value": "2025-06-01T12:00:00Z"}),
]

OUTCOMES = [("weird", "maybe"), ("upper", "SUCCESS"), ("dict", {"x": 1}), ("empty", "")]

# Raw spool records a buggy or hostile producer might write (bypassing record()).
RAW: list[tuple[str, bytes]] = [
    ("not-json", b"\xff\xfe not json"),
    ("json-array", b"[1, 2, 3]"),
    ("json-string", b'"just a string"'),
    ("json-null", b"null"),
    ("truncated-json", b'{"event.id": "x", "event.act'),
    (
        "wrong-types",
        b'{"event.id": "@ID@", "@timestamp": {"a": 1}, "http.response.status_code": "abc", '
        b'"source.address": {"x": 1}, "event.outcome": 7, "organization.id": "corpus"}',
    ),
    (
        "id-object",
        b'{"event.id": {"nested": "@ID@"}, "organization.id": "corpus", '
        b'"event.action": "task.created"}',
    ),
    (
        "unknown-fields",
        b'{"event.id": "@ID@", "organization.id": "corpus", "evil.field": {"x": 1}, '
        b'"audit.flags": ["forged"], "event.ingested": "1970-01-01"}',
    ),
    (
        "list-where-scalar",
        b'{"event.id": "@ID@", "organization.id": "corpus", "user.name": ["a", "b"], '
        b'"event.category": "notalist", "related.user": {"x": 1}}',
    ),
    ("dup-keys", b'{"event.id": "@ID@", "organization.id": "corpus", "organization.id": "corpus"}'),
    (
        "escaped-surrogates",
        b'{"event.id": "@ID@", "organization.id": "corpus", '
        b'"audit.comments": "\\ud800\\udc00\\udfff"}',
    ),
]


def _value(v: object) -> dict:
    if isinstance(v, dict) and "kind" in v:
        return {"gen": v}
    return {"value": v}


def _person_value(v: object) -> dict:
    if isinstance(v, dict) and any(isinstance(x, dict) and "kind" in x for x in v.values()):
        return {"gen": {"kind": "person", "fields": v}}
    return {"value": v}


def main() -> None:
    files: dict[str, list[dict]] = {}

    def add(file: str, cid: str, target: str, note: str, **payload: object) -> None:
        files.setdefault(file, []).append({"id": cid, "target": target, "note": note, **payload})

    for name, v in STRINGS:
        for target in ("comments", "user_agent", "project", "user_name"):
            add("strings.jsonl", f"{target}-{name}", target, name, **_value(v))
    for name, v in STRINGS[:20]:
        for target in ("xff", "reason", "token_id", "action"):
            add("strings.jsonl", f"{target}-{name}", target, name, **_value(v))
    for name, raw in BAD_BYTES:
        for target in ("user_agent", "xff", "comments", "path"):
            add("bytes.jsonl", f"{target}-{name}", target, name, b64=base64.b64encode(raw).decode())
    for name, v in UA:
        add("headers.jsonl", name, "user_agent", name, **_value(v))
    for name, v in XFF:
        add("headers.jsonl", name, "xff", name, **_value(v))
    for name, v in REQUEST_IDS:
        add("headers.jsonl", name, "request_id", name, **_value(v))
    for name, v in PATHS:
        add("headers.jsonl", name, "path", name, **_value(v))
    for name, v in ACTIONS:
        add("actions.jsonl", f"action-{name}", "action", name, **_value(v))
    for name, v in PARAMS:
        add("params.jsonl", f"params-{name}", "params", name, **_value(v))
    for name, v in PERSONS:
        for target in ("user", "target_user", "impersonator"):
            add("persons.jsonl", f"{target}-{name}", target, name, **_person_value(v))
    for name, v in TIMESTAMPS:
        add("timestamps.jsonl", f"ts-{name}", "timestamp", name, **_value(v))
    for name, v in OUTCOMES:
        add("outcomes.jsonl", f"outcome-{name}", "outcome", name, **_value(v))
    for name, raw in RAW:
        add("raw_spool.jsonl", f"raw-{name}", "raw_spool", name, b64=base64.b64encode(raw).decode())
    add(
        "raw_spool.jsonl",
        "raw-json-deep-array",
        "raw_spool",
        "json-deep-array",
        gen={"kind": "raw_nest", "depth": 100_000},
    )
    for file, rows in files.items():
        with open(HERE / file, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=True) + "\n")
        print(file, len(rows))


if __name__ == "__main__":
    main()
