"""Real servers on loopback that receive alert notifications: HTTPS and SMTP.

``https_receiver`` is an ``http.server`` behind TLS (certificate from
:mod:`support.tls`) that records each request and answers with the next
status of a script (then 200), so a test can make it fail and recover.
``smtp_server`` is aiosmtpd with STARTTLS required and AUTH LOGIN/PLAIN.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import free_port
from .tls import Certificates


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpsReceiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer, then 200
    up: bool = True  # False: every request answered 503


@contextmanager
def https_receiver(certs: Certificates) -> Iterator[HttpsReceiver]:
    port = free_port()
    state = HttpsReceiver(f"https://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.requests.append(Received(self.path, dict(self.headers.items()), body))
            status = 503 if not state.up else (state.script.pop(0) if state.script else 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class SmtpServer:
    host: str
    port: int
    username: str
    password: str
    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)


@contextmanager
def smtp_server(
    certs: Certificates, username: str = "alerts", password: str = "s3cret"
) -> Iterator[SmtpServer]:
    """aiosmtpd on a free port: STARTTLS required before AUTH, AUTH required before MAIL."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    port = free_port()
    state = SmtpServer("127.0.0.1", port, username, password)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            state.envelopes.append(envelope)
            state.messages.append(message_from_bytes(envelope.original_content))
            return "250 OK"

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == username
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        yield state
    finally:
        controller.stop()
