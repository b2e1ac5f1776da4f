"""A real single-node Apache Kafka 4.x broker in KRaft mode, for the Kafka sink tests.

Its jars come from Maven Central (``org.apache.kafka:kafka_2.13`` and its
dependencies, listed in ``kafka-pom.xml``), fetched once with ``mvn
dependency:copy-dependencies`` into ``<home>/lib`` — the way
``useraudit opensearch start`` gets OpenSearch's. The storage is formatted
with the KRaft storage tool (``kafka.tools.StorageTool format``), and the
broker (combined broker + controller) listens on free loopback ports. It is
started and stopped by PID (``stop()`` then ``start()`` again is a restart
with the same ports and data). Java 17+ (Kafka 4 brokers need it).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

VERSION = "4.0.0"
POM = Path(__file__).with_name("kafka-pom.xml")
REPO = Path(__file__).resolve().parents[2]


def default_home() -> Path:
    return Path(os.environ.get("USERAUDIT_TEST_KAFKA_HOME", REPO / ".useraudit" / "test-kafka"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch_jars(home: Path) -> Path:
    lib = home / "lib"
    marker = lib / ".version"
    if marker.is_file() and marker.read_text().strip() == VERSION:
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise RuntimeError("Maven (mvn) is needed to fetch Kafka's jars: apt-get install -y maven")
    staging = home / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [
        mvn, "-B", "-ntp", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}", f"-Dkafka.version={VERSION}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, cwd=home)
    if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"mvn failed ({done.returncode}): {done.stdout[-3000:]}")
    (staging / ".version").write_text(VERSION + "\n")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def java() -> str:
    found = shutil.which("java")
    if not found:
        raise RuntimeError(
            "Java 17+ is needed for the Kafka broker: apt-get install -y openjdk-17-jre-headless"
        )
    return found


class KafkaBroker:
    def __init__(self, folder: Path, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.lib = fetch_jars(self.home)
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port, self.controller_port = free_port(), free_port()
        self.properties = folder / "server.properties"
        self.properties.write_text(
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={folder / 'data'}\n"
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "num.partitions=3\n"
            "group.initial.rebalance.delay.ms=0\n"
        )
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self._java(
            # "--cluster-id=ID": a random id may start with "-", which a separate
            # argument would make the tool read as an option.
            [
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                "-c",
                str(self.properties),
            ],
            timeout=180,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, args: list[str], timeout: float) -> None:
        done = subprocess.run(
            [java(), "-Xmx256m", "-cp", f"{self.lib}/*", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self, wait: float = 120.0) -> None:
        log = open(self.folder / "broker.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [java(), "-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-cp", f"{self.lib}/*",
             "kafka.Kafka", str(self.properties)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited: {self.log_tail()}")
            if "Kafka Server started" in self.log_tail(200):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Kafka did not start in {wait}s: {self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.folder / "broker.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 60.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # our child's PID only
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        # the next start must see it gone from the log
        log = self.folder / "broker.log"
        log.rename(log.with_suffix(f".{int(time.time() * 1000)}.log"))
