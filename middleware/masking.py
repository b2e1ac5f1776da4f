"""Masking: secrets are replaced before an event leaves the process.

Runs inside ``record()`` (and the structlog processor) before anything is
written to the spool, so a password typed into a settings form never reaches
disk, OpenSearch or an export. Two kinds of rules:

* key rules: a mapping key is secret when, split into words (``_``, ``-``,
  ``.``, spaces and camelCase boundaries) and lower-cased, it *contains* a
  secret term — ``password``/``passwd``/``passphrase``, ``secret``,
  ``token``, ``apikey``, ``privatekey`` (and other ``…key`` compounds such
  as ``accesskey``), ``credential``, ``session``, ``cookie``,
  ``authorization``, ``signature`` — or one of its words *is* a short secret
  word (``pwd``, ``pass``, ``auth``, ``otp``, ``pin``, ``cvv``, ``sid``,
  ``sig``, ``jwt``...). So ``password_confirmation``, ``password2``,
  ``new_password_1``, ``botToken``, ``X-Api-Key`` and ``db.Passwd`` are all
  secret. The exception: a key whose *last* word says it describes the
  secret rather than holding it (``id``, ``count``, ``type``, ``name``,
  ``expires``, ``at``...), e.g. ``token_id``, ``audit.token.id``,
  ``session_count``, ``password_changed_at`` — except that a session's id
  (``session_id``, ``JSESSIONID``) *is* the credential and stays secret.
  A secret key's value is replaced whole (booleans are kept: a flag holds
  no secret). Two-item lists ``["Authorization", "Bearer …"]`` and
  ``{"name": "password", "value": …}`` records are read as key and value.
* text rules, applied to every string (comments, reasons, params values,
  URL paths): ``key=value``, ``key: value``, ``"key": "value"`` and URL
  query parameters (``?token=…&api_key=…``) whose key is secret by the
  rule above, with quoted values masked whole up to the closing quote;
  ``Bearer``/``Basic``/``Token`` credentials; JSON Web Tokens; the password
  in ``scheme://user:password@host``; PEM private key blocks; and
  well-known token shapes (GitHub ``ghp_…``, Slack ``xox?-…``, AWS
  ``AKIA…``, Stripe ``sk_live_…``, Google ``AIza…``).

Every text pattern runs in time linear in its input (bounded repetitions,
and every unbounded run may only start where such a run begins), so a
crafted comment cannot stall the host: ``tests/security/test_masking_redos.py``
masks 1 MiB of adversarial text per pattern within 50 ms. Patterns added
with ``extra_values`` are the caller's responsibility in that respect.

What is not recognised: a secret in prose without a key (``my password is
hunter2``), and an unquoted value past its first delimiter (whitespace,
``&``, ``;``, ``,``, quotes, brackets, ``#``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import re2

MASK = "[MASKED]"

# Substrings of a key's lower-cased words joined together.
SECRET_TERMS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "sshkey",
    "credential",
    "session",
    "cookie",
    "authorization",
    "authorisation",
    "signature",
    "bearer",
)
# Whole words only: as substrings they occur in innocent names (fOOTPrint, PINned).
SECRET_WORDS = frozenset(
    ("pwd", "pw", "pass", "auth", "otp", "totp", "hotp", "pin", "cvv", "cvc", "sid", "sig", "jwt")
)
# A last word that makes the key describe a secret rather than hold it.
DESCRIBING_WORDS = frozenset(
    (
        "id",
        "ids",
        "uuid",
        "count",
        "counts",
        "len",
        "length",
        "type",
        "types",
        "kind",
        "name",
        "names",
        "label",
        "expires",
        "expiry",
        "expiration",
        "expired",
        "ttl",
        "lifetime",
        "timeout",
        "at",
        "on",
        "date",
        "time",
        "timestamp",
        "created",
        "updated",
        "changed",
        "rotated",
        "revoked",
        "version",
        "policy",
        "scope",
        "scopes",
        "enabled",
        "required",
        "strength",
        "url",
        "uri",
        "endpoint",
        "fingerprint",
        "algorithm",
        "field",
        "fields",
    )
)
# ...but these "ids" are the credential itself.
_CREDENTIAL_IDS = ("session", "cookie")

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Text rules, one RE2 scan for all of them over the UTF-8 bytes. RE2 runs in
# time linear in the text whatever the pattern, so no input can make the scan
# backtrack; each match is then told apart by plain byte checks.
_TEXT_RULES = (
    # Authorization-style credentials: "Bearer abc…", "token abc…".
    rb"(?i:\b(?:bearer|basic|digest|token))[ \t]{1,8}[A-Za-z0-9._~+/=-]{8,}",
    # JSON Web Tokens.
    rb"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    # The password of scheme://user:password@host.
    rb"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:[^\s/@]+@",
    # PEM private keys, with or without their END line.
    rb"-----BEGIN[A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\s]*(?:-----END[A-Z ]*PRIVATE KEY-----)?",
    # Well-known token shapes: GitHub, Slack, AWS access key ids, Stripe, Google.
    rb"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    rb"|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    rb"|AIza[0-9A-Za-z_-]{35})",
    # key=value / key: value / "key": "value" / ?key=value, found by a secret
    # term; the key's start is looked up backwards and the value read
    # forwards in Python, both bounded.
    rb"(?i:pass|pwd|pw|secret|token|api[-_. ]?key|access[-_. ]?key|private[-_. ]?key"
    rb"|signing[-_. ]?key|encryption[-_. ]?key|master[-_. ]?key|ssh[-_. ]?key|credential|session"
    rb"|sid|cookie|authori[sz]ation|auth|signature|sig|bearer|otp|totp|hotp|pin|cvv|cvc|jwt)"
    rb"[A-Za-z0-9_.-]*(?:[\"']?[ \t]{0,3}(?:=>|=|:)[ \t]{0,3}|[ \t]{1,3}[\"'])",
)
DEFAULT_VALUE_PATTERNS: tuple[str, ...] = ()  # the rules above; extra_values add to them
_TEXT = re2.compile(b"|".join(_TEXT_RULES))
_SCHEME = re.compile(rb"(?i)(?:bearer|basic|digest|token)[ \t]{1,8}+[A-Za-z0-9._~+/=-]{8,}+")
_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_KEY_BACK = 64
# Anchored at one position and bounded: constant work per secret.
_UNQUOTED_VALUE = re.compile(rb"[^\s&;,\"'<>()\[\]{}#]{1,4096}+")
_AUTH_SCHEMES = frozenset((b"bearer", b"basic", b"digest", b"token", b"negotiate"))
_MASK_BYTES = MASK.encode()

MAX_DEPTH = 32
# How many clean texts, of at most how many characters, a Masker remembers.
_CLEAN_TEXTS = 4096
_CLEAN_TEXT_CHARS = 512


def key_words(key: str) -> list[str]:
    """``"X-Api-Key"`` → ``["x", "api", "key"]``; ``"botToken2"`` → ``["bot", "token", "2"]``."""
    return [w.lower() for w in _WORDS.findall(key)]


def is_secret_key_name(key: str) -> bool:
    """The default key rule (see the module docstring)."""
    words = key_words(key)
    if not words:
        return False
    joined = "".join(words)
    secret = any(term in joined for term in SECRET_TERMS) or any(w in SECRET_WORDS for w in words)
    if not secret:
        return False
    last = words[-1]
    if last in DESCRIBING_WORDS:
        if last in ("id", "ids") and any(t in joined for t in _CREDENTIAL_IDS):
            return True
        return False
    return True


class Masker:
    """Replaces secrets in nested params and free text.

    Args:
        extra_keys: more key-name regexes (case-insensitive, searched in the
            key as written), added to the defaults.
        extra_values: more value regexes, added to the defaults. They must
            be linear in their input themselves (no nested or adjacent
            unbounded repetitions over the same characters).
    """

    __slots__ = ("_extra_keys", "_values", "_key_cache", "_clean")

    def __init__(self, extra_keys: Iterable[str] = (), extra_values: Iterable[str] = ()) -> None:
        extra = [f"(?:{p})" for p in extra_keys]
        self._extra_keys = re.compile("|".join(extra), re.I) if extra else None
        # RE2 too: a host's own value pattern cannot backtrack either.
        self._values = [re2.compile(p) for p in (*DEFAULT_VALUE_PATTERNS, *extra_values)]
        self._key_cache: dict[str, bool] = {}
        # Short texts found to hold nothing to mask (paths, comments and
        # reasons repeat): a set lookup instead of a scan. Only clean texts
        # are kept, so no secret is ever held here.
        self._clean: set[str] = set()

    def is_secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = is_secret_key_name(key[:256]) or bool(
                self._extra_keys is not None and self._extra_keys.search(key)
            )
            if len(self._key_cache) < 4096:
                self._key_cache[key] = hit
        return hit

    def text(self, value: str) -> str:
        short = len(value) <= _CLEAN_TEXT_CHARS
        if short and value in self._clean:
            return value
        if value.isascii():
            masked = self._scan(value.encode("ascii"))
            out = masked.decode("ascii") if masked is not None else value
        else:
            masked = self._scan(value.encode("utf-8", "surrogatepass"))
            out = masked.decode("utf-8", "surrogatepass") if masked is not None else value
        for pattern in self._values:
            out = pattern.sub(MASK, out)
        if short and out == value:
            clean = self._clean
            if len(clean) >= _CLEAN_TEXTS:
                clean.clear()  # a bound, not an LRU: the texts that repeat come back at once
            clean.add(value)
        return out

    def _scan(self, text: bytes) -> bytes | None:
        """Apply the text rules in one left-to-right pass; None when nothing was masked."""
        out: list[bytes] = []
        done = 0  # text[:done] is settled
        line_end = -1  # cached end of the current line, for quoted values
        mask = _MASK_BYTES
        search = _TEXT.search
        pos = 0
        while True:
            # Resume after the last mask or match: text inside a masked value
            # is never scanned again.
            match = search(text, pos)
            if match is None:
                break
            start, end = match.span()
            pos = max(end, start + 1, done)
            span = text[start:end]
            keep = b""
            if span.startswith(b"-----BEGIN"):
                pass  # a private key: all of it
            elif span.endswith(b"@"):
                # scheme://user:password@: keep all but the password.
                keep = span[: span.index(b":", span.index(b"://") + 3) + 1]
                out += (text[done:start], keep, mask, b"@")
                done = end
                continue
            elif _SCHEME.fullmatch(span):
                # "Bearer abc…": keep the scheme so readers know what was there.
                gap = min(i for i in (span.find(b" "), span.find(b"\t")) if i >= 0)
                keep = span[: len(span) - len(span[gap:].lstrip(b" \t"))]
            elif span.rstrip(b" \t")[-1:] in (b"=", b":", b">") or span[-1:] in (b"'", b'"'):
                done, line_end, pieces = self._pair(text, start, end, done, line_end)
                out += pieces
                pos = max(pos, done)
                continue
            out += (text[done:start], keep, mask)
            done = end
        if not out:
            return None
        out.append(text[done:])
        return b"".join(out)

    def _pair(
        self, text: bytes, start: int, end: int, done: int, line_end: int
    ) -> tuple[int, int, list[bytes]]:
        """A key and separator at text[start:end]: mask the value if the key is secret.

        Returns where the settled text now ends, the cached end of the line
        (found once per line, not once per quoted value) and what to append.
        """
        key_start = start
        floor = max(done, start - _MAX_KEY_BACK)
        while key_start > floor and text[key_start - 1] in _KEY_CHARS:
            key_start -= 1
        key = text[key_start:end].rstrip(b" \t=>:\"'").strip(b".-_")
        if text[end - 1 : end] in (b"'", b'"'):
            end -= 1  # `passphrase "…"`: a quoted value after the bare key
        if not self.is_secret_key(key.decode("ascii")) or text.startswith(_MASK_BYTES, end):
            return done, line_end, []
        quote = text[end : end + 1]
        if quote in (b"'", b'"'):
            if line_end < end:
                line_end = text.find(b"\n", end)
                if line_end < 0:
                    line_end = len(text)
            close = text.find(quote, end + 1, line_end)
            # An unterminated quote: everything to the end of the line.
            value_end, closing = (line_end, b"") if close < 0 else (close, quote)
            pieces = [text[done:end], quote, _MASK_BYTES, closing]
            return value_end + len(closing), line_end, pieces
        found = _UNQUOTED_VALUE.match(text, end)
        if found is None:
            return done, line_end, []
        value_end = found.end()
        if found.group().lower() in _AUTH_SCHEMES and text[value_end : value_end + 1] == b" ":
            # "Authorization: Bearer abc": the credential is the next word.
            more = _UNQUOTED_VALUE.match(text, value_end + 1)
            if more is not None:
                value_end = more.end()
        while value_end < len(text) and 0x80 <= text[value_end] < 0xC0:
            value_end += 1  # never stop inside a UTF-8 character
        return value_end, line_end, [text[done:end], _MASK_BYTES]

    def params(self, value: Any, _depth: int = 0) -> Any:
        """A masked copy of a JSON-like value (dicts, lists, scalars)."""
        if isinstance(value, str):
            return self.text(value)
        if _depth >= MAX_DEPTH:
            return "[TOO DEEP]"
        if isinstance(value, dict):
            out = {}
            secret_record = self._names_a_secret(value)
            for k, v in value.items():
                key = str(k)
                hidden = self.is_secret_key(key) or (secret_record and key == "value")
                out[key] = MASK if hidden and _holds_data(v) else self.params(v, _depth + 1)
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            if (
                len(items) == 2
                and isinstance(items[0], str)
                and _holds_data(items[1])
                and self.is_secret_key(items[0])
            ):
                # A header or form field as a pair: ["Authorization", "Bearer …"].
                return [items[0], MASK]
            return [self.params(v, _depth + 1) for v in items]
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            # Beyond JSON's safe range; past ~4,300 digits str() itself refuses.
            return str(value) if value.bit_length() < 14_000 else "[integer too large]"
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.text(str(value))

    def _names_a_secret(self, record: dict[Any, Any]) -> bool:
        """``{"name": "password", "value": …}``: a form field or header as a record."""
        if "value" not in record:
            return False
        for label in ("name", "key", "field", "header"):
            named = record.get(label)
            if isinstance(named, str) and self.is_secret_key(named):
                return True
        return False


def _holds_data(value: Any) -> bool:
    return value not in (None, "") and not isinstance(value, bool)


DEFAULT_MASKER = Masker()
