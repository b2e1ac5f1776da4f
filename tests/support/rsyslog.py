"""A real rsyslogd on 127.0.0.1 for the syslog sink tests.

Installs the Debian packages ``rsyslog`` and ``rsyslog-openssl`` (TLS) when
missing, writes a config that listens on a free loopback port (plain TCP or
TLS with the test CA's certificate) and writes every message it receives,
parsed as RFC 5424, as one JSON line to a file. Started in the foreground
(``-n``) with its own PID file and work directory, so it never touches the
machine's own syslog; stopped by its PID only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .tls import Certificates

PACKAGES = {
    "rsyslogd": "rsyslog",
    "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so": "rsyslog-openssl",
}


def ensure_installed() -> str:
    """rsyslogd's path; apt-get installs the packages first when they are missing."""
    missing = [
        pkg
        for what, pkg in PACKAGES.items()
        if not (Path(what).exists() if what.startswith("/") else shutil.which(what))
    ]
    if missing:
        if os.geteuid() != 0:
            raise RuntimeError(f"need root to apt-get install {missing} (or install them)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for attempt in range(10):  # another apt may hold the dpkg lock for a while
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", *missing],
                env=env,
                capture_output=True,
                timeout=900,
            )
            if done.returncode == 0:
                break
            time.sleep(5 + attempt * 5)
        else:
            raise RuntimeError(f"apt-get install {missing} failed: {done.stderr.decode()[-2000:]}")
    found = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(found).exists():
        raise RuntimeError("rsyslogd not found after installing rsyslog")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    """One rsyslogd; ``start()``/``stop()`` may be called again (a restart keeps the port)."""

    def __init__(self, folder: Path, certs: Certificates | None = None) -> None:
        self.binary = ensure_installed()
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.work = folder / "work"
        self.work.mkdir(exist_ok=True)
        self.received = folder / "received.jsonl"
        self.pid_file = folder / "rsyslogd.pid"
        self.config = folder / "rsyslog.conf"
        self.port = free_port()
        self.tls = certs is not None
        self.proc: subprocess.Popen[bytes] | None = None
        driver = ""
        stream = ""
        if certs is not None:
            driver = (
                f'global(defaultNetstreamDriver="ossl" defaultNetstreamDriverCAFile="{certs.ca}" '
                f'defaultNetstreamDriverCertFile="{certs.cert}" '
                f'defaultNetstreamDriverKeyFile="{certs.key}")\n'
            )
            stream = ' streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon"'
        self.config.write_text(
            f'global(workDirectory="{self.work}")\n' + driver + f'module(load="imtcp"{stream})\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.port}")\n'
            # A graceful stop writes everything already taken in.
            'main_queue(queue.timeoutShutdown="30000")\n'
            'template(name="parsed" type="list" option.jsonf="on") {\n'
            '  property(outname="pri" name="pri" format="jsonf")\n'
            '  property(outname="received" name="timegenerated" dateFormat="unixtimestamp"'
            ' format="jsonf")\n'
            '  property(outname="timestamp" name="timereported" dateFormat="rfc3339"'
            ' format="jsonf")\n'
            '  property(outname="hostname" name="hostname" format="jsonf")\n'
            '  property(outname="app" name="app-name" format="jsonf")\n'
            '  property(outname="procid" name="procid" format="jsonf")\n'
            '  property(outname="msgid" name="msgid" format="jsonf")\n'
            '  property(outname="sd" name="structured-data" format="jsonf")\n'
            '  property(outname="msg" name="msg" format="jsonf")\n'
            '  property(outname="protocol_version" name="protocol-version" format="jsonf")\n'
            "}\n"
            f'action(type="omfile" file="{self.received}" template="parsed")\n'
        )

    def start(self, wait: float = 30.0) -> None:
        log = open(self.folder / "rsyslogd.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.config), "-i", str(self.pid_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rsyslogd exited: {(self.folder / 'rsyslogd.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("rsyslogd did not listen in time")

    def stop(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # by our child's PID only
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def messages(self) -> list[dict[str, Any]]:
        if not self.received.exists():
            return []
        return [json.loads(line) for line in self.received.read_text().splitlines() if line]
