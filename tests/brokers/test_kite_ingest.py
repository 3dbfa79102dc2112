"""KiteSession against the simulator over real sockets: every injected fault
ends in a reconnect with all subscriptions restored and ticks flowing again,
or, for an expired token, in an open circuit breaker."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastflow.brokers.kite.session import KiteSession
from fastflow.hotpath import KiteDecoder, MarketState, TickBatch
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

from ..waiting import drive, subscribed, until
from ..waiting import ticks_flow_again as flow_again

INFY, RELIANCE, NIFTY50 = 408065, 738561, 256265
SUBSCRIPTIONS = {INFY: "full", RELIANCE: "quote", NIFTY50: "ltp"}
DEADLINE = 10.0



def run(test: Callable[[KiteSimulator, KiteSession, MarketState, list[TickBatch]], Awaitable[None]],
        **session_options: Any) -> None:
    async def main() -> None:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=2), KiteSimConfig(rate=3_000, heartbeat=0.2))
        await sim.start("127.0.0.1", 0)
        state = MarketState(Instruments.from_kite_rows(rows))
        batches: list[TickBatch] = []
        options = {"watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05, **session_options}
        session = KiteSession(
            KiteDecoder(state), api_key="fastflow", access_token="sim-token", subscriptions=SUBSCRIPTIONS,
            url=f"ws://127.0.0.1:{sim.port}/", on_flush=batches.append, rng=random.Random(7), **options,
        )
        await drive(sim, session, lambda: test(sim, session, state, batches))

    asyncio.run(main())


def subscribed_everything(sim: KiteSimulator) -> bool:
    return subscribed(sim, SUBSCRIPTIONS)


def ticks_flow_again(state: MarketState) -> Callable[[], bool]:
    return flow_again(state, SUBSCRIPTIONS)


def test_streams_every_mode_into_the_state() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: all(state.tick(t)["mode"] == m for t, m in SUBSCRIPTIONS.items()), "modes")
        await until(lambda: len(batches) > 3, "flushes")
        assert session.health()["state"] == "streaming" and session.health()["last_frame_age_s"] < DEADLINE

    run(test)


def test_abrupt_drop_reconnects_and_resubscribes() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        assert sim.drop() == 1
        await until(lambda: session.counters["connects"] == 2 and session.state == "streaming", "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")
        assert session.counters["disconnects"] == 1

    run(test)


def test_a_clean_close_by_the_broker_reconnects() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        for client in list(sim._clients):
            await client.connection.close(1001, "going away")  # a broker restart closes cleanly
        await until(lambda: session.counters["connects"] == 2 and session.state == "streaming", "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")
        assert session.counters["disconnects"] == 1

    run(test)


def test_half_open_silence_is_detected_by_the_watchdog() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.silence(3.0)  # open socket, nothing sent, not even heartbeats
        await until(lambda: session.counters["watchdog_timeouts"] >= 1, "watchdog fired")
        await until(lambda: session.counters["connects"] >= 2, "reconnected")
        await until(lambda: subscribed_everything(sim), "resubscribed")
        await until(ticks_flow_again(state), "ticks flow again")

    run(test, watchdog=0.5)


def test_heartbeats_keep_an_idle_connection_alive() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.config.rate = 1e-9  # no data: only the 0.2 s heartbeats
        await until(lambda: session.counters["heartbeats"] >= 5, "heartbeats")
        assert session.counters["watchdog_timeouts"] == 0 and session.counters["connects"] == 1

    run(test, watchdog=0.5)


def test_garbage_frame_is_counted_and_the_stream_goes_on() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await sim.send_garbage()
        await until(lambda: session.counters["frame_errors"] == 1, "frame error counted")
        assert session.last_bad_frame.endswith(b"garbage") and "truncated" in str(session.last_frame_error)
        await until(ticks_flow_again(state), "ticks flow on")
        assert session.counters["connects"] == 1

    run(test)


def test_expired_token_opens_the_circuit_breaker() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        sim.expire_token()
        sim.drop()
        await until(lambda: session.state == "auth_failed", "breaker open")
        assert session.counters["auth_failures"] == 3 and sim.stats["refused"] == 3

    run(test)


def test_bad_session_configuration_is_refused() -> None:
    import pytest

    state = MarketState(Instruments.from_kite_rows(kite_universe()))
    with pytest.raises(ValueError, match="mode"):
        KiteSession(KiteDecoder(state), api_key="k", access_token="t", subscriptions={INFY: "fast"})
    with pytest.raises(ValueError, match="3000"):
        KiteSession(KiteDecoder(state), api_key="k", access_token="t", subscriptions=dict.fromkeys(range(3001), "ltp"))


def test_ingest_splits_tokens_over_connections_and_recovers() -> None:
    from fastflow.brokers.kite.session import KiteIngest

    async def main() -> None:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=4),
                            KiteSimConfig(rate=3_000, heartbeat=0.2, max_tokens=5, max_connections=3))
        await sim.start("127.0.0.1", 0)
        state = MarketState(Instruments.from_kite_rows(rows))
        tokens = [int(t) for t in state.instruments.token[:12]]
        ingest = KiteIngest(
            KiteDecoder(state), subscriptions=dict.fromkeys(tokens, "quote"), tokens_per_connection=5,
            api_key="fastflow", access_token="sim-token", url=f"ws://127.0.0.1:{sim.port}/",
            watchdog=1.0, backoff_base=0.01, backoff_cap=0.05, rng=random.Random(3),
        )
        assert [len(s.subscriptions) for s in ingest.sessions] == [5, 5, 2]
        task = asyncio.create_task(ingest.run())
        try:
            await until(lambda: ingest.health()["state"] == "streaming", "all streaming")
            await until(lambda: all(state.tick(t)["seq"] > 0 for t in tokens), "every token ticks")
            assert sorted(len(c.modes) for c in sim._clients) == [2, 5, 5]
            assert sim.stats["errors"] == 0  # no connection went over the broker's limit
            seqs = {t: state.tick(t)["seq"] for t in tokens}
            assert sim.drop() == 3
            await until(lambda: sum(s.counters["connects"] for s in ingest.sessions) == 6, "all reconnected")
            await until(lambda: all(state.tick(t)["seq"] > seqs[t] for t in tokens), "every token ticks again")
        finally:
            ingest.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()

    asyncio.run(main())


def test_ingest_refuses_more_than_three_connections_worth() -> None:
    import pytest

    from fastflow.brokers.kite.session import KiteIngest

    state = MarketState(Instruments.from_kite_rows(kite_universe()))
    with pytest.raises(ValueError, match="at most 3"):
        KiteIngest(KiteDecoder(state), subscriptions=dict.fromkeys(range(1, 17), "ltp"), tokens_per_connection=5,
                   api_key="k", access_token="t")


def test_burst_holds_data_keeps_heartbeats_and_loses_nothing() -> None:
    """A burst longer than the watchdog: heartbeats keep the connection, then
    every held message arrives; the session saw exactly what the simulator sent."""

    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        beats = session.counters["heartbeats"]
        sim.burst(1.5)  # longer than the 1 s watchdog
        await until(lambda: sim.stats["held"] > 100, "data held back")
        await until(lambda: session.counters["heartbeats"] >= beats + 2, "heartbeats during the burst")
        await until(lambda: not sim.holding, "held data released")
        await until(ticks_flow_again(state), "ticks flow after the burst")
        sim.config.rate = 1e-9  # quiesce, then compare what was sent with what arrived
        decoder = session.decoder

        def everything_arrived() -> bool:
            data_frames = session.counters["frames"] - session.counters["heartbeats"]
            return data_frames == sim.stats["messages"] and decoder.stats()["packets"] == sim.stats["packets"]

        await until(everything_arrived, "every message sent arrived")
        assert sum(state.tick(t)["seq"] for t in SUBSCRIPTIONS) == sim.stats["packets"]  # no gap in any sequence
        for token in (INFY, RELIANCE):  # the last volume the market made is the one in the state
            assert state.tick(token)["volume_traded"] == sim.market.snapshot(token)["volume_traded"]
        assert session.counters["connects"] == 1 and session.counters["watchdog_timeouts"] == 0
        assert session.state == "streaming" and subscribed_everything(sim)

    run(test)


def test_slow_sending_keeps_the_session_and_recovers() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: subscribed_everything(sim), "subscribed")
        beats = session.counters["heartbeats"]
        sim.slow(1.0, 1e6)  # a trickle: idle long enough for heartbeats
        await until(lambda: session.counters["heartbeats"] >= beats + 2, "heartbeats while slow")
        await until(lambda: time.monotonic() > sim._slow_until, "slow period over")
        await until(ticks_flow_again(state), "ticks flow at the full rate again")
        assert session.state == "streaming" and subscribed_everything(sim)
        assert session.counters["connects"] == 1 and session.counters["watchdog_timeouts"] == 0

    run(test)


def test_simulator_sends_several_messages_per_interval_within_message_limits() -> None:
    """A budget larger than the subscription is sent as several whole messages
    per interval, none over 3000 packets, none with a token twice."""
    from fastflow.sim.servers.kite import MAX_PACKETS_PER_MESSAGE

    async def main() -> None:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=6), KiteSimConfig(rate=200_000, max_tokens=5000))
        await sim.start("127.0.0.1", 0)
        state = MarketState(Instruments.from_kite_rows(rows))
        tokens = [int(t) for t in state.instruments.token]
        sizes: list[int] = []
        decoder = KiteDecoder(state)

        def on_frame(recv_ns: int, message: bytes) -> None:
            if len(message) > 1:
                sizes.append(int.from_bytes(message[:2], "big"))

        session = KiteSession(decoder, api_key="fastflow", access_token="sim-token", url=f"ws://127.0.0.1:{sim.port}/",
                              subscriptions=dict.fromkeys(tokens, "ltp"), on_frame=on_frame)
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: decoder.stats()["packets"] >= 20 * len(tokens), "many rounds of the subscription")
        finally:
            session.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()
        assert max(sizes) <= min(len(tokens), MAX_PACKETS_PER_MESSAGE)
        assert sizes.count(len(tokens)) >= 10  # whole rounds
        assert decoder.stats()["frame_errors"] == 0

    asyncio.run(main())


def test_new_fault_switches_parse() -> None:
    import pytest

    from fastflow.sim.servers.faults import Fault

    assert Fault.parse("slow@5") == Fault("slow", 5.0, 5.0, 10.0)
    assert Fault.parse("slow@5:2:4") == Fault("slow", 5.0, 2.0, 4.0)
    assert Fault.parse("burst@3") == Fault("burst", 3.0, 2.0)
    assert Fault.parse("burst@3:1.5") == Fault("burst", 3.0, 1.5)
    for bad in ("burst@1:2:3", "slow@1:2:0.5", "slow@x"):
        with pytest.raises(ValueError, match="fault"):
            Fault.parse(bad)


def test_run_faults_drives_any_fault_target() -> None:
    from fastflow.sim.servers.faults import FAULTS, Fault, run_faults

    calls: list[tuple[str, tuple[float, ...]]] = []

    class Target:
        def drop(self) -> int:
            calls.append(("drop", ()))
            return 2

        def silence(self, seconds: float) -> None:
            calls.append(("silence", (seconds,)))

        async def send_garbage(self) -> None:
            calls.append(("garbage", ()))

        def expire_token(self) -> None:
            calls.append(("expire", ()))

        def slow(self, seconds: float, factor: float) -> None:
            calls.append(("slow", (seconds, factor)))

        def burst(self, seconds: float) -> None:
            calls.append(("burst", (seconds,)))

    reports: list[str] = []
    faults = [Fault.parse(f"{name}@0") for name in FAULTS]
    asyncio.run(run_faults(Target(), faults, reports.append))
    assert [name for name, _ in calls] == list(FAULTS)
    assert ("slow", (5.0, 10.0)) in calls and ("burst", (2.0,)) in calls
    assert len(reports) == len(FAULTS) and "dropped 2 connection(s)" in reports[0]
