"""`useraudit dashboards import` against a local stand-in for Dashboards' import endpoint."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.tls import Certificates, make_certificates

from useraudit.cli import main
from useraudit.index_templates import dashboards_client
from useraudit.index_templates import saved_objects as dc

from .fake_dashboards import FakeDashboards


@pytest.fixture
def fake() -> Iterator[FakeDashboards]:
    server = FakeDashboards().start()
    try:
        yield server
    finally:
        server.stop()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["dashboards", "import", *args])


def committed_lines() -> int:
    return len(dc.GOLDEN_NDJSON.read_text(encoding="utf-8").splitlines())


def test_import_posts_the_ndjson_as_multipart_with_xsrf_and_overwrite(fake: FakeDashboards) -> None:
    """The request uploads the committed NDJSON as multipart, with osd-xsrf and overwrite=true."""
    result = run("--url", fake.url, "--overwrite")
    assert result.exit_code == 0, result.output
    assert f"Imported {committed_lines()} saved objects (overwrite)" in result.output
    (req,) = fake.requests
    assert req.method == "POST" and req.path == "/api/saved_objects/_import"
    assert req.query == {"overwrite": ["true"]}
    assert req.headers["osd-xsrf"] == "true"
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert "authorization" not in req.headers and "securitytenant" not in req.headers
    assert req.file_name == "useraudit.ndjson"
    assert req.file_content == dc.GOLDEN_NDJSON.read_bytes()
    assert len(fake.stored) == committed_lines()


def test_reimport_without_overwrite_reports_each_conflict(fake: FakeDashboards) -> None:
    """Re-importing without --overwrite sends no overwrite flag and lists every conflict."""
    assert run("--url", fake.url).exit_code == 0
    result = run("--url", fake.url)
    assert result.exit_code == 1
    assert fake.requests[-1].query == {}
    assert f"Imported 0 saved objects; {committed_lines()} failed:" in result.stderr
    assert (
        "index-pattern useraudit-events (useraudit-events): already exists; "
        "re-run with --overwrite to replace it" in result.stderr
    )
    assert (
        "dashboard useraudit-dashboard-user-actions (User actions): already exists" in result.stderr
    )
    # With --overwrite the same import succeeds.
    assert run("--url", fake.url, "--overwrite").exit_code == 0


def test_missing_references_are_reported_per_object(fake: FakeDashboards) -> None:
    """Objects whose references are absent are listed with the missing type and id."""
    lines = dc.render_ndjson().splitlines(keepends=True)
    without_pattern = "".join(line for line in lines if json.loads(line)["type"] != "index-pattern")
    result = dashboards_client.import_saved_objects(fake.url, without_pattern)
    assert result["success"] is False
    described = dashboards_client.describe_errors(result["errors"])
    assert (
        "search useraudit-search-failed-sign-ins (Failed sign-ins): refers to objects that do not "
        "exist: index-pattern useraudit-events" in described
    )
    # Five searches and the three visualisations on the index pattern; the one
    # built on a saved search resolves inside the file, as in Dashboards.
    assert len(described) == len(result["errors"]) == 8


def test_basic_auth_from_options(fake: FakeDashboards) -> None:
    """--user/--password become a basic Authorization header the server accepts."""
    fake.users = {"admin": "s3cr3t:x"}
    result = run("--url", fake.url, "--user", "admin", "--password", "s3cr3t:x")
    assert result.exit_code == 0, result.output
    expected = base64.b64encode(b"admin:s3cr3t:x").decode()
    assert fake.requests[-1].headers["authorization"] == f"Basic {expected}"


def test_credentials_in_the_url_are_used_and_never_echoed(fake: FakeDashboards) -> None:
    """user:password in --url authenticate and are never shown in error messages."""
    fake.users = {"admin": "p@ss word"}
    url = fake.url.replace("http://", "http://admin:p%40ss%20word@")
    result = run("--url", url)
    assert result.exit_code == 0, result.output
    req = fake.requests[-1]
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"admin:p@ss word").decode()
    fake.users = {"admin": "other"}
    result = run("--url", url)
    assert result.exit_code == 1
    assert "401 Unauthorized" in result.output and "p@ss" not in result.output
    assert "p%40ss" not in result.output


def test_401_is_a_clear_error(fake: FakeDashboards) -> None:
    """Without credentials on a secured Dashboards the command says 401 and what to do."""
    fake.users = {"admin": "right"}
    result = run("--url", fake.url)
    assert result.exit_code == 1
    assert (
        "answered 401 Unauthorized (Authentication required): give --user/--password"
        in result.output
    )
    result = run("--url", fake.url, "--user", "admin", "--password", "wrong")
    assert "check --user/--password" in result.output and "wrong" not in result.output


def test_4xx_shows_the_server_message(fake: FakeDashboards) -> None:
    """A 4xx answer is reported with its status and the server's own message."""
    body = {
        "statusCode": 403,
        "error": "Forbidden",
        "message": "no permissions for [saved_objects]",
    }
    fake.forced = (403, json.dumps(body).encode(), "application/json")
    result = run("--url", fake.url, "--tenant", "ops")
    assert result.exit_code == 1
    assert "403 Forbidden (no permissions for [saved_objects])" in result.output
    assert "tenant 'ops'" in result.output
    body = {"statusCode": 400, "error": "Bad Request", "message": "Invalid file extension .txt"}
    fake.forced = (400, json.dumps(body).encode(), "application/json")
    result = run("--url", fake.url)
    assert "answered 400 Bad Request: Invalid file extension .txt" in result.output


