"""The plant: broker ingest and the hot path in one process (Redis joins next).

:class:`Plant` builds a :class:`~fastflow.hotpath.MarketState`, the broker's
decoder and the broker's ingest (every connection of one api_key), and hands
each :class:`~fastflow.hotpath.TickBatch` (one flush per WebSocket message) to
its ``on_flush`` consumers: the Redis writer attaches there. It counts flushes
and ticks, observes the age of each flush's ticks when they are handed to the
consumers (``fastflow_tick_age_seconds{stage="decoded"}``), and serves
``GET /healthz`` (:class:`HealthServer`): HTTP 200 while the ingest streams,
503 otherwise, with a JSON body; and ``GET /metrics``, Prometheus text
(docs/ingest.md).

The broker switch is :func:`build_decoder` and :func:`build_ingest`, side by
side: an ingest is anything with ``async run()``, ``stop()`` and ``health()``
(:class:`Ingest`). Kite is :class:`~fastflow.brokers.kite.session.KiteIngest`,
Upstox :class:`~fastflow.brokers.upstox.session.UpstoxIngest`. :class:`ReplayIngest` drives the same state from a capture file instead
of a live connection (``fastflow plant --replay``).

Cold code: nothing here runs per packet; :meth:`Plant._on_flush` runs once per
WebSocket message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

from fastflow.brokers.upstox.constants import INDIVIDUAL_LIMITS
from fastflow.hotpath import FrameError, KiteDecoder, MarketState, TickBatch, UpstoxDecoder
from fastflow.ingest.capture import CaptureReader
from fastflow.instruments import Instruments
from fastflow.obs import metrics

logger = logging.getLogger(__name__)

BROKERS = ("kite", "upstox")
#: What one Kite api_key may subscribe: 3 connections x 3000 tokens.
KITE_MAX_TOKENS = 9000

Decoder = KiteDecoder | UpstoxDecoder
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


# -- the broker switch ------------------------------------------------------------------


def build_decoder(broker: str, state: MarketState) -> Decoder:
    """The hot-path decoder of ``broker`` over ``state``."""
    if broker == "kite":
        return KiteDecoder(state)
    if broker == "upstox":
        return UpstoxDecoder(state)
    raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")


def build_ingest(broker: str, decoder: Decoder, subscriptions: Mapping[Any, str], **options: Any) -> Ingest:
    """The live ingest of ``broker``: every connection of one api_key feeding ``decoder``.

    ``subscriptions`` maps an instrument (Kite: int token) to a mode; ``options``
    go to the broker's session (``api_key``, ``access_token``, ``url``,
    ``watchdog``, ``backoff_base``, ``on_flush``, ...)."""
    if broker == "kite":
        from fastflow.brokers.kite.session import KiteIngest

        if not isinstance(decoder, KiteDecoder):
            raise TypeError("a Kite ingest needs a KiteDecoder")
        return KiteIngest(decoder, subscriptions=subscriptions, **options)
    if broker == "upstox":
        from fastflow.brokers.upstox.session import UpstoxIngest

        if not isinstance(decoder, UpstoxDecoder):
            raise TypeError("an Upstox ingest needs an UpstoxDecoder")
        return UpstoxIngest(decoder, subscriptions=subscriptions, **options)
    raise ValueError(f"unknown broker {broker!r}; expected one of {', '.join(BROKERS)}")


def resolve_subscriptions(
    instruments: Instruments, symbols: Iterable[str] | None, mode: str, *, limit: int | None = None
) -> tuple[dict[Any, str], str]:
    """``{instrument: mode}`` for ``symbols`` (``EXCHANGE:TRADINGSYMBOL``, a Kite
    token or an Upstox instrument_key), or for every instrument when ``symbols``
    is None, up to ``limit`` (the first ones, in file order; default: what one
    plant may subscribe: Kite 9000 tokens per api_key, Upstox the per-connection
    cap of ``mode``). Kite instruments are int tokens, Upstox ones
    instrument_keys. Returns it with a note ("" unless something was left
    out). Raises ``KeyError`` for an unknown symbol or token."""
    upstox = instruments.broker == "upstox"
    if limit is None:
        limit = INDIVIDUAL_LIMITS.get(mode, 0) if upstox else KITE_MAX_TOKENS
    ids: list[Any]
    if symbols is None:
        ids = [str(k) for k in instruments.instrument_key[:limit]] if upstox else \
            [int(t) for t in instruments.token[:limit]]
        note = ""
        if len(instruments) > limit:
            who = f"an Upstox connection takes at most {limit:,} keys in {mode} mode" if upstox else \
                f"an api_key takes at most {limit:,} tokens"
            note = (f"{len(instruments):,} instruments: subscribing the first {limit:,} ({who}); "
                    "run another plant with another key for the rest")
        return dict.fromkeys(ids, mode), note
    subscriptions: dict[Any, str] = {}
    for text in symbols:
        if upstox:
            subscriptions[instruments.key_of(text)] = mode
        else:
            key: int | str = int(text) if text.isdigit() else text
            subscriptions[instruments.token_of(key)] = mode
    if len(subscriptions) > limit:
        raise ValueError(f"{len(subscriptions):,} instruments: at most {limit:,} in {mode} mode")
    return subscriptions, ""


# -- replay as an ingest ------------------------------------------------------------------


class ReplayIngest:
    """A capture file as an ingest: frames into the decoder with their recorded
    receive times, one flush per frame, like :func:`fastflow.ingest.replay.replay`,
    but inside the event loop (so /healthz answers and stop() works). ``speed``
    None replays as fast as possible; otherwise recorded gaps are slept,
    divided by ``speed``. State: ``streaming`` while frames flow, then
    ``finished`` (or ``stopped``)."""

    YIELD_EVERY = 256  # frames between yields to the event loop at full speed

    def __init__(
        self,
        decoder: Decoder,
        path: str | os.PathLike[str],
        *,
        speed: float | None = None,
        on_flush: Callable[[TickBatch], None] | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.decoder = decoder
        self.path = os.fspath(path)
        self.reader = CaptureReader(self.path)
        if self.reader.broker != decoder.state.broker:
            raise ValueError(f"a {self.reader.broker} capture cannot drive a {decoder.state.broker} state")
        self.speed = speed
        self.on_flush = on_flush
        #: With a store attached: True while it cannot take another flush (the replay
        #: waits instead of making the store drop: a replay has all the time it needs).
        self.busy: Callable[[], bool] | None = None
        self.state = "idle"
        self.last_frame_ns = 0
        self.counters = {"frames": 0, "frame_errors": 0, "flushes": 0}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> dict[str, Any]:
        age = None if not self.last_frame_ns else (time.time_ns() - self.last_frame_ns) / 1e9
        connection = {"state": self.state, "source": self.path, "last_frame_age_s": age,
                      "torn_tail": self.reader.torn_tail, **self.counters}
        return {"state": self.state, "connections": [connection]}

    async def _until_ready(self, busy: Callable[[], bool]) -> None:
        """Until the store takes flushes again (or stop()): yields while it drains
        (its replies come in on this loop), then a millisecond per turn when it stays
        busy (Redis away, reconnecting), so a wait does not spin a core."""
        turns = 0
        while busy() and not self._stop.is_set():
            turns += 1
            await asyncio.sleep(0 if turns < 1000 else 0.001)

    async def run(self) -> None:
        self.state = "streaming"
        started = time.monotonic()
        first_ns = 0
        state = self.decoder.state
        for recv_ns, payload in self.reader:
            if self._stop.is_set():
                self.state = "stopped"
                return
            if self.speed is not None:
                first_ns = first_ns or recv_ns
                due = (recv_ns - first_ns) / 1e9 / self.speed - (time.monotonic() - started)
                if due > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), due)
                    if self._stop.is_set():
                        self.state = "stopped"
                        return
            elif self.counters["frames"] % self.YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if self.busy is not None and self.busy():
                await self._until_ready(self.busy)
                if self._stop.is_set():
                    self.state = "stopped"
                    return
            self.counters["frames"] += 1
            self.last_frame_ns = time.time_ns()
            try:
                self.decoder.feed(payload, recv_ns)
            except FrameError:
                self.counters["frame_errors"] += 1
                continue
            if state.dirty_count:
                self.counters["flushes"] += 1
                batch = state.flush()
                if self.on_flush is not None:
                    self.on_flush(batch)
        self.state = "finished"


# -- the plant ------------------------------------------------------------------------------


class Plant:
    """Ingest + hot path as one process. ``ingest_options`` go to
    :func:`build_ingest`; with ``replay`` a capture file drives the state
    instead (``speed`` as in :class:`ReplayIngest`)."""

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
    ) -> None:
        if instruments.broker != broker:
            raise ValueError(f"a {instruments.broker} instrument master cannot serve a {broker} plant")
        self.broker = broker
        self.state = MarketState(instruments)
        self.decoder = build_decoder(broker, self.state)
        self.subscriptions = dict(subscriptions)
        self.consumers: list[FlushConsumer] = list(on_flush)
        self.source = "replay" if replay is not None else "live"
        self.ingest: Ingest
        if replay is not None:
            self.ingest = ReplayIngest(self.decoder, replay, speed=speed, on_flush=self._on_flush)
        else:
            self.ingest = build_ingest(broker, self.decoder, self.subscriptions, on_flush=self._on_flush,
                                       **dict(ingest_options or {}))
        self.shutdown_timeout = shutdown_timeout
        self.store: Service | None = None
        self.flushes = 0
        self.ticks = 0
        self.last_tick_ns = 0
        self.consumer_errors = 0
        self.last_consumer_error = ""
        self.started_ns = time.time_ns()
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        #: Age of the ticks when their flush is handed to the consumers.
        self.tick_age = metrics.tick_age("decoded")
        self._windows = {"decoded": self.tick_age.window()}  # stage -> the status line's window

    def attach_store(self, store: Service, on_flush: FlushConsumer) -> None:
        """Run ``store`` (the Redis writer) beside the ingest and give it every flush;
        its health shows under ``"redis"`` in /healthz, its ``metrics()`` and
        ``tick_age`` histogram (when it has them) in /metrics."""
        self.store = store
        self.add_consumer(on_flush)
        busy = getattr(store, "busy", None)
        if isinstance(self.ingest, ReplayIngest) and callable(busy):
            self.ingest.busy = busy  # a replay waits for Redis rather than dropping
        store_age = self._store_tick_age()
        if store_age is not None:
            self._windows["redis"] = store_age.window()

    def _store_tick_age(self) -> metrics.Histogram | None:
        """The store's ``tick_age`` histogram (the Redis writer's stage ``redis``), if any."""
        found = getattr(self.store, "tick_age", None)
        return found if isinstance(found, metrics.Histogram) else None

    def add_consumer(self, consumer: FlushConsumer) -> None:
        """Call ``consumer(batch)`` after every flush (the Redis writer, next)."""
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
                self.consumer_errors += 1
                self.last_consumer_error = f"{type(exc).__name__}: {exc}"
                if self.consumer_errors == 1 or self.consumer_errors % 1000 == 0:
                    logger.exception("plant: flush consumer %r failed (%d so far)", consumer, self.consumer_errors)

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
            if not ingest.done():
                ingest.cancel()
            if store is not None and self.store is not None:
                await self._drain_store(store)
                self.store.stop()
                done, _ = await asyncio.wait({store}, timeout=self.shutdown_timeout)
                if not done:
                    store.cancel()

    async def _drain_store(self, task: asyncio.Task[None]) -> None:
        """Before stopping the store: its flushes in flight answered (a millisecond
        per turn, up to ``shutdown_timeout``), so the last ones are acknowledged."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        while getattr(self.store, "in_flight", 0) and not task.done() and loop.time() < deadline:
            await asyncio.sleep(0.001)

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
                "last_consumer_error": self.last_consumer_error,
            },
            "decoder": self.decoder.stats(),
            "ingest": ingest,
            **({"redis": self.store.health()} if self.store is not None else {}),
        }

    @staticmethod
    def healthy(ingest_health: Mapping[str, Any]) -> bool:
        return ingest_health.get("state") == "streaming"

    def metrics(self) -> bytes:
        """The /metrics body: Prometheus text 0.0.4 (docs/ingest.md)."""
        ingest = self.ingest.health()
        connections = ingest.get("connections", [])
        streaming = sum(1 for c in connections if c.get("state") == "streaming")
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
            metrics.counter("plant_consumer_errors_total", "Flush consumers that raised",
                            self.consumer_errors),
        ]
        store_metrics = getattr(self.store, "metrics", None)
        if callable(store_metrics):
            sections += store_metrics()
        store_age = self._store_tick_age()
        if store_age is not None:
            ages.append(store_age)
        sections.append(metrics.family(ages))
        return metrics.render(sections)

    def status_line(self, ticks_per_s: float) -> str:
        """One line for the terminal: state, ticks/s, connections, reconnects,
        errors; the p99 tick age at each of the plant's stages since the
        previous call."""
        ingest = self.ingest.health()
        connections = ingest.get("connections", [])
        streaming = sum(1 for c in connections if c.get("state") == "streaming")
        reconnects = sum(int(c.get("reconnects", 0)) for c in connections)
        errors = sum(int(c.get("frame_errors", 0)) for c in connections)
        age = "-" if not self.last_tick_ns else f"{(time.time_ns() - self.last_tick_ns) / 1e9:.2f} s"
        p99 = ", ".join(f"{stage} {metrics.window_ms(window, 0.99)}" for stage, window in self._windows.items())
        line = (f"{ingest['state']}: {ticks_per_s:,.0f} ticks/s, {streaming}/{len(connections)} connections "
                f"streaming, reconnects {reconnects}, frame errors {errors}, ticks {self.ticks:,}, "
                f"last tick {age} ago; p99 {p99}")
        if self.store is not None:
            redis = self.store.health()
            line += (f"; redis {redis.get('state')}, {redis.get('written', 0):,} flushes written, "
                     f"{redis.get('dropped', 0):,} dropped")
        return line


