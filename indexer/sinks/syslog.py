"""Syslog: RFC 5424 messages over TCP or TLS, octet-counting framing (RFC 6587).

Each event becomes one message::

    <PRI>1 TIMESTAMP HOSTNAME useraudit - ACTION [useraudit@32473 id="…" account="…" …] BOM{json}

* PRI: ``facility`` (default 13, "log audit") × 8 + severity: 4 (warning)
  for a failed action, 5 (notice) otherwise.
* TIMESTAMP is the event's ``@timestamp``; MSGID its action code (cut to 32
  printable ASCII characters).
* Structured data ``useraudit@32473`` carries the key fields (``id``,
  ``account``, ``user``, ``action``, ``outcome``, ``ip``, ``target``,
  ``project``), escaped as RFC 5424 §6.3.3 says. 32473 is the enterprise
  number RFC 5612 reserves for examples; set your own with ``sd_id``.
* MSG is the whole stored document as UTF-8 JSON, after a BOM.
* Framing: ``LENGTH SP MESSAGE`` (RFC 6587 §3.4.1), so messages may hold
  any byte, newlines included.

TCP has no application acknowledgement: bytes handed to the kernel are lost
if the receiver goes away before reading them. So a batch counts as
delivered only once the connection has stayed up ``confirm_after`` seconds
after it was sent (a syslog server never writes to the connection, so data
or end-of-file to read means it closed). When the connection is found lost,
every batch sent within that window is sent again, with the same event ids.
"""

from __future__ import annotations

import datetime as dt
import re
import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

import orjson

from .base import Event, Rejection, Sink, SinkUnavailable

BOM = b"\xef\xbb\xbf"
SD_FIELDS = (
    ("id", "event.id"),
    ("account", "organization.id"),
    ("user", "user.id"),
    ("action", "event.action"),
    ("outcome", "event.outcome"),
    ("ip", "source.ip"),
    ("target", "user.target.id"),
    ("project", "audit.project.id"),
)


_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")


def _printable(value: str, limit: int) -> str:
    """RFC 5424 header fields: printable US-ASCII, no spaces, "-" when empty."""
    if value and value.isascii() and value.isprintable() and " " not in value:
        return value[:limit]  # the usual case, without a loop per character
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return cleaned or "-"


def _sd_escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "]" not in value:
        return value
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _timestamp(value: Any) -> str:
    if isinstance(value, str) and _RFC3339_UTC.fullmatch(value):
        return value  # the indexer stores UTC times in this form already
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return "-"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return "-"


def format_message(
    doc: dict[str, Any],
    raw: bytes | None = None,
    *,
    facility: int = 13,
    hostname: str = "-",
    app_name: str = "useraudit",
    sd_id: str = "useraudit@32473",
) -> bytes:
    """One RFC 5424 message (without framing) for a stored document."""
    severity = 4 if doc.get("event.outcome") == "failure" else 5
    params = []
    for name, field in SD_FIELDS:
        value = doc.get(field)
        if value is not None and value != "":
            params.append(f'{name}="{_sd_escape(str(value))}"')
    sd = f"[{sd_id} {' '.join(params)}]" if params else "-"
    header = (
        f"<{facility * 8 + severity}>1 {_timestamp(doc.get('@timestamp'))} "
        f"{_printable(hostname, 255)} {_printable(app_name, 48)} - "
        f"{_printable(str(doc.get('event.action') or ''), 32)} {sd} "
    )
    return header.encode("utf-8") + BOM + (raw if raw is not None else orjson.dumps(doc))


def octet_frame(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


class SyslogSink(Sink):
    kind = "syslog"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        tls: bool = False,
        ca_file: str | None = None,
        facility: int = 13,
        app_name: str = "useraudit",
        hostname: str | None = None,
        sd_id: str = "useraudit@32473",
        confirm_after: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(name)
        if not 0 <= facility <= 23:
            raise ValueError(f"syslog facility must be 0-23, not {facility}")
        self.host, self.port, self.tls = host, port, tls
        self.facility = facility
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname()
        self.sd_id = sd_id
        self.confirm_after = confirm_after
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if tls:
            self._context = ssl.create_default_context(cafile=ca_file)
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        return f"syslog {self.name} → {'tls' if self.tls else 'tcp'}://{self.host}:{self.port}"

    def deliver(self, docs: Sequence[Event]) -> list[Rejection]:
        self._check_alive()
        data = b"".join(
            octet_frame(
                format_message(
                    event.doc,
                    event.raw,
                    facility=self.facility,
                    hostname=self.hostname,
                    app_name=self.app_name,
                    sd_id=self.sd_id,
                )
            )
            for event in docs
        )
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None
            self._sock.sendall(data)
        except OSError as exc:
            self._disconnect()
            raise SinkUnavailable(f"syslog {self.host}:{self.port}: {exc}") from exc
        return []

    def confirmed_before(self) -> float:
        self._check_alive()
        return time.monotonic() - self.confirm_after

    def _check_alive(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            readable, _, broken = select.select([sock], [], [sock], 0)
            closed = bool(broken)
            if readable and not closed:
                # A syslog server sends nothing; what there is to read is the
                # end of the connection, or TLS housekeeping (session tickets).
                sock.setblocking(False)
                try:
                    closed = sock.recv(4096) == b""
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
                finally:
                    sock.settimeout(self.timeout)
        except (OSError, ValueError) as exc:
            self._disconnect()
            raise SinkUnavailable(f"syslog {self.host}:{self.port}: {exc}") from exc
        if closed:
            self._disconnect()
            raise SinkUnavailable(
                f"syslog {self.host}:{self.port}: the server closed the connection"
            )

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError):
                sock.close()
                raise
        self._sock = sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def close(self) -> None:
        self._disconnect()
