"""The CI-sized chaos run: 10,000 requests with one fault of each kind
lose and duplicate nothing."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import chaos  # noqa: E402


def test_chaos_run_delivers_every_acknowledged_event_exactly_once(tmp_path: Path) -> None:
    """Gunicorn worker, indexer and OpenSearch each killed once mid-run:
    stored ids == acknowledged ids."""
    result = chaos.run(requests=10_000, faults=1, concurrency=16, workdir=tmp_path)
    print(result)
    assert result["acknowledged"] == 10_000
    assert result["missing"] == 0 and result["unexpected"] == 0
    assert result["duplicates"] == 0
    assert result["dead_letters"] == 0
    assert len(result["faults"]) == 3
    assert result["ok"] is True
