"""Benchmark plumbing: collect throughput per (suite, workload, implementation)
during the run, then print one table with ratios against the baseline measured
in the same run; with ``--results-dir`` (``make bench``) also save it there."""

from __future__ import annotations

import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# suite -> workload -> implementation -> {"unit_per_s": ..., "median_s": ..., ...}
_RESULTS: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
_BASELINES: dict[str, str] = {}


class Recorder:
    def __init__(self, benchmark: Any) -> None:
        self.benchmark = benchmark

    def __call__(self, suite: str, workload: str, impl: str, units: int, unit: str, fn: Any, *, baseline: str) -> None:
        """Benchmark ``fn`` (one call = ``units`` units of work) and record it."""
        self.benchmark.group = f"{suite}: {workload}"
        self.benchmark.extra_info.update({"units_per_call": units, "unit": unit})
        self.benchmark(fn)
        stats = self.benchmark.stats
        if stats is None:  # --benchmark-disable
            fn()
            return
        median = stats.stats.median
        per_s = units / median if median > 0 else float("inf")
        self.benchmark.extra_info[f"{unit}_per_s"] = round(per_s)
        self.benchmark.extra_info["ns_per_unit"] = round(median / units * 1e9, 2)
        _BASELINES[suite] = baseline
        _RESULTS[suite][workload][impl] = {
            "unit": unit,
            "per_s": per_s,
            "ns_per_unit": median / units * 1e9,
            "median_s": median,
            "iqr_s": stats.stats.iqr,
            "rounds": stats.stats.rounds,
        }


@pytest.fixture
def record(benchmark: Any) -> Recorder:
    return Recorder(benchmark)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _table(suite: str) -> list[str]:
    baseline = _BASELINES[suite]
    rows = []
    for workload, impls in _RESULTS[suite].items():
        base = impls.get(baseline)
        for impl, r in sorted(impls.items(), key=lambda kv: -kv[1]["per_s"]):
            ratio = f"{r['per_s'] / base['per_s']:.1f}x" if base else "n/a"
            rows.append(
                f"| {workload} | {impl} | {r['per_s']:,.0f} {r['unit']}/s | {r['ns_per_unit']:.1f} ns | {ratio} |"
            )
    head = [
        f"### {suite} (ratio against {baseline}, same run)",
        "",
        "| workload | implementation | median throughput | per unit | vs baseline |",
        "|---|---|---|---|---|",
    ]
    return head + rows


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--results-dir",
        default=None,
        help="write the summary tables as JSON and markdown into this directory (make bench: bench/results)",
    )
    parser.addoption(
        "--flow-seconds",
        default="600",
        help="market seconds the options-flow benchmark runs (make test: 600; make bench: 22,500, the session)",
    )
    parser.addoption(
        "--flow-latency-seconds",
        default="0",
        help="measured seconds of the flow latency run (make test: 0, skipped; make bench: 10)",
    )
    parser.addoption(
        "--flow-surge-seconds",
        default="0",
        help="seconds of the sustained options-flow run (make test: 0, skipped; make bench: 10)",
    )
    parser.addoption(
        "--realism-hours",
        default="1",
        help="market hours the simulator realism benchmark runs (make test: 1; make bench: 6.25, the session)",
    )


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not _RESULTS:
        return
    lines = [f"Machine: {_machine()}", ""]
    for suite in _RESULTS:
        lines += [*_table(suite), ""]
    terminalreporter.write_sep("=", "fastflow benchmark summary")
    for line in lines:
        terminalreporter.write_line(line)
    target = config.getoption("--results-dir")
    if not target:
        return
    results_dir = Path(target)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for suite, workloads in _RESULTS.items():
        name = suite.replace(" ", "_")
        payload = {"suite": suite, "baseline": _BASELINES[suite], "machine": _machine(), "when": stamp,
                   "results": workloads}
        (results_dir / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        (results_dir / f"{name}.md").write_text(
            f"Machine: {_machine()}; {stamp}\n\n" + "\n".join(_table(suite)) + "\n"
        )
