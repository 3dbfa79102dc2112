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

Rate: ``rate`` is a total packet budget per second shared by the connections.
Every ``interval`` the budget earned since the last one is split over the
subscribed connections and scheduled for each: whole rounds of its
subscription (one message per mode, at most 3000 packets each) while the share
exceeds it, then a random subset for the remainder; at most ``max_messages``
per connection per interval. Each connection has its own sender task, so a slow
or closing client never holds the others back: a client more than one
interval's share behind gets no new share (the market pauses for it, as TCP
backpressure would). Messages are built by numpy over market positions cached
per subscription: no Python work per packet. The market clock moves one second
per interval.

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
from fastflow.config import COMMAND_DEFAULTS, SimulatorSection
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
    rate: float = COMMAND_DEFAULTS["sim"]["simulator.rate"]  # packets per second, all connections together
    interval: float = 0.05  # seconds between schedules
    heartbeat: float = 1.0  # seconds of silence before a 1-byte heartbeat
    max_tokens: int = MAX_TOKENS_PER_CONNECTION
    max_connections: int = MAX_CONNECTIONS
    seed: int = 0
    max_messages: int = 1000  # data messages per connection per interval (a tiny subscription at a huge rate)
    max_held_bytes: int = 64 * 2**20  # per connection in a burst; past it the market pauses for that client


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A client's streaming subscription as market positions (rebuilt when it changes)."""

    positions: IntArray  # every streaming token's market position
    codes: npt.NDArray[np.int8]  # its mode, as an index into MODES
    groups: list[tuple[str, IntArray]]  # per mode, in chunks of at most MAX_PACKETS_PER_MESSAGE


@dataclasses.dataclass(eq=False)  # identity: clients live in a set
class _Client:
    connection: ServerConnection
    modes: dict[int, str] = dataclasses.field(default_factory=dict)  # token -> mode
    last_sent: float = dataclasses.field(default_factory=time.monotonic)
    plan: _Plan | None = None  # None: modes changed since it was built
    # Scheduled messages, as (mode, market positions); encoded when the sender gets to them.
    pending: collections.deque[tuple[str, IntArray]] = dataclasses.field(default_factory=collections.deque)
    pending_packets: int = 0
    held: list[tuple[bytes, int]] = dataclasses.field(default_factory=list)  # (message, packets) in a burst
    held_bytes: int = 0
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def changed(self) -> None:
        """The subscription changed: forget the plan and what was scheduled with it."""
        self.plan = None
        self.pending.clear()
        self.pending_packets = 0


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
        self._credit = 0.0  # packets earned but not scheduled yet: rates below 1 per interval trickle
        self._turn = 0  # which client gets the remainder of an uneven split
        self._clock = market.clock  # the market clock's target: one second per interval
        self.stats = {"connections": 0, "refused": 0, "messages": 0, "packets": 0, "heartbeats": 0, "errors": 0,
                      "held": 0}

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
        ``max_held_bytes`` are held per connection; past that the market pauses
        for it until the release."""
        self._burst_until = time.monotonic() + seconds

    @property
    def holding(self) -> bool:
        """True while a burst holds data back or held messages still wait to go out."""
        return time.monotonic() < self._burst_until or any(c.held for c in self._clients)

    # -- the market loop -------------------------------------------------------------

    async def _pump(self) -> None:
        """Every interval: split the packet budget earned since the last one over
        the subscribed connections and schedule each its share."""
        cfg = self.config
        last = time.monotonic()
        while True:
            started = time.monotonic()
            elapsed, last = started - last, started
            clients = [c for c in self._clients if c.modes]
            if started >= self._silent_until and clients:
                self._clock += 1
                rate = cfg.rate / self._slow_factor if started < self._slow_until else cfg.rate
                span = 4 * cfg.interval  # a stalled loop catches up at most this much
                self._credit = min(self._credit + rate * min(elapsed, span), rate * span + 1.0)
                budget = int(self._credit)
                self._credit -= budget
                base, extra = divmod(budget, len(clients))
                first = self._turn % len(clients)
                self._turn += 1
                for i, client in enumerate(clients):
                    share = base + (1 if (i - first) % len(clients) < extra else 0)
                    if share and client.pending_packets < share:  # else it is behind: skip
                        self._schedule(client, share)
            await asyncio.sleep(max(0.0, cfg.interval - (time.monotonic() - started)))

    def _plan(self, client: _Client) -> _Plan:
        if client.plan is None:
            by_mode: dict[str, list[int]] = {mode: [] for mode in MODES}
            for token, mode in client.modes.items():
                if token in self._known:  # unknown tokens are accepted and never stream, as on Kite
                    by_mode[mode].append(token)
            positions, codes, groups = [], [], []
            for code, mode in enumerate(MODES):
                if by_mode[mode]:
                    idx = self.market.positions(by_mode[mode])
                    positions.append(idx)
                    codes.append(np.full(idx.size, code, np.int8))
                    groups += _chunks(mode, idx)
            client.plan = _Plan(
                np.concatenate(positions) if positions else np.empty(0, np.int64),
                np.concatenate(codes) if codes else np.empty(0, np.int8),
                groups,
            )
        return client.plan

    def _schedule(self, client: _Client, share: int) -> None:
        """Queue ``share`` packets for ``client``: whole rounds of its
        subscription, then a random subset of it."""
        plan = self._plan(client)
        total = int(plan.positions.size)
        if not total:
            return
        rounds, rest = divmod(share, total)
        messages: list[tuple[str, IntArray]] = []
        for _ in range(min(rounds, self.config.max_messages)):
            messages += plan.groups
        if rest and len(messages) < self.config.max_messages:
            chosen = self._rng.choice(total, rest, replace=False)
            codes = plan.codes[chosen]
            for code, mode in enumerate(MODES):
                messages += _chunks(mode, plan.positions[chosen[codes == code]])
        for mode, idx in messages[: self.config.max_messages]:
            client.pending.append((mode, idx))
            client.pending_packets += int(idx.size)
        client.wakeup.set()

    async def _sender(self, client: _Client) -> None:
        """One connection's output: its scheduled messages (held back in a
        burst), and heartbeats when it had nothing for ``heartbeat`` seconds."""
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
            if client.pending and not (hold and client.held_bytes >= cfg.max_held_bytes):
                mode, idx = client.pending.popleft()
                client.pending_packets -= int(idx.size)
                # market.step_tokens without its per-token lookup: the positions are cached.
                self.market.advance(idx, self._clock)
                message = self.market.encode(idx, mode)
                if hold:
                    client.held.append((message, int(idx.size)))
                    client.held_bytes += len(message)
                    self.stats["held"] += 1
                elif not await self._send(client, message, int(idx.size)):
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
