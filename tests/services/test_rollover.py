"""The trading day on a running plant: at the rollover the new day's instrument
master is swapped in without a restart, against the Kite simulator over real
loopback sockets and a real redis-server. The rollover's clock is driven by the
test (DayRollover.check(now)); nothing waits for 08:30.

The simulator serves both days' contracts at once (its universe is fixed for
its run), so an expired contract streams until the plant unsubscribes it and a
new one streams once the plant subscribes it. "Tomorrow" is the synthetic
universe of the next day with the exchange's habit: a contract keeps its token,
a new contract gets a new one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fastflow import brokers
from fastflow.brokers import masters
from fastflow.brokers.tokens import IST
from fastflow.config import BrokerSection, PlantSection
from fastflow.gateway.live import LiveSubscription
from fastflow.instruments import Instruments
from fastflow.instruments.changes import master_change
from fastflow.services.plant import DayRollover, Plant
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe, write_kite_csv
from fastflow.store.consumer import TickStore
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from ..waiting import DEADLINE, until

pytestmark = pytest.mark.usefixtures("event_loop_policy")  # asyncio, then uvloop

#: A Tuesday: the nearer NIFTY weekly series expires today and is gone tomorrow.
TODAY = dt.date(2026, 3, 3)
TOMORROW = TODAY + dt.timedelta(days=1)
INFY = 408065
Rows = list[dict[str, Any]]


def at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    """``day`` at ``hour:minute`` IST."""
    return dt.datetime.combine(day, dt.time(hour, minute), IST)


def next_day(today: Rows, tomorrow: Rows) -> Rows:
    """``tomorrow``'s rows with today's tokens for the contracts listed both days and
    fresh tokens (never used today) for the new ones."""
    known = {(r["exchange"], r["tradingsymbol"]): (r["instrument_token"], r["exchange_token"]) for r in today}
    fresh = itertools.count(90_001)
    rows = []
    for row in tomorrow:
        token = known.get((row["exchange"], row["tradingsymbol"]))
        if token is None:
            exchange_token = next(fresh)
            token = (exchange_token * 256 + int(row["instrument_token"]) % 256, exchange_token)
        rows.append({**row, "instrument_token": token[0], "exchange_token": token[1]})
    return rows


TODAY_ROWS = kite_universe(TODAY)
TOMORROW_ROWS = next_day(TODAY_ROWS, kite_universe(TOMORROW))
CHANGE = master_change(Instruments.from_kite_rows(TODAY_ROWS), Instruments.from_kite_rows(TOMORROW_ROWS))


def token_of(rows: Rows, symbol: str) -> int:
    return next(int(r["instrument_token"]) for r in rows if f"{r['exchange']}:{r['tradingsymbol']}" == symbol)


def subscribed(sim: KiteSimulator) -> set[int]:
    return {token for client in sim._clients for token in client.modes}


Test = Callable[[KiteSimulator, Plant, DayRollover, list[str]], Awaitable[None]]


class Resets:
    """A gateway's side of LiveSubscription: the instrument list of each reset."""

    def __init__(self) -> None:
        self.resets: list[list[str]] = []

    def reset(self, symbols: list[str], ids: dict[str, str], seed: bytes, meta: dict[str, str]) -> None:
        self.resets.append(symbols)

    def frame(self, frame: bytes) -> None:
        pass

    def update_meta(self, meta: dict[str, str]) -> None:
        pass

    def seed_flow(self, events: list[bytes]) -> None:
        pass

    def flow(self, frame: bytes) -> None:
        pass


