"""docker-compose.yml is valid and says what the stack needs (no Docker engine needed).

`docker-compose config` validates and interpolates the file exactly as
`docker-compose up` would; the resolved config is then checked for the five
services, pinned images, loopback-only ports, named volumes, healthchecks and
health-gated start order. docker-compose missing is a failure, not a skip:
`make test` installs it (Debian package `docker-compose`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PASSWORD = "Test-only-Pw1!"  # used only to interpolate the file here, never a real secret

SERVICES = {"opensearch", "dashboards", "indexer", "web", "demo"}
APP_SERVICES = {"indexer", "web", "demo"}
PORTS = {"opensearch": 9200, "dashboards": 5601, "web": 8080}
ONE_SHOT = {"demo"}  # runs, seeds the store, exits: no healthcheck, no restart
SPOOL = "/var/lib/useraudit/spool"


def _compose() -> str:
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.fail(
            "docker-compose is not installed (apt-get install -y docker-compose; "
            "`make test` does it)"
        )
    return exe


def _run(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    # A minimal environment: compose interpolates variables from it before
    # .env, and e.g. `make test OPENSEARCH_PORT=9280` exports one of ours.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    if password is not None:
        env["OPENSEARCH_INITIAL_ADMIN_PASSWORD"] = password
    # --env-file: the committed example, never a developer's own .env.
    return subprocess.run(
        [
            _compose(),
            "--env-file",
            str(ENV_EXAMPLE),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _load_yaml(text: str) -> dict[str, Any]:
    """Parse YAML with PyYAML: ours if installed, else the one docker-compose runs on."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        shebang = Path(_compose()).read_text(errors="replace").splitlines()[0]
        interpreter = shebang[2:].strip().split()
        out = subprocess.run(
            [
                *interpreter,
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
            ],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = _run("config")
    assert result.returncode == 0, result.stderr
    return _load_yaml(result.stdout)


def test_config_is_valid() -> None:
    result = _run("config", "-q")
    assert result.returncode == 0, result.stderr


def test_refuses_to_run_without_the_admin_password() -> None:
    """No default password is committed: without .env, compose stops with a hint."""
    result = _run("config", "-q", password=None)
    assert result.returncode != 0
    assert "OPENSEARCH_INITIAL_ADMIN_PASSWORD" in result.stderr


def test_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == SERVICES


def test_images_are_pinned(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["opensearch"]["image"] == "opensearchproject/opensearch:2.19.1"
    assert services["dashboards"]["image"] == "opensearchproject/opensearch-dashboards:2.19.1"
    for name, svc in services.items():
        image = svc.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: image {image!r} has no tag"
        assert not image.endswith(":latest"), f"{name}: unpinned image {image!r}"
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build["context"]
        assert Path(context).resolve() == ROOT, name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)


def _published(port: Any) -> tuple[str, int, int]:
    """(host ip, host port, container port) from short or long port syntax."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["published"]), int(port["target"])
    match = re.fullmatch(r"(?:(?P<ip>[\d.]+):)?(?P<host>\d+):(?P<target>\d+)(?:/\w+)?", str(port))
    assert match, f"unexpected port syntax {port!r}"
    return match["ip"] or "", int(match["host"]), int(match["target"])


def test_ports_are_published_on_loopback_only(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, svc in services.items():
        ports = [_published(p) for p in svc.get("ports", [])]
        if name in PORTS:
            assert ("127.0.0.1", PORTS[name], PORTS[name]) in ports, (name, ports)
        assert all(ip == "127.0.0.1" for ip, _, _ in ports), (name, ports)
    assert "ports" not in services["indexer"] and "ports" not in services["demo"]


def _mounts(svc: dict[str, Any]) -> dict[str, str]:
    """container path -> named volume source."""
    out = {}
    for vol in svc.get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type", "volume") == "volume":
                out[vol["target"]] = vol["source"]
        else:
            source, target = str(vol).split(":")[:2]
            if not source.startswith(("/", ".")):
                out[target] = source
    return out


def test_named_volumes_for_data_and_spool(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {"opensearch-data", "spool"} <= set(config["volumes"])
    assert _mounts(services["opensearch"])["/usr/share/opensearch/data"] == "opensearch-data"
    # The UI records its own events (sign-ins) into the spool the indexer reads.
    for name in ("indexer", "web"):
        assert _mounts(services[name]).get(SPOOL) == "spool", name
        assert services[name]["environment"]["USERAUDIT_SPOOL"] == SPOOL, name


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no", f"{name} would be restarted after it finished"
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert svc["restart"] == "unless-stopped", name


def test_start_order_waits_for_health(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("dashboards", "indexer", "web", "demo"):
        assert services[name]["depends_on"]["opensearch"]["condition"] == "service_healthy"
    for svc in services.values():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), "depends_on must name a condition"
        assert all(d["condition"] == "service_healthy" for d in deps.values())


def test_security_on_and_no_secret_committed(config: dict[str, Any]) -> None:
    services = config["services"]
    env = services["opensearch"]["environment"]
    assert env["OPENSEARCH_INITIAL_ADMIN_PASSWORD"] == PASSWORD
    assert "DISABLE_SECURITY_PLUGIN" not in env
    assert services["indexer"]["environment"]["USERAUDIT_STORE"].startswith(
        f"https://admin:{PASSWORD}@opensearch:9200"
    )
    # The password only ever comes from the environment / .env.
    raw = COMPOSE_FILE.read_text()
    for line in raw.splitlines():
        if "PASSWORD" in line and ":" in line and not line.lstrip().startswith("#"):
            value = line.split(":", 1)[1]
            assert "PASSWORD" in value or "$" in value, f"literal secret? {line!r}"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["OPENSEARCH_INITIAL_ADMIN_PASSWORD"] == ""
    if (ROOT / ".git").exists() and shutil.which("git"):
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", ".env"])
        assert ignored.returncode == 0, ".env must be git-ignored"


def test_image_install_has_everything_the_services_need(tmp_path: Path) -> None:
    """The Dockerfile's COPY list + `pip install .` must carry all code and data files.

    Builds the wheel from exactly the paths the Dockerfile copies (a non-editable
    install, as in the image) and checks that templates, static files and the
    other package data are inside; an editable dev install would hide a gap.
    """
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied: list[str] = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            copied += sources
    src = tmp_path / "src"
    src.mkdir()
    for rel in copied:
        path = ROOT / rel
        if path.is_dir():
            # symlinks=True: COPY keeps useraudit/'s links to the top-level folders.
            shutil.copytree(
                path, src / rel, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(path, src / rel)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("useraudit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    def expected(folder: str, package: str) -> set[str]:
        return {
            f"useraudit/{package}/{p.relative_to(ROOT / folder).as_posix()}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }

    wanted = (
        expected("webapp", "webapp")
        | expected("index_templates", "index_templates")
        | expected("middleware", "middleware")
        | expected("indexer", "indexer")
        | expected("store", "store")
        | expected("devnode", "devnode")
        | expected("demo", "demo")
        | expected("detect", "detect")
        | expected("integrity", "integrity")
        | {"useraudit/cli.py", "useraudit/config.py", "useraudit/spool.py"}
    )
    missing = sorted(wanted - names)
    assert not missing, f"not in the image's install (pyproject package/package-data?): {missing}"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "useraudit = useraudit.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
