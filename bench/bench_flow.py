"""Options flow (docs/flow.md): how well the detector finds the simulator's
injected events, and what detection costs on top of decoding.

**Quality.** The Kite market (:class:`~fastflow.sim.market.KiteMarket`, the
small universe, its injected blocks, sweeps of 2-5 levels and bursts across a
chain's strikes, logged as the ground truth) steps every instrument once a
market second for ``--flow-seconds`` (``make test``: 600; ``make bench``: the
6.25-hour session); every message is decoded with detection on at the default
``[flow]`` settings. A detected sweep (block) is **correct** when the same
contract had an injected sweep (a block or a burst leg) within 2 s of it;
**recall** is the injected events on derivatives that were detected as their
kind (a burst leg as a block). Recall is reported over all of them and over
those the settings mean to report: at least ``sweep_min_lots`` (``block_lots``)
lots and the underlying's premium floor. The benchmark fails under 0.95
precision or 0.95 recall (of the latter) for sweeps and blocks, the issue's
target. Repeated hits and unusual activity have no ground truth; their counts
are shown.

**Cost.** The same run's first 200 messages, decoded into fresh states, with
detection on and off: the median ns per packet of each and the ratio (target:
at most +25% over decoding alone).

With ``--results-dir`` the table goes to ``flow.md``.
"""

from __future__ import annotations

import collections
import datetime
import math
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from fastflow.analytics import flow
from fastflow.config import FlowSection
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe

WINDOW_S = 2  # a detection within this many seconds of the injected event is a match
SURGE_EVENTS_PER_S = 5_000  # the sustained rate the issue asks for ("thousands of flow events per second")


def _seconds(config: Any) -> int:
    seconds = int(config.getoption("--flow-seconds"))
    if not 0 < seconds <= 22_500:
        raise pytest.UsageError("--flow-seconds: between 1 and 22,500 (the session)")
    return seconds


class Run:
    """One simulated run: its messages (the first ones kept for the cost), detections and ground truth."""

    def __init__(self, seconds: int, seed: int = 5) -> None:
        self.rows = kite_universe(datetime.date(2026, 12, 2))
        self.instruments = Instruments.from_kite_rows(self.rows)
        self.section = FlowSection()
        market = KiteMarket.from_rows(self.rows, seed=seed)
        state = MarketState(self.instruments)
        flow.enable(state, self.section)
        decoder = KiteDecoder(state)
        self.kept: list[bytes] = []
        self.detected: list[dict[str, Any]] = []
        for second in range(seconds):
            message = market.step(len(self.rows), "full")
            if second < 200:
                self.kept.append(message)
            decoder.feed(message)
            self.detected += flow.decode(state.flush().flow)
        self.stats = state.flow_stats or {}
        derivative = {int(r["instrument_token"]): r for r in self.rows if r["instrument_type"] in ("CE", "PE", "FUT")}
        self.derivative = derivative
        self.truth = [e for e in market.events if all(t in derivative for t in e.tokens)]
        self.left_out = sum(1 for e in market.events if not all(t in derivative for t in e.tokens))

    def eligible(self, token: int, quantity: int, price: int, kind: str) -> bool:
        """The settings mean to report this injected trade (size in lots, premium over the floor)."""
        row = self.derivative[token]
        lot = int(row["lot_size"])
        lots = self.section.sweep_min_lots if kind == "sweep" else self.section.block_lots
        slot = self.instruments.slot(token)
        premium = price / float(self.instruments.price_divisor[slot]) * quantity
        floor = self.section.floors.get(str(row["name"]).upper(), self.section.premium_floor)
        return quantity >= lots * lot and premium >= floor

    def quality(self) -> dict[str, dict[str, Any]]:
        """Per kind: injected legs matched one to one (in time order) with detections of
        the same contract and kind within WINDOW_S."""
        out: dict[str, dict[str, Any]] = {}
        for kind, sources in (("sweep", ("sweep",)), ("block", ("block", "burst"))):
            legs = sorted(((g.time, t, q, p) for g in self.truth if g.kind in sources
                           for t, q, p in zip(g.tokens, g.quantities, g.prices, strict=True)))
            free: dict[int, list[int]] = collections.defaultdict(list)  # token -> unmatched detection times
            detections = [e for e in self.detected if e["kind"] == kind]
            for e in detections:
                free[int(e["instrument_token"])].append(int(e["exchange_timestamp"]))
            found, missed = [], []
            for when, token, quantity, price in legs:
                times = free[token]
                match = next((i for i, t in enumerate(times) if abs(t - when) <= WINDOW_S), None)
                leg = (token, quantity, price, self.eligible(token, quantity, price, kind))
                if match is None:
                    missed.append(leg)
                else:
                    times.pop(match)
                    found.append(leg)
            correct = len(found)
            eligible = sum(1 for leg in found + missed if leg[3])
            found_eligible = sum(1 for leg in found if leg[3])
            out[kind] = {"injected": len(legs), "found": len(found), "eligible": eligible,
                         "found_eligible": found_eligible, "detected": len(detections), "correct": correct,
                         "precision": correct / len(detections) if detections else 1.0,
                         "recall": len(found) / len(legs) if legs else 1.0,
                         "recall_eligible": found_eligible / eligible if eligible else 1.0,
                         "missed": [leg[:3] for leg in missed if leg[3]][:5]}
        return out

    def cost(self, repeats: int = 7) -> dict[str, float]:
        """Median ns per packet decoding the kept messages into a fresh state, detection off and on."""
        packets = sum(int.from_bytes(m[:2], "big") for m in self.kept)
        out: dict[str, float] = {}
        for name, on in (("off", False), ("on", True)):
            times = []
            for _ in range(repeats):
                state = MarketState(self.instruments)
                if on:
                    flow.enable(state, self.section)
                decoder = KiteDecoder(state)
                start = time.perf_counter()
                for message in self.kept:
                    decoder.feed(message, 1)
                    state.flush()
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times) / packets * 1e9
        out["ratio"] = out["on"] / out["off"]
        return out


