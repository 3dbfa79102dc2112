"""A local Upstox Market Data Feed V3: the authorize endpoint and the feed WebSocket.

``fastflow sim --broker upstox`` serves it on one port. Facts it follows
(broker-formats.md §2.2-2.4 and §5):

* ``GET /v3/feed/market-data-feed/authorize`` with ``Authorization: Bearer
  <access_token>`` answers ``{"status": "success", "data":
  {"authorized_redirect_uri": "ws://HOST/feeds?requestId=...&code=...",
  "authorizedRedirectUri": ...}}``. The code is **single-use** and expires
  after ``code_ttl`` seconds; a wrong token gets **HTTP 401** with an Upstox
  style error body;
* ``GET /v3/feed/market-data-feed`` with the same header redirects (302) to a
  fresh authorized URL, for clients that follow redirects (the SDK's path);
* the upgrade at ``/feeds`` needs an unused, unexpired code (else **HTTP 403**);
  one connection per user: a new connection replaces the old one, which is
  closed with code 1000 (the real server's behaviour is not documented; this
  is the simulator's choice, and it lets a client recover from a half-open
  socket without waiting for the server to notice);
* on connect the server sends a ``market_info`` frame with every segment's
  status; :meth:`UpstoxSimulator.set_market_status` changes and re-sends it;
* requests are JSON in **binary** frames: ``{"guid", "method": "sub" |
  "change_mode" | "unsub", "data": {"mode", "instrumentKeys"}}``; ``sub``
  defaults to mode ``ltpc``. After a ``sub`` or ``change_mode`` the keys'
  current state goes out as one ``initial_feed`` frame, then ``live_feed``
  frames carry updates, several keys (and modes) per frame;
* limits per connection (V3 table): a mode used alone takes up to 5000 (ltpc),
  3000 (option_greeks), 2000 (full) or 1500 (full_d30) keys; with several
  modes in use the caps are 2000/2000/1500/1500. A request that would break
  them is ignored whole and counted (``limit_rejections``), as are malformed
  requests (``bad_requests``) and text frames: the real server's answer to
  them is not documented. Unknown keys are accepted and never stream;
* a WebSocket ping goes out after ``ping_interval`` seconds without data.

The market runs on its own clock and cadence exactly as the Kite simulator's
(:mod:`fastflow.sim.servers.kite`): ``rate`` 0 keeps each instrument's own
cadence, ``rate`` > 0 scales the universe to that many updates (feeds) a
second in total; each round of updates goes to every connection as one
``live_feed`` frame with the part of it that connection subscribed.

Fault switches (:class:`fastflow.sim.servers.faults.FaultTarget`): ``drop``,
``silence`` (the connections open at the time send nothing, no pings either,
and read nothing, so pongs never come: a half-open path; reconnects get a
working one), ``send_garbage`` (a truncated protobuf frame), ``expire_token``
(authorize answers 401, outstanding codes die), ``slow`` and ``burst``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fastflow.brokers.upstox.constants import (
    AUTHORIZE_PATH,
    COMBINED_LIMITS,
    FEED_PATH,
    INDIVIDUAL_LIMITS,
    MODES,
    limit_error,
)
from fastflow.config import SimulatorSection
from fastflow.sim.market.clock import Cadence, MarketClock, session
from fastflow.sim.market.upstox import UpstoxMarket
from fastflow.sim.servers.faults import send_hostile_text
from fastflow.sim.wire import upstox as wire

logger = logging.getLogger(__name__)

SOCKET_PATH = "/feeds"

#: A FeedResponse whose feeds map entry claims 64 bytes and has 3: "length past the end".
GARBAGE = b"\x08\x01\x12\x40\x0a\x03NSE"


@dataclasses.dataclass
class UpstoxSimConfig:
    access_token: str = SimulatorSection.access_token
    rate: float = SimulatorSection.rate  # 0: each instrument's own cadence; > 0: total updates per second
    speed: float = SimulatorSection.speed  # market seconds per real second
    interval: float = 0.05  # seconds between market rounds
    ping_interval: float = 1.0  # seconds without data before a ping
    code_ttl: float = 60.0  # seconds an authorized URL stays usable
    max_connections: int = 1
    individual_limits: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(INDIVIDUAL_LIMITS))
    combined_limits: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(COMBINED_LIMITS))
    seed: int = 0


@dataclasses.dataclass(eq=False)  # identity: clients live in a list
class _Client:
    connection: ServerConnection
    modes: dict[str, str] = dataclasses.field(default_factory=dict)  # instrument_key -> mode
    last_sent: float = dataclasses.field(default_factory=time.monotonic)
    held: list[bytes] = dataclasses.field(default_factory=list)  # frames held back by a burst
    silent_until: float = 0.0  # half-open until then: nothing sent, nothing read
    codes: npt.NDArray[np.int8] | None = None  # per market position: its mode's index in MODES, -1: none
    codes_of: dict[str, str] | None = None  # the modes dict the codes were built from


class UpstoxSimulator:
    """The Upstox V3 feed over an :class:`UpstoxMarket` (see the module docstring)."""

    def __init__(self, market: UpstoxMarket, config: UpstoxSimConfig | None = None) -> None:
        self.market = market
        self.config = config or UpstoxSimConfig()
        self.status: dict[str, int] = dict.fromkeys(market.segments(), wire.NORMAL_OPEN)
        self._codes: dict[str, float] = {}  # unused code -> expiry (monotonic)
        self._clients: list[_Client] = []
        self._closing: set[asyncio.Task[None]] = set()
        self._slow_until = 0.0
        self._slow_factor = 1.0
        self._held_until = 0.0
        self._rng = np.random.default_rng(self.config.seed)
        #: The exchange clock and each instrument's cadence (as the Kite simulator's).
        self.clock = MarketClock(market.time, self.config.speed)
        self.cadence = Cadence(market.update_rates(), self.config.rate)
        self.stats = {
            "authorized": 0, "unauthorized": 0, "connections": 0, "refused": 0, "replaced": 0,
            "messages": 0, "feeds": 0, "snapshots": 0, "pings": 0, "bad_requests": 0, "limit_rejections": 0,
            "updates": 0,
        }

    # -- HTTP: authorize, redirect, upgrade ----------------------------------------------

    def _bearer_ok(self, request: Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.config.access_token}"

    def _authorized_url(self, request: Request) -> str:
        code = str(uuid.uuid4())
        now = time.monotonic()
        self._codes = {c: t for c, t in self._codes.items() if t > now}
        self._codes[code] = now + self.config.code_ttl
        self.stats["authorized"] += 1
        host = request.headers.get("Host", "127.0.0.1")
        return f"ws://{host}{SOCKET_PATH}?requestId={uuid.uuid4()}&code={code}"

    def _json(self, connection: ServerConnection, status: HTTPStatus, payload: object) -> Response:
        response = connection.respond(status, json.dumps(payload))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _unauthorized(self, connection: ServerConnection) -> Response:
        self.stats["unauthorized"] += 1
        return self._json(connection, HTTPStatus.UNAUTHORIZED, {"status": "error", "errors": [{
            "errorCode": "UDAPI100050", "message": "Invalid token used to access API"}]})

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == AUTHORIZE_PATH:
            if not self._bearer_ok(request):
                return self._unauthorized(connection)
            location = self._authorized_url(request)
            return self._json(connection, HTTPStatus.OK, {"status": "success", "data": {
                "authorized_redirect_uri": location, "authorizedRedirectUri": location}})
        if url.path == FEED_PATH:
            if not self._bearer_ok(request):
                return self._unauthorized(connection)
            response = connection.respond(HTTPStatus.FOUND, "")
            response.headers["Location"] = self._authorized_url(request)
            return response
        if url.path != SOCKET_PATH:
            return self._json(connection, HTTPStatus.NOT_FOUND, {"status": "error", "errors": [{
                "errorCode": "UDAPI100060", "message": "Resource not Found."}]})
        code = parse_qs(url.query).get("code", [""])[0]
        if self._codes.pop(code, 0.0) < time.monotonic():
            self.stats["refused"] += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden: unknown, used or expired code\n")
        return None

    # -- one connection ----------------------------------------------------------------

    async def _handler(self, connection: ServerConnection) -> None:
        while len(self._clients) >= self.config.max_connections:
            old = self._clients.pop(0)
            self.stats["replaced"] += 1
            if old.silent_until > time.monotonic() and old.connection.transport is not None:
                old.connection.transport.abort()  # a half-open peer would never answer the close
            else:  # the close handshake runs in the background: it must not delay the new connection
                task = asyncio.create_task(old.connection.close(1000, "replaced by a new connection"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        client = _Client(connection)
        self._clients.append(client)
        self.stats["connections"] += 1
        try:
            await self._send(client, self.market.market_info(self.status, _now_ms()), 0)
            async for message in connection:
                await self._request(client, message)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._clients.remove(client)

    def _bad(self, reason: str) -> None:
        self.stats["bad_requests"] += 1
        logger.warning("upstox sim: request ignored: %s", reason)

    async def _request(self, client: _Client, message: bytes | str) -> None:
        if isinstance(message, str):
            self._bad("a text frame (requests are JSON in binary frames)")
            return
        try:
            request = json.loads(message)
            method = request["method"]
            data = request["data"]
            keys = data["instrumentKeys"]
        except (ValueError, KeyError, TypeError):
            self._bad(f"not a request: {message[:200]!r}")
            return
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            self._bad("instrumentKeys must be a list of strings")
            return
        mode = data.get("mode") if isinstance(data, dict) else None
        modes = dict(client.modes)
        if method == "sub":
            mode = mode or "ltpc"
        elif method == "unsub":
            for key in keys:
                modes.pop(key, None)
            client.modes = modes
            return
        elif method != "change_mode" or mode is None:
            self._bad(f"unknown method {method!r} (or change_mode without a mode)")
            return
        if mode not in MODES:
            self._bad(f"unknown mode {mode!r}")
            return
        for key in keys:
            if method == "sub" or key in modes:
                modes[key] = mode
        error = limit_error(modes, self.config.individual_limits, self.config.combined_limits)
        if error is not None:
            self.stats["limit_rejections"] += 1
            logger.warning("upstox sim: %s ignored: %s", method, error)
            return
        client.modes = modes
        fresh = {k: modes[k] for k in keys if k in modes and k in self.market}
        if fresh:
            self.stats["snapshots"] += 1
            await self._send(client, self.market.snapshot(fresh, _now_ms()), len(fresh))

    # -- the market loop ----------------------------------------------------------------

    async def _pump(self) -> None:
        """Every interval: advance the market to the clock's time, send each
        connection one live frame per round with its part of it, and ping
        connections that had no data."""
        cfg = self.config
        last = time.monotonic()
        while True:
            started = time.monotonic()
            elapsed, last = min(started - last, 4 * cfg.interval), started
            for client in self._clients:
                if client.silent_until and started >= client.silent_until:
                    client.silent_until = 0.0
                    if client.connection.transport is not None:
                        client.connection.transport.resume_reading()
            if started < self._slow_until:
                elapsed /= self._slow_factor
            holding = started < self._held_until
            for client, frame, feeds in self.run_rounds(elapsed, self.clock.now()):
                if holding:
                    client.held.append(frame)
                    continue
                await self._release(client)
                await self._send(client, frame, feeds)
            if not holding:
                for client in list(self._clients):
                    if not client.silent_until:
                        await self._release(client)
            now = time.monotonic()
            for client in list(self._clients):
                if not client.silent_until and now - client.last_sent >= cfg.ping_interval:
                    self.stats["pings"] += 1
                    client.last_sent = now
                    with contextlib.suppress(ConnectionClosed):
                        await client.connection.ping()
            await asyncio.sleep(max(0.0, cfg.interval - (time.monotonic() - started)))

    def run_rounds(self, elapsed: float, until: float) -> list[tuple[_Client, bytes, int]]:
        """Advance the market over ``elapsed`` real seconds ending at exchange time
        ``until`` (nothing trades outside the session); returns each connection's
        live frames, one per round it subscribed a part of, in order."""
        begin = self.market.time
        self.cadence.retune(self.config.rate)  # the load knob may be turned while running
        if session(until) != "open":
            return []
        rounds = Cadence.rounds(self.cadence.draw(elapsed, self._rng))
        clients = [c for c in self._clients if c.modes and not c.silent_until]
        out: list[tuple[_Client, bytes, int]] = []
        for r, idx in enumerate(rounds):
            self.market.advance(idx, begin + (until - begin) * (r + 1) / len(rounds))
            self.stats["updates"] += int(idx.size)
            for client in clients:
                codes = self._mode_codes(client)[idx]
                chosen = idx[codes >= 0]
                if chosen.size:
                    modes = [MODES[c] for c in codes[codes >= 0].tolist()]
                    out.append((client, self.market.live_frame(chosen, modes, _now_ms()), int(chosen.size)))
        return out

    def _mode_codes(self, client: _Client) -> npt.NDArray[np.int8]:
        if client.codes is None or client.codes_of is not client.modes:
            codes = np.full(self.market.size, -1, np.int8)
            for code, mode in enumerate(MODES):
                keys = [k for k, m in client.modes.items() if m == mode and k in self.market]
                if keys:  # unknown keys are accepted and never stream
                    codes[self.market.positions(keys)] = code
            client.codes, client.codes_of = codes, client.modes
        return client.codes

    async def _release(self, client: _Client) -> None:
        held, client.held = client.held, []
        for frame in held:
            await self._send(client, frame, 1)

    async def _send(self, client: _Client, frame: bytes, feeds: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.connection.send(frame)
            client.last_sent = time.monotonic()
            self.stats["messages"] += 1
            self.stats["feeds"] += feeds

    # -- market status ------------------------------------------------------------------

    async def set_market_status(self, status: int, segments: list[str] | None = None) -> None:
        """Set ``segments`` (default: all) to ``status`` (``upstox_wire.NORMAL_CLOSE`` ...)
        and send every connection a ``market_info`` frame."""
        for segment in segments or list(self.status):
            self.status[segment] = status
        frame = self.market.market_info(self.status, _now_ms())
        for client in list(self._clients):
            await self._send(client, frame, 0)

    # -- fault injection ----------------------------------------------------------------

    def drop(self) -> int:
        """Abort every connection (TCP reset, no close frame); returns how many."""
        clients = list(self._clients)
        for client in clients:
            if client.connection.transport is not None:
                client.connection.transport.abort()
        return len(clients)

    def silence(self, seconds: float) -> None:
        """The connections open now go half-open for ``seconds``: nothing sent
        (no data, no pings) and nothing read (no pongs, no requests); sockets
        stay open. New connections are not affected (a fresh path works)."""
        until = time.monotonic() + seconds
        for client in self._clients:
            client.silent_until = until
            if client.connection.transport is not None:
                client.connection.transport.pause_reading()

    async def send_garbage(self) -> None:
        """Send every connection a truncated protobuf frame."""
        for client in list(self._clients):
            await self._send(client, GARBAGE, 0)

    async def send_hostile_text(self) -> None:
        """Send every connection each of ``HOSTILE_TEXT`` as a text frame."""
        await send_hostile_text([client.connection for client in self._clients])

    def expire_token(self, new_token: str = "rotated") -> None:
        """The access token stops working: authorize answers 401 and unused codes die."""
        self.config.access_token = new_token
        self._codes.clear()

    def slow(self, seconds: float, factor: float) -> None:
        """For ``seconds``, the market updates at its rate divided by ``factor``."""
        self._slow_until = time.monotonic() + seconds
        self._slow_factor = max(1.0, factor)

    def burst(self, seconds: float) -> None:
        """For ``seconds``, hold live frames back (pings go on), then send them all at once, in order."""
        self._held_until = time.monotonic() + seconds

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Start listening (port 0: a free port) and the market loop."""
        server: Server = await serve(
            self._handler, host, port, process_request=self._process_request, max_size=2**20,
            ping_interval=None, compression=None,
        )
        self._pump_task = asyncio.create_task(self._pump())
        self._server = server
        return server

    @property
    def port(self) -> int:
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    @property
    def api_url(self) -> str:
        """The base URL an :class:`~fastflow.brokers.upstox.session.UpstoxSession` authorizes against."""
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for client in self._clients:  # a half-open connection would never finish a close handshake
            if client.silent_until and client.connection.transport is not None:
                client.connection.transport.abort()
        self._pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump_task
        self._server.close()
        await self._server.wait_closed()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def describe(simulator: UpstoxSimulator) -> dict[str, Any]:
    """Connections and their subscriptions (for logs and tests)."""
    return {"connections": [dict(c.modes) for c in simulator._clients], **simulator.stats}
