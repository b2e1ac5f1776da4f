"""Request ids are unique within a process and across forked workers, and cheap."""

from __future__ import annotations

import os

from useraudit.middleware._common import request_id


def test_request_ids_are_unique_within_and_across_forks() -> None:
    """10,000 ids in this process and 10,000 in a forked child never collide; a sane
    X-Request-ID header is kept and an unsafe one replaced."""
    mine = {request_id(None) for _ in range(10_000)}
    assert len(mine) == 10_000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its ids and leave without running atexit hooks
        os.close(read)
        with os.fdopen(write, "w") as out:
            out.write("\n".join(request_id(None) for _ in range(10_000)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as inp:
        theirs = set(inp.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(theirs) == 10_000 and not mine & theirs
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in mine)
    assert request_id("req-42") == "req-42"
    assert request_id("bad id\nwith newline") != "bad id\nwith newline"
