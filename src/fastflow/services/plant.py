"""The plant process (``fastflow plant``): a broker's ingest and the hot path, and
beside them the Redis writer.

:class:`Plant` builds a :class:`~fastflow.hotpath.MarketState`, the broker's
decoder and ingest from the broker registry (:func:`fastflow.brokers.get`), or
a :class:`~fastflow.ingest.replay.ReplayIngest` over a capture, and hands each
:class:`~fastflow.hotpath.TickBatch` (one flush per WebSocket message) to its
consumers: the Redis writer attaches there. It counts flushes and ticks and
observes the age of each flush's ticks (``fastflow_tick_age_seconds{stage="decoded"}``).
:func:`health_server` puts ``GET /healthz`` (200 while the ingest streams, 503
otherwise, JSON) and ``GET /metrics`` (Prometheus text) on the one health
server (docs/ingest.md); :func:`main` is the process.

The trading day: :class:`DayRollover` runs beside a live plant and, once a day at
``plant.rollover`` (IST, 08:30 by default), loads the new day's instrument master
the way the plant's start did (:func:`fastflow.brokers.masters.load_master`) and
hands it to :meth:`Plant.roll_over`, which swaps it in between two flushes
without a restart (docs/ingest.md, "The trading day"). A failed load keeps the
old master, says one line and is retried with the one backoff.

Cold code: nothing here runs per packet; :meth:`Plant._on_flush` runs once per
WebSocket message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Protocol

from fastflow import brokers
from fastflow.analytics import flow as options_flow
from fastflow.brokers import masters
from fastflow.config import Config, FlowSection, PlantSection
from fastflow.errors import ListenError
from fastflow.hotpath import MarketState, TickBatch
from fastflow.ingest.replay import ReplayIngest
from fastflow.instruments import Instruments
from fastflow.instruments.changes import MasterChange, master_change
from fastflow.obs import metrics
from fastflow.obs.backoff import Backoff
from fastflow.obs.faults import Faults
from fastflow.obs.health import HealthServer, Response, alive, health_response
from fastflow.obs.loop import asyncio_run
from fastflow.obs.state import State

logger = logging.getLogger(__name__)

FlushConsumer = Callable[[TickBatch], object]


class Service(Protocol):
    """Something the plant runs: its ingest (a broker's, or a replay), and beside
    it the Redis writer."""

    async def run(self) -> None:
        """Run until :meth:`stop` (or until the service gives up by itself)."""
        ...

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        ...

    def health(self) -> dict[str, Any]:
        """A JSON-able dict with at least ``"state"`` (an ingest adds ``"connections"``)."""
        ...


#: What the plant needs from a broker ingest (or a replay).
Ingest = Service


class Store(Service, Protocol):
    """What the plant needs from the store beside it (the Redis writer)."""

    #: The age of the ticks when Redis acknowledged their flush (stage ``redis``).
    tick_age: metrics.Histogram

    def busy(self) -> bool:
        """True while another flush would be dropped (a replay waits instead)."""
        ...

    async def writable(self) -> None:
        """Until :meth:`busy` is False."""
        ...

    async def acknowledged(self) -> None:
        """Until no flush is in flight."""
        ...

    def metrics(self) -> list[list[str]]:
        """Its Prometheus sections for the plant's /metrics."""
        ...

    def set_meta(self, field: str, value: str) -> None:
        """Keep ``field`` in the partition's meta (the plant's ingest state, for the gateways)."""
        ...

    def roll_over(self, state: MarketState, expired: Iterable[str], meta: dict[str, str] | None = None) -> None:
        """Write the new day's ``state`` from the next flush on; delete the latest
        entries of ``expired`` symbols; set ``meta`` fields (the day's rollover)."""
        ...


# -- the plant ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rolled:
    """What one :meth:`Plant.roll_over` did."""

    day: datetime.date | None
    change: MasterChange
    #: Broker ids subscribed before and after, unsubscribed and newly subscribed.
    before: int
    after: int
    unsubscribed: int
    subscribed: int
    #: Symbols the plant subscribed that the new master does not list (said once each).
    missing: tuple[str, ...]
    #: The broker's note on the new subscriptions ("" unless something was left out).
    note: str

    def lines(self) -> list[str]:
        """What the plant says about it: one line, two with missing symbols."""
        day = f" of {self.day}" if self.day is not None else ""
        lines = [f"rollover: instrument master{day} in: {self.change.summary()}; subscriptions {self.before:,} -> "
                 f"{self.after:,} ({self.unsubscribed:,} unsubscribed, {self.subscribed:,} subscribed)"
                 + (f"; {self.note}" if self.note else "")]
        if self.missing:
            shown = ", ".join(self.missing[:10]) + (", ..." if len(self.missing) > 10 else "")
            lines.append(f"rollover: {len(self.missing):,} subscribed symbol(s) not in the new instrument master "
                         f"(expired?), no longer subscribed: {shown}")
        return lines


class Plant:
    """Ingest + hot path as one process. ``ingest_options`` go to the broker's
    ingest (:meth:`fastflow.brokers.BrokerSpec.ingest`); with ``replay`` a capture
    file drives the state instead (``speed`` as in
    :class:`~fastflow.ingest.replay.ReplayIngest`). ``subscribe_all`` (a mode) says
    the plant subscribes every instrument (``--all``): at a rollover, the new
    master's; otherwise a rollover keeps the symbols of ``subscriptions`` that the
    new master lists. ``day`` is the day of ``instruments`` (meta's ``day``)."""

    def __init__(
        self,
        broker: str,
        instruments: Instruments,
        subscriptions: Mapping[Any, str],
        *,
        ingest_options: Mapping[str, Any] | None = None,
        replay: str | os.PathLike[str] | None = None,
        speed: float | None = None,
        on_flush: Iterable[FlushConsumer] = (),
        shutdown_timeout: float = 3.0,
        subscribe_all: str | None = None,
        day: datetime.date | None = None,
        flow: FlowSection | None = None,
    ) -> None:
        if instruments.broker != broker:
            raise ValueError(f"a {instruments.broker} instrument master cannot serve a {broker} plant")
        self.broker = broker
        self.flow = flow
        self.state = self._new_state(instruments)
        self.spec = brokers.get(broker)
        self.decoder = self.spec.decoder(self.state)
        self.subscriptions = dict(subscriptions)
        self.subscribe_all = subscribe_all
        #: What a rollover subscribes (without ``subscribe_all``): symbol (or an id the
        #: master does not know) -> mode.
        self.wanted = {(instruments.symbol_of(key) if key in instruments else str(key)): mode
                       for key, mode in self.subscriptions.items()}
        self.day = day
        self.rollovers = 0
        self.rollover: DayRollover | None = None  # set by main() for a live plant
        self._said_missing: set[str] = set()
        self.consumers: list[FlushConsumer] = list(on_flush)
        self.source = "replay" if replay is not None else "live"
        self.ingest: Ingest
        self.live: brokers.Ingest | None = None
        if replay is not None:
            self.ingest = ReplayIngest(self.decoder, replay, speed=speed, on_flush=self._on_flush)
        else:
            self.ingest = self.live = self.spec.ingest(self.decoder, self.subscriptions, on_flush=self._on_flush,
                                                       **dict(ingest_options or {}))
        self.shutdown_timeout = shutdown_timeout
        self.store: Store | None = None
        self.flushes = 0
        self.ticks = 0
        self.last_tick_ns = 0
        self.faults = Faults("plant", logger)  # flush consumers that raised: contained, counted
        self.started_ns = time.time_ns()
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        #: Age of the ticks when their flush is handed to the consumers.
        self.tick_age = metrics.tick_age("decoded")
        self._windows = {"decoded": self.tick_age.window()}  # stage -> the status line's window

    def attach_store(self, store: Store, on_flush: FlushConsumer) -> None:
        """Run ``store`` (the Redis writer) beside the ingest and give it every flush;
        its health shows under ``"redis"`` in /healthz, its ``metrics()`` and
        ``tick_age`` histogram in /metrics."""
        self.store = store
        if self.day is not None:
            store.set_meta("day", self.day.isoformat())
        self.add_consumer(on_flush)
        if isinstance(self.ingest, ReplayIngest):
            self.ingest.wait_for(store.busy, store.writable)  # a replay waits for Redis rather than dropping
        self._windows["redis"] = store.tick_age.window()

    def add_consumer(self, consumer: FlushConsumer) -> None:
        """Call ``consumer(batch)`` after every flush (beside the store, e.g. a capture)."""
        self.consumers.append(consumer)

    def _on_flush(self, batch: TickBatch) -> None:
        n = len(batch)
        now = time.time_ns()
        self.flushes += 1
        self.ticks += n
        self.last_tick_ns = now
        received = batch.receive_time_ns  # one int per flush, no object per tick
        if received and n:
            self.tick_age.observe_ns(max(0, now - received), n)
        for consumer in self.consumers:
            try:
                consumer(batch)
            except Exception as exc:  # one failing consumer must not stop the ingest
                self.faults.record("consumer", exc, repr(consumer))

    def roll_over(self, instruments: Instruments, *, day: datetime.date | None = None) -> Rolled:
        """Swap in ``instruments``, the new day's master, on the running plant (the
        day's rollover, while the market is closed): a new MarketState and decoder
        over it; the subscriptions computed from it (every instrument with
        ``subscribe_all``, else the symbols subscribed so far that it still lists);
        the ingest fed by the new decoder and sent the difference on its open
        connections; the store handed the new state, the expired symbols and the day.

        Synchronous: the event loop decodes and flushes one message at a time, so
        this runs between two flushes; a message already on its way is decoded with
        the new master (an id it no longer lists is an unknown-token count). Updates
        left unflushed in the old state are flushed first, so no flush is lost or
        counted twice. ``ValueError``, with nothing changed, for a master of another
        broker or subscriptions the ingest cannot take (or a replay: it has no
        master of the day)."""
        if self.live is None:
            raise ValueError("a replay does not roll over")
        if instruments.broker != self.broker:
            raise ValueError(f"a {instruments.broker} instrument master cannot serve a {self.broker} plant")
        change = master_change(self.state.instruments, instruments)
        subscriptions, missing, note = self._subscriptions_in(instruments)
        state = self._new_state(instruments)
        decoder = self.spec.decoder(state)
        self.live.resubscribe(decoder, subscriptions)  # raises before changing anything
        old, before = self.state, self.subscriptions
        if old.dirty_count:  # updates of a message whose handling failed half-way: not lost
            self._on_flush(old.flush())
        self.state, self.decoder, self.subscriptions = state, decoder, subscriptions
        self.day = day if day is not None else self.day
        self.rollovers += 1
        if self.store is not None:
            meta = {"rolled_over_ns": str(time.time_ns())}
            if self.day is not None:
                meta["day"] = self.day.isoformat()
            self.store.roll_over(state, change.expired, meta)
        fresh = tuple(symbol for symbol in missing if symbol not in self._said_missing)
        self._said_missing.update(fresh)
        return Rolled(day=day, change=change, before=len(before), after=len(subscriptions),
                      unsubscribed=sum(1 for key in before if key not in subscriptions),
                      subscribed=sum(1 for key in subscriptions if key not in before), missing=fresh, note=note)

    def _new_state(self, instruments: Instruments) -> MarketState:
        """The state of ``instruments``, with options-flow detection when ``flow`` is given."""
        state = MarketState(instruments)
        if self.flow is not None:
            options_flow.enable(state, self.flow)
        return state

    def _subscriptions_in(self, instruments: Instruments) -> tuple[dict[Any, str], list[str], str]:
        """The subscriptions a rollover makes in ``instruments``, the wanted symbols it
        does not list, and the broker's note."""
        if self.subscribe_all is not None:
            every, note = self.spec.subscriptions(instruments, None, self.subscribe_all)
            return every, [], note
        missing = [symbol for symbol in self.wanted if not self._lists(instruments, symbol)]
        by_mode: dict[str, list[str]] = {}
        for symbol, mode in self.wanted.items():
            if symbol not in missing:
                by_mode.setdefault(mode, []).append(symbol)
        subscriptions: dict[Any, str] = {}
        for mode, symbols in by_mode.items():
            subscriptions.update(self.spec.subscriptions(instruments, symbols, mode)[0])
        return subscriptions, missing, ""

    def _lists(self, instruments: Instruments, symbol: str) -> bool:
        """``symbol`` (or an int id written in digits) names an instrument of ``instruments``."""
        return symbol in instruments or (not self.spec.keyed and symbol.isdigit() and int(symbol) in instruments)

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    async def run(self) -> None:
        """Run the ingest until :meth:`stop`, or until it ends by itself (an
        open circuit breaker, the end of a replay). An ingest that does not
        return within ``shutdown_timeout`` of stop() is cancelled."""
        ingest = asyncio.create_task(self.ingest.run())
        stop = asyncio.create_task(self._stop.wait())
        store = asyncio.create_task(self.store.run()) if self.store is not None else None
        publish = asyncio.create_task(self._publish_state()) if self.store is not None else None
        rollover = asyncio.create_task(self.rollover.run()) if self.rollover is not None else None
        try:
            await asyncio.wait({ingest, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not ingest.done():
                self.ingest.stop()
                done, _ = await asyncio.wait({ingest}, timeout=self.shutdown_timeout)
                if not done:
                    logger.warning("plant: ingest did not stop within %.1f s: cancelled", self.shutdown_timeout)
                    ingest.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await ingest
                    return
            ingest.result()  # an ingest that crashed crashes the plant
        finally:
            stop.cancel()
            if publish is not None:
                publish.cancel()
            if rollover is not None:
                rollover.cancel()
            if not ingest.done():
                ingest.cancel()
            if store is not None and self.store is not None:
                await self._drain_store(store)
                self.store.stop()
                done, _ = await asyncio.wait({store}, timeout=self.shutdown_timeout)
                if not done:
                    store.cancel()

    async def _publish_state(self, every: float = 0.5) -> None:
        """The ingest's overall state into the partition's meta (``ingest_state``) on
        every change: the gateways tell their clients ``degraded`` from it."""
        assert self.store is not None
        said = ""
        while True:
            state = str(self.ingest.health().get("state", ""))
            if state != said:
                said = state
                self.store.set_meta("ingest_state", state)
            await asyncio.sleep(every)

    async def _drain_store(self, task: asyncio.Task[None]) -> None:
        """Before stopping the store: its flushes in flight answered (up to
        ``shutdown_timeout``, or until the store ends), so the last ones are acknowledged."""
        assert self.store is not None
        acknowledged = asyncio.ensure_future(self.store.acknowledged())
        await asyncio.wait({acknowledged, task}, timeout=self.shutdown_timeout, return_when=asyncio.FIRST_COMPLETED)
        acknowledged.cancel()

    @property
    def consumer_errors(self) -> int:
        return self.faults.counts.get("consumer", 0)

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started

    def health(self) -> dict[str, Any]:
        """The /healthz body: ``status`` "ok" (HTTP 200) only while the ingest streams."""
        ingest = self.ingest.health()
        uptime = self.uptime
        started = datetime.datetime.fromtimestamp(self.started_ns / 1e9, datetime.timezone.utc)
        last_tick_age = None if not self.last_tick_ns else round((time.time_ns() - self.last_tick_ns) / 1e9, 3)
        return {
            "status": "ok" if self.healthy(ingest) else "unavailable",
            "state": ingest["state"],
            "broker": self.broker,
            "source": self.source,
            "started_at": started.isoformat(timespec="seconds"),
            "uptime_s": round(uptime, 3),
            "last_tick_age_s": last_tick_age,
            "plant": {
                "instruments": len(self.state),
                "subscriptions": len(self.subscriptions),
                "flushes": self.flushes,
                "ticks": self.ticks,
                "ticks_per_s": round(self.ticks / uptime, 1) if uptime > 0 else 0.0,
                "consumers": len(self.consumers),
                "consumer_errors": self.consumer_errors,
                "last_consumer_error": self.faults.last.get("consumer", ""),
                "day": self.day.isoformat() if self.day is not None else None,
                "rollovers": self.rollovers,
                **({"rollover": self.rollover.health()} if self.rollover is not None else {}),
            },
            "decoder": self.decoder.stats(),
            **({"flow": self.state.flow_stats} if self.flow is not None else {}),
            "ingest": ingest,
            **({"redis": self.store.health()} if self.store is not None else {}),
        }

    @staticmethod
    def healthy(ingest_health: Mapping[str, Any]) -> bool:
        return ingest_health.get("state") == State.STREAMING

    def metrics(self) -> bytes:
        """The /metrics body: Prometheus text 0.0.4 (docs/ingest.md)."""
        ingest = self.ingest.health()
        connections = ingest.get("connections", [])
        streaming = sum(1 for c in connections if c.get("state") == State.STREAMING)
        ages = [self.tick_age]
        sections = [
            metrics.gauge("plant_healthy", "1 while the ingest streams (/healthz answers 200)",
                          1 if self.healthy(ingest) else 0),
            metrics.gauge("plant_connections", "Broker connections (a replay: 1)", len(connections)),
            metrics.gauge("plant_streaming_connections", "Broker connections streaming", streaming),
            metrics.counter("plant_ticks_total", "Ticks flushed (the sum of the flushes' sizes)", self.ticks),
            metrics.counter("plant_flushes_total", "Flushes handed to the consumers (one per message)",
                            self.flushes),
            metrics.counter("plant_frame_errors_total", "Broker messages the decoder rejected",
                            sum(int(c.get("frame_errors", 0)) for c in connections)),
            metrics.counter("plant_reconnects_total", "Broker reconnections",
                            sum(int(c.get("reconnects", 0)) for c in connections)),
            metrics.counter("plant_connect_failures_total",
                            "Broker connection attempts that never opened (refused, DNS, timeout, HTTP answer)",
                            sum(int(c.get("connect_failures", 0)) for c in connections)),
            metrics.counter("plant_disconnects_total", "Broker connections lost after they had opened",
                            sum(int(c.get("disconnects", 0)) for c in connections)),
            metrics.counter("plant_consumer_errors_total", "Flush consumers that raised",
                            self.consumer_errors),
            metrics.counter("plant_contained_errors_total",
                            "Broker messages whose handling failed and was contained, by reason",
                            contained(connections), "reason"),
        ]
        if self.store is not None:
            sections += self.store.metrics()
            ages.append(self.store.tick_age)
        sections.append(metrics.family(ages))
        return metrics.render(sections)

    def status_line(self, ticks_per_s: float) -> str:
        """One line for the terminal: state, ticks/s, connections, reconnects,
        errors; the p99 tick age at each of the plant's stages since the
        previous call."""
        ingest = self.ingest.health()
        connections = ingest.get("connections", [])
        streaming = sum(1 for c in connections if c.get("state") == State.STREAMING)
        reconnects = sum(int(c.get("reconnects", 0)) for c in connections)
        errors = str(sum(int(c.get("frame_errors", 0)) for c in connections))
        failed = sum(contained(connections).values())
        if failed:
            errors += f", contained failures {failed:g}"
        age = "-" if not self.last_tick_ns else f"{(time.time_ns() - self.last_tick_ns) / 1e9:.2f} s"
        p99 = ", ".join(f"{stage} {metrics.window_ms(window, 0.99)}" for stage, window in self._windows.items())
        line = (f"{ingest['state']}: {ticks_per_s:,.0f} ticks/s, {streaming}/{len(connections)} connections "
                f"streaming, reconnects {reconnects}, frame errors {errors}, ticks {self.ticks:,}, "
                f"last tick {age} ago; p99 {p99}")
        down = [c for c in connections if c.get("state") != State.STREAMING and c.get("failure")]
        if down:  # why the first connection that is not streaming is not, and for how long
            c = down[0]
            what = "cannot connect" if c["failure"] == "cannot_connect" else "connection lost"
            since = c.get("down_for_s")
            line += (f"; {what}" + (f" for {since:.0f} s" if isinstance(since, (int, float)) else "")
                     + f": {c.get('last_error', '')}")
        if self.store is not None:
            redis = self.store.health()
            line += (f"; redis {redis.get('state')}{' FULL (maxmemory)' if redis.get('full') else ''}, "
                     f"{redis.get('written', 0):,} flushes written, {redis.get('dropped', 0):,} dropped")
        return line


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class DayRollover:
    """The plant's day rollover: when the day of the master (the IST date from
    ``at`` on, :func:`~fastflow.brokers.masters.master_day`) moves past ``day``,
    ``load(now)`` (in a thread: a download or a file read blocks) and hand the
    result to :meth:`Plant.roll_over`. A load or a swap that fails keeps the old
    master, is said in one line (``warn``) and retried after a delay of the one
    backoff (``retry_base`` doubling to ``retry_cap`` seconds, jittered, never
    under ``retry_base`` / 2); the plant never stops for it. ``now`` is the clock
    (UTC-aware); tests drive :meth:`check` with their own time instead of waiting
    for 08:30."""

    def __init__(
        self,
        plant: Plant,
        load: Callable[[datetime.datetime], Instruments],
        *,
        at: datetime.time = masters.PUBLISHED,
        day: datetime.date | None = None,
        now: Callable[[], datetime.datetime] = _utc_now,
        retry_base: float = 30.0,
        retry_cap: float = 900.0,
        poll: float = 30.0,
        report: Callable[[str], object] = logger.info,
        warn: Callable[[str], object] = logger.warning,
    ) -> None:
        if not 0 < retry_base <= retry_cap or not poll > 0:
            raise ValueError("retry_base must be > 0 and <= retry_cap, poll > 0")
        self.plant = plant
        self.load = load
        self.at = at
        self.now = now
        self.day = day if day is not None else masters.master_day(now(), at)
        self.retry_base = retry_base
        self.poll = poll
        self.report = report
        self.warn = warn
        self.failures = 0  # in a row
        self.last_error = ""
        self._backoff = Backoff(retry_base, retry_cap)
        self._retry_at: datetime.datetime | None = None
        self._busy = False

    def due(self, now: datetime.datetime) -> bool:
        """A new day's master is due at ``now`` (and no retry delay is running)."""
        return masters.master_day(now, self.at) > self.day and (self._retry_at is None or now >= self._retry_at)

    async def check(self, now: datetime.datetime | None = None) -> bool:
        """Roll the plant over if it is due at ``now`` (default: the clock); True when it did."""
        now = self.now() if now is None else now
        if self._busy or not self.due(now):
            return False
        day = masters.master_day(now, self.at)
        self._busy = True
        try:
            try:
                instruments = await asyncio.to_thread(self.load, now)
            except Exception as exc:  # whatever the load raised (a download, a file, a universe)
                self._failed(now, f"cannot load the instrument master of {day}", exc)
                return False
            try:
                rolled = self.plant.roll_over(instruments, day=day)
            except ValueError as exc:  # refused before anything changed
                self._failed(now, f"cannot swap in the instrument master of {day}", exc)
                return False
        finally:
            self._busy = False
        self.day = day
        self.failures = 0
        self.last_error = ""
        self._retry_at = None
        self._backoff.reset()
        for line in rolled.lines():
            self.report(line)
        return True

    def _failed(self, now: datetime.datetime, what: str, exc: Exception) -> None:
        """One line; the old master stays; the next attempt after the backoff's delay."""
        self.failures += 1
        self.last_error = " ".join(str(exc).split()) or type(exc).__name__
        delay = max(self.retry_base / 2, self._backoff.next_delay())
        self._retry_at = now + datetime.timedelta(seconds=delay)
        self.warn(f"rollover: {what} (attempt {self.failures}): {self.last_error}; "
                  f"keeping the master of {self.day}, retrying in {delay:.0f} s")

    async def run(self) -> None:
        """Check every ``poll`` seconds (sooner when the retry is due sooner), for ever."""
        while True:
            await self.check()
            wait = self.poll
            if self._retry_at is not None:
                wait = min(wait, max(0.0, (self._retry_at - self.now()).total_seconds()))
            await asyncio.sleep(wait)

    def health(self) -> dict[str, Any]:
        return {"at": self.at.strftime("%H:%M"), "day": self.day.isoformat(), "failures": self.failures,
                "last_error": self.last_error,
                "retry_at": self._retry_at.isoformat(timespec="seconds") if self._retry_at is not None else None}


def contained(connections: list[dict[str, Any]]) -> dict[str, float]:
    """The connections' contained failures (FeedSession.faults), summed by reason."""
    total: dict[str, float] = {}
    for connection in connections:
        for reason, n in connection.get("contained", {}).get("counts", {}).items():
            total[reason] = total.get(reason, 0) + n
    return total


# -- /healthz and /metrics ------------------------------------------------------------------


def health_server(plant: Plant, host: str = "127.0.0.1", port: int = 0) -> HealthServer:
    """The plant's routes on the one health server: ``GET /healthz`` (200 with
    :meth:`Plant.health` as JSON while the ingest streams, 503 with the same body
    otherwise), ``GET /metrics`` (:meth:`Plant.metrics`, Prometheus text 0.0.4) and
    ``GET /livez`` (200 while the process runs: liveness, for a supervisor)."""

    def healthz() -> Response:
        health = plant.health()
        return health_response(health, health["status"] == "ok")

    def metrics_text() -> Response:
        return HTTPStatus.OK, plant.metrics(), metrics.CONTENT_TYPE

    return HealthServer({"/healthz": healthz, "/metrics": metrics_text, "/livez": alive}, host, port)


# -- running it -----------------------------------------------------------------------------


async def serve_plant(
    plant: Plant,
    *,
    health_host: str = "127.0.0.1",
    health_port: int | None = 0,
    duration: float | None = None,
    status_every: float | None = PlantSection.status_every,
    report: Callable[[str], object] = print,
    handle_signals: bool = False,
    on_ready: Callable[[HealthServer | None], object] | None = None,
) -> HealthServer | None:
    """Run ``plant`` with /healthz and /metrics (``health_port`` None: none)
    and a status line every ``status_every`` seconds, until stop(),
    SIGINT/SIGTERM (with ``handle_signals``), ``duration`` seconds, or the
    ingest's end."""
    import signal

    loop = asyncio.get_running_loop()
    health = None
    if health_port is not None:
        health = health_server(plant, health_host, health_port)
        try:
            await health.start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {health_host}:{health_port} for /healthz: "
                              f"{exc.strerror or exc}") from None
        report(f"/healthz on {health.url_of('/healthz')}")
        report(f"/metrics on {health.url_of('/metrics')}")
    if on_ready is not None:
        on_ready(health)
    if handle_signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, plant.stop)
    timer = loop.call_later(duration, plant.stop) if duration is not None else None

    async def status() -> None:
        assert status_every is not None
        ticks, then = plant.ticks, time.monotonic()
        while True:
            await asyncio.sleep(status_every)
            now = time.monotonic()
            report(plant.status_line((plant.ticks - ticks) / (now - then)))
            ticks, then = plant.ticks, now

    reporter = asyncio.create_task(status()) if status_every else None
    try:
        await plant.run()
    finally:
        if reporter is not None:
            reporter.cancel()
        if timer is not None:
            timer.cancel()
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        if health is not None:
            await health.stop()
    return health


def credentials(config: Config) -> tuple[str, str]:
    """The plant's api_key and access_token: ``broker.*``, else the simulator's."""
    broker = config.broker
    return broker.api_key or config.simulator.api_key, broker.access_token or config.simulator.access_token


def main(config: Config, *, duration: float | None = None, instruments: Instruments | None = None,
         synthetic: Callable[[datetime.date | None], Instruments] | None = None) -> int:
    """``fastflow plant``: run the plant of ``config`` (broker, redis and plant
    sections) until SIGINT/SIGTERM, ``duration`` or the ingest's end; announces
    ``{"service": "plant", "health_url", "metrics_url"}`` to a parent. Without
    credentials the plant presents the simulator's. The instrument master is
    :func:`fastflow.brokers.masters.load_master`'s (the day's download, the
    ``broker.instruments`` file, else ``synthetic(None)``: the command line's
    synthetic universe), loaded again at each day's rollover (``plant.rollover``);
    ``instruments`` (when given) replaces it, and then the plant does not roll
    over, nor with a synthetic universe (the simulator's, fixed for its run). Returns 0, 1 when the broker refused
    the token or the ingest gave up (``broker.give_up_after``, or a URL that is not a
    feed: one line on stderr says which), 2 for a bad input."""
    from fastflow.brokers import get as broker_spec
    from fastflow.ingest.capture import CaptureError
    from fastflow.instruments import InstrumentError
    from fastflow.obs.ready import announce
    from fastflow.store.embedded import EmbeddedRedis, RedisServerError
    from fastflow.store.keys import Keys
    from fastflow.store.target import RedisTarget
    from fastflow.store.writer import RedisWriter

    def fail(message: str) -> int:
        print(f"fastflow plant: {message}", file=sys.stderr)
        return 2

    def report(message: str) -> None:
        print(f"fastflow plant: {message}", flush=True)

    broker, section = config.broker, config.plant
    spec = broker_spec(broker.name)
    replay = section.replay or None
    subscriptions: dict[Any, str] = {}
    if replay is None and broker.mode not in spec.modes:
        return fail(f"--mode {broker.mode} is not a {spec.name} mode; expected one of {', '.join(spec.modes)}")
    from fastflow.brokers import tokens

    published = section.rollover_time
    day = masters.master_day(_utc_now(), published)
    # A synthetic master is the simulator's, fixed for the simulator's run: another day's
    # would number the contracts differently from the feed, so it is not rolled over.
    synthetic_master = synthetic is not None and not broker.instruments and not masters.wants_download(broker)
    rolls = instruments is None and replay is None and not synthetic_master

    def load(now: datetime.datetime | None) -> Instruments:
        """The master of the day of ``now`` (None: at start-up; a synthetic universe is
        the simulator's own today, so a plant and a `fastflow sim` agree)."""
        universe = synthetic
        return masters.load_master(broker, now=now, published=published, report=report,
                                   synthetic=None if universe is None else lambda _day: universe(None))

    try:
        if instruments is None and replay is None:
            instruments = load(None)  # the day's (downloaded, cached), the file's, or the synthetic one
        elif instruments is None:
            instruments = synthetic(None) if synthetic is not None and not broker.instruments \
                else spec.load_instruments(broker.instruments)
        if replay is None:
            subscriptions, note = spec.subscriptions(instruments, list(broker.symbols) or None, broker.mode)
            if note:
                print(f"fastflow plant: {note}", file=sys.stderr, flush=True)
    except KeyError as exc:
        return fail(str(exc.args[0]))
    except masters.MasterDownloadError as exc:
        print(f"fastflow plant: {exc}", file=sys.stderr)
        return 1
    except (CaptureError, InstrumentError, OSError, ValueError) as exc:
        return fail(str(exc))
    # The token `fastflow login` stored, when it is this one: its expiry is known.
    token = None if replay or not broker.live else tokens.stored_for(
        tokens.state_dir(broker.state_dir), broker.name, broker.access_token)
    if token is not None and token.expired():
        print(f"fastflow plant: the {broker.name} access token {token.validity()}: run "
              f"`fastflow login {broker.name}` for the day's", file=sys.stderr)
        return 1
    if token is not None:
        report(f"{broker.name}: access token {token.validity()}")
    url = broker.url or spec.default_url
    api_key, access_token = credentials(config)
    options = {"api_key": api_key, "access_token": access_token, "url": url, "watchdog": broker.watchdog,
               "backoff_reset_after": broker.backoff_reset_after, "give_up_after": broker.give_up_after}
    try:
        plant = Plant(spec.name, instruments, subscriptions, ingest_options=options, replay=replay,
                      speed=section.replay_speed, day=day if replay is None else None,
                      subscribe_all=broker.mode if replay is None and not broker.symbols else None,
                      flow=config.flow if config.flow.enabled else None)
    except (NotImplementedError, ValueError, CaptureError) as exc:
        return fail(str(exc))
    if rolls:
        plant.rollover = DayRollover(plant, load, at=published, day=day, report=report,
                                     warn=lambda text: print(f"fastflow plant: {text}", file=sys.stderr, flush=True))

    embedded: EmbeddedRedis | None = None
    redis = config.redis
    if redis.url != "none":
        try:
            keys = Keys(redis.partition_of(broker), prefix=redis.prefix)
            if redis.url == "embedded":
                embedded = EmbeddedRedis(maxmemory=redis.maxmemory).start()
                target = RedisTarget.parse(embedded.url)
                report(f"redis: {embedded.url} (embedded redis-server, stopped on exit)")
            else:
                target = RedisTarget.parse(redis.url, cluster=True if redis.cluster else None)
                report(f"redis: {target}")
            writer = RedisWriter(plant.state, target, keys, maxlen=redis.stream_maxlen,
                                 max_bytes=redis.stream_max_bytes, ttl=redis.ttl,
                                 flow_retention=config.flow.retention, flow_max_bytes=config.flow.stream_max_bytes,
                                 source="replay" if replay else "broker" if broker.live else "simulator",
                                 backoff_reset_after=redis.backoff_reset_after)
        except (ValueError, RedisServerError) as exc:
            if embedded is not None:
                embedded.stop()
            return fail(str(exc))
        plant.attach_store(writer, writer.on_flush)

    if replay is not None:
        report(f"replaying {replay} ({spec.name}, speed {section.speed}) into {len(instruments)} instruments")
    else:
        connections = len(plant.ingest.health()["connections"])
        report(f"{spec.name}: {len(subscriptions)} instruments in {broker.mode} mode from {url} "
               f"over {connections} connection(s)")

    def ready(health: HealthServer | None) -> None:
        assert health is not None
        announce("plant", health_url=health.url_of("/healthz"), metrics_url=health.url_of("/metrics"))
        if token is not None:
            tokens.watch_expiry(token, lambda text: print(f"fastflow plant: {text}", file=sys.stderr, flush=True))

    try:
        asyncio_run(serve_plant(plant, health_host=section.health_host, health_port=section.health_port,
                                duration=duration, status_every=section.status_every, report=report,
                                handle_signals=True, on_ready=ready))
    except ListenError as exc:
        return fail(str(exc))
    finally:
        if embedded is not None:
            embedded.stop()
    health = plant.health()
    states = ", ".join(str(c.get("state")) for c in health["ingest"]["connections"])
    report(f"stopped after {plant.uptime:.1f} s: {plant.ticks:,} ticks in {plant.flushes:,} flushes; "
           f"connections {states}; decoder {health['decoder']}")
    if health["state"] == State.AUTH_FAILED:
        renew = f"run `fastflow login {broker.name}`" if broker.api_secret or token is not None else "renew it"
        why = f" (it {token.validity()})" if token is not None and token.expired() else ""
        print(f"fastflow plant: the broker refused the access token{why} (circuit breaker open): {renew}",
              file=sys.stderr)
        return 1
    if health["state"] == State.GAVE_UP:
        reason = next(str(c.get("gave_up")) for c in health["ingest"]["connections"] if c.get("gave_up"))
        print(f"fastflow plant: {reason}", file=sys.stderr)
        return 1
    return 0