def test_detection_quality_and_cost(request: pytest.FixtureRequest) -> None:
    seconds = _seconds(request.config)
    run = Run(seconds)
    quality = run.quality()
    cost = run.cost()
    kinds = collections.Counter(e["kind"] for e in run.detected)
    lines = [
        f"Kite market, the small synthetic universe ({len(run.rows)} instruments, "
        f"{len(run.derivative)} derivatives), {seconds:,} market seconds, every instrument once a second; "
        f"default [flow] settings. Injected events on equities ({run.left_out}) are left out: only derivatives "
        f"are judged.",
        "",
        "| kind | injected | detected | precision | recall, all injected | recall, what the settings report |",
        "|---|---|---|---|---|---|",
    ]
    for kind, q in quality.items():
        lines.append(f"| {kind} | {q['injected']:,} | {q['detected']:,} | {q['precision']:.3f} "
                     f"({q['correct']:,}/{q['detected']:,}) | {q['recall']:.3f} ({q['found']:,}/{q['injected']:,}) "
                     f"| {q['recall_eligible']:.3f} ({q['found_eligible']:,}/{q['eligible']:,}) |")
    lines += [
        "",
        f"Other kinds (no ground truth): repeated {kinds['repeated']:,}, unusual {kinds['unusual']:,}. "
        f"Prints judged {run.stats.get('prints', 0):,}.",
        "",
        f"Detection cost: {cost['off']:.1f} ns per full packet decoding alone, {cost['on']:.1f} ns with detection "
        f"on: {cost['ratio'] - 1:+.0%} (the first 200 messages, into fresh states, median of 7).",
    ]
    for kind, q in quality.items():
        if q["missed"]:
            lines.append(f"Missed {kind}s (token, quantity, raw price, injected as): {q['missed']}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
    target = request.config.getoption("--results-dir")
    if target:
        stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "flow.md").write_text(f"{stamp}\n\n" + "\n".join(lines) + "\n")
    for kind in ("sweep", "block"):
        assert quality[kind]["injected"] > 0, kind
        assert quality[kind]["precision"] >= 0.95, quality[kind]
        assert quality[kind]["recall_eligible"] >= 0.95, quality[kind]


def test_flow_latency_next_to_the_ticks(request: pytest.FixtureRequest) -> None:
    """Broker frame received -> flow event at a subscribed client, p50/p99, next to the
    ticks' end to end in the same run, and the ticks' p99 of a run without the flow
    client (the whole stack, ``fastflow.tools.e2e``: 20k ticks/s over the small
    universe, 100 clients x 50 symbols). ``make bench`` only (``--flow-latency-seconds``)."""
    import asyncio

    from fastflow.tools.e2e import E2EOptions, run_once

    seconds = float(request.config.getoption("--flow-latency-seconds"))
    if seconds <= 0:
        pytest.skip("make bench measures it (--flow-latency-seconds)")
    runs = {}
    for flow_on in (False, True):
        options = E2EOptions(rate=20_000.0, clients=100, watch=50, duration=seconds, warmup=3.0, flow=flow_on)
        runs[flow_on] = asyncio.run(run_once(options, report=lambda message: None))
    with_flow, without = runs[True], runs[False]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    tape = with_flow["flow"]
    lines = [
        "",
        f"Flow latency (the whole stack at 20,000 ticks/s, 100 clients x 50 symbols, {seconds:g} s; one more "
        f"client on the whole flow tape): {tape['events_per_s']:,.0f} events/s, broker frame -> event at the "
        f"client p50 {ms(tape['p50_ms'])}, p99 {ms(tape['p99_ms'])}; the ticks' e2e in the same run p50 "
        f"{ms(with_flow['e2e']['p50_ms'])}, p99 {ms(with_flow['e2e']['p99_ms'])}; without the flow client "
        f"p99 {ms(without['e2e']['p99_ms'])}.",
    ]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in lines:
            reporter.write_line(line)
    target = request.config.getoption("--results-dir")
    if target:
        path = Path(target) / "flow.md"
        path.write_text((path.read_text() if path.exists() else "") + "\n".join(lines) + "\n")
    assert tape["events"] > 0


