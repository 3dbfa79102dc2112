"""The scenarios every broker session shares, run against each broker's
simulator over real sockets: streaming every mode, each injected fault ending
in a reconnect with all subscriptions restored and ticks flowing again (or, for
an expired token, in an open circuit breaker), keep-alives holding an idle
connection, and a bad configuration refused up front."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastflow.hotpath import MarketState, TickBatch

from ..waiting import DEADLINE, until
from .feeds import FEEDS, Feed, run

feeds = pytest.mark.parametrize("feed", FEEDS, ids=str)


async def reconnects_once(feed: Feed, sim: Any, session: Any, state: MarketState) -> None:
    """After one lost connection: streaming again on the second connect, with
    every subscription restored and every instrument ticking."""
    await until(lambda: session.counters["connects"] == 2 and session.state == "streaming", "reconnected")
    await until(lambda: feed.subscribed_everything(sim), "resubscribed")
    await until(feed.ticks_flow_again(state), "ticks flow again")
    assert session.counters["disconnects"] == 1


@feeds
def test_streams_every_mode_into_the_state(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: all(state.tick(k)["mode"] == m for k, m in feed.subscriptions.items()), "modes")
        await until(lambda: len(batches) > 3, "flushes")
        health = session.health()
        assert health["state"] == "streaming" and health["last_frame_age_s"] < DEADLINE
        feed.check("streams", sim, session, state)

    run(feed, test)


@feeds
def test_abrupt_drop_reconnects_and_resubscribes(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: feed.subscribed_everything(sim), "subscribed")
        assert sim.drop() == 1
        await reconnects_once(feed, sim, session, state)
        feed.check("drop", sim, session, state)

    run(feed, test)


@feeds
def test_a_clean_close_by_the_broker_reconnects(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: feed.subscribed_everything(sim), "subscribed")
        for client in list(sim._clients):
            await client.connection.close(1001, "going away")  # a broker restart closes cleanly
        await reconnects_once(feed, sim, session, state)

    run(feed, test)


@feeds
def test_half_open_silence_is_detected_by_the_watchdog(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        sim.silence(feed.silence)  # open socket, nothing sent, not even keep-alives
        await until(lambda: session.counters["watchdog_timeouts"] >= 1, "watchdog fired")
        await until(lambda: session.counters["connects"] >= 2 and session.state == "streaming", "reconnected")
        await until(lambda: feed.subscribed_everything(sim), "resubscribed")
        await until(feed.ticks_flow_again(state), "ticks flow again")
        feed.check("silence", sim, session, state)

    run(feed, test, watchdog=0.5)


@feeds
def test_keepalives_keep_an_idle_connection_alive(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        sim.config.rate = 1e-9  # no data: only the broker's heartbeats or pings
        start = feed.keepalives(sim, session)
        await until(lambda: feed.keepalives(sim, session) >= start + feed.keepalives_needed, "keep-alives")
        assert session.counters["watchdog_timeouts"] == 0 and session.counters["connects"] == 1

    run(feed, test, feed.idle_sim, watchdog=0.5)


@feeds
def test_garbage_frame_is_counted_and_the_stream_goes_on(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await sim.send_garbage()
        await until(lambda: session.counters["frame_errors"] == 1, "frame error counted")
        assert session.last_bad_frame.endswith(feed.garbage) and feed.garbage_error in str(session.last_frame_error)
        await until(feed.ticks_flow_again(state), "ticks flow on")
        assert session.counters["connects"] == 1

    run(feed, test)


@feeds
def test_expired_token_opens_the_circuit_breaker(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        sim.expire_token()
        sim.drop()
        await until(lambda: session.state == "auth_failed", "breaker open")
        assert session.counters["auth_failures"] == 3 and sim.stats[feed.refusals] == 3

    run(feed, test)


@feeds
def test_bad_configuration_is_refused(feed: Feed) -> None:
    state = feed.new_state()
    for subscriptions, error in feed.refused_subscriptions:
        with pytest.raises(ValueError, match=error):
            feed.new_session(state, subscriptions)


@feeds
def test_the_backoff_starts_again_after_a_connection_that_streamed(feed: Feed) -> None:
    """Drops each after ``backoff_reset_after`` seconds of streaming: every retry
    waits as after the first failure, not longer each time (the outages grew
    0.1, 0.7, 0.9, 2.2, 1.6, 5.3, > 15.8 s when only a stop reset the count)."""

    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        for connects in range(1, 7):
            await until(lambda c=connects: session.counters["connects"] == c and session.state == "streaming",
                        f"connection {connects} streams")
            streaming_since = asyncio.get_running_loop().time()
            await until(lambda s=streaming_since: asyncio.get_running_loop().time() - s > 0.3, "0.3 s streamed")
            assert sim.drop() == 1
            await until(lambda c=connects: session.counters["reconnects"] == c, "retried")
            assert session._backoff.attempt == 1  # the retry after a good connection is a first one

    run(feed, test, backoff_base=0.05, backoff_cap=30.0, backoff_reset_after=0.2)


@feeds
def test_connections_that_drop_at_once_keep_the_backoff_growing(feed: Feed) -> None:
    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        for connects in range(1, 5):
            await until(lambda c=connects: session.counters["connects"] == c and session.state == "streaming",
                        f"connection {connects} streams")
            assert sim.drop() == 1
            await until(lambda c=connects: session.counters["reconnects"] == c, "retried")
            assert session._backoff.attempt == connects  # never up long enough to count as good

    run(feed, test, backoff_base=0.01, backoff_cap=0.05, backoff_reset_after=60.0)


@feeds
def test_hostile_text_frames_are_contained_and_the_connection_streams_on(feed: Feed) -> None:
    """JSON nested 5,000 deep (RecursionError in json.loads: it ended the plant),
    text that is not JSON, a 1 MiB string: each counted, none ends anything."""

    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: feed.subscribed_everything(sim), "subscribed")
        await sim.send_hostile_text()
        await until(lambda: session.counters["server_errors"] + session.faults.counts.get("text", 0) == 3,
                    "three text frames counted")
        before = len(batches)
        await until(lambda: len(batches) > before + 3, "ticks flow on")
        assert session.state == "streaming" and session.counters["connects"] == 1
        assert session.health()["contained"]["counts"] == session.faults.counts

    run(feed, test)


@feeds
def test_a_flush_consumer_or_recorder_that_raises_is_contained(feed: Feed) -> None:
    def fails(*_: Any) -> None:
        raise RuntimeError("a consumer's bug")

    async def test(sim: Any, session: Any, state: MarketState, batches: list[TickBatch]) -> None:
        await until(lambda: session.faults.counts.get("flush", 0) > 3 and session.faults.counts.get("record", 0) > 3,
                    "failures counted")
        assert session.state == "streaming" and session.counters["connects"] == 1
        assert session.faults.last["flush"] == "RuntimeError: a consumer's bug"

    run(feed, test, on_flush=fails, on_frame=fails)