# -- /healthz and /metrics ------------------------------------------------------------------

PATHS = ("/healthz", "/metrics")


class HealthServer:
    """``GET /healthz`` and ``GET /metrics`` over HTTP/1.1 on loopback (or
    ``host``). /healthz: 200 with the plant's :meth:`Plant.health` as JSON
    while the ingest streams, 503 with the same body otherwise. /metrics: 200
    with :meth:`Plant.metrics` (Prometheus text 0.0.4). 404 for any other
    path, 405 for any other method on either (``Allow: GET``), 400 for a
    malformed request, 408 when the request head does not arrive within
    ``read_timeout``, 431 when it exceeds ``max_request_bytes``; errors have
    a JSON body. One request per connection: the server closes it after the
    response."""

    def __init__(self, plant: Plant, host: str = "127.0.0.1", port: int = 0, *,
                 max_request_bytes: int = 8192, read_timeout: float = 5.0) -> None:
        self.plant = plant
        self.host = host
        self.requested_port = port
        self.max_request_bytes = max_request_bytes
        self.read_timeout = read_timeout
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.requested_port,
                                                  limit=self.max_request_bytes)

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The /healthz URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/healthz"

    @property
    def metrics_url(self) -> str:
        return self.url.removesuffix("/healthz") + "/metrics"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            status, body, extra = await self._respond(reader)
            if isinstance(body, bytes):
                payload, kind = body, metrics.CONTENT_TYPE
            else:
                payload, kind = (json.dumps(body) + "\n").encode(), "application/json"
            head = [f"HTTP/1.1 {status.value} {status.phrase}", f"Content-Type: {kind}",
                    f"Content-Length: {len(payload)}", "Cache-Control: no-store", "Connection: close", *extra]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, dict[str, Any] | bytes, list[str]]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except asyncio.LimitOverrunError:
            return _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                          f"request head over {self.max_request_bytes} bytes")
        except TimeoutError:
            return _error(HTTPStatus.REQUEST_TIMEOUT, "incomplete request head")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _error(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, target = parts[0], parts[1]
        path = urlsplit(target).path
        if path not in PATHS:
            return _error(HTTPStatus.NOT_FOUND, f"no such path: {target[:100]}; try GET /healthz or GET /metrics")
        if method != "GET":
            status, body, _ = _error(HTTPStatus.METHOD_NOT_ALLOWED,
                                     f"{method[:20]} not allowed on {path}; use GET")
            return status, body, ["Allow: GET"]
        if path == "/metrics":
            return HTTPStatus.OK, self.plant.metrics(), []
        health = self.plant.health()
        return (HTTPStatus.OK if health["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE), health, []


def _error(status: HTTPStatus, message: str) -> tuple[HTTPStatus, dict[str, Any] | bytes, list[str]]:
    return status, {"error": message}, []


# -- running it -----------------------------------------------------------------------------


async def serve_plant(
    plant: Plant,
    *,
    health_host: str = "127.0.0.1",
    health_port: int | None = 0,
    duration: float | None = None,
    status_every: float | None = 5.0,
    report: Callable[[str], object] = print,
    handle_signals: bool = False,
) -> HealthServer | None:
    """Run ``plant`` with /healthz and /metrics (``health_port`` None: none)
    and a status line every ``status_every`` seconds, until stop(),
    SIGINT/SIGTERM (with ``handle_signals``), ``duration`` seconds, or the
    ingest's end."""
    import signal

    loop = asyncio.get_running_loop()
    health = None
    if health_port is not None:
        health = HealthServer(plant, health_host, health_port)
        await health.start()
        report(f"/healthz on {health.url}")
        report(f"/metrics on {health.metrics_url}")
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
