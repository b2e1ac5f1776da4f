"""A stand-in for OpenSearch Dashboards' saved-objects import endpoint, on 127.0.0.1.

It emulates the request/response contract of
``POST /api/saved_objects/_import[?overwrite=true]`` in Dashboards 2.x:

* non-GET API calls without an ``osd-xsrf`` header get 400;
* with ``users`` set (security plugin), a missing or wrong basic-auth header
  gets 401 ``{"statusCode":401,"error":"Unauthorized","message":"Authentication required"}``;
* the body must be multipart/form-data with a ``file`` part whose filename
  ends in ``.ndjson`` (else 415 / 400 with Dashboards' message);
* each object is checked: an existing (type, id) without overwrite is a
  ``conflict``; a reference to an object neither in the file nor already
  stored is ``missing_references``; an unknown type is ``unsupported_type``;
* the answer is ``{"success", "successCount", "successResults", "errors"}``.

Every request is recorded for the tests to inspect. This fakes Dashboards'
HTTP API only; OpenSearch itself is always the real node.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TYPES = {"index-pattern", "search", "visualization", "dashboard", "config", "query"}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    file_name: str | None = None
    file_content: bytes | None = None


@dataclass
class FakeDashboards:
    users: dict[str, str] | None = None
    stored: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    # When set, every request gets this (status, body) instead.
    forced: tuple[int, bytes, str] | None = None
    base_path: str = ""
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}{self.base_path}"

    def start(self, tls: tuple[str, str] | None = None) -> FakeDashboards:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake.handle(self)

            do_GET = do_POST  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- the endpoint -------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        rec = Recorded(
            h.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in h.headers.items()},
            body,
        )
        self.requests.append(rec)
        if self.forced:
            status, raw, ctype = self.forced
            return self.reply(h, status, raw, ctype)
        if self.users is not None and not self.authorised(h.headers.get("Authorization")):
            return self.error(h, 401, "Unauthorized", "Authentication required")
        if parts.path != f"{self.base_path}/api/saved_objects/_import" or h.command != "POST":
            return self.error(h, 404, "Not Found", "Not Found")
        if "osd-xsrf" not in rec.headers:
            return self.error(h, 400, "Bad Request", "Request must contain a osd-xsrf header.")
        ctype = rec.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return self.error(h, 415, "Unsupported Media Type", "Unsupported Media Type")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body
        )
        files = [
            p
            for p in message.iter_parts()
            if p.get_param("name", header="content-disposition") == "file"
        ]
        if len(files) != 1:
            return self.error(
                h, 400, "Bad Request", "[request body.file]: expected value of type [object]"
            )
        part = files[0]
        rec.file_name = part.get_filename()
        rec.file_content = part.get_payload(decode=True)
        if not (rec.file_name or "").endswith(".ndjson"):
            ext = "." + (rec.file_name or "").rsplit(".", 1)[-1]
            return self.error(h, 400, "Bad Request", f"Invalid file extension {ext}")
        overwrite = rec.query.get("overwrite", ["false"])[-1] == "true"
        self.reply(
            h, 200, json.dumps(self.import_objects(rec.file_content or b"", overwrite)).encode()
        )

    def import_objects(self, content: bytes, overwrite: bool) -> dict[str, Any]:
        objects = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        in_file = {(o["type"], o["id"]) for o in objects}
        errors, results = [], []
        for obj in objects:
            key = (obj["type"], obj["id"])
            meta = {
                "id": obj["id"],
                "type": obj["type"],
                "title": obj["attributes"].get("title", ""),
            }
            if obj["type"] not in TYPES:
                errors.append({**meta, "error": {"type": "unsupported_type"}})
                continue
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in obj.get("references", [])
                if (r["type"], r["id"]) not in in_file and (r["type"], r["id"]) not in self.stored
            ]
            if missing:
                errors.append(
                    {**meta, "error": {"type": "missing_references", "references": missing}}
                )
                continue
            if key in self.stored and not overwrite:
                errors.append({**meta, "error": {"type": "conflict"}})
                continue
            self.stored[key] = obj
            results.append({"type": obj["type"], "id": obj["id"], "meta": {"title": meta["title"]}})
        out: dict[str, Any] = {"success": not errors, "successCount": len(results)}
        if results:
            out["successResults"] = results
        if errors:
            out["errors"] = errors
        return out

    def authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (self.users or {}).get(user) == password

    def error(self, h: BaseHTTPRequestHandler, status: int, error: str, message: str) -> None:
        body = {"statusCode": status, "error": error, "message": message}
        self.reply(h, status, json.dumps(body).encode())

    def reply(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        raw: bytes,
        ctype: str = "application/json; charset=utf-8",
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(raw)))
        h.end_headers()
        h.wfile.write(raw)
