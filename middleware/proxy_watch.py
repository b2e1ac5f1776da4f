"""What the requests themselves say about ``trusted_proxies``, for ``useraudit doctor``.

Two settings are wrong in ways that only the traffic shows:

* ``trusted_proxies=0`` while requests arrive with ``X-Forwarded-For``: the
  app probably sits behind a proxy, and every event carries the proxy's
  address instead of the client's;
* ``trusted_proxies=N`` while requests arrive with fewer than N
  ``X-Forwarded-For`` entries: clients reach the app directly (or through
  fewer proxies), and whoever sends the header chooses the IP in the log.

Both are settings of the deployment, so every request of a process shows
them alike: the middleware looks at the first request of a process and then
at one request in ``SAMPLE_EVERY``, and never reads the headers of the
others (finding a header in an ASGI scope is a loop over all of them, on
the path of every request). It writes the counts to
``<spool>/capture-<pid>.json`` after the first request it looked at and then
at most every ``WRITE_EVERY`` seconds. ``useraudit doctor`` reads these
files beside the spool. The counts are a diagnostic: threads that race on
them may lose an increment, never a request.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

FILE_PREFIX = "capture-"
WRITE_EVERY = 10.0
SAMPLE_EVERY = 16


class ProxyWatch:
    """Counts, over the requests looked at, what X-Forwarded-For says against the setting.

    A middleware asks :meth:`due` on every request and, when it says so,
    reads the header and calls :meth:`observe`.
    """

    __slots__ = ("requests", "forwarded_untrusted", "direct_trusted", "skip", "_written_at")

    def __init__(self) -> None:
        self.requests = 0  # looked at
        self.forwarded_untrusted = 0
        self.direct_trusted = 0
        self.skip = 0  # requests to let by before the next one looked at
        self._written_at = 0.0

    def due(self) -> bool:
        """Whether to look at this request (the first, then one in ``SAMPLE_EVERY``)."""
        if self.passes():
            return False
        self.skip = SAMPLE_EVERY - 1
        return True

    def passes(self) -> bool:
        """Let this request by unlooked-at if it is not due; if it is, :meth:`due` says so next.

        The WSGI and ASGI middlewares do this inline for a quiet request
        (docs/capture.md, "Cost"): a change here belongs there too.
        """
        # ``> 0``, not truthiness: two threads racing here can leave -1, which
        # must start the count again rather than never sample again.
        if self.skip > 0:
            self.skip -= 1
            return True
        return False

    def observe(self, forwarded_for: str | bytes | None, trusted: int, spool: Any) -> None:
        """Count one request looked at; now and then write the counts beside ``spool``.

        ``spool`` is the recorder's SpoolWriter (its directory is looked up
        only when writing) or a directory path.

        ``forwarded_for`` is the X-Forwarded-For header as the server gave it
        (``str`` under WSGI, ``bytes`` under ASGI).
        """
        self.requests += 1
        if trusted == 0:
            if forwarded_for:
                self.forwarded_untrusted += 1
        elif not forwarded_for or _entries(forwarded_for) < trusted:
            self.direct_trusted += 1
        if self.requests == 1 or time.monotonic() - self._written_at >= WRITE_EVERY:
            self.write(Path(getattr(spool, "directory", spool)), trusted)

    def write(self, spool: Path, trusted: int) -> None:
        self._written_at = time.monotonic()
        entry = {
            "pid": os.getpid(),
            "at": time.time(),
            "trusted_proxies": trusted,
            "requests": self.requests,
            "sample_every": SAMPLE_EVERY,
            "forwarded_untrusted": self.forwarded_untrusted,
            "direct_trusted": self.direct_trusted,
        }
        tmp = spool / f".{FILE_PREFIX}{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(entry))
            os.replace(tmp, spool / f"{FILE_PREFIX}{os.getpid()}.json")
        except OSError:
            pass  # a diagnostic only: the request and its events matter, not this file


def _entries(forwarded_for: str | bytes) -> int:
    if isinstance(forwarded_for, bytes):
        return forwarded_for.count(b",") + 1
    return forwarded_for.count(",") + 1


def read_all(spool: Path, max_age: float = 24 * 3600.0) -> list[dict[str, Any]]:
    """The capture files of processes that wrote one within ``max_age`` seconds."""
    now = time.time()
    out = []
    for path in sorted(spool.glob(f"{FILE_PREFIX}*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and now - float(entry.get("at", 0)) <= max_age:
            out.append(entry)
    return out
