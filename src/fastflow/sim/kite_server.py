"""A local Zerodha Kite ticker: the real WebSocket protocol over loopback.

``fastflow sim --broker kite`` serves it. Facts it follows
(``docs/wire-format.md`` and broker-formats.md §1.2-1.7):

* the upgrade is ``GET /?api_key=K&access_token=T``; wrong credentials get
  **HTTP 403**, as Kite answers an expired token;
* client requests are JSON text frames ``{"a": "subscribe"|"unsubscribe"|"mode", "v": ...}``;
  a fresh subscription is in **quote** mode;
* market data goes out as binary messages in the exact Kite layout, one per
  mode group per send interval, built by :class:`~fastflow.sim.market.KiteMarket`;
* a 1-byte binary heartbeat goes out after ``heartbeat`` seconds without data;
* limits: ``max_tokens`` (3000) per connection and ``max_connections`` (3) per
  api_key. Over the token limit the server answers with an error text frame
  ``{"type": "error", "data": "..."}`` and ignores the request; a connection
  over the connection limit is refused with **HTTP 429** at the upgrade (the
  real server's behaviour there is not documented; this is the simulator's
  choice). Unknown tokens are accepted and never stream, as on Kite;
* the rate is a total packet budget per second shared by the connections.

Fault injection (for tests and demos; the ``fastflow sim --fault`` switches call
the same methods): :meth:`KiteSimulator.drop` aborts every connection without a
close frame; :meth:`KiteSimulator.silence` keeps sockets open but sends nothing,
not even heartbeats (a half-open peer); :meth:`KiteSimulator.send_garbage`
sends a malformed binary frame; :meth:`KiteSimulator.expire_token` makes the
current access token invalid, so reconnects get 403.

Cold code: one asyncio server, no per-tick Python in the hot path of any
consumer (the market model builds whole messages with numpy).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fastflow.sim import kite_wire
from fastflow.sim.market import KiteMarket

logger = logging.getLogger(__name__)

MODES = ("ltp", "quote", "full")


@dataclasses.dataclass
class KiteSimConfig:
    api_key: str = "fastflow"
    access_token: str = "sim-token"
    rate: float = 10_000.0  # packets per second, all connections together
    interval: float = 0.05  # seconds between sends
    heartbeat: float = 1.0  # seconds of silence before a 1-byte heartbeat
    max_tokens: int = 3000
    max_connections: int = 3
    seed: int = 0


@dataclasses.dataclass(eq=False)  # identity: clients live in a set
class _Client:
    connection: ServerConnection
    modes: dict[int, str] = dataclasses.field(default_factory=dict)  # token -> mode
    last_sent: float = dataclasses.field(default_factory=time.monotonic)


class KiteSimulator:
    """The Kite ticker endpoint over a :class:`KiteMarket`."""

    def __init__(self, market: KiteMarket, config: KiteSimConfig | None = None) -> None:
        self.market = market
        self.config = config or KiteSimConfig()
        self._known = {int(t) for t in market.tokens}
        self._clients: set[_Client] = set()
        self._rng = random.Random(self.config.seed)
        self._silent_until = 0.0
        self._credit = 0.0  # packets earned but not sent yet: rates below 1 per interval trickle
        self.stats = {"connections": 0, "refused": 0, "messages": 0, "packets": 0, "heartbeats": 0, "errors": 0}

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
        try:
            async for message in connection:
                if isinstance(message, str):
                    await self._request(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)

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
        elif action == "unsubscribe":
            tokens = _tokens(value)
            if tokens is None:
                await self._error(client, "unsubscribe takes a list of instrument tokens")
                return
            for t in tokens:
                client.modes.pop(t, None)
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
        else:
            await self._error(client, f"Unknown action {action!r}")

    # -- the market loop -------------------------------------------------------------

    # -- fault injection -------------------------------------------------------------

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

    def expire_token(self, new_token: str = "rotated") -> None:
        """The current access token stops working (new upgrades get 403)."""
        self.config.access_token = new_token

    # -- the market loop -------------------------------------------------------------

    async def _pump(self) -> None:
        """Every interval: split the packet budget over the connections, send
        one message per mode group, and heartbeats to idle connections."""
        cfg = self.config
        while True:
            started = time.monotonic()
            if started < self._silent_until:
                await asyncio.sleep(cfg.interval)
                continue
            clients = [c for c in self._clients if c.modes]
            self._credit = min(self._credit + cfg.rate * cfg.interval, cfg.rate + 1.0)
            budget = int(self._credit) if clients else 0
            self._credit -= budget
            share = max(1, budget // len(clients)) if budget else 0
            for client in clients[:budget]:
                streaming = [t for t in client.modes if t in self._known]
                chosen = streaming if len(streaming) <= share else self._rng.sample(streaming, share)
                by_mode: dict[str, list[int]] = {}
                for t in chosen:
                    by_mode.setdefault(client.modes[t], []).append(t)
                for mode, tokens in by_mode.items():
                    message = self.market.step_tokens(tokens, mode)
                    await self._send(client, message, len(tokens))
            now = time.monotonic()
            for client in list(self._clients):
                if now - client.last_sent >= cfg.heartbeat:
                    self.stats["heartbeats"] += 1
                    await self._send(client, kite_wire.HEARTBEAT, 0)
            await asyncio.sleep(max(0.0, cfg.interval - (time.monotonic() - started)))

    async def _send(self, client: _Client, message: bytes, packets: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            await client.connection.send(message)
            client.last_sent = time.monotonic()
            if packets:
                self.stats["messages"] += 1
                self.stats["packets"] += packets

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Start listening (port 0: a free port) and the market loop."""
        server: Server = await serve(
            self._handler, host, port, process_request=self._process_request, max_size=2**20
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


FAULTS = ("drop", "silence", "garbage", "expire")


@dataclasses.dataclass(frozen=True)
class Fault:
    """A scheduled fault: ``name@at[:seconds]`` on the command line."""

    name: str
    at: float
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``drop@10``, ``silence@20:5`` (5 s of silence), ``garbage@3``, ``expire@30``."""
        name, sep, when = text.partition("@")
        if name not in FAULTS or not sep:
            raise ValueError(f"fault {text!r}: expected NAME@SECONDS[:DURATION] with NAME in {', '.join(FAULTS)}")
        at_text, _, seconds_text = when.partition(":")
        try:
            at = float(at_text)
            seconds = float(seconds_text) if seconds_text else (5.0 if name == "silence" else 0.0)
        except ValueError:
            raise ValueError(f"fault {text!r}: times must be numbers of seconds") from None
        if at < 0 or seconds < 0:
            raise ValueError(f"fault {text!r}: times must not be negative")
        return cls(name, at, seconds)


async def run_faults(simulator: KiteSimulator, faults: list[Fault], report: Any = print) -> None:
    """Inject ``faults`` at their times (seconds from now)."""
    started = time.monotonic()
    for fault in sorted(faults, key=lambda f: f.at):
        await asyncio.sleep(max(0.0, fault.at - (time.monotonic() - started)))
        if fault.name == "drop":
            report(f"fault: dropped {simulator.drop()} connection(s)")
        elif fault.name == "silence":
            simulator.silence(fault.seconds)
            report(f"fault: silent for {fault.seconds:g} s")
        elif fault.name == "garbage":
            await simulator.send_garbage()
            report("fault: sent a garbage frame")
        else:
            simulator.expire_token()
            report("fault: access token expired (new upgrades get 403)")


def _tokens(value: Any) -> list[int] | None:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return None
    return [int(t) for t in value]
