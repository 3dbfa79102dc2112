"""A local Zerodha Kite ticker: the real WebSocket protocol over loopback.

``fastflow sim --broker kite`` serves it. Facts it follows
(``docs/wire-format.md`` and broker-formats.md §1.2-1.7):

* the upgrade is ``GET /?api_key=K&access_token=T``; wrong credentials get
  **HTTP 403**, as Kite answers an expired token;
* client requests are JSON text frames ``{"a": "subscribe"|"unsubscribe"|"mode", "v": ...}``;
  a fresh subscription is in **quote** mode;
* market data goes out as binary messages in the exact Kite layout, built by
  :class:`~fastflow.sim.market.model.KiteMarket`; one message never holds a token
  twice nor more than 3000 packets;
* a 1-byte binary heartbeat goes out after ``heartbeat`` seconds without data;
* limits: ``max_tokens`` (3000) per connection and ``max_connections`` (3) per
  api_key. Over the token limit the server answers with an error text frame
  ``{"type": "error", "data": "..."}`` and ignores the request; a connection
  over the connection limit is refused with **HTTP 429** at the upgrade (the
  real server's behaviour there is not documented; this is the simulator's
  choice). Unknown tokens are accepted and never stream, as on Kite;
* no permessage-deflate: the official ``KiteTicker`` (autobahn) never offers it,
  and compressing would cost the simulator most of its time.

The market runs on its own clock, whoever listens
(:mod:`fastflow.sim.market.clock`): exchange time starts at the market's
clock (09:15 IST by default) and runs at ``speed`` x real time; while the
simulated session is open, every ``interval`` each instrument updates a
Poisson number of times around its own rate (``KiteMarket.update_rates``:
about 1-2 snapshots a second for liquid instruments, fewer for illiquid
ones), in rounds that never hold an instrument twice. ``rate`` > 0 is a load
knob: it scales every instrument's rate so the whole universe updates
``rate`` times a second (volatility is per unit of market time, so prices
travel no further for it); 0 keeps the natural cadence. Outside the session
(pre-open, after 15:30) nothing trades and only heartbeats go out.

Each round is sent to every connection as the part of it that connection
subscribed (one message per mode, at most 3000 packets each), encoded by numpy
over the round's positions: no Python work per packet. Each connection has
its own sender task, so a slow or closing client never holds the others back:
a connection with more than ``max_queue_bytes`` waiting skips new rounds until
it drains (snapshots carry cumulative state, so it misses moves, never
volume), counted in ``stats["skipped"]``. When every subscribed connection has
more than ``backlog_bytes`` waiting (a load test asking more than the machine
sends), the rest of that interval's rounds are not taken (``stats["paused"]``): the
clock runs on and the next round's prices have travelled as far as the time
says, so ``rate`` becomes what the connections drain, not wasted rounds.

Fault injection (for tests and demos; the ``fastflow sim --fault`` switches call
the same methods, see :mod:`fastflow.sim.servers.faults`):
:meth:`KiteSimulator.drop` aborts every connection without a close frame;
:meth:`KiteSimulator.silence` keeps sockets open but sends nothing, not even
heartbeats (a half-open peer); :meth:`KiteSimulator.send_garbage` sends a
malformed binary frame; :meth:`KiteSimulator.expire_token` makes the current
access token invalid, so reconnects get 403; :meth:`KiteSimulator.slow` divides
the rate for a while; :meth:`KiteSimulator.burst` holds data back for a while
and then releases every held message at once, in order. Heartbeats go on during
a burst: the broker is alive and its data is late (a connection that goes
entirely quiet is ``silence``), so a client's watchdog does not fire and nothing
held is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fastflow.brokers.kite.constants import MAX_CONNECTIONS, MAX_TOKENS_PER_CONNECTION, MODES
from fastflow.config import SimulatorSection
from fastflow.sim.market.clock import Cadence, MarketClock, session
from fastflow.sim.market.model import KiteMarket
from fastflow.sim.servers.faults import FaultTarget, send_hostile_text
from fastflow.sim.wire import kite as kite_wire

__all__ = ["MAX_PACKETS_PER_MESSAGE", "KiteSimConfig", "KiteSimulator"]

logger = logging.getLogger(__name__)

#: A message holds at most one packet per subscribed token, so never more than a connection's tokens.
MAX_PACKETS_PER_MESSAGE = MAX_TOKENS_PER_CONNECTION

IntArray = npt.NDArray[np.int64]


@dataclasses.dataclass
class KiteSimConfig:
    api_key: str = SimulatorSection.api_key
    access_token: str = SimulatorSection.access_token
    rate: float = SimulatorSection.rate  # 0: each instrument's own cadence; > 0: total updates per second
    speed: float = SimulatorSection.speed  # market seconds per real second
    interval: float = 0.05  # seconds between market rounds
    heartbeat: float = 1.0  # seconds of silence before a 1-byte heartbeat
    max_tokens: int = MAX_TOKENS_PER_CONNECTION
    max_connections: int = MAX_CONNECTIONS
    seed: int = 0
    max_queue_bytes: int = 16 * 2**20  # per connection waiting to be sent; past it new rounds are skipped
    backlog_bytes: int = 2**20  # every connection over this: the pump takes no snapshots this interval
    max_held_bytes: int = 64 * 2**20  # per connection in a burst; past it new rounds are skipped


@dataclasses.dataclass(eq=False)  # identity: clients live in a set
class _Client:
    connection: ServerConnection
    modes: dict[int, str] = dataclasses.field(default_factory=dict)  # token -> mode
    last_sent: float = dataclasses.field(default_factory=time.monotonic)
    codes: npt.NDArray[np.int8] | None = None  # per market position: its mode's index in MODES, -1: none
    # Encoded messages waiting for the sender, as (message, packets).
    pending: collections.deque[tuple[bytes, int]] = dataclasses.field(default_factory=collections.deque)
    pending_bytes: int = 0
    held: list[tuple[bytes, int]] = dataclasses.field(default_factory=list)  # (message, packets) in a burst
    held_bytes: int = 0
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def changed(self) -> None:
        """The subscription changed: its position codes are rebuilt on the next round."""
        self.codes = None


class KiteSimulator:
    """The Kite ticker endpoint over a :class:`KiteMarket`."""

    def __init__(self, market: KiteMarket, config: KiteSimConfig | None = None) -> None:
        self.market = market
        self.config = config or KiteSimConfig()
        self._known = {int(t) for t in market.tokens}
        self._clients: set[_Client] = set()
        self._rng = np.random.default_rng(self.config.seed)
        self._silent_until = 0.0
        self._slow_until = 0.0
        self._slow_factor = 1.0
        self._burst_until = 0.0
        #: The exchange clock and each instrument's cadence (see the module docstring).
        self.clock = MarketClock(market.time, self.config.speed)
        self.cadence = Cadence(market.update_rates(), self.config.rate)
        self.stats = {"connections": 0, "refused": 0, "messages": 0, "packets": 0, "heartbeats": 0, "errors": 0,
                      "held": 0, "skipped": 0, "paused": 0, "updates": 0}

    # -- handshake ---------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        key = query.get("api_key", [""])[0]
        token = query.get("access_token", [""])[0]
        if key != self.config.api_key or token != self.config.access_token:
            self.stats["refused"] += 1
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden: invalid api_key or access_token\n")
        if len(self._clients) >= self.config.max_connections:
            self.stats["refused"] += 1
            return connection.respond(
                HTTPStatus.TOO_MANY_REQUESTS,
                f"Too many connections: at most {self.config.max_connections} per api_key\n",
            )
        return None

    # -- one connection ------------------------------------------------------------

    async def _handler(self, connection: ServerConnection) -> None:
        client = _Client(connection)
        self._clients.add(client)
        self.stats["connections"] += 1
        sender = asyncio.create_task(self._sender(client))
        try:
            async for message in connection:
                if isinstance(message, str):
                    await self._request(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _error(self, client: _Client, text: str) -> None:
        self.stats["errors"] += 1
        await client.connection.send(json.dumps({"type": "error", "data": text}))

    async def _request(self, client: _Client, message: str) -> None:
        try:
            request = json.loads(message)
            action, value = request["a"], request["v"]
        except (ValueError, KeyError, TypeError):
            await self._error(client, f"Invalid message: {message[:200]!r}")
            return
        if action == "subscribe":
            tokens = _tokens(value)
            if tokens is None:
                await self._error(client, "subscribe takes a list of instrument tokens")
                return
            fresh = [t for t in tokens if t not in client.modes]
            if len(client.modes) + len(fresh) > self.config.max_tokens:
                await self._error(
                    client, f"Maximum tokens per connection exceeded ({self.config.max_tokens})"
                )
                return
            for t in fresh:
                client.modes[t] = "quote"
            client.changed()
        elif action == "unsubscribe":
            tokens = _tokens(value)
            if tokens is None:
                await self._error(client, "unsubscribe takes a list of instrument tokens")
                return
            for t in tokens:
                client.modes.pop(t, None)
            client.changed()
        elif action == "mode":
            if not (isinstance(value, list) and len(value) == 2 and value[0] in MODES):
                await self._error(client, 'mode takes ["ltp"|"quote"|"full", [tokens]]')
                return
            tokens = _tokens(value[1])
            if tokens is None:
                await self._error(client, "mode takes a list of instrument tokens")
                return
            for t in tokens:
                if t in client.modes:
                    client.modes[t] = value[0]
            client.changed()
        else:
            await self._error(client, f"Unknown action {action!r}")

    # -- fault injection (fastflow.sim.servers.faults.FaultTarget) -----------------------------

    def drop(self) -> int:
        """Abort every connection (TCP reset, no close frame); returns how many."""
        clients = list(self._clients)
        for client in clients:
            transport = client.connection.transport
            if transport is not None:
                transport.abort()
        return len(clients)

    def silence(self, seconds: float) -> None:
        """Send nothing at all (no data, no heartbeat) for ``seconds``; sockets stay open."""
        self._silent_until = time.monotonic() + seconds

    async def send_garbage(self) -> None:
        """Send every connection a binary frame that is not valid Kite framing."""
        for client in list(self._clients):
            await self._send(client, b"\x00\x02\x00\x08garbage", 0)

    async def send_hostile_text(self) -> None:
        """Send every connection each of ``HOSTILE_TEXT`` as a text frame."""
        await send_hostile_text([client.connection for client in self._clients])

    def expire_token(self, new_token: str = "rotated") -> None:
        """The current access token stops working (new upgrades get 403)."""
        self.config.access_token = new_token

    def slow(self, seconds: float, factor: float) -> None:
        """For ``seconds``, send data at ``rate / factor``. Heartbeats as usual: a
        connection that gets no data for ``heartbeat`` seconds gets one."""
        if not factor >= 1:
            raise ValueError(f"the slow-down factor must be >= 1, got {factor}")
        self._slow_until = time.monotonic() + seconds
        self._slow_factor = factor

    def burst(self, seconds: float) -> None:
        """For ``seconds``, hold every data message back, then send them all at
        once, in order. The market keeps moving at the usual rate meanwhile;
        heartbeats go on (the broker is alive, its data is late), so a client's
        watchdog does not fire and no held message is lost. At most
        ``max_held_bytes`` are held per connection; past that its new rounds
        are skipped until the release."""
        self._burst_until = time.monotonic() + seconds

    @property
    def holding(self) -> bool:
        """True while a burst holds data back or held messages still wait to go out."""
        return time.monotonic() < self._burst_until or any(c.held for c in self._clients)

    @property
    def queued(self) -> int:
        """Messages queued or held for the connections and not yet sent."""
        return sum(len(c.pending) + len(c.held) for c in self._clients)

    # -- the market loop -------------------------------------------------------------

    async def _pump(self) -> None:
        """Every interval: advance the market to the clock's time and hand each
        connection its part of every round (see the module docstring)."""
        cfg = self.config
        last = time.monotonic()
        while True:
            started = time.monotonic()
            elapsed, last = min(started - last, 4 * cfg.interval), started
            if started >= self._silent_until:
                if started < self._slow_until:
                    elapsed /= self._slow_factor
                self.run_rounds(elapsed, self.clock.now())
            await asyncio.sleep(max(0.0, cfg.interval - (time.monotonic() - started)))

    def _backlogged(self) -> bool:
        """Every subscribed connection has more than ``backlog_bytes`` waiting: the
        senders, not the market, are the bottleneck (a load test's ``rate`` above
        what the machine sends), so no more snapshots are taken this interval
        rather than rounds that would be skipped."""
        waiting = [c.pending_bytes for c in self._clients if c.modes]
        return bool(waiting) and min(waiting) >= self.config.backlog_bytes

    def run_rounds(self, elapsed: float, until: float) -> int:
        """Advance the market over ``elapsed`` real seconds ending at exchange time
        ``until`` (nothing trades outside the session) and queue each round for
        the connections; returns the number of instrument updates."""
        begin = self.market.time
        self.cadence.retune(self.config.rate)  # the load knob may be turned while running
        if session(until) != "open":
            return 0
        rounds = Cadence.rounds(self.cadence.draw(elapsed, self._rng))
        clients = [c for c in self._clients if c.modes]
        updates = 0
        for r, idx in enumerate(rounds):
            if clients and self._backlogged():
                self.stats["paused"] += 1  # the rest of this interval's snapshots are not taken
                break
            # market.step_tokens without its per-token lookup: the positions come from the draw.
            self.market.advance(idx, begin + (until - begin) * (r + 1) / len(rounds))
            updates += int(idx.size)
            for client in clients:
                self._deliver(client, idx)
        self.stats["updates"] += updates
        return updates

    def _codes(self, client: _Client) -> npt.NDArray[np.int8]:
        if client.codes is None:
            codes = np.full(self.market.size, -1, np.int8)
            for code, mode in enumerate(MODES):
                tokens = [t for t, m in client.modes.items() if m == mode and t in self._known]
                if tokens:  # unknown tokens are accepted and never stream, as on Kite
                    codes[self.market.positions(tokens)] = code
            client.codes = codes
        return client.codes

    def _deliver(self, client: _Client, idx: IntArray) -> None:
        """Queue the part of round ``idx`` that ``client`` subscribed, one message per mode."""
        codes = self._codes(client)[idx]
        if not np.any(codes >= 0):
            return
        holding = time.monotonic() < self._burst_until
        if (client.held_bytes >= self.config.max_held_bytes if holding
                else client.pending_bytes >= self.config.max_queue_bytes):
            self.stats["skipped"] += 1
            return
        for code, mode in enumerate(MODES):
            for _, chunk in _chunks(mode, idx[codes == code]):
                if not chunk.size:
                    continue
                message = self.market.encode(chunk, mode)
                if holding:
                    client.held.append((message, int(chunk.size)))
                    client.held_bytes += len(message)
                    self.stats["held"] += 1
                else:
                    client.pending.append((message, int(chunk.size)))
                    client.pending_bytes += len(message)
        client.wakeup.set()

    async def _sender(self, client: _Client) -> None:
        """One connection's output: its queued messages (after any held in a burst
        that ended), and heartbeats when it had nothing for ``heartbeat`` seconds."""
        cfg = self.config
        while True:
            now = time.monotonic()
            if now < self._silent_until:
                await asyncio.sleep(min(self._silent_until - now, cfg.interval))
                continue
            hold = now < self._burst_until
            if client.held and not hold:
                if not await self._release(client):
                    return
                continue
            if client.pending:
                message, packets = client.pending.popleft()
                client.pending_bytes -= len(message)
                if not await self._send(client, message, packets):
                    return  # the connection is gone
                continue
            due = cfg.heartbeat - (now - client.last_sent)
            if due <= 0:
                self.stats["heartbeats"] += 1
                if not await self._send(client, kite_wire.HEARTBEAT, 0):
                    return
                continue
            if hold:
                due = min(due, self._burst_until - now)
            client.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.wakeup.wait(), due)

    async def _release(self, client: _Client) -> bool:
        """Send every message held in a burst, in order; False if the connection is gone."""
        held, client.held, client.held_bytes = client.held, [], 0
        for message, packets in held:
            if not await self._send(client, message, packets):
                return False
        return True

    async def _send(self, client: _Client, message: bytes, packets: int) -> bool:
        """False if the connection is closed (then nothing was sent)."""
        try:
            await client.connection.send(message)
        except ConnectionClosed:
            return False
        client.last_sent = time.monotonic()
        if packets:
            self.stats["messages"] += 1
            self.stats["packets"] += packets
        return True

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Start listening (port 0: a free port) and the market loop."""
        server: Server = await serve(
            self._handler, host, port, process_request=self._process_request, max_size=2**20,
            compression=None,
        )
        self._pump_task = asyncio.create_task(self._pump())
        self._server = server
        return server

    @property
    def port(self) -> int:
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    async def stop(self) -> None:
        self._pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump_task
        self._server.close()
        await self._server.wait_closed()


def _chunks(mode: str, idx: IntArray) -> list[tuple[str, IntArray]]:
    return [(mode, idx[i : i + MAX_PACKETS_PER_MESSAGE]) for i in range(0, idx.size, MAX_PACKETS_PER_MESSAGE)]


def _implements_fault_target(simulator: KiteSimulator) -> FaultTarget:
    return simulator  # mypy checks that KiteSimulator offers every fault switch


def _tokens(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return None
    return [int(t) for t in value]
