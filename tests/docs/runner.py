"""Run the code blocks of a Markdown page the way its reader would.

The convention (also in docs/writing-docs.md, for writers):

* Fenced blocks tagged ``sh``, ``bash``, ``shell``, ``console`` or ``python``
  are run, in page order, in one fresh working directory per page. Blocks
  with any other tag (``toml``, ``json``, ``dql``, none) are text.
* An HTML comment on the line just before a block changes what happens:

  ``<!-- doc-test: not-runnable-here REASON -->``
      not run; counted and printed with its reason (``docker-compose up``,
      a synopsis of options, a fragment of a larger program).
  ``<!-- doc-test: file NAME -->``
      written to NAME in the working directory (the reader saves it),
      not run by itself.
  ``<!-- doc-test: background -->``
      a server the reader leaves running: started in its own process
      group, waited for (the 127.0.0.1 port it names answers), stopped
      when the page is done.

* Shell blocks run with ``bash -euo pipefail``; every ``export`` line of the
  page's earlier shell blocks is run first, as in the reader's terminal.
  Python blocks run as files with the test venv's interpreter, whose
  ``bin`` is first on ``PATH`` (``useraudit``, ``gunicorn``, ``uvicorn``).
* Ports: every port a runnable block names after ``127.0.0.1:`` or
  ``localhost:``, or with ``--port`` / ``-b``, is replaced, consistently
  across the page, by a free one; ports 9200-9299 (OpenSearch) become the
  test node's. ``USERAUDIT_HOME`` starts in the working directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import free_port

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "console": "sh", "python": "python"}
_FENCE = re.compile(r"^(`{3,})([\w+-]*)[^\n]*$")
_MARK = re.compile(r"<!--\s*doc-test:\s*([\w-]+)\s*(.*?)\s*-->")
_PORTS = re.compile(
    r"(?:(?:127\.0\.0\.1|localhost):|--port[ =]|-b [\w.]*:|PORT=)(\d{4,5})\b", re.ASCII
)


@dataclass
class Block:
    page: Path
    line: int
    lang: str  # "sh", "python" or the raw tag for text blocks
    code: str
    mark: str = ""  # "", "not-runnable-here", "file", "background"
    arg: str = ""

    @property
    def runnable(self) -> bool:
        return self.lang in ("sh", "python") and self.mark != "not-runnable-here"

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with the doc-test mark on the line before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        ticks, tag = fence.group(1), fence.group(2).lower()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith(ticks):
            body.append(lines[i])
            i += 1
        i += 1
        prev = lines[start - 1].strip() if start > 0 else ""
        mark = _MARK.fullmatch(prev)
        out.append(
            Block(
                page=page,
                line=start + 1,
                lang=RUNNABLE.get(tag, tag),
                code="\n".join(body) + "\n",
                mark=mark.group(1) if mark else "",
                arg=mark.group(2) if mark else "",
            )
        )
    return out


def pages() -> list[Path]:
    """README.md and every docs/*.md, new pages included."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass
class PageRun:
    """A page being run: its directory, environment, port map and background servers."""

    page: Path
    workdir: Path
    env: dict[str, str]
    ports: dict[str, str] = field(default_factory=dict)
    background: list[tuple[Block, subprocess.Popen, Path]] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    ran: list[Block] = field(default_factory=list)
    skipped: list[Block] = field(default_factory=list)

    def port(self, documented: int) -> int:
        """The real port standing in for one the page names."""
        return int(self.ports.get(str(documented), documented))

    def text(self, code: str) -> str:
        for old, new in self.ports.items():
            code = re.sub(rf"\b{old}\b", new, code)
        return code

    def run_all(self, timeout: float = 300) -> None:
        for block in blocks(self.page):
            self.run(block, timeout)

    def run(self, block: Block, timeout: float = 300) -> None:
        if block.lang not in ("sh", "python"):
            return
        if block.mark == "not-runnable-here":
            self.skipped.append(block)
            return
        code = self.text(block.code)
        if block.mark == "file":
            target = self.workdir / block.arg
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
            self.ran.append(block)
            return
        if block.lang == "python":
            script = self.workdir / f"_block_{block.line}.py"
            script.write_text(code)
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", "\n".join([*self.exports, code])]
            self.exports += [
                line.strip() for line in code.splitlines() if line.strip().startswith("export ")
            ]
        if block.mark == "background":
            log = self.workdir / f"_background_{block.line}.log"
            with open(log, "wb") as fh:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.workdir,
                    env=self.env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.background.append((block, proc, log))
            self._wait_ready(block, proc, log, code)
            self.ran.append(block)
            return
        done = subprocess.run(
            argv, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{block.where}: exit {done.returncode}\n--- block\n{code}"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
                + self.background_logs()
            )
        self.ran.append(block)

    def _wait_ready(self, block: Block, proc: subprocess.Popen, log: Path, code: str) -> None:
        ports = [int(p) for p in _PORTS.findall(code)]
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{block.where}: background block exited {proc.returncode}\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            if not ports:
                time.sleep(1.0)  # no port to wait for: give it a moment to start
                return
            if all(_answers(p) for p in ports):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{block.where}: nothing answered on {ports} in 90 s")
            time.sleep(0.1)

    def background_logs(self) -> str:
        return "".join(
            f"\n--- background {b.where}\n{log.read_text(errors='replace')[-2000:]}"
            for b, _, log in self.background
            if log.exists()
        )

    def stop(self) -> None:
        """Stop the page's servers: SIGTERM to each process group we started, then SIGKILL."""
        for _, proc, _ in reversed(self.background):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)

    def __enter__(self) -> PageRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_page(page: Path, workdir: Path, env: dict[str, str] | None = None) -> PageRun:
    """A PageRun with free ports for every port the page's runnable blocks name."""
    workdir.mkdir(parents=True, exist_ok=True)
    test_node = os.environ.get("USERAUDIT_TEST_OPENSEARCH", "http://127.0.0.1:9250")
    node_port = test_node.rsplit(":", 1)[-1].strip("/")
    ports: dict[str, str] = {}
    for block in blocks(page):
        if not block.runnable:
            continue
        for port in _PORTS.findall(block.code):
            if port not in ports:
                ports[port] = node_port if 9200 <= int(port) <= 9299 else str(free_port())
    bin_dir = str(Path(sys.executable).parent)
    base = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "USERAUDIT_HOME": str(workdir / ".useraudit"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    base.pop("USERAUDIT_SPOOL", None)
    base.pop("USERAUDIT_STORE", None)
    return PageRun(page=page, workdir=workdir, env={**base, **(env or {})}, ports=ports)
