"""bench.verify: like-for-like shipments, its statistic, and a tiny end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.verify import paired, shipment_env

REPO = Path(__file__).resolve().parents[2]


def test_a_shipment_runs_with_its_rounds_hash_seed_and_keys_only_when_sealing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERAUDIT_KEYS", "/somewhere/else")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    off = shipment_env(tmp_path, None, 2003)
    on = shipment_env(tmp_path, tmp_path / "keys", 2003)
    assert off["PYTHONHASHSEED"] == on["PYTHONHASHSEED"] == "2003"
    assert "USERAUDIT_KEYS" not in off
    assert on["USERAUDIT_KEYS"] == str(tmp_path / "keys")


def test_the_statistic_is_the_median_of_paired_rounds_with_best_vs_best_beside() -> None:
    # Costs (seconds): the base side warms up over the run, the other is 10 % dearer each round.
    base = [10.0, 9.0, 8.0, 7.0]
    other = [11.0, 9.9, 8.8, 7.7]
    out = paired("x", base, other)
    assert out["x"] == pytest.approx(1 / 1.1, abs=1e-3)
    assert out["x_best_vs_best"] == pytest.approx(7.0 / 7.7, abs=1e-3)
    assert out["x_rounds"] == [round(1 / 1.1, 3)] * 4
    assert "x_rounds" not in paired("x", base, other, rounds=False)


def test_bench_verify_runs_end_to_end_and_reports_the_aa_pair() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.verify", "--events", "300", "--rounds", "2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warm-up (not counted)" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(result["ingest_on_vs_off_rounds"]) == len(result["aa_off_again_vs_off_rounds"]) == 2
    for key in ("ingest_on_vs_off", "aa_off_again_vs_off", "cpu_on_vs_off", "verify_vs_export"):
        assert result[key] > 0, key
    assert set(result["cpu_us_per_event"]) == {"on", "off", "off_again"}
    assert all(v > 0 for v in result["cpu_us_per_event"].values())
