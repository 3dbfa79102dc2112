"""The whole pipeline, short form: one two-second end-to-end run through the
real processes, with sanity checks only.

The full suite, its rate and client matrix and its results table are
``fastflow bench e2e`` / ``bench/e2e.py`` (bench/results/e2e.md); this runs
the same machinery (:func:`fastflow.tools.e2e.run_once`) small enough for ``make
test``: the embedded Redis, the Kite simulator at :data:`RATE` ticks/s, the
plant and the gateway as subprocesses, and :data:`CLIENTS` msgpack WebSocket
clients (:mod:`fastflow.tools.loadgen`), each subscribed to :data:`WATCH` random
instruments, measured for :data:`SECONDS` s after :data:`WARMUP` s.

The figures (end-to-end p50 / p99 / p99.9, plant receive -> client decode, and
the p99 of the tick's age at each stage) go to ``extra_info``; nothing asserts
a speed, the machine is shared (the latency budget is tests/e2e/test_e2e_budget.py).
It asserts only that the run measured something and was sane: latency samples,
no seq out of order, no tick of a symbol off a client's watchlist, and the plant
kept up with the simulator.

It records nothing in conftest's throughput tables (``record``): a single
latency run has no throughput to compare, and ``--results-dir`` would write
that suite's table over bench/results/e2e.md, which is the full suite's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastflow.tools.e2e import STAGES, E2EOptions, one_line, run_once

RATE = 1000.0
CLIENTS = 10
WATCH = 50
SECONDS = 2.0
WARMUP = 0.5


def bench_e2e_latency(benchmark: Any) -> None:
    benchmark.group = "e2e: simulator -> plant -> Redis -> gateway -> clients"
    options = E2EOptions(rate=RATE, clients=CLIENTS, watch=WATCH, duration=SECONDS, warmup=WARMUP)

    def run() -> dict[str, Any]:
        return asyncio.run(run_once(options, report=lambda message: None))

    r = benchmark.pedantic(run, rounds=1, iterations=1)
    e2e = r["e2e"]
    benchmark.extra_info.update({
        "rate": RATE, "clients": CLIENTS, "watchlist": WATCH, "seconds": r["duration_s"],
        "plant_ticks_per_s": r["plant_ticks_per_s"], "delivered_ticks_per_s": r["delivered_ticks_per_s"],
        "e2e_samples": e2e["samples"], "e2e_p50_ms": e2e["p50_ms"], "e2e_p99_ms": e2e["p99_ms"],
        "e2e_p99.9_ms": e2e["p99.9_ms"],
        **{f"{stage}_p99_ms": r["hops"][stage]["p99_ms"] for stage in STAGES},
        "conflations": r["conflations"], "machine_busy": r["machine_busy"], "wall_s": r["wall_s"],
    })
    summary = one_line(r)
    print(f"\ne2e: {CLIENTS} clients x {WATCH} symbols at {RATE:,.0f} ticks/s, {SECONDS:g} s: {summary}; "
          f"wall {r['wall_s']:g} s")
    assert e2e["samples"] > 0, summary  # the clients received ticks in the window
    assert r["seq_errors"] == 0, r  # each symbol's ticks in seq order
    assert r["foreign"] == 0, r  # no tick of a symbol off the client's watchlist
    assert r["kept_up"], summary  # the plant took (nearly) the simulator's rate
