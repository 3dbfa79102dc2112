"""What only UpstoxSession has, against the Upstox simulator over real
sockets: a closed market keeps a quiet connection alive (and a half-open one is
still detected), slow and bursty sending loses nothing, and a recorded session
replays to the same state (the faults every broker shares are in
test_feed_faults.py)."""

from __future__ import annotations

from pathlib import Path

from fastflow.brokers.upstox.session import UpstoxIngest, UpstoxSession
from fastflow.hotpath import MarketState, TickBatch, UpstoxDecoder
from fastflow.ingest.capture import CaptureWriter
from fastflow.ingest.replay import replay
from fastflow.sim.servers.upstox import UpstoxSimulator
from fastflow.sim.wire import upstox as wire

from ..waiting import until
from .feeds import UPSTOX, run


def test_a_closed_market_is_quiet_not_dead() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.config.rate = 1e-9
        sim.config.ping_interval = 3600.0  # the server stays silent too
        await sim.set_market_status(wire.NORMAL_CLOSE)
        await until(lambda: session.counters["probes"] >= 3, "probed with pings")
        assert session.counters["watchdog_timeouts"] == 0 and session.counters["connects"] == 1
        assert session.health()["market_status"]["NSE_EQ"] == "NORMAL_CLOSE"

    run(UPSTOX, test, watchdog=0.3)


def test_a_closed_market_that_goes_half_open_is_still_detected() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await sim.set_market_status(wire.NORMAL_CLOSE)
        await until(lambda: session.health()["market_status"].get("NSE_EQ") == "NORMAL_CLOSE", "closed")
        sim.silence(3.0)  # the probe's ping gets no pong
        await until(lambda: session.counters["watchdog_timeouts"] >= 1, "watchdog fired after the probe")
        assert session.counters["probes"] >= 1

    run(UPSTOX, test, watchdog=0.3)


def test_slow_and_bursty_sending_loses_nothing() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.slow(0.5, 20.0)
        sim.burst(0.6)  # held frames, then all at once; pings go on, so the watchdog stays calm
        await until(lambda: any(c.held for c in sim._clients), "frames held back")
        await until(lambda: not any(c.held for c in sim._clients), "released")
        await until(UPSTOX.ticks_flow_again(state), "ticks flow after the burst")
        sim.config.rate = 1e-9
        await until(lambda: session.counters["frames"] == sim.stats["messages"], "every frame arrived")
        assert session.counters["connects"] == 1 and session.counters["frame_errors"] == 0

    run(UPSTOX, test, {"ping_interval": 0.1})


def test_record_then_replay_reproduces_the_live_state(tmp_path: Path) -> None:
    path = tmp_path / "upstox.ffcap"
    writer = CaptureWriter(path, broker="upstox", instruments="synthetic")

    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: len(batches) > 20, "live flushes")
        session.stop()
        await until(lambda: session.state == "stopped", "stopped")
        writer.close()
        replayed = UPSTOX.new_state()
        result = replay(path, replayed)
        assert result.frames == session.counters["frames"] and result.frame_errors == 0
        assert replayed.array.tobytes() == state.array.tobytes()

    run(UPSTOX, test, on_frame=writer.append)


def test_ingest_wraps_one_session() -> None:
    ingest = UpstoxIngest(UpstoxDecoder(UPSTOX.new_state()), subscriptions=UPSTOX.subscriptions, access_token="t")
    assert len(ingest.sessions) == 1 and ingest.health()["state"] == "degraded"
