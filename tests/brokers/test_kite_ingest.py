"""What only KiteSession has, against the simulator over real sockets: tokens
split over several connections, bursts and slow sending that lose nothing, and
the simulator's message limits (the faults every broker shares are in
test_feed_faults.py)."""

from __future__ import annotations

import asyncio
import random
import time

from fastflow.brokers.kite.session import KiteSession
from fastflow.hotpath import KiteDecoder, MarketState, TickBatch
from fastflow.sim.servers.kite import KiteSimulator

from ..waiting import DEADLINE, until
from .feeds import KITE, KITE_INFY, KITE_RELIANCE, SESSION_OPTIONS, kite_session, kite_sim, run


def test_ingest_splits_tokens_over_connections_and_recovers() -> None:
    from fastflow.brokers.kite.session import KiteIngest

    async def main() -> None:
        sim = kite_sim({"max_tokens": 5, "max_connections": 3}, seed=4)
        await sim.start("127.0.0.1", 0)
        state = KITE.new_state()
        tokens = [int(t) for t in state.instruments.token[:12]]
        ingest = KiteIngest(
            KiteDecoder(state), subscriptions=dict.fromkeys(tokens, "quote"), tokens_per_connection=5,
            api_key="fastflow", access_token="sim-token", **KITE.endpoint(sim), **SESSION_OPTIONS,
            rng=random.Random(3),
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

    with pytest.raises(ValueError, match="at most 3"):
        KiteIngest(KiteDecoder(KITE.new_state()), subscriptions=dict.fromkeys(range(1, 17), "ltp"),
                   tokens_per_connection=5, api_key="k", access_token="t")


def test_burst_holds_data_keeps_heartbeats_and_loses_nothing() -> None:
    """A burst longer than the watchdog: heartbeats keep the connection, then
    every held message arrives; the session saw exactly what the simulator sent."""

    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: KITE.subscribed_everything(sim), "subscribed")
        beats = session.counters["heartbeats"]
        sim.burst(1.5)  # longer than the 1 s watchdog
        await until(lambda: sim.stats["held"] > 100, "data held back")
        await until(lambda: session.counters["heartbeats"] >= beats + 2, "heartbeats during the burst")
        await until(lambda: not sim.holding, "held data released")
        await until(KITE.ticks_flow_again(state), "ticks flow after the burst")
        sim.config.rate = 1e-9  # quiesce, then compare what was sent with what arrived
        decoder = session.decoder

        def everything_arrived() -> bool:
            data_frames = session.counters["frames"] - session.counters["heartbeats"]
            sent_all = sim.queued == 0  # the market's last round may still wait in a queue
            return sent_all and data_frames == sim.stats["messages"] and decoder.stats()["packets"] == sim.stats["packets"]

        await until(everything_arrived, "every message sent arrived")
        assert sum(state.tick(t)["seq"] for t in KITE.subscriptions) == sim.stats["packets"]  # no gap in any sequence
        for token in (KITE_INFY, KITE_RELIANCE):  # the last volume the market made is the one in the state
            assert state.tick(token)["volume_traded"] == sim.market.snapshot(token)["volume_traded"]
        assert session.counters["connects"] == 1 and session.counters["watchdog_timeouts"] == 0
        assert session.state == "streaming" and KITE.subscribed_everything(sim)

    run(KITE, test)


def test_slow_sending_keeps_the_session_and_recovers() -> None:
    async def test(sim: KiteSimulator, session: KiteSession, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: KITE.subscribed_everything(sim), "subscribed")
        beats = session.counters["heartbeats"]
        sim.slow(1.0, 1e6)  # a trickle: idle long enough for heartbeats
        await until(lambda: session.counters["heartbeats"] >= beats + 2, "heartbeats while slow")
        await until(lambda: time.monotonic() > sim._slow_until, "slow period over")
        await until(KITE.ticks_flow_again(state), "ticks flow at the full rate again")
        assert session.state == "streaming" and KITE.subscribed_everything(sim)
        assert session.counters["connects"] == 1 and session.counters["watchdog_timeouts"] == 0

    run(KITE, test)


def test_simulator_sends_several_messages_per_interval_within_message_limits() -> None:
    """A rate far above the natural cadence is sent as several rounds of the
    universe per interval, none over 3000 packets, none with a token twice."""
    from fastflow.sim.servers.kite import MAX_PACKETS_PER_MESSAGE

    async def main() -> None:
        sim = kite_sim({"rate": 200_000, "heartbeat": 1.0, "max_tokens": 5000}, seed=6)
        await sim.start("127.0.0.1", 0)
        state = KITE.new_state()
        tokens = [int(t) for t in state.instruments.token]
        sizes: list[int] = []

        def on_frame(recv_ns: int, message: bytes) -> None:
            if len(message) > 1:
                sizes.append(int.from_bytes(message[:2], "big"))

        session = kite_session(state, dict.fromkeys(tokens, "ltp"), **KITE.endpoint(sim), on_frame=on_frame)
        decoder = session.decoder
        task = asyncio.create_task(session.run())
        try:
            await until(lambda: decoder.stats()["packets"] >= 20 * len(tokens), "many rounds of the subscription")
        finally:
            session.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()
        assert max(sizes) <= min(len(tokens), MAX_PACKETS_PER_MESSAGE)
        assert len(sizes) >= 20 and sum(sizes) >= 20 * len(tokens)  # many rounds, each one message
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

        async def send_hostile_text(self) -> None:
            calls.append(("hostile", ()))

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
