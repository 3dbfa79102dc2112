"""UpstoxSession against the Upstox simulator over real sockets: authorize then
connect, every injected fault ends in a reconnect with all subscriptions
restored and ticks flowing again (or an open breaker for an expired token),
server pings and a closed market keep a quiet connection alive, and a
recorded session replays to the same state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fastflow.brokers.upstox.session import UpstoxIngest, UpstoxSession
from fastflow.hotpath import MarketState, TickBatch, UpstoxDecoder
from fastflow.ingest.capture import CaptureWriter
from fastflow.ingest.replay import replay
from fastflow.instruments import Instruments
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.servers.upstox import UpstoxSimConfig, UpstoxSimulator
from fastflow.sim.wire import upstox as wire

from ..waiting import drive, subscribed, until
from ..waiting import ticks_flow_again as flow_again

INFY = "NSE_EQ|INE009A01021"
RELIANCE = "NSE_EQ|INE002A01018"
NIFTY = "NSE_INDEX|Nifty 50"
OPTION = next(str(r["instrument_key"]) for r in upstox_pairs()[1] if r["instrument_type"] == "CE")
SUBSCRIPTIONS = {INFY: "full", RELIANCE: "ltpc", NIFTY: "full", OPTION: "option_greeks"}
DEADLINE = 10.0

Test = Callable[[UpstoxSimulator, UpstoxSession, MarketState, list[TickBatch]], Awaitable[None]]



def new_state() -> MarketState:
    return MarketState(Instruments.from_upstox_rows(upstox_pairs()[1]))


def run(test: Test, sim_config: dict[str, Any] | None = None, **session_options: Any) -> None:
    async def main() -> None:
        sim = UpstoxSimulator(UpstoxMarket.from_universe(seed=2),
                              UpstoxSimConfig(**{"rate": 2_000, "ping_interval": 0.2, **(sim_config or {})}))
        await sim.start("127.0.0.1", 0)
        state = new_state()
        batches: list[TickBatch] = []
        options = {"watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05, **session_options}
        session = UpstoxSession(UpstoxDecoder(state), access_token="sim-token", subscriptions=SUBSCRIPTIONS,
                                api_url=sim.api_url, on_flush=batches.append, rng=random.Random(7), **options)
        await drive(sim, session, lambda: test(sim, session, state, batches))

    asyncio.run(main())


def subscribed_everything(sim: UpstoxSimulator) -> bool:
    return subscribed(sim, SUBSCRIPTIONS)


def ticks_flow_again(state: MarketState) -> Callable[[], bool]:
    return flow_again(state, SUBSCRIPTIONS)


def test_streams_every_mode_into_the_state() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: all(state.tick(k)["mode"] == m for k, m in SUBSCRIPTIONS.items()), "modes")
        await until(lambda: len(batches) > 3, "flushes")
        health = session.health()
        assert health["state"] == "streaming" and health["market_status"]["NSE_EQ"] == "NORMAL_OPEN"
        assert sim.stats["authorized"] == 1 and sim.stats["snapshots"] == 3  # one initial_feed per mode group
        assert "greeks" in state.tick(OPTION) and len(state.tick(INFY)["depth"]["buy"]) == 5

    run(test)


def test_abrupt_drop_reauthorizes_reconnects_and_resubscribes() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        assert sim.drop() == 1
        await until(lambda: session.counters["connects"] == 2 and session.state == "streaming", "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")
        assert session.counters["disconnects"] == 1 and sim.stats["authorized"] == 2  # a fresh code each time

    run(test)


def test_a_clean_close_by_the_broker_reconnects() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        await sim._clients[0].connection.close(1001, "going away")
        await until(lambda: session.counters["connects"] == 2 and session.state == "streaming", "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")
        assert session.counters["disconnects"] == 1

    run(test)


def test_half_open_silence_is_detected_by_the_watchdog() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.silence(2.0)  # nothing sent, nothing read: no data, no pings, no pongs
        await until(lambda: session.counters["watchdog_timeouts"] >= 1, "watchdog fired")
        await until(lambda: session.counters["connects"] >= 2 and session.state == "streaming", "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")
        assert session.counters["probes"] == 0  # an open market: silence is death, no probe

    run(test, watchdog=0.5)


def test_server_pings_keep_an_idle_connection_alive() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.config.rate = 1e-9  # no data: only the 0.1 s pings
        pings = sim.stats["pings"]
        await until(lambda: sim.stats["pings"] >= pings + 10, "pings")
        assert session.counters["watchdog_timeouts"] == 0 and session.counters["connects"] == 1

    run(test, {"ping_interval": 0.1}, watchdog=0.5)


def test_a_closed_market_is_quiet_not_dead() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.config.rate = 1e-9
        sim.config.ping_interval = 3600.0  # the server stays silent too
        await sim.set_market_status(wire.NORMAL_CLOSE)
        await until(lambda: session.counters["probes"] >= 3, "probed with pings")
        assert session.counters["watchdog_timeouts"] == 0 and session.counters["connects"] == 1
        assert session.health()["market_status"]["NSE_EQ"] == "NORMAL_CLOSE"

    run(test, watchdog=0.3)


def test_a_closed_market_that_goes_half_open_is_still_detected() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await sim.set_market_status(wire.NORMAL_CLOSE)
        await until(lambda: session.health()["market_status"].get("NSE_EQ") == "NORMAL_CLOSE", "closed")
        sim.silence(3.0)  # the probe's ping gets no pong
        await until(lambda: session.counters["watchdog_timeouts"] >= 1, "watchdog fired after the probe")
        assert session.counters["probes"] >= 1

    run(test, watchdog=0.3)


def test_garbage_frame_is_counted_and_the_stream_goes_on() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await sim.send_garbage()
        await until(lambda: session.counters["frame_errors"] == 1, "frame error counted")
        assert "FeedResponse" in str(session.last_frame_error)
        await until(ticks_flow_again(state), "ticks flow on")
        assert session.counters["connects"] == 1

    run(test)


def test_expired_token_opens_the_circuit_breaker() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.expire_token()
        sim.drop()
        await until(lambda: session.state == "auth_failed", "breaker open")
        assert session.counters["auth_failures"] == 3 and sim.stats["unauthorized"] == 3

    run(test)


def test_slow_and_bursty_sending_loses_nothing() -> None:
    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.slow(0.5, 20.0)
        sim.burst(0.6)  # held frames, then all at once; pings go on, so the watchdog stays calm
        await until(lambda: any(c.held for c in sim._clients), "frames held back")
        await until(lambda: not any(c.held for c in sim._clients), "released")
        await until(ticks_flow_again(state), "ticks flow after the burst")
        sim.config.rate = 1e-9
        await until(lambda: session.counters["frames"] == sim.stats["messages"], "every frame arrived")
        assert session.counters["connects"] == 1 and session.counters["frame_errors"] == 0

    run(test, {"ping_interval": 0.1})


def test_record_then_replay_reproduces_the_live_state(tmp_path: Path) -> None:
    path = tmp_path / "upstox.ffcap"
    writer = CaptureWriter(path, broker="upstox", instruments="synthetic")

    async def test(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: len(batches) > 20, "live flushes")
        session.stop()
        await until(lambda: session.state == "stopped", "stopped")
        writer.close()
        replayed = new_state()
        result = replay(path, replayed)
        assert result.frames == session.counters["frames"] and result.frame_errors == 0
        assert replayed.array.tobytes() == state.array.tobytes()

    run(test, on_frame=writer.append)


def test_bad_configuration_is_refused() -> None:
    decoder = UpstoxDecoder(new_state())
    with pytest.raises(ValueError, match="mode"):
        UpstoxSession(decoder, access_token="t", subscriptions={INFY: "quote"})
    with pytest.raises(ValueError, match="at most 2000"):
        UpstoxSession(decoder, access_token="t", subscriptions=dict.fromkeys(map(str, range(2001)), "full"))
    with pytest.raises(ValueError, match="combined"):
        UpstoxSession(decoder, access_token="t",
                      subscriptions={**dict.fromkeys(map(str, range(1501)), "full"), INFY: "ltpc"})


def test_ingest_wraps_one_session() -> None:
    ingest = UpstoxIngest(UpstoxDecoder(new_state()), subscriptions=SUBSCRIPTIONS, access_token="t")
    assert len(ingest.sessions) == 1 and ingest.health()["state"] == "degraded"
