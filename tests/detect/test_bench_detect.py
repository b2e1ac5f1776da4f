"""bench.detect runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_detect_runs_and_reports_every_variant() -> None:
    """One round of bare, GeoIP-only and detection on SQLite, and a short latency run."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.detect", "--events", "400", "--rounds", "1"]
        + ["--latency-seconds", "1.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    sqlite = result["sqlite"]
    for key in (
        "ratio_detect_on_vs_off",
        "ratio_cpu_on_vs_off",
        "ratio_detect_on_vs_bare",
        "alert_p95_ms",
    ):
        assert sqlite[key] > 0, key
    assert sqlite["alert_samples"] >= 4
    assert sqlite["detection_counters"]["examined"] > 0
    assert sqlite["cpu_us_per_event"]["detect"] > 0