def with_plant(test: Test, *, subscriptions: dict[int, str] | None = None, subscribe_all: str | None = "quote",
               load: Callable[[dt.datetime], Instruments] | None = None, redis_server: EmbeddedRedis | None = None,
               partition: str = "kite") -> Plant:
    """A plant on today's master against a simulator serving both days' contracts
    (with a Redis writer on ``redis_server``), its DayRollover at 08:30 on ``load``
    (default: tomorrow's master); ``test(sim, plant, rollover, lines)`` once it
    streams, where ``lines`` collects what the rollover says."""

    async def main() -> Plant:
        fresh = [row for row in TOMORROW_ROWS if 90_001 <= int(row["exchange_token"]) < 91_000]
        sim = KiteSimulator(KiteMarket.from_rows(TODAY_ROWS + fresh, seed=4),
                            KiteSimConfig(rate=2_000, heartbeat=0.2))
        await sim.start("127.0.0.1", 0)
        instruments = Instruments.from_kite_rows(TODAY_ROWS)
        wanted = subscriptions
        if wanted is None:
            assert subscribe_all is not None
            wanted = brokers.get("kite").subscriptions(instruments, None, subscribe_all)[0]
        options = {"api_key": "fastflow", "access_token": "sim-token", "url": f"ws://127.0.0.1:{sim.port}/",
                   "watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05, "rng": random.Random(5)}
        plant = Plant("kite", instruments, wanted, ingest_options=options, subscribe_all=subscribe_all, day=TODAY)
        writer = None
        if redis_server is not None:
            writer = RedisWriter(plant.state, RedisTarget.parse(f"unix://{redis_server.unix_socket}"),
                                 Keys(partition))
            plant.attach_store(writer, writer.on_flush)
        lines: list[str] = []
        rollover = DayRollover(plant, load or (lambda now: Instruments.from_kite_rows(TOMORROW_ROWS)),
                               at=masters.PUBLISHED, day=TODAY, now=lambda: at(TODAY, 15, 0),
                               report=lines.append, warn=lines.append)
        plant.rollover = rollover  # as main() does: it runs beside the ingest (on its clock: never due here)
        task = asyncio.create_task(plant.run())
        try:
            await until(lambda: plant.ingest.health()["state"] == "streaming", "streaming")
            await until(lambda: writer is None or writer.state_name == "connected", "redis connected")
            await test(sim, plant, rollover, lines)
        finally:
            plant.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()
        return plant

    return asyncio.run(main())


def test_tomorrow_has_expired_and_new_contracts() -> None:
    """The fixture's premise: the day's weekly series expires, a new one is listed."""
    assert CHANGE.expired and CHANGE.listed and not CHANGE.reused
    assert all(symbol.startswith("NFO:NIFTY26303") for symbol in CHANGE.expired)
    assert CHANGE.before == CHANGE.after == len(TODAY_ROWS)


def test_the_rollover_swaps_the_master_on_a_running_plant(redis_server: EmbeddedRedis) -> None:
    """Crossing 08:30: expired contracts are unsubscribed and gone from Redis, new
    ones stream and are in the instruments and ids hashes, meta has the new day,
    and no flush is lost or counted twice."""
    expired, listed = CHANGE.expired[0], CHANGE.listed[0]
    expired_token, listed_token = token_of(TODAY_ROWS, expired), token_of(TOMORROW_ROWS, listed)
    keys = Keys("kite")
    store = TickStore(RedisTarget.parse(f"unix://{redis_server.unix_socket}").client(), keys)
    decoders: list[Any] = []
    gateway = Resets()

    async def test(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        decoders.append(plant.decoder)
        live = LiveSubscription(RedisTarget.parse(f"unix://{redis_server.unix_socket}"), keys, gateway,
                                meta_interval=0.05, backoff_base=0.01, backoff_cap=0.05)
        feed = asyncio.create_task(live.run())
        try:
            await check(sim, plant, rollover, lines)
            # A gateway that ran across the rollover loads the new master from Redis.
            await until(lambda: len(gateway.resets) >= 2, "the gateway reloaded the master")
            symbols = gateway.resets[-1]
            assert listed in symbols and expired not in symbols and expired in gateway.resets[0]
            assert "rolled over" in live.last_error
        finally:
            live.stop()
            await asyncio.wait_for(feed, DEADLINE)

    async def check(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        await until(lambda: expired_token in subscribed(sim), "subscribed")
        assert listed_token not in subscribed(sim)
        await until(lambda: store.latest(expired) is not None, "the expiring contract in Redis")
        assert store.symbol_of(expired_token) == expired and store.instrument(listed) is None
        assert store.meta()["day"] == TODAY.isoformat()
        assert not await rollover.check(at(TOMORROW, 8, 29))  # not yet: the old day's master is current
        assert plant.rollovers == 0 and not lines
        flushes = plant.flushes
        assert await rollover.check(at(TOMORROW, 8, 30))
        decoders.append(plant.decoder)
        assert plant.rollovers == 1 and plant.day == TOMORROW and rollover.day == TOMORROW
        [line] = lines
        assert line.startswith(f"rollover: instrument master of {TOMORROW} in: ")
        assert f"{len(CHANGE.expired)} expired" in line and f"{len(CHANGE.listed)} new" in line
        assert expired_token not in plant.subscriptions and plant.subscriptions[listed_token] == "quote"
        assert len(plant.subscriptions) == len(TOMORROW_ROWS)
        await until(lambda: expired_token not in subscribed(sim) and listed_token in subscribed(sim),
                    "the simulator told: the expired contract unsubscribed, the new one subscribed")
        await until(lambda: store.latest(listed) is not None, "the new contract streams into Redis")
        await until(lambda: store.latest(expired) is None, "the expired contract's latest entry gone")
        assert all(store.latest(symbol) is None for symbol in CHANGE.expired)
        assert store.instrument(expired) is None and store.instrument(listed)["instrument_token"] == listed_token
        assert store.symbol_of(listed_token) == listed and store.symbol_of(expired_token) is None
        assert store.latest("NSE:INFY") is not None  # an instrument that goes on keeps its entry
        meta = store.meta()
        assert meta["day"] == TOMORROW.isoformat() and int(meta["rolled_over_ns"]) > 0
        assert meta["instruments"] == str(len(TOMORROW_ROWS))
        assert plant.state.tick(listed_token)["seq"] > 0 and plant.state.instruments.symbol_of(listed_token) == listed
        await until(lambda: plant.flushes > flushes + 20, "flushes go on")
        assert plant.consumer_errors == 0 and plant.health()["plant"]["day"] == TOMORROW.isoformat()
        assert not await rollover.check(at(TOMORROW, 12, 0))  # once a day
        sim.config.rate = 1e-9  # stop the feed; let everything settle
        assert plant.store is not None
        await plant.store.acknowledged()

    plant = with_plant(test, redis_server=redis_server)
    old, new = (decoder.stats() for decoder in decoders)
    assert plant.ticks == old["packets"] + new["packets"], "a flush lost or counted twice across the swap"
    writer = plant.store
    assert isinstance(writer, RedisWriter)
    assert writer.counters["flushes"] == plant.flushes and writer.counters["errors"] == 0
    assert old["frame_errors"] == new["frame_errors"] == 0


def test_explicit_symbols_that_expired_are_said_once_and_the_rest_goes_on() -> None:
    expiring = CHANGE.expired[0]
    token = token_of(TODAY_ROWS, expiring)

    async def test(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        await until(lambda: subscribed(sim) == {INFY, token}, "subscribed")
        assert await rollover.check(at(TOMORROW, 9, 0))
        assert len(lines) == 2
        assert lines[1] == (f"rollover: 1 subscribed symbol(s) not in the new instrument master (expired?), "
                            f"no longer subscribed: {expiring}")
        assert plant.subscriptions == {INFY: "full"}
        await until(lambda: subscribed(sim) == {INFY}, "the expired contract unsubscribed")
        seq = plant.state.tick(INFY)["seq"]
        await until(lambda: plant.state.tick(INFY)["seq"] > seq, "NSE:INFY streams on")
        lines.clear()
        assert await rollover.check(at(TOMORROW + dt.timedelta(days=1), 9, 0))  # the same master again
        [line] = lines  # the missing symbol is not said again
        assert "0 expired" in line and "subscriptions 1 -> 1" in line

    with_plant(test, subscriptions={INFY: "full", token: "quote"}, subscribe_all=None)


def test_a_failed_download_keeps_the_old_master_says_one_line_and_is_retried(tmp_path: Path) -> None:
    """The real download path against a port where nothing listens; then the broker
    names a file with tomorrow's master and the retry, after its delay, succeeds."""
    closed = "http://127.0.0.1:9/instruments"  # discard: nothing listens there
    broker = BrokerSection(api_key="key", access_token="token", instruments_url=closed, state_dir=str(tmp_path))
    assert masters.wants_download(broker)
    settings = {"broker": broker}

    def load(now: dt.datetime) -> Instruments:
        return masters.load_master(settings["broker"], now=now, published=PlantSection().rollover_time)

    async def test(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        state, flushes = plant.state, plant.flushes
        now = at(TOMORROW, 8, 31)
        assert not await rollover.check(now)
        [line] = lines
        assert line.startswith(f"rollover: cannot load the instrument master of {TOMORROW} (attempt 1): "
                               f"cannot download the kite instrument master from {closed}: ")
        assert line.endswith(" s") and f"keeping the master of {TODAY}, retrying in " in line
        assert plant.state is state and plant.day == TODAY and plant.rollovers == 0
        assert rollover.failures == 1 and plant.health()["plant"]["rollover"]["failures"] == 1
        await until(lambda: plant.flushes > flushes + 10, "the plant streams on with the old master")
        assert not await rollover.check(now + dt.timedelta(seconds=10))  # within the retry delay: no attempt
        assert len(lines) == 1
        path = tmp_path / "instruments.csv"
        write_kite_csv(TOMORROW_ROWS, path)
        settings["broker"] = BrokerSection(instruments=str(path))  # the master is a file now
        assert await rollover.check(now + dt.timedelta(seconds=rollover._backoff.cap + 1))
        assert plant.day == TOMORROW and rollover.failures == 0 and len(plant.state) == len(TOMORROW_ROWS)
        assert lines[1].startswith(f"rollover: instrument master of {TOMORROW} in: ")

    with_plant(test, load=load, subscriptions={INFY: "full"}, subscribe_all=None)


def test_a_master_the_plant_refuses_changes_nothing() -> None:
    """A master of another broker is refused before anything changes: one line, the old master stays."""
    from fastflow.sim.universe import upstox_universe

    upstox = Instruments.from_upstox_rows(upstox_universe(TOMORROW))

    async def test(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        state = plant.state
        with pytest.raises(ValueError, match="a upstox instrument master cannot serve a kite plant"):
            plant.roll_over(upstox)
        assert plant.state is state and plant.rollovers == 0
        assert not await rollover.check(at(TOMORROW, 8, 30))
        [line] = lines
        assert line.startswith(f"rollover: cannot swap in the instrument master of {TOMORROW} (attempt 1): "
                               "a upstox instrument master cannot serve a kite plant; ")
        assert plant.state is state and plant.day == TODAY

    with_plant(test, load=lambda now: upstox, subscriptions={INFY: "full"}, subscribe_all=None)


def test_reused_tokens_name_the_new_contract_after_the_rollover() -> None:
    """The synthetic universe numbers contracts in order, so tomorrow's raw universe
    gives an expired contract's token to another one: the token stays subscribed and
    resolves to the new contract."""
    raw = kite_universe(TOMORROW)
    change = master_change(Instruments.from_kite_rows(TODAY_ROWS), Instruments.from_kite_rows(raw))
    assert change.reused and change.expired
    reused = int(change.reused[0])

    async def test(sim: KiteSimulator, plant: Plant, rollover: DayRollover, lines: list[str]) -> None:
        await until(lambda: reused in subscribed(sim), "subscribed before the rollover")
        before = plant.state.instruments.symbol_of(reused)
        assert await rollover.check(at(TOMORROW, 8, 30))
        assert f"{len(change.reused)} ids reused" in lines[0]
        after = plant.state.instruments.symbol_of(reused)
        assert before != after and plant.subscriptions[reused] == "quote"
        assert reused in subscribed(sim)  # never unsubscribed: the same token, another contract
        await until(lambda: plant.state.tick(reused)["seq"] > 0, "the reused token streams as the new contract")
        assert plant.state.tick(reused)["symbol"] == after

    with_plant(test, load=lambda now: Instruments.from_kite_rows(raw))


def test_the_rollover_time_is_the_day_of_the_master() -> None:
    """``plant.rollover`` (08:30 = masters.PUBLISHED) is when the master's day turns."""
    from fastflow.config import load_config

    assert PlantSection().rollover == "08:30" and dt.time(8, 30) == masters.PUBLISHED
    config = load_config(env={"FASTFLOW_CONFIG": "", "FASTFLOW_PLANT_ROLLOVER": "07:45"})
    assert config.plant.rollover_time == dt.time(7, 45)
    assert masters.master_day(at(TOMORROW, 7, 50), config.plant.rollover_time) == TOMORROW
    assert masters.master_day(at(TOMORROW, 7, 50)) == TODAY
    assert masters.master_day(at(TOMORROW, 8, 30)) == TOMORROW


def test_a_failure_is_logged_at_warning_without_a_report_function(caplog: pytest.LogCaptureFixture) -> None:

    async def main() -> None:
        plant = Plant("kite", Instruments.from_kite_rows(TODAY_ROWS), {INFY: "full"},
                      ingest_options={"url": "ws://127.0.0.1:9/"}, day=TODAY)

        def broken(now: dt.datetime) -> Instruments:
            raise OSError("disk on fire")

        rollover = DayRollover(plant, broken, day=TODAY)
        with caplog.at_level(logging.WARNING, logger="fastflow.services.plant"):
            assert not await rollover.check(at(TOMORROW, 9, 0))
        [record] = caplog.records
        assert "disk on fire" in record.getMessage() and record.levelno == logging.WARNING

    asyncio.run(main())
