"""The WebSocket gateway's server (``fastflow gateway``): it only moves bytes
(docs/protocol.md).

One process, one event loop (uvloop when installed), one partition:

- :class:`~fastflow.gateway.live.LiveSubscription` hands every published
  frame to :meth:`Gateway.frame` as soon as it is parsed;
- :class:`~fastflow.gateway.core.FanoutCore` (sans-I/O) decides: the compiled
  :class:`~fastflow.hotpath.FanOut` splits the frame into per-instrument blobs,
  and each changed client's frame is spliced from them and written to its
  socket as one WebSocket frame, without awaiting anything;
- this module binds the socket side: each client's ``write`` is its
  transport's, its ``paused`` flag follows the transport's flow control (over
  ``high_water``: conflated by the core until ``resume_writing``), a sweep asks
  the core which clients are past ``lag_limit`` and closes them with 1008, and
  control messages go to the core and its replies back to the socket.

Latency accounting: for each published frame the age of its ticks (now - their
oldest ``receive_time_ns``) when it arrives (``fastflow_tick_age_seconds{stage="gateway"}``,
weighted by the ticks stored) and once the pass over the changed clients has
written every client's frame (``stage="sent"``, weighted by the client frames
written).

HTTP on the same port (:mod:`fastflow.gateway.http`): ``/`` (the dashboard),
``/static/*``, ``/healthz`` and ``/metrics``; auth and the origin check run at
the handshake (:class:`~fastflow.gateway.http.Admission`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request, Response
from websockets.protocol import State

from fastflow import __version__
from fastflow.config import GatewaySection, RedisSection
from fastflow.gateway import http
from fastflow.gateway import protocol as proto
from fastflow.gateway.auth import NEVER, Auth
from fastflow.gateway.core import UNAVAILABLE, Client, FanoutCore
from fastflow.gateway.http import Admission
from fastflow.gateway.live import LiveSubscription
from fastflow.hotpath import FanOut
from fastflow.obs import metrics
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget

logger = logging.getLogger(__name__)

OPEN = State.OPEN
REPORT_EVERY = 10.0  # seconds between the lines that sum up refused connections


class _Connection(ServerConnection):
    """A server connection that tells its client when its write buffer fills and
    drains, and counts every frame it receives against ``frames`` (a ping flood,
    a message in thousands of fragments): over budget, it fails the connection
    with 1008 at once, before websockets answers or buffers anything more."""

    client: _Client | None = None
    client_name: str = ""
    expires = NEVER  # the credential's expiry (epoch seconds): closed with 1008 then
    frames: proto.RateLimit | None = None
    flooded = False
    gateway: Gateway | None = None  # set on the per-gateway subclass (Gateway.start)
    handshaking = False  # accepted, its request not arrived yet
    address = ""  # counted under this address by the per-IP cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        gateway = self.gateway
        if gateway is None:
            return
        if not gateway.admission.opening():  # too many pending handshakes: no HTTP answer, no buffers
            gateway.rejected["handshakes"] += 1
            cast(asyncio.Transport, transport).abort()  # uvloop's transports are not asyncio.Transport subclasses
            return
        self.handshaking = True

    def request_arrived(self) -> None:
        if self.handshaking and self.gateway is not None:
            self.handshaking = False
            self.gateway.admission.handshake_over()

    def connection_lost(self, exc: Exception | None) -> None:
        gateway = self.gateway
        if gateway is not None:
            if self.handshaking:  # went away (or timed out: slowloris) before sending its request
                self.handshaking = False
                gateway.admission.handshake_over()
                gateway.counters["handshakes_abandoned"] += 1
            if self.address:
                gateway.admission.client_gone(self.address)
                self.address = ""
        super().connection_lost(exc)

    def process_event(self, event: Any) -> None:
        frames = self.frames
        if frames is not None and isinstance(event, Frame) and not frames.allow(time.monotonic()):
            if not self.flooded:
                self.flooded = True
                self.protocol.fail(CloseCode.POLICY_VIOLATION,
                                   f"more than {frames.rate:g} frames a second (bursts of {frames.burst:g})")
                self.send_data()
            return
        if not self.flooded:
            super().process_event(event)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.client is not None:
            self.client.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.client is not None and self.client.on_drain is not None:
            self.client.on_drain()


class _Client(Client):
    """A core client bound to its connection: frames go to the transport."""

    __slots__ = ("conn", "on_drain", "protocol", "transport")

    def __init__(self, conn: _Connection, binary: bool, rate: proto.RateLimit) -> None:
        assert conn.transport is not None
        super().__init__(binary, conn.client_name, rate, conn.transport.write)
        self.conn = conn
        self.transport = conn.transport
        self.protocol = conn.protocol  # websockets' state machine: frames go out only while OPEN
        self.on_drain: Callable[[], None] | None = None
        conn.client = self

    def is_open(self) -> bool:
        return self.protocol.state is OPEN


def auth_of(config: GatewaySection) -> Auth:
    """Who may connect, from the gateway's section: its API keys, its token secret,
    and loopback without a credential unless ``require_auth``."""
    return Auth(dict(config.api_keys), config.token_secret.encode(), allow_loopback=not config.require_auth,
                max_token_ttl=config.token_max_ttl)


class Gateway:
    """One gateway process's server (see the module docstring): ``config`` is its
    section of the one :class:`~fastflow.config.Config`; ``redis`` and ``keys``
    the partition it serves; ``auth`` (default: from ``config``) who may connect."""

    def __init__(self, config: GatewaySection, *, redis: RedisTarget, keys: Keys | None = None,
                 auth: Auth | None = None, backoff_reset_after: float = RedisSection.backoff_reset_after) -> None:
        self.config = config
        self.redis = redis
        self.keys = Keys() if keys is None else keys
        self.auth = auth_of(config) if auth is None else auth
        self.core = FanoutCore(max_symbols=config.max_symbols, max_strikes=config.max_strikes,
                               lag_limit=config.lag_limit, control_rate=config.control_rate,
                               control_burst=config.control_burst)
        self.admission = Admission(self.auth, config.allow_origins, config.max_clients, config.allow_hosts,
                                   max_per_ip=config.max_clients_per_ip, per_ip_loopback=config.per_ip_loopback,
                                   max_handshakes=config.max_handshakes)
        self.subscription = LiveSubscription(redis, self.keys, self, backoff_reset_after=backoff_reset_after)
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.loaded = asyncio.Event()  # set on the first instrument list from Redis
        self._ready = asyncio.Event()  # set while ready (instrument list and live subscription)
        self.started = time.time()
        self.last_frame = 0.0
        self._said: tuple[str, str] | None = None  # the (feed, market) the clients were last told
        self._expiring: set[_Client] = set()  # clients admitted with a token (its expiry is swept)
        self.disconnects: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.fanout_seconds = metrics.Histogram(
            "gateway_fanout_seconds",
            "Per published frame: from the frame parsed off the Redis connection to the last client's "
            "frame written to its socket (each client's gateway hop is at most this)")
        #: Age of the ticks when their frame arrives, and when every client's frame is written.
        self.age_gateway = metrics.tick_age("gateway")
        self.age_sent = metrics.tick_age("sent")

    # -- what the core holds ------------------------------------------------------------

    @property
    def counters(self) -> Counter[str]:
        return self.core.counters

    @property
    def errors(self) -> Counter[str]:
        return self.core.errors

    @property
    def symbols(self) -> list[str]:
        return self.core.symbols

    @property
    def meta(self) -> dict[str, str]:
        return self.core.meta

    @property
    def fan(self) -> FanOut | None:
        return self.core.fan

    @property
    def _clients(self) -> list[Client | None]:
        return self.core._clients

    @property
    def clients(self) -> int:
        return len(self.core.clients)

    # -- lifecycle --------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.core.fan is not None and self.subscription.live

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self._url_host}:{self.port}/"

    @property
    def _url_host(self) -> str:
        host = self.config.host or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    async def start(self) -> None:
        """Bind and start serving; :attr:`port` is the bound port."""
        c = self.config
        self._server = await serve(
            self._handle, c.host, c.port,
            subprotocols=[proto.MSGPACK, proto.JSON],  # type: ignore[list-item]
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            max_size=c.max_message,
            max_queue=4,
            write_limit=(c.high_water, c.high_water // 4),
            ping_interval=c.ping_interval or None,
            close_timeout=c.close_timeout,
            open_timeout=c.handshake_timeout,
            create_connection=type("Connection", (_Connection,), {"gateway": self}),
            reuse_port=c.reuse_port or None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._tasks = [asyncio.create_task(self.subscription.run()), asyncio.create_task(self._sweep())]

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the instrument list is loaded and the live subscription is on."""
        while not self.ready:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                raise TimeoutError(f"gateway not ready in {timeout} s: redis {self.subscription.state}, "
                                   f"{self.subscription.last_error}") from None

    async def stop(self) -> None:
        self.subscription.stop()
        if self._server is not None:
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- the feed: once per published frame -------------------------------------------

    def _announce_status(self, new: Client | None = None) -> None:
        """On a change of the feed's state or the market's phase: the status to every
        client (``new`` included). Otherwise the status to ``new`` alone."""
        status = self.feed_status()
        state = (status["feed"], status["market"])
        if state != self._said:
            if self._said is not None:
                self.counters["status_changes"] += 1
                logger.info("gateway: feed %s, market %s (last tick %s s ago)", *state, status["last_tick_age_s"])
            self._said = state
            self.core.announce(status)
        elif new is not None:
            self.core.announce(status, [new])

    def update_meta(self, meta: dict[str, str]) -> None:
        """The partition's meta changed (the plant's ingest state): told at once."""
        self.core.meta = meta
        self._announce_status()

    def feed_status(self) -> dict[str, Any]:
        """The ``status`` message now (docs/protocol.md): what clients get on connect
        and on every change of ``feed`` or ``market``."""
        return self.core.status(ready=self.ready, now=time.time(), last_frame=self.last_frame,
                                stale_after=self.config.stale_after)

    def reset(self, symbols: list[str], ids: dict[str, str], seed: bytes, meta: dict[str, str]) -> None:
        """A (re)connect to Redis: the instrument list, the broker ids and the
        seed frame (latest state). Clients keep their watchlists."""
        self.core.reset(symbols, ids, seed, meta)
        self.loaded.set()
        self._ready.set()
        self.last_frame = time.time()

    def seed_flow(self, events: list[bytes]) -> None:
        """The flow stream's recent events, oldest first (a (re)connect to Redis)."""
        self.core.flow.seed(events)

    def flow(self, frame: bytes) -> None:
        """One published flush of options-flow events: to each subscribed client, filtered."""
        self.core.flow_frame(frame)

    def frame(self, frame: bytes) -> None:
        """One published frame: to every changed client that is not behind.
        Observes the ticks' age on arrival (stage ``gateway``) and once every
        client's frame is written (stage ``sent``): two ``time.time_ns()``
        per frame, none per client or tick."""
        start = time.perf_counter_ns()
        arrived = time.time_ns()
        core = self.core
        core.counters["frames_in"] += 1
        core.counters["bytes_in"] += len(frame)
        self.last_frame = arrived / 1e9
        ticks = core.apply(frame)
        if ticks < 0:
            return
        assert core.fan is not None  # apply returned ticks
        received = core.fan.last_receive_ns  # the frame's oldest receive_time_ns
        if received and ticks:
            self.age_gateway.observe_ns(max(0, arrived - received), ticks)
        written = core.send()
        if received and written:
            self.age_sent.observe_ns(max(0, time.time_ns() - received), written)
        self.fanout_seconds.observe_ns(time.perf_counter_ns() - start)

    async def _sweep(self) -> None:
        """Close clients that have stayed behind past the lag limit, and those whose
        credential has expired."""
        limit = self.config.lag_limit
        reported = (0, 0, 0)
        report_at = time.monotonic() + REPORT_EVERY
        while True:
            await asyncio.sleep(min(0.25, limit / 4))
            self._announce_status()
            if time.monotonic() >= report_at:  # refusals by the connection caps: one line per interval
                report_at += REPORT_EVERY
                now_counts = (self.counters["handshakes_abandoned"], self.rejected["handshakes"],
                              self.rejected["per_ip"])
                if now_counts != reported:
                    new = [b - a for a, b in zip(reported, now_counts, strict=True)]
                    logger.warning("gateway: in the last %g s: %d handshakes abandoned or timed out, %d connections "
                                   "refused over gateway.max_handshakes, %d over gateway.max_clients_per_ip",
                                   REPORT_EVERY, *new)
                    reported = now_counts
            for client in self.core.lagging(time.monotonic()):
                self._close(client, 1008, f"lagging: behind for more than {limit:g} s", "lagging")
            now = time.time()
            for client in [c for c in self._expiring if c.conn.expires <= now]:
                self._close(client, 1008, "credential expired", "expired")

    # -- clients ----------------------------------------------------------------------

    def _select_subprotocol(self, conn: ServerConnection, offered: Any) -> Any:
        if not offered:
            return None  # no header: the connection speaks the default, msgpack
        for name in proto.SUBPROTOCOLS:
            if name in offered:
                return name
        raise NegotiationError(f"unsupported subprotocols {', '.join(offered)}; "
                               f"this server speaks {', '.join(proto.SUBPROTOCOLS)}")

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, _Connection)
        c = self.config
        binary = conn.subprotocol != proto.JSON
        subprotocol = proto.JSON if not binary else proto.MSGPACK
        core = self.core
        client = _Client(conn, binary, core.rate_limit(time.monotonic()))
        client.on_drain = lambda: core.drained(client)
        core.connect(client)
        if conn.expires != NEVER:
            self._expiring.add(client)
        reason = "closed"
        try:
            await conn.send(proto.encode({
                "type": "hello", "server": "fastflow", "version": __version__, "partition": self.keys.partition,
                "subprotocol": subprotocol, "symbols": len(core.symbols), "client": client.name,
                "max_symbols": c.max_symbols}, subprotocol))
            self._announce_status(client)
            async for message in conn:
                await self._control(client, message, subprotocol)
                if client.closing:  # _close() is sending the close frame: leaving now would send 1000
                    await conn.wait_closed()
                    break
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1009:
                reason = "too_big"
            elif conn.flooded:
                reason = "flood"
        except Exception as exc:  # a failure of ours on this connection: it ends, contained, the gateway goes on
            reason = "error"
            self.core.faults.record("connection", exc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(1011, "internal error"), c.close_timeout)
        finally:
            self._expiring.discard(client)
            reason = client.closing or reason
            self.disconnects[reason] += 1
            core.disconnect(client)

    async def _control(self, client: _Client, message: bytes | str, subprotocol: str) -> None:
        replies, abusive = self.core.control(client, message, subprotocol, time.monotonic())
        for reply in replies:
            if isinstance(reply, bytes):  # a spliced snapshot frame
                self.core.write(client, reply)
            else:
                await client.conn.send(proto.encode(reply, subprotocol))
        if abusive:
            self._close(client, 1008, f"{client.strikes} refused messages in a row", "abuse")

    def _close(self, client: Client, code: int, reason: str, why: str) -> None:
        assert isinstance(client, _Client)
        if not self.core.closing(client, why):
            return
        logger.info("gateway: closing client %s (%s): %s", client.name, why, reason)
        asyncio.get_running_loop().create_task(self._shut(client, code, reason))

    async def _shut(self, client: _Client, code: int, reason: str) -> None:
        """Send the close frame; a peer that does not read it in ``close_timeout``
        (a stalled client: websockets' close() would wait on drain) is aborted."""
        try:
            await asyncio.wait_for(client.conn.close(code, reason), self.config.close_timeout)
        except TimeoutError:
            client.transport.abort()

    # -- HTTP and the handshake --------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        assert isinstance(conn, _Connection)
        conn.request_arrived()
        url = urlsplit(request.path)
        if url.path == "/ws":
            peer = conn.remote_address[0] if conn.remote_address else None
            verdict = self.admission.check(request.headers, parse_qs(url.query), peer, self.clients)
            if verdict.refusal is not None:
                self.rejected[verdict.reason] += 1
                return verdict.refusal
            conn.client_name, conn.expires, conn.address = verdict.name, verdict.expires, verdict.address
            c = self.config  # every control message is a frame: the frame budget is never the smaller one
            conn.frames = proto.RateLimit(max(c.frame_rate, c.control_rate), max(c.frame_burst, c.control_burst),
                                          time.monotonic())
            return None
        self.counters["http_requests"] += 1
        return http.route(url.path, self.health, self.metrics)

    # -- health and metrics ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """The /healthz body: ``status`` "ok" (HTTP 200) only while ready."""
        sub = self.subscription
        fan_stats = self.fan.stats() if self.fan is not None else {}
        age = time.time() - self.last_frame if self.last_frame else None
        return {
            "status": "ok" if self.ready else UNAVAILABLE,
            "gateway": {"version": __version__, "pid": os.getpid(), "port": self.port,
                        "uptime_s": round(time.time() - self.started, 3), "clients": self.clients,
                        "instruments": len(self.symbols), "counters": dict(self.counters),
                        "disconnects": dict(self.disconnects), "rejected": dict(self.rejected),
                        "fanout": fan_stats, "contained": self.core.faults.health()},
            "redis": {"state": sub.state, "target": str(self.redis), "last_error": sub.last_error,
                      **sub.counters, "contained": sub.faults.health()},
            "feed": self.feed_status(),
            "plant": {"partition": self.keys.partition, "meta": self.meta,
                      "last_frame_age_s": None if age is None else round(age, 3)},
        }

    def contained(self) -> dict[str, float]:
        """The gateway's contained failures by reason (its core's and its subscription's)."""
        total: dict[str, float] = dict(self.core.faults.counts)
        for reason, n in self.subscription.faults.counts.items():
            total[reason] = total.get(reason, 0) + n
        return total

    def metrics(self) -> bytes:
        fan = self.fan.stats() if self.fan is not None else {}
        n = self.counters
        sub = self.subscription
        return metrics.render([
            metrics.gauge("gateway_clients", "Connected WebSocket clients", self.clients),
            metrics.gauge("gateway_instruments", "Instruments in the partition", len(self.symbols)),
            metrics.gauge("gateway_redis_up", "1 while the live subscription is on", 1 if sub.live else 0),
            metrics.counter("gateway_connections_total", "WebSocket connections accepted", n["connections"]),
            metrics.counter("gateway_disconnects_total", "WebSocket connections ended, by reason",
                            dict(self.disconnects) or {"closed": 0}, "reason"),
            metrics.counter("gateway_rejected_total", "Handshakes refused, by reason",
                            dict(self.rejected) or {"auth": 0}, "reason"),
            metrics.counter("gateway_frames_in_total", "Frames received from Redis pub/sub", n["frames_in"]),
            metrics.counter("gateway_bytes_in_total", "Bytes received from Redis pub/sub", n["bytes_in"]),
            metrics.counter("gateway_frame_errors_total", "Malformed frames from Redis skipped",
                            n["frame_errors"]),
            metrics.counter("gateway_frames_total", "WebSocket frames sent to clients", n["frames_out"]),
            metrics.counter("gateway_bytes_total", "WebSocket payload bytes sent to clients", n["bytes_out"]),
            metrics.counter("gateway_ticks_delivered_total", "Ticks placed in client frames",
                            fan.get("deliveries", 0)),
            metrics.counter("gateway_conflations_total",
                            "Frames a client behind its high-water mark did not get (merged into a later one)",
                            n["conflations"]),
            metrics.counter("gateway_catch_ups_total", "Conflated frames sent when a client's socket drained",
                            n["catch_ups"]),
            metrics.counter("gateway_snapshots_total", "Snapshots sent", n["snapshots"]),
            metrics.counter("gateway_control_messages_total", "Control messages received",
                            n["control_messages"]),
            metrics.counter("gateway_errors_total", "Error replies, by code", dict(self.errors) or {"bad_message": 0},
                            "code"),
            metrics.counter("gateway_redis_connects_total", "Live subscriptions made", sub.counters["connects"]),
            metrics.counter("gateway_contained_errors_total",
                            "Client messages, connections and Redis frames whose handling failed and was "
                            "contained, by reason", self.contained() or {"control": 0}, "reason"),
            self.fanout_seconds.render(),
            self.core.snapshot_seconds.render(),
            metrics.family([self.age_gateway, self.age_sent]),
        ])


