"""HTTPS and basic auth in front of the real test node, as a secured cluster answers.

A production OpenSearch speaks HTTPS and asks for credentials (its security
plugin, or a reverse proxy such as nginx in front of it). The test node is
plain HTTP without either; this front adds both on 127.0.0.1 and forwards
every request to the node unchanged, so the store's TLS settings (CA bundle,
verification) and credentials meet real OpenSearch answers. A request
without valid credentials gets what the security plugin answers: 401,
``WWW-Authenticate: Basic realm="OpenSearch Security"``, body
``Unauthorized``. ``users`` may be changed while it runs (an operator fixing
an account).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Headers that belong to one connection, not to the request or response.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "authorization", "host"}


class SecureFront:
    def __init__(self, node_url: str, cert: Path, key: Path, users: dict[str, str]) -> None:
        node = urlsplit(node_url)
        self.node = (node.hostname or "127.0.0.1", node.port or 9200)
        self.users = users
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.front = self  # type: ignore[attr-defined]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, user: str | None = None, password: str | None = None, **params: str) -> str:
        """A store URL for this front: ``https://user:password@127.0.0.1:port/?params``."""
        auth = f"{user}:{password}@" if user is not None else ""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"https://{auth}127.0.0.1:{self.port}/" + (f"?{query}" if query else "")

    def start(self) -> SecureFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def allows(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return False
        return user in self.users and self.users[user] == password


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        front: SecureFront = self.server.front  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if not front.allows(self.headers.get("Authorization")):
            self._answer(
                401,
                [("WWW-Authenticate", 'Basic realm="OpenSearch Security"')],
                b"Unauthorized",
                "text/plain; charset=UTF-8",
            )
            front.requests.append((self.command, self.path, 401))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        conn = http.client.HTTPConnection(*front.node, timeout=300)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP]
        finally:
            conn.close()
        self._answer(response.status, kept, data)
        front.requests.append((self.command, self.path, response.status))

    def _answer(
        self,
        status: int,
        headers: list[tuple[str, str]],
        data: bytes,
        content_type: str | None = None,
    ) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass
