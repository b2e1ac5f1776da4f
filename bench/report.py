"""Run every benchmark; write the run to docs/bench/last-run.md and redraw the plots.

    python -m bench.report [--opensearch URL] [--quick] [--only indexer,search]

Each benchmark runs as ``python -m bench.NAME`` in its own process; its last
output line (one JSON object) is kept in ``docs/bench/results.json`` with
the exact command, the date and the machine. Plots are drawn with
matplotlib into ``docs/bench/*.png`` and the report is rewritten from all
results gathered so far (``--only`` refreshes some and keeps the others).
``make bench`` runs this against a node it starts and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "bench"
RESULTS = OUT / "results.json"

# name -> (full-size arguments, quick arguments, option that takes the node URL,
#          what the ratio is against)
BENCHES: dict[str, tuple[list[str], list[str], str | None, str]] = {
    "middleware": (
        ["--rounds", "5"],
        ["--rounds", "2", "-n", "5000", "--seconds", "2"],
        None,
        "the same hello-world apps bare, and under sentry-sdk and OpenTelemetry, same rounds",
    ),
    "instructions": (
        ["--floor"],
        ["-n", "200", "--only", "quiet,record"],
        None,
        "the same hello-world apps bare, and under sentry-sdk and OpenTelemetry, under callgrind",
    ),
    "indexer": (
        ["--events", "200000", "--rounds", "2"],
        ["--events", "30000", "--rounds", "1"],
        "--url",
        "opensearchpy.helpers.bulk of the same documents into the same node",
    ),
    "indexers": (
        ["--events", "120000"],
        ["--events", "30000"],
        "--url",
        "one indexer process on the same spool",
    ),
    "search": (
        ["--events", "1000000"],
        ["--events", "100000", "--rounds", "10"],
        "--opensearch",
        "the same OpenSearch queries sent raw",
    ),
    "export": (
        [],
        ["--events", "100000", "--rows", "20000", "--repeat", "1"],
        "--opensearch",
        "openpyxl write-only writing the same rows",
    ),
    "backends": (
        ["--events", "1000000"],
        ["--events", "100000", "--reps", "10"],
        "--opensearch",
        "the same events and queries on OpenSearch",
    ),
    "load": (
        ["--events", "1000000"],
        ["--events", "100000", "--clients", "20", "--seconds", "20"],
        "--opensearch",
        "the same queries straight to the store from as many threads",
    ),
    "api": (
        ["--events", "1000000"],
        ["--events", "100000", "--rounds", "10"],
        "--opensearch",
        "the same OpenSearch query sent raw",
    ),
    "sinks": (
        ["--events", "50000", "--rounds", "3"],
        ["--events", "20000", "--rounds", "1"],
        "--url",
        "the same indexer without sinks, same spool and node (sinks: webhook, rsyslog, Kafka)",
    ),
    "detect": (
        ["--events", "20000", "--rounds", "2"],
        ["--events", "10000", "--rounds", "1", "--latency-seconds", "10"],
        "--opensearch",
        "the same indexer and spool with detection off",
    ),
    "chaos": (
        ["--requests", "100000", "--faults", "3"],
        ["--requests", "10000", "--faults", "1"],
        None,
        "exact: stored ids vs acknowledged ids",
    ),
}


def machine() -> dict[str, Any]:
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(name: str, quick: bool, url: str) -> dict[str, Any]:
    full, small, url_opt, _ = BENCHES[name]
    cmd = [sys.executable, "-m", f"bench.{name}", *(small if quick else full)]
    if url_opt:
        cmd += [url_opt, url]
    shown = "python -m bench." + name + " " + shlex.join(cmd[3:])
    print(f">> {shown}", flush=True)
    t0 = time.time()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": (done.stderr or done.stdout)[-2000:]}
    print(json.dumps(result), flush=True)
    return {
        "command": shown,
        "exit_code": done.returncode,
        "seconds": round(time.time() - t0),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": quick,
        "machine": machine(),
        "result": result,
    }


def plots(results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    ratios = []
    for name, key, target, higher_is_better in (
        ("indexer", "ratio_indexer_vs_raw_bulk", 0.9, True),
        ("middleware", "gunicorn_quiet_ratio", 0.97, True),
        ("middleware", "uvicorn_quiet_ratio", 0.97, True),
        ("middleware", "gunicorn_record_share_of_cheapest_peer", 0.25, False),
        ("middleware", "uvicorn_record_share_of_cheapest_peer", 0.25, False),
        ("search", "search.ratio_p50", 1.25, False),
        ("search", "deep.ratio_p50", 1.25, False),
        ("search", "details.ratio_p50", 1.25, False),
        ("export", "ratio", 0.8, True),
        ("sinks", "ratio_with_sinks_vs_alone", 0.8, True),
        ("api", "list.ratio_p95", 1.25, False),
        ("api", "deep.ratio_p95", 1.25, False),
        ("load", "ratio_ui_vs_direct_p95", None, False),
        ("indexers", "ratio_2_vs_1", None, True),
        ("detect", "sqlite.ratio_detect_on_vs_off", 0.85, True),
    ):
        value: Any = results.get(name, {}).get("result", {})
        for part in key.split("."):  # nested figures: "search.ratio_p95"
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            ratios.append((f"{name}\n{key}", value, target, higher_is_better))
    if ratios:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        labels = [r[0] for r in ratios]
        values = [r[1] for r in ratios]
        colors = []
        for _, v, target, higher in ratios:
            ok = target is None or (v >= target if higher else v <= target)
            colors.append("#2f7d4f" if ok else "#b3412f")
        ax.bar(range(len(values)), values, color=colors)
        for i, (_, v, target, _) in enumerate(ratios):
            ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=9)
            if target is not None:
                ax.plot(
                    [i - 0.4, i + 0.4], [target, target], color="black", linestyle="--", linewidth=1
                )
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_ylabel("ratio (dashed: target)")
        ax.set_title("useraudit benchmark ratios against same-run baselines (green: target met)")
        fig.tight_layout()
        path = OUT / "ratios.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    indexers = results.get("indexers", {}).get("result", {})
    if indexers.get("events_per_s_1"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ks = [1, 2, 3]
        ax.plot(ks, [indexers.get(f"events_per_s_{k}", 0) for k in ks], marker="o")
        ax.set_xticks(ks)
        ax.set_xlabel("indexer processes on one spool")
        ax.set_ylabel("events / s (total)")
        ax.set_title("Indexer scaling")
        fig.tight_layout()
        path = OUT / "indexers.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path.name)
    return made


def render(results: dict[str, Any], images: list[str]) -> str:
    """The last run, benchmark by benchmark (docs/BENCHMARKS.md keeps the current figures)."""
    lines = [
        "# The last benchmark report",
        "",
        "What `python -m bench.report` measured last, as it printed it; the current "
        "figure of each benchmark, with its target, is in [../BENCHMARKS.md](../BENCHMARKS.md) "
        "and earlier runs in [history.md](history.md). Raw results: "
        "[`results.json`](results.json).",
        "",
    ]
    for image in images:
        lines += [f"![{image}]({image})", ""]
    for name, (_full, _small, _url, baseline) in BENCHES.items():
        entry = results.get(name)
        lines.append(f"## {name}")
        lines.append("")
        if not entry:
            lines += ["Not run yet.", ""]
            continue
        m = entry["machine"]
        lines += [
            f"- command: `{entry['command']}`" + (" (quick size)" if entry.get("quick") else ""),
            f"- baseline: {baseline}",
            f"- when: {entry['date']}, {entry['seconds']} s; "
            f"machine: {m['cores']} cores, {m['memory_gib']} GiB,"
            f" Python {m['python']}; exit code {entry['exit_code']}",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        for key, value in entry["result"].items():
            if (
                key in ("bench",)
                or isinstance(value, (dict, list))
                and len(json.dumps(value)) > 300
            ):
                continue
            lines.append(
                f"| {key} | {json.dumps(value) if isinstance(value, (dict, list)) else value} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--opensearch", default=os.environ.get("USERAUDIT_TEST_OPENSEARCH", "http://127.0.0.1:9250")
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    ap.add_argument(
        "--render-only", action="store_true", help="redraw plots and the report from results.json"
    )
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if not args.render_only:
        names = [n for n in args.only.split(",") if n] or list(BENCHES)
        for name in names:
            results[name] = run(name, args.quick, args.opensearch)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    images = plots(results)
    (OUT / "last-run.md").write_text(render(results, images))
    print(f"wrote docs/bench/last-run.md and {len(images)} plot(s)")


if __name__ == "__main__":
    main()