#: Seconds after the start without the instrument list before ``serve_gateway`` says why.
NOT_READY_AFTER = 2.0


async def serve_gateway(gateway: Gateway, *, duration: float | None = None, status_every: float | None = None,
                        report: Any = print, handle_signals: bool = True,
                        on_ready: Any = None) -> None:
    """Run ``gateway`` until SIGINT/SIGTERM (or ``duration``): what ``fastflow gateway``
    does, with a status line every ``status_every`` seconds (default: its config's;
    0: none). ``on_ready(gateway)`` is called once it holds the instrument list."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    if status_every is None:
        status_every = gateway.config.status_every
    await gateway.start()
    report(f"dashboard {gateway.http_url}  websocket {gateway.ws_url}  "
           f"(redis {gateway.redis}, partition {gateway.keys.partition}, pid {os.getpid()})")

    async def announce() -> None:
        try:
            await asyncio.wait_for(asyncio.shield(gateway.loaded.wait()), NOT_READY_AFTER)
        except TimeoutError:
            sub = gateway.subscription
            why = (f"cannot reach redis {gateway.redis}: {sub.last_error}" if sub.last_error
                   else f"redis {gateway.redis}: {sub.state.replace('_', ' ')}")
            report(f"not ready: {why}; retrying (until then /healthz answers 503 and the dashboard shows "
                   "the feed down)")
            await gateway.loaded.wait()
        report(f"ready: {len(gateway.symbols)} instruments, serving clients")
        if on_ready is not None:
            on_ready(gateway)

    async def status() -> None:
        sent = gateway.age_sent.window()
        while True:
            await asyncio.sleep(status_every)
            n = gateway.counters
            age = metrics.window_ms(sent, 0.99)  # over the interval
            report(f"clients {gateway.clients}  frames in {n['frames_in']:,}  out {n['frames_out']:,}  "
                   f"conflations {n['conflations']:,}  fan-out p99 <= "
                   f"{gateway.fanout_seconds.quantile(0.99) * 1e3:g} ms  p99 sent {age}  "
                   f"redis {gateway.subscription.state}")

    tasks = [asyncio.create_task(announce())]
    if status_every > 0:
        tasks.append(asyncio.create_task(status()))
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await gateway.stop()
