"""The WebSocket gateway (``fastflow gateway``): the plant's ticks from Redis
pub/sub to many WebSocket clients, each with its own watchlist
(docs/protocol.md).

One process, one event loop (uvloop when installed), one partition:

- :class:`~fastflow.gateway.live.LiveSubscription` hands every published
  frame to :meth:`Gateway.frame` as soon as it is parsed;
- :class:`~fastflow.hotpath.FanOut` (compiled) splits the frame into per-
  instrument blobs and marks them changed for their subscribers; for each
  changed client, :meth:`FanOut.collect` splices that client's frame from the
  blobs (no per-client encoding) and the gateway writes it to the socket as
  one WebSocket frame, without awaiting anything;
- a client whose socket's write buffer is over the high-water mark
  (``high_water``) is skipped: its changes stay marked in the FanOut, which
  keeps only the latest blob per instrument (conflation), and are sent as one
  frame when the transport drains (``resume_writing``). A client behind for
  longer than ``lag_limit`` seconds is closed with 1008. Memory per client is
  bounded by the high-water mark plus one frame plus its FanOut bitsets; a
  slow client costs the others nothing, because nothing ever waits on it.

Latency accounting: for each published frame the gateway observes the age
of its ticks (now - their oldest ``receive_time_ns``, which the FanOut reads
while splitting the frame) when the frame arrives
(``fastflow_tick_age_seconds{stage="gateway"}``, weighted by the ticks
stored) and once more when the pass over the changed clients has written
every client's frame (``stage="sent"``, weighted by the client frames
written: one timestamp at the end of the pass, an upper bound for every
client of the pass).

HTTP on the same port: ``/`` (the dashboard), ``/static/*``, ``/healthz``
(JSON) and ``/metrics`` (Prometheus text). Auth and the origin check run at
the handshake (:mod:`fastflow.gateway.auth`); control messages are parsed by
:mod:`fastflow.gateway.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import mimetypes
import os
import time
from collections import Counter
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State

from fastflow import __version__
from fastflow.gateway import protocol as proto
from fastflow.gateway.auth import Auth
from fastflow.gateway.live import LiveSubscription
from fastflow.hotpath import FanOut, FrameError
from fastflow.obs import metrics
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UNAVAILABLE = "unavailable"
OPEN = State.OPEN


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """Everything a gateway process is told (``fastflow gateway --help``)."""

    redis: RedisTarget
    keys: Keys = dataclasses.field(default_factory=Keys)
    host: str = "127.0.0.1"
    port: int = 8765
    auth: Auth = dataclasses.field(default_factory=Auth)
    #: Browser origins allowed besides the gateway's own (scheme://host[:port]); "*" allows any.
    allowed_origins: tuple[str, ...] = ()
    max_symbols: int = 1000  # per client watchlist, and per message
    max_message: int = 64 * 1024  # bytes of a client message; larger closes with 1009
    max_clients: int = 20_000
    control_rate: float = 20.0  # control messages per second per client ...
    control_burst: int = 50  # ... in bursts of
    max_strikes: int = 10  # refused messages in a row before the connection is closed (1008)
    high_water: int = 256 * 1024  # bytes queued on a client's socket above which it is conflated
    lag_limit: float = 10.0  # seconds over the high-water mark before the client is closed (1008)
    reuse_port: bool = False
    ping_interval: float | None = 20.0  # WebSocket keepalive pings (None: off)
    close_timeout: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_symbols", "max_message", "max_clients", "control_burst", "max_strikes", "high_water"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.control_rate <= 0 or self.lag_limit <= 0:
            raise ValueError("control_rate and lag_limit must be > 0")


class _Connection(ServerConnection):
    """A server connection that tells the gateway when its write buffer drains."""

    on_drain: Any = None
    client_name: str = ""

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_drain is not None:
            self.on_drain()


class _Client:
    __slots__ = ("behind_since", "binary", "cid", "closing", "conn", "name", "protocol", "rate", "strikes",
                 "symbols", "transport")

    def __init__(self, cid: int, conn: _Connection, binary: bool, rate: proto.RateLimit) -> None:
        self.cid = cid
        self.conn = conn
        self.transport = conn.transport
        self.protocol = conn.protocol  # websockets' state machine: frames go out only while OPEN
        self.binary = binary  # msgpack (binary frames) or JSON (text frames)
        self.name = conn.client_name
        self.rate = rate
        self.strikes = 0  # refused messages in a row
        self.symbols: set[str] = set()
        self.behind_since = 0.0
        self.closing = ""  # why the gateway is closing it ("lagging", "abuse"), or ""


class Gateway:
    """One gateway process's server (see the module docstring)."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.subscription = LiveSubscription(config.redis, config.keys, self)
        self.fan: FanOut | None = None
        self.symbols: list[str] = []
        self._slot: dict[str, int] = {}
        self._ids: dict[str, str] = {}
        self.meta: dict[str, str] = {}
        self._clients: list[_Client | None] = []
        self._pending: set[_Client] = set()  # connected before the instrument list arrived
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.loaded = asyncio.Event()  # set on the first instrument list from Redis
        self.started = time.time()
        self.last_frame = 0.0
        self.counters: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.fanout_seconds = metrics.Histogram(
            "gateway_fanout_seconds",
            "Per published frame: from the frame parsed off the Redis connection to the last client's "
            "frame written to its socket (each client's gateway hop is at most this)")
        self.snapshot_seconds = metrics.Histogram(
            "gateway_snapshot_seconds", "Building and writing one snapshot reply")
        #: Age of the ticks when their frame arrives, and when every client's frame is written.
        self.age_gateway = metrics.tick_age("gateway")
        self.age_sent = metrics.tick_age("sent")

    # -- lifecycle --------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.fan is not None and self.subscription.live

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
            ping_interval=c.ping_interval,
            close_timeout=c.close_timeout,
            create_connection=_Connection,
            reuse_port=c.reuse_port or None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._tasks = [asyncio.create_task(self.subscription.run()), asyncio.create_task(self._sweep())]

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the instrument list is loaded and the live subscription is on."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready in {timeout} s: redis {self.subscription.state}, "
                                   f"{self.subscription.last_error}")
            await asyncio.sleep(0.005)

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

    def reset(self, symbols: list[str], ids: dict[str, str], seed: bytes, meta: dict[str, str]) -> None:
        """A (re)connect to Redis: the instrument list, the broker ids and the
        seed frame (latest state). Clients keep their watchlists."""
        self.meta = meta
        self._ids = ids
        self.loaded.set()
        if symbols != self.symbols or self.fan is None:
            old = [c for c in self._clients if c is not None] + list(self._pending)
            self.fan = FanOut(_Names(symbols))
            self.symbols = symbols
            self._slot = {s: i for i, s in enumerate(symbols)}
            self._clients = []
            self._pending.clear()
            for client in old:
                self._adopt(client)
            self.counters["instrument_loads"] += 1
            self._feed(seed)
            for client in self._live_clients():
                if client.symbols:  # a new instrument list: everything is sent afresh
                    self._write(client, self.fan.snapshot(client.cid))
        else:
            self._feed(seed)
        self.last_frame = time.time()

    def frame(self, frame: bytes) -> None:
        """One published frame: to every changed client that is not behind.
        Observes the ticks' age on arrival (stage ``gateway``) and once every
        client's frame is written (stage ``sent``): two ``time.time_ns()``
        per frame, none per client or tick."""
        start = time.perf_counter_ns()
        arrived = time.time_ns()
        self.counters["frames_in"] += 1
        self.counters["bytes_in"] += len(frame)
        self.last_frame = arrived / 1e9
        ticks = self._apply(frame)
        if ticks < 0:
            return
        assert self.fan is not None  # _apply returned ticks
        received = self.fan.last_receive_ns  # the frame's oldest receive_time_ns
        if received and ticks:
            self.age_gateway.observe_ns(max(0, arrived - received), ticks)
        written = self._send()
        if received and written:
            self.age_sent.observe_ns(max(0, time.time_ns() - received), written)
        self.fanout_seconds.observe_ns(time.perf_counter_ns() - start)

    def _feed(self, frame: bytes) -> bool:
        """``frame`` into the FanOut, then to every changed client (no latency
        accounting: the seed of a (re)connect)."""
        if self._apply(frame) < 0:
            return False
        self._send()
        return True

    def _apply(self, frame: bytes) -> int:
        """``frame`` into the FanOut: the ticks stored, or -1 (no FanOut yet, a malformed frame)."""
        fan = self.fan
        if fan is None:
            return -1
        try:
            ticks: int = fan.feed(frame)
        except FrameError as exc:
            self.counters["frame_errors"] += 1
            logger.warning("gateway: a malformed frame from redis skipped: %s", exc)
            return -1
        return ticks

    def _send(self) -> int:
        """One pass over the changed clients: each one's frame written to its
        socket, unless it is behind; the number of client frames written."""
        fan = self.fan
        assert fan is not None
        clients = self._clients
        collect = fan.collect
        frames = texts = sent = skipped = 0
        for cid in fan.changed_clients():
            client = clients[cid]
            if client is None or client.closing or client.protocol.state is not OPEN:
                continue
            if client.conn.paused:  # over the high-water mark: leave the changes marked (conflated)
                if not client.behind_since:
                    client.behind_since = time.monotonic()
                skipped += 1
                continue
            if client.binary:  # the hot path: one spliced buffer, WebSocket header included, one write
                frame = collect(cid, True)
                client.transport.write(frame)
                frames += 1
                sent += len(frame)
            elif self._write(client, collect(cid)):
                texts += 1
        counters = self.counters
        counters["frames_out"] += frames
        counters["bytes_out"] += sent
        counters["conflations"] += skipped
        return frames + texts

    def _write(self, client: _Client, payload: bytes) -> bool:
        """One server message as one WebSocket frame, written without waiting;
        False when there was nothing to write, or the client is closing."""
        if client.closing or client.protocol.state is not OPEN or not payload:
            return False
        if client.binary:
            client.transport.write(proto.ws_header(len(payload)) + payload)
        else:
            text = json.dumps(msgpack.unpackb(payload, raw=False), separators=(",", ":")).encode()
            client.transport.write(proto.ws_header(len(text), 0x1) + text)
            payload = text
        self.counters["frames_out"] += 1
        self.counters["bytes_out"] += len(payload)
        return True

    def _drained(self, client: _Client) -> None:
        """The client's socket drained below the low-water mark: send what piled up."""
        client.behind_since = 0.0
        if self.fan is not None and client.cid >= 0 and not client.closing:
            payload = self.fan.collect(client.cid)
            if payload:
                self.counters["catch_ups"] += 1
                self._write(client, payload)

    async def _sweep(self) -> None:
        """Close clients that have stayed behind past the lag limit."""
        limit = self.config.lag_limit
        while True:
            await asyncio.sleep(min(0.25, limit / 4))
            now = time.monotonic()
            for client in self._live_clients():
                if client.behind_since and client.conn.paused and now - client.behind_since > limit:
                    self._close(client, 1008, f"lagging: behind for more than {limit:g} s", "lagging")

    # -- clients ----------------------------------------------------------------------

    def _live_clients(self) -> list[_Client]:
        return [c for c in self._clients if c is not None]

    def _adopt(self, client: _Client) -> None:
        """Give ``client`` a FanOut id and its watchlist (after a (re)load of instruments)."""
        assert self.fan is not None
        cid = self.fan.add_client()
        while len(self._clients) <= cid:
            self._clients.append(None)
        self._clients[cid] = client
        client.cid = cid
        slots = [self._slot[s] for s in client.symbols if s in self._slot]
        client.symbols = {self.symbols[i] for i in slots}
        if slots:
            self.fan.subscribe(cid, slots)

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
        client = _Client(-1, conn, binary, proto.RateLimit(c.control_rate, c.control_burst, time.monotonic()))
        conn.on_drain = lambda: self._drained(client)
        if self.fan is None:
            self._pending.add(client)
        else:
            self._adopt(client)
        self.counters["connections"] += 1
        reason = "closed"
        try:
            await conn.send(proto.encode({
                "type": "hello", "server": "fastflow", "version": __version__, "partition": c.keys.partition,
                "subprotocol": subprotocol, "symbols": len(self.symbols), "client": client.name,
                "max_symbols": c.max_symbols}, subprotocol))
            async for message in conn:
                await self._control(client, message, subprotocol)
                if client.closing:  # _close() is sending the close frame: leaving now would send 1000
                    await conn.wait_closed()
                    break
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1009:
                reason = "too_big"
        finally:
            reason = client.closing or reason
            self.disconnects[reason] += 1
            self._forget(client)

    def _forget(self, client: _Client) -> None:
        self._pending.discard(client)
        if 0 <= client.cid < len(self._clients) and self._clients[client.cid] is client:
            self._clients[client.cid] = None
            if self.fan is not None:
                self.fan.remove_client(client.cid)
        client.cid = -1

    def _close(self, client: _Client, code: int, reason: str, why: str) -> None:
        if client.closing:
            return
        client.closing = why
        logger.info("gateway: closing client %s (%s): %s", client.name, why, reason)
        self._forget(client)
        asyncio.get_running_loop().create_task(self._shut(client, code, reason))

    async def _shut(self, client: _Client, code: int, reason: str) -> None:
        """Send the close frame; a peer that does not read it in ``close_timeout``
        (a stalled client: websockets' close() would wait on drain) is aborted."""
        try:
            await asyncio.wait_for(client.conn.close(code, reason), self.config.close_timeout)
        except TimeoutError:
            client.transport.abort()

    # -- control messages: cold, once per client message -------------------------------

    async def _control(self, client: _Client, message: bytes | str, subprotocol: str) -> None:
        c = self.config
        self.counters["control_messages"] += 1
        try:
            if not client.rate.allow(time.monotonic()):
                raise proto.ProtocolError(proto.RATE_LIMITED,
                                          f"more than {c.control_rate:g} control messages a second "
                                          f"(bursts of {c.control_burst})")
            request = proto.parse(message, subprotocol, c.max_symbols)
            replies = self._answer(client, request)
        except proto.ProtocolError as exc:
            client.strikes += 1
            self.errors[exc.code] += 1
            await client.conn.send(proto.encode(proto.error(exc.code, exc.message, exc.op), subprotocol))
            if client.strikes >= c.max_strikes:
                self._close(client, 1008, f"{client.strikes} refused messages in a row", "abuse")
            return
        client.strikes = 0
        for reply in replies:
            if isinstance(reply, bytes):  # a spliced snapshot frame
                self._write(client, reply)
            else:
                await client.conn.send(proto.encode(reply, subprotocol))

    def _answer(self, client: _Client, request: proto.Request) -> list[dict[str, Any] | bytes]:
        if request.op == "ping":
            return [{"type": "pong", "id": request.id}]
        fan = self.fan
        if fan is None or client.cid < 0:
            raise proto.ProtocolError(UNAVAILABLE, "no instrument list yet: waiting for the plant", request.op)
        resolved, unknown = self._resolve(request.symbols)
        if request.op == "subscribe":
            added = [s for s in resolved if s not in client.symbols]
            if len(client.symbols) + len(added) > self.config.max_symbols:
                raise proto.ProtocolError(
                    proto.TOO_MANY_SYMBOLS, f"the watchlist would hold {len(client.symbols) + len(added)} "
                    f"symbols; at most {self.config.max_symbols}", request.op)
            fan.subscribe(client.cid, [self._slot[s] for s in added])
            client.symbols.update(added)
            reply: dict[str, Any] = {"type": "subscribed", "symbols": resolved, "unknown": unknown}
            if request.id is not None:
                reply["id"] = request.id
            return [reply, self._snapshot(client, resolved)]
        if request.op == "unsubscribe":
            gone = [s for s in resolved if s in client.symbols]
            fan.unsubscribe(client.cid, [self._slot[s] for s in gone])
            client.symbols.difference_update(gone)
            done: dict[str, Any] = {"type": "unsubscribed", "symbols": resolved, "unknown": unknown}
            if request.id is not None:
                done["id"] = request.id
            return [done]
        # snapshot: the requested symbols, or the whole watchlist
        wanted = resolved if request.symbols else None
        replies: list[dict[str, Any] | bytes] = [self._snapshot(client, wanted)]
        if unknown:
            replies.append(proto.error(proto.BAD_SYMBOLS, f"unknown symbols: {', '.join(map(str, unknown))}",
                                       request.op))
        return replies

    def _snapshot(self, client: _Client, symbols: list[str] | None) -> bytes:
        assert self.fan is not None
        start = time.perf_counter_ns()
        slots = None if symbols is None else [self._slot[s] for s in symbols]
        frame = self.fan.snapshot(client.cid, slots)
        self.counters["snapshots"] += 1
        self.snapshot_seconds.observe_ns(time.perf_counter_ns() - start)
        return frame

    def _resolve(self, names: Iterable[str | int]) -> tuple[list[str], list[str | int]]:
        """Symbols (``EXCHANGE:TRADINGSYMBOL``, Kite tokens, Upstox keys) to the
        partition's symbols, de-duplicated in request order; and the unknown ones."""
        resolved: dict[str, None] = {}
        unknown: list[str | int] = []
        for name in names:
            key = str(name)
            symbol = key if key in self._slot else self._ids.get(key)
            if symbol is None or symbol not in self._slot:
                unknown.append(name)
            else:
                resolved[symbol] = None
        return list(resolved), unknown

    # -- HTTP and the handshake --------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        if path == "/ws":
            return self._admit(conn, request, parse_qs(url.query))
        self.counters["http_requests"] += 1
        if path == "/healthz":
            healthy, body = self.health()
            return _response(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
                             json.dumps(body, indent=1).encode(), "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, self.metrics(), metrics.CONTENT_TYPE)
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        return _response(HTTPStatus.NOT_FOUND, b"not found: try / (dashboard), /ws, /healthz or /metrics\n",
                         "text/plain; charset=utf-8")

    def _static(self, name: str) -> Response:
        try:
            files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        except OSError:
            files = {}
        if name not in files:
            return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
            kind += "; charset=utf-8"
        return _response(HTTPStatus.OK, files[name].read_bytes(), kind)

    def _admit(self, conn: ServerConnection, request: Request, query: dict[str, list[str]]) -> Response | None:
        """The handshake's checks: origin (403), credential (401), capacity (503)."""
        headers = request.headers
        origin = headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, headers.get("Host", "")):
            self.rejected["origin"] += 1
            return _response(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n".encode(),
                             "text/plain; charset=utf-8")
        credential = None
        authorization = headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            credential = authorization[7:].strip()
        elif query.get("token"):
            credential = query["token"][0]
        peer = conn.remote_address[0] if conn.remote_address else None
        name = self.config.auth.check(credential, peer)
        if name is None:
            self.rejected["auth"] += 1
            why = "invalid or expired credential" if credential else "a credential is required"
            response = _response(HTTPStatus.UNAUTHORIZED, f"{why}\n".encode(), "text/plain; charset=utf-8")
            response.headers["WWW-Authenticate"] = 'Bearer realm="fastflow"'
            return response
        if self.clients >= self.config.max_clients:
            self.rejected["full"] += 1
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, b"too many clients\n", "text/plain; charset=utf-8")
        assert isinstance(conn, _Connection)
        conn.client_name = name
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()

    # -- health and metrics ------------------------------------------------------------

    @property
    def clients(self) -> int:
        return sum(1 for c in self._clients if c is not None) + len(self._pending)

    def health(self) -> tuple[bool, dict[str, Any]]:
        sub = self.subscription
        fan_stats = self.fan.stats() if self.fan is not None else {}
        age = time.time() - self.last_frame if self.last_frame else None
        body = {
            "status": "ok" if self.ready else "unavailable",
            "gateway": {"version": __version__, "pid": os.getpid(), "port": self.port,
                        "uptime_s": round(time.time() - self.started, 3), "clients": self.clients,
                        "instruments": len(self.symbols), "counters": dict(self.counters),
                        "disconnects": dict(self.disconnects), "rejected": dict(self.rejected),
                        "fanout": fan_stats},
            "redis": {"state": sub.state, "target": str(self.config.redis), "last_error": sub.last_error,
                      **sub.counters},
            "plant": {"partition": self.config.keys.partition, "meta": self.meta,
                      "last_frame_age_s": None if age is None else round(age, 3)},
        }
        return self.ready, body

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
            self.fanout_seconds.render(),
            self.snapshot_seconds.render(),
            metrics.family([self.age_gateway, self.age_sent]),
        ])


class _Names:
    """The instrument list as FanOut takes it (an object with ``symbol``)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbol = symbols


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


async def serve_gateway(config: GatewayConfig, *, duration: float | None = None, status_every: float = 0.0,
                        report: Any = print, handle_signals: bool = True) -> None:
    """Run a gateway until SIGINT/SIGTERM (or ``duration``): what ``fastflow gateway`` does."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    gateway = Gateway(config)
    await gateway.start()
    report(f"dashboard {gateway.http_url}  websocket {gateway.ws_url}  "
           f"(redis {config.redis}, partition {config.keys.partition}, pid {os.getpid()})")

    async def announce() -> None:
        await gateway.loaded.wait()
        report(f"ready: {len(gateway.symbols)} instruments, serving clients")

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
