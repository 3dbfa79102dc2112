"""Recovery times of the ingest sessions from injected faults, default settings.

    .venv/bin/python bench/recovery.py [--trials 5]

For each broker, against its in-process simulator over loopback, with the
session's default watchdog (5 s) and backoff (0.5 s base, full jitter):

* drop: every connection aborted -> reconnected, and a tick on every
  subscription over the new connection (conservative by up to one send interval);
* silence: the connection goes half-open -> the watchdog notices (Kite: the
  simulator goes silent as a whole, so only detection is timed) and, for
  Upstox, where a reconnect gets a fresh path, ticks flowing again.

Prints a markdown table of median and max seconds. Not part of `make test`
(it waits out real watchdog periods); the figures go into the issue notes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from fastflow.brokers.kite.session import KiteSession
from fastflow.brokers.upstox.session import UpstoxSession
from fastflow.hotpath import KiteDecoder, MarketState, UpstoxDecoder
from fastflow.ingest.session import FeedSession
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.servers.upstox import UpstoxSimConfig, UpstoxSimulator
from fastflow.sim.universe import kite_universe

KITE = {408065: "full", 738561: "quote", 256265: "ltp"}
UPSTOX = {"NSE_EQ|INE009A01021": "full", "NSE_EQ|INE002A01018": "ltpc", "NSE_INDEX|Nifty 50": "full"}


async def until(condition: Callable[[], bool], limit: float = 60.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.002)
    return time.monotonic() - started


async def trial(broker: str, fault: str) -> float:
    sim: Any
    session: FeedSession
    if broker == "kite":
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows), KiteSimConfig(rate=2_000))
        await sim.start()
        state = MarketState(Instruments.from_kite_rows(rows))
        keys: list[Any] = list(KITE)
        session = KiteSession(KiteDecoder(state), api_key="fastflow", access_token="sim-token",
                              subscriptions=KITE, url=f"ws://127.0.0.1:{sim.port}/", on_flush=lambda b: None)
    else:
        rows, records = upstox_pairs()
        sim = UpstoxSimulator(UpstoxMarket(rows, records), UpstoxSimConfig(rate=2_000))
        await sim.start()
        state = MarketState(Instruments.from_upstox_rows(records))
        keys = list(UPSTOX)
        session = UpstoxSession(UpstoxDecoder(state), access_token="sim-token", subscriptions=UPSTOX,
                                api_url=sim.api_url, on_flush=lambda b: None)
    task = asyncio.create_task(session.run())
    try:
        await until(lambda: session.state == "streaming" and all(state.tick(k)["seq"] > 0 for k in keys))
        started = time.monotonic()
        if fault == "drop":
            sim.drop()
        else:
            sim.silence(30.0)
        if fault == "silence" and broker == "kite":
            await until(lambda: session.counters["watchdog_timeouts"] > 0)
        else:  # a new connection, then a fresh tick on every subscription over it
            await until(lambda: session.counters["connects"] >= 2 and session.state == "streaming")
            seqs = {k: state.tick(k)["seq"] for k in keys}
            await until(lambda: all(state.tick(k)["seq"] > seqs[k] for k in keys))
        return time.monotonic() - started
    finally:
        session.stop()
        await task
        await sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    print("| broker | fault | measured until | median s | max s |")
    print("|---|---|---|---|---|")
    for broker in ("kite", "upstox"):
        for fault in ("drop", "silence"):
            times = [asyncio.run(trial(broker, fault)) for _ in range(args.trials)]
            until_what = "watchdog fired" if (broker, fault) == ("kite", "silence") else "ticks again"
            print(f"| {broker} | {fault} | {until_what} | {statistics.median(times):.3f} | {max(times):.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