def test_wrong_url_and_non_json_answers(fake: FakeDashboards) -> None:
    """A 404 hints at the Dashboards URL/base path; an HTML proxy page is quoted, not parsed."""
    fake.base_path = "/dashboards"
    result = run("--url", fake.url.removesuffix("/dashboards"))
    assert result.exit_code == 1 and "is --url the Dashboards address" in result.output
    assert run("--url", fake.url).exit_code == 0
    fake.forced = (502, b"<html><body>Bad Gateway</body></html>", "text/html")
    result = run("--url", fake.url)
    assert "answered 502 Bad Gateway: <html><body>Bad Gateway</body></html>" in result.output
    fake.forced = (200, b"<html>login page</html>", "text/html")
    result = run("--url", fake.url)
    assert "answered something that is not JSON: <html>login page</html>" in result.output


def test_tenant_header(fake: FakeDashboards) -> None:
    """--tenant is sent as the security plugin's securitytenant header."""
    assert run("--url", fake.url, "--tenant", "global").exit_code == 0
    assert fake.requests[-1].headers["securitytenant"] == "global"


def test_prefix_imports_objects_for_that_prefix(fake: FakeDashboards) -> None:
    """--prefix sends the rendering for that prefix, under a matching file name."""
    assert run("--url", fake.url, "--prefix", "acme").exit_code == 0
    req = fake.requests[-1]
    assert req.file_name == "acme.ndjson"
    assert req.file_content == dc.render_ndjson("acme").encode()
    assert ("index-pattern", "acme-events") in fake.stored


def test_connection_refused_is_a_clear_error() -> None:
    """Nothing listening on the port gives 'connection refused', not a traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("--url", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1
    assert (
        f"cannot connect to Dashboards at http://127.0.0.1:{port}: connection refused"
        in result.output
    )
    assert "Traceback" not in result.output


def test_password_without_user_is_a_usage_error() -> None:
    """--password alone is refused before any request is made."""
    result = run("--url", "http://127.0.0.1:1", "--password", "x")
    assert result.exit_code == 2 and "--password needs --user" in result.output


@pytest.fixture
def tls_files(tmp_path: Path) -> Certificates:
    """A test CA and a certificate for 127.0.0.1 it signed (made with the openssl CLI)."""
    return make_certificates(tmp_path / "tls")


def test_tls_with_ca_certs_and_insecure(tls_files: Certificates) -> None:
    """HTTPS verifies with --ca-certs, fails clearly without it; --insecure skips verification."""
    server = FakeDashboards(users={"admin": "pw"}).start(
        tls=(str(tls_files.cert), str(tls_files.key))
    )
    try:
        assert server.url.startswith("https://")
        result = run("--url", server.url, "--user", "admin", "--password", "pw")
        assert result.exit_code == 1
        assert "TLS with" in result.output and "--ca-certs" in result.output
        result = run(
            "--url",
            server.url,
            "--user",
            "admin",
            "--password",
            "pw",
            "--ca-certs",
            str(tls_files.ca),
        )
        assert result.exit_code == 0, result.output
        result = run(
            "--url", server.url, "--user", "admin", "--password", "pw", "--insecure", "--overwrite"
        )
        assert result.exit_code == 0, result.output
        assert server.requests[-1].headers["authorization"].startswith("Basic ")
    finally:
        server.stop()
