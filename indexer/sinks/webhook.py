"""HTTPS webhook: NDJSON batches signed with HMAC-SHA256.

Each batch is one ``POST`` with ``Content-Type: application/x-ndjson``, one
stored document per line, and these headers:

``X-Useraudit-Timestamp``
    Unix seconds when the request was signed.
``X-Useraudit-Signature``
    ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` with the shared
    secret. A receiver recomputes it, compares in constant time and refuses
    old timestamps, so a captured request cannot be replayed later.
``X-Useraudit-Batch``
    SHA-256 of the batch's event ids: the same on every retry of a batch, so
    a receiver may drop a batch it already took (it must still expect
    single events again: delivery is at least once, ``event.id`` is the key).

Answers: 2xx delivered; 408, 429, 5xx, a refused connection or a timeout are
retried (the whole batch, after a backoff); 401/403 are retried too, with
an error that says to check the secret, since no event is at fault; 413
splits the batch, down to one event; any other 4xx dead-letters the batch
with the status and the start of the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import urllib3

from .base import Event, Rejection, Sink, SinkUnavailable

log = logging.getLogger("useraudit.sinks")

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return (
        "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, max_age: float = 300
) -> bool:
    """What a receiver does (used by the tests' receiver)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= max_age
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSink(Sink):
    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: bytes,
        ca_file: str | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name)
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
            raise ValueError(f"webhook {name}: the URL must be https:// (http only on loopback)")
        if len(secret) < 16:
            raise ValueError(f"webhook {name}: the secret must be at least 16 bytes")
        self.url = url
        self.secret = secret
        self.extra_headers = dict(headers or {})
        self._http = urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            ca_certs=ca_file,
            cert_reqs="CERT_REQUIRED",
        )

    def describe(self) -> str:
        return f"webhook {self.name} → {self.url}"

    def deliver(self, docs: Sequence[Event]) -> list[Rejection]:
        return self._post(list(docs), 0)

    def _post(self, events: list[Event], offset: int) -> list[Rejection]:
        body = b"".join(event.raw + b"\n" for event in events)
        stamp = str(int(time.time()))
        ids = "\n".join(str(event.id) for event in events)
        headers = {
            **self.extra_headers,
            "Content-Type": "application/x-ndjson",
            "User-Agent": "useraudit-webhook/1",
            "X-Useraudit-Timestamp": stamp,
            "X-Useraudit-Signature": sign(self.secret, stamp, body),
            "X-Useraudit-Batch": hashlib.sha256(ids.encode()).hexdigest(),
            "X-Useraudit-Events": str(len(events)),
        }
        try:
            resp = self._http.request("POST", self.url, body=body, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise SinkUnavailable(f"POST {self.url}: {exc}") from exc
        status = resp.status
        if 200 <= status < 300:
            return []
        snippet = resp.data[:200].decode("utf-8", "replace")
        if status in (408, 429) or status >= 500:
            raise SinkUnavailable(f"POST {self.url}: HTTP {status}")
        if status in (401, 403):
            log.error(
                "webhook %s: HTTP %d: check the shared secret and the receiver", self.name, status
            )
            raise SinkUnavailable(f"POST {self.url}: HTTP {status} (secret refused?)")
        if status == 413 and len(events) > 1:
            half = len(events) // 2
            return self._post(events[:half], offset) + self._post(events[half:], offset + half)
        return [
            Rejection(offset + i, f"HTTP {status} from {self.url}: {snippet}")
            for i in range(len(events))
        ]

    def close(self) -> None:
        self._http.clear()
