"""The user's latency budget, enforced: simulator → plant → Redis → gateway →
100 msgpack clients (in their own process) over loopback, 20 s at 20k ticks/s.
It fails if the end-to-end p99 (client decode time - plant receive time) is
50 ms or more, or if any client misses, duplicates or reorders a tick.

This is the one test that asserts a wall-clock figure, because the issue asks
for exactly that budget check (issue 7). It runs on the release build only:
`make test-debug` (PYTHONASYNCIODEBUG=1, an -O0 extension with line tracing)
measures the debugging machinery, not fastflow, and skips it.
"""

from __future__ import annotations

import os

import pytest

from fastflow.tools.e2e import BUDGET_P99_MS, E2EOptions, one_line, run_once
from tests.waiting import synchronous

pytestmark = pytest.mark.skipif(bool(os.environ.get("PYTHONASYNCIODEBUG")),
                                reason="the latency budget is a release-build property (make test runs it)")

RATE = 20_000.0
CLIENTS = 100
SECONDS = float(os.environ.get("FASTFLOW_BUDGET_SECONDS", "20"))


@synchronous
async def test_end_to_end_p99_under_50ms_and_no_tick_lost_or_reordered() -> None:
    result = await run_once(E2EOptions(rate=RATE, clients=CLIENTS, watch=50, duration=SECONDS, warmup=2.0,
                                       check=True), report=print)
    summary = one_line(result)
    print(summary)
    # The pipeline carried the load: the plant took (nearly) the simulator's rate and
    # every client got ticks of its instruments.
    assert result["plant_ticks_per_s"] >= 0.9 * RATE, summary
    assert result["clients_without_frames"] == 0 and result["disconnects"] == 0, result
    # Every tick of every client's instruments, exactly once and in order.
    delivery = result["delivery"]
    assert delivery["symbols"] == CLIENTS * 50, (f"{delivery['symbols']} of {CLIENTS * 50} watched symbols seen; "
                                                 f"never seen: {delivery['unseen']}")
    assert result["conflations"] == 0, f"a client fell behind (conflated), so it did not keep up: {result}"
    assert delivery["caught_up"], delivery
    assert delivery["lost"] == 0 and delivery["extra"] == 0, delivery
    assert delivery["unverifiable"] == 0, delivery
    assert result["seq_errors"] == 0 and result["foreign"] == 0 and result["scan_mismatch"] == 0, result
    assert delivery["published_out_of_order"] == 0, delivery
    # The budget.
    p99 = result["e2e"]["p99_ms"]
    assert result["e2e"]["samples"] > 0
    assert p99 is not None and p99 < BUDGET_P99_MS, f"end-to-end p99 {p99} ms over the {BUDGET_P99_MS:g} ms budget: {summary}"
