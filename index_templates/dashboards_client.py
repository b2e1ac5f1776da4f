"""Importing saved objects into OpenSearch Dashboards over HTTP.

``import_saved_objects`` posts NDJSON to ``POST <url>/api/saved_objects/_import``
with the standard library only, and turns Dashboards' refusals into
:class:`DashboardsError` messages an operator can act on.
"""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit


class DashboardsError(Exception):
    """A failed import, with a message meant for the operator."""


def multipart_body(filename: str, content: bytes, boundary: str) -> bytes:
    """A multipart/form-data body with one file part named ``file`` (what _import reads)."""
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode()


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """URL without user:password, and the user and password it carried."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https"):
        raise DashboardsError(f"--url must be http(s)://host:port, not {url!r}")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), user, password


def _server_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:300] or "(empty body)"
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        if message:
            return str(message)
    return json.dumps(body)[:300]


def describe_errors(errors: list[dict[str, Any]]) -> list[str]:
    """One line per object the import rejected, from the response's ``errors``."""
    lines = []
    for item in errors:
        err = item.get("error") or {}
        kind = err.get("type", "unknown")
        what = f"{item.get('type', '?')} {item.get('id', '?')}"
        if item.get("title"):
            what += f" ({item['title']})"
        if kind == "conflict":
            detail = "already exists; re-run with --overwrite to replace it"
        elif kind == "missing_references":
            refs = ", ".join(f"{r.get('type')} {r.get('id')}" for r in err.get("references", []))
            detail = f"refers to objects that do not exist: {refs}"
        elif kind == "unsupported_type":
            detail = "this Dashboards does not know this object type"
        else:
            detail = err.get("message") or kind
        lines.append(f"{what}: {detail}")
    return lines


def import_saved_objects(
    url: str,
    content: str,
    *,
    overwrite: bool = False,
    user: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    insecure: bool = False,
    tenant: str | None = None,
    timeout: float = 60.0,
    filename: str = "useraudit.ndjson",
) -> dict[str, Any]:
    """POST ``content`` to Dashboards' ``_import``; the parsed response, or DashboardsError."""
    base, url_user, url_password = _split_credentials(url)
    user = user if user is not None else url_user
    password = password if password is not None else url_password
    query = urlencode({"overwrite": "true"}) if overwrite else ""
    endpoint = f"{base}/api/saved_objects/_import" + (f"?{query}" if query else "")
    boundary = f"useraudit-{uuid.uuid4().hex}"
    body = multipart_body(filename, content.encode("utf-8"), boundary)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        # Dashboards refuses state-changing API calls without it (XSRF guard).
        "osd-xsrf": "true",
        "Accept": "application/json",
    }
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if tenant:
        # Security plugin multi-tenancy: which tenant receives the objects.
        headers["securitytenant"] = tenant
    context = None
    if base.startswith("https"):
        context = ssl.create_default_context(cafile=ca_certs)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    req = urlrequest.Request(endpoint, data=body, headers=headers, method="POST")
    try:
        with urlrequest.urlopen(req, timeout=timeout, context=context) as resp:
            raw = resp.read()
    except urlerror.HTTPError as exc:
        message = _server_message(exc.read())
        if exc.code == 401:
            hint = "give --user/--password" if user is None else "check --user/--password"
            raise DashboardsError(f"{base} answered 401 Unauthorized ({message}): {hint}") from exc
        if exc.code == 403:
            raise DashboardsError(
                f"{base} answered 403 Forbidden ({message}): the user may not write saved objects"
                + (f" in tenant {tenant!r}" if tenant else "")
            ) from exc
        if exc.code == 404:
            raise DashboardsError(
                f"{base} answered 404 for /api/saved_objects/_import ({message}): "
                "is --url the Dashboards address (not OpenSearch's), including any base path?"
            ) from exc
        raise DashboardsError(f"{base} answered {exc.code} {exc.reason}: {message}") from exc
    except urlerror.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            raise DashboardsError(
                f"cannot connect to Dashboards at {base}: connection refused"
            ) from exc
        if isinstance(reason, ssl.SSLError):
            raise DashboardsError(
                f"TLS with {base} failed ({reason}); "
                "give --ca-certs PATH, or --insecure to skip verification"
            ) from exc
        raise DashboardsError(f"cannot connect to Dashboards at {base}: {reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise DashboardsError(f"talking to Dashboards at {base} failed: {exc}") from exc
    try:
        result = json.loads(raw)
    except ValueError as exc:
        raise DashboardsError(
            f"{base} answered something that is not JSON: {_server_message(raw)}"
        ) from exc
    if not isinstance(result, dict) or "success" not in result:
        raise DashboardsError(
            f"{base} answered an unexpected import result: {json.dumps(result)[:300]}"
        )
    return result