def test_flow_throughput_to_subscribed_clients(request: pytest.FixtureRequest) -> None:
    """Sustained flow through the writer, a real Redis and the gateway to subscribed
    clients: the simulated market decoded with thresholds low enough that most prints
    are events, paced at :data:`SURGE_EVENTS_PER_S` (``--flow-surge-seconds`` of it;
    ``make bench``: 10), five clients on the whole tape over loopback, in one process.
    Reports events/s, each event's age at a client (p50/p99) and whether every client
    got every event, in order."""
    import asyncio

    import msgpack
    from websockets.asyncio.client import connect

    from fastflow.config import GatewaySection
    from fastflow.gateway.server import Gateway
    from fastflow.store.embedded import EmbeddedRedis
    from fastflow.store.keys import Keys
    from fastflow.store.target import RedisTarget
    from fastflow.store.writer import RedisWriter

    seconds = float(request.config.getoption("--flow-surge-seconds"))
    if seconds <= 0:
        pytest.skip("make bench measures it (--flow-surge-seconds)")
    surge = FlowSection(block_lots=1, block_multiple=0.0, premium_floor=0.0, premium_floors=(), sweep_min_lots=0,
                        repeat_hits=2, z_min_samples=5, voi_min_lots=1)
    rows = kite_universe(datetime.date(2026, 12, 2))
    published: list[int] = []
    received: dict[int, list[int]] = {}
    ages: list[int] = []

    async def main(server: EmbeddedRedis) -> float:
        target = RedisTarget.parse(f"unix://{server.unix_socket}")
        market = KiteMarket.from_rows(rows, seed=8)
        state = MarketState(Instruments.from_kite_rows(rows))
        flow.enable(state, surge)
        decoder = KiteDecoder(state)
        writer = RedisWriter(state, target, Keys(), source="simulator")
        writing = asyncio.create_task(writer.run())
        while not writer.ready:
            await asyncio.sleep(0.01)
        decoder.feed(market.step(len(rows), "full"))
        writer.on_flush(state.flush())  # the instrument master and a first state
        await writer.drain()
        gateway = Gateway(GatewaySection(port=0), redis=target)
        await gateway.start()
        await gateway.wait_ready(30.0)

        async def client(cid: int) -> None:
            got = received[cid] = []
            async with connect(gateway.ws_url, compression=None, max_size=None) as ws:
                await ws.send(msgpack.packb({"op": "subscribe_flow"}))
                async for frame in ws:
                    now = time.time_ns()
                    message = msgpack.unpackb(frame, raw=False)
                    if message.get("type") == "flow" and not message.get("snapshot"):
                        for event in message["events"]:
                            got.append(int(event["id"]))
                            if cid == 0:
                                ages.append((now - int(event["receive_time_ns"])) // 1000)

        clients = [asyncio.create_task(client(i)) for i in range(5)]
        await asyncio.sleep(1.0)  # subscribed
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            decoder.feed(market.step(200, "full"), time.time_ns())
            batch = state.flush()
            published.extend(int(e["id"]) for e in flow.decode(batch.flow))
            while not writer.ready:  # the writer's own pace: nothing dropped
                await asyncio.sleep(0.001)
            writer.on_flush(batch)
            ahead = len(published) / SURGE_EVENTS_PER_S - (time.monotonic() - start)
            await asyncio.sleep(max(0.0, ahead))  # the load generator's pace: the target rate
        elapsed = time.monotonic() - start
        await writer.drain()
        deadline = time.monotonic() + 30.0
        while any(len(got) < len(published) for got in received.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        await gateway.stop()
        writer.stop()
        await writing
        return elapsed

    with EmbeddedRedis() as server:
        elapsed = asyncio.run(main(server))
    ages.sort()
    rate = len(published) / elapsed
    complete = all(got == published for got in received.values())
    p50, p99 = (ages[len(ages) // 2] / 1000, ages[int(0.99 * len(ages))] / 1000) if ages else (math.nan, math.nan)
    line = (f"Flow throughput (in one process: decode with detection, the writer, a real Redis, the gateway, 5 "
            f"clients on the whole tape over loopback; thresholds low enough that most prints are events; paced at "
            f"{SURGE_EVENTS_PER_S:,} events/s): "
            f"{rate:,.0f} events/s for {elapsed:.1f} s; age at a client p50 {p50:.1f} ms, p99 {p99:.1f} ms; every client "
            f"got every event in order: {'yes' if complete else 'no'}.")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    target = request.config.getoption("--results-dir")
    if target:
        path = Path(target) / "flow.md"
        path.write_text((path.read_text() if path.exists() else "") + "\n" + line + "\n")
    assert published and complete, {cid: len(got) for cid, got in received.items()} | {"published": len(published)}
