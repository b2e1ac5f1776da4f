"""Masking: secrets are replaced before an event leaves the process.

Runs inside ``record()`` (and the structlog processor) before anything is
written to the spool, so a password typed into a settings form never reaches
disk, OpenSearch or an export. Two kinds of rules:

* key rules: any mapping key whose name matches (``password``,
  ``api_key``, ``authorization``, ...) has its value replaced whole;
* value rules: secret-shaped text inside any string (``Bearer …``, JWTs,
  ``password=…`` pairs) is replaced in place, so free-text comments are
  covered too.

Identifiers that merely mention a secret's *name* (``token_id``,
``password_changed_at``) are deliberately not masked: the audit log needs
them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "[MASKED]"

DEFAULT_KEY_PATTERNS = (
    r"pass(word|wd|phrase)?$",
    r"^pwd$",
    r"secret",
    r"(^|_|-)token$",
    r"^(access|refresh|id|auth|bearer|api|session)[_-]?token",
    r"api[_-]?key",
    r"authori[sz]ation",
    r"^cookie$|^set-cookie$",
    r"credential",
    r"private[_-]?key",
    r"^(otp|totp|pin|cvv|cvc)$",
    r"session[_-]?(id|key)$",
    r"^x-api-key$",
)

DEFAULT_VALUE_PATTERNS = (
    # Authorization header values and bearer tokens in text.
    r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}",
    # JSON Web Tokens.
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
)

# `key=value`, `key: value` and `"key": "value"` inside text; the value is
# masked when the key matches a key rule (same rules as for mappings).
_PAIR = re.compile(
    r"""(?P<key>[A-Za-z][A-Za-z0-9_.-]{1,40})(?P<sep>["']?\s*[=:]\s*["']?)(?P<value>[^\s&,;"'}\]]+)"""
)

MAX_DEPTH = 32


class Masker:
    """Replaces secrets in nested params and free text.

    Args:
        extra_keys: more key-name regexes (case-insensitive), added to the defaults.
        extra_values: more value regexes, added to the defaults.
    """

    __slots__ = ("_keys", "_values", "_key_cache")

    def __init__(self, extra_keys: Iterable[str] = (), extra_values: Iterable[str] = ()) -> None:
        self._keys = re.compile(
            "|".join(f"(?:{p})" for p in (*DEFAULT_KEY_PATTERNS, *extra_keys)), re.I
        )
        self._values = [re.compile(p) for p in (*DEFAULT_VALUE_PATTERNS, *extra_values)]
        self._key_cache: dict[str, bool] = {}

    def is_secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            hit = bool(self._keys.search(key))
            if len(self._key_cache) < 4096:
                self._key_cache[key] = hit
        return hit

    def text(self, value: str) -> str:
        for pattern in self._values:
            if pattern.search(value):
                value = pattern.sub(_mask_match, value)
        if "=" in value or ":" in value:
            value = _PAIR.sub(self._mask_pair, value)
        return value

    def _mask_pair(self, match: re.Match[str]) -> str:
        if match.group("value") == MASK or not self.is_secret_key(match.group("key")):
            return match.group(0)
        return f"{match.group('key')}{match.group('sep')}{MASK}"

    def params(self, value: Any, _depth: int = 0) -> Any:
        """A masked copy of a JSON-like value (dicts, lists, scalars)."""
        if isinstance(value, str):
            return self.text(value)
        if _depth >= MAX_DEPTH:
            return "[TOO DEEP]"
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key = str(k)
                out[key] = (
                    MASK
                    if self.is_secret_key(key) and v not in (None, "")
                    else self.params(v, _depth + 1)
                )
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.params(v, _depth + 1) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            # Beyond JSON's safe range; past ~4,300 digits str() itself refuses.
            return str(value) if value.bit_length() < 14_000 else "[integer too large]"
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.text(str(value))


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    # Keep the scheme or key name so readers still know what was there.
    for sep in ("=", ":", " "):
        head, found, _ = text.partition(sep)
        if found and head and not head.startswith("eyJ"):
            return f"{head}{sep}{MASK}"
    return MASK


DEFAULT_MASKER = Masker()
