"""Real receivers the sink tests run themselves: an HTTPS webhook endpoint.

:class:`WebhookReceiver` is a ``ThreadingHTTPServer`` on 127.0.0.1 (TLS with
the test CA's server certificate) that checks each request's HMAC signature,
keeps every event it took, and answers what the test scripts: a list of
statuses to give before answering 200, or "down" (socket closed) for a while.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from useraudit.indexer.sinks.webhook import verify


@dataclass
class Received:
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    bad_signatures: int = 0
    statuses: list[int] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.time() per event taken

    def ids(self) -> list[str]:
        return [e["event.id"] for e in self.events]


class WebhookReceiver:
    def __init__(
        self,
        secret: bytes,
        cert: Path | None = None,
        key: Path | None = None,
        keep_events: bool = True,
    ) -> None:
        self.secret = secret
        self.keep_events = keep_events
        self.count = 0  # events taken (also when not kept)
        self.received = Received()
        self.script: list[int] = []  # statuses to answer first, in order
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._answer(self.headers, body)
                reply = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if cert is not None and key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/ingest"

    def _answer(self, headers: Any, body: bytes) -> int:
        with self.lock:
            self.received.requests += 1
            if not verify(
                self.secret,
                headers.get("X-Useraudit-Timestamp", ""),
                body,
                headers.get("X-Useraudit-Signature", ""),
            ):
                self.received.bad_signatures += 1
                self.received.statuses.append(401)
                return 401
            status = self.script.pop(0) if self.script else 200
            self.received.statuses.append(status)
            if status == 200:
                self.received.batch_ids.append(headers.get("X-Useraudit-Batch", ""))
                lines = body.splitlines()
                self.count += len(lines)
                if not self.keep_events:
                    return status
                now = time.time()
                for line in lines:
                    self.received.events.append(json.loads(line))
                    self.received.arrivals.append(now)
            return status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
