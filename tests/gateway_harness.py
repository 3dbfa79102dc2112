"""A live Kite market written to a real Redis, for the gateway, client and
dashboard tests: the simulated market goes through the real decoder into a
MarketState, and every flush through the real RedisWriter (latest hash,
stream, live channel), exactly as the plant does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from fastflow.config import GatewaySection, RedisSection
from fastflow.gateway.server import Gateway
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from .waiting import DEADLINE, until


def make_gateway(redis: RedisTarget, *, keys: Keys | None = None, auth: Any = None,
                 backoff_reset_after: float = RedisSection.backoff_reset_after, **section: Any) -> Gateway:
    """A Gateway on ``redis`` with its section's defaults but ``section`` (port 0: a free one)."""
    return Gateway(GatewaySection(**{"port": 0, **section}), redis=redis, keys=keys, auth=auth,
                   backoff_reset_after=backoff_reset_after)


def target_of(server: EmbeddedRedis) -> RedisTarget:
    return RedisTarget.parse(f"unix://{server.unix_socket}")


class MarketFeed:
    """``await feed.start()``, then ``await feed.step()`` for one flush written
    (and acknowledged), or ``feed.run(hz)`` for a background stream."""

    def __init__(self, target: RedisTarget, keys: Keys | None = None, seed: int = 1) -> None:
        rows = kite_universe()
        self.market = KiteMarket.from_rows(rows, seed=seed)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        self.decoder = KiteDecoder(self.state)
        self.keys = keys or Keys()
        self.writer = RedisWriter(self.state, target, self.keys, source="simulator")
        self.symbols = [str(s) for s in self.state.instruments.symbol]
        self.flushes = 0
        self._writer_task: asyncio.Task[None] | None = None
        self._stream: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        self._writer_task = asyncio.create_task(self.writer.run())
        await until(lambda: self.writer.ready, "the redis writer connected")
        await self.writer.drain()

    async def step(self, packets: int = 50, mode: str = "full") -> Any:
        """One flush of ``packets`` packets, written and acknowledged; the batch."""
        await until(lambda: self.writer.ready, "room in the writer")
        self.decoder.feed(self.market.step(packets, mode))
        batch = self.state.flush()
        self.writer.on_flush(batch)
        self.flushes += 1
        await self.writer.drain()
        return batch

    def run(self, hz: float = 50.0, packets: int = 20, on_batch: Callable[[Any], None] | None = None) -> None:
        """A background stream until :meth:`stop`: a :meth:`step` of ``packets``
        (written and acknowledged, then ``on_batch(batch)``) paced at ``hz``.
        The pause sets the rate of a load generator; it waits on nothing."""

        self._running = True

        async def stream() -> None:
            # Until stopped, not only until cancelled: asyncio.wait_for in Python 3.11 (inside
            # the writer's drain) can swallow a cancellation that meets its own completion.
            while self._running:
                batch = await self.step(packets)
                if on_batch is not None:
                    on_batch(batch)
                await asyncio.sleep(1.0 / hz)

        self._stream = asyncio.create_task(stream())

    def tick(self, symbol: str) -> dict[str, Any]:
        """The plant's current tick map of ``symbol``."""
        tick: dict[str, Any] = self.state.tick(symbol)
        return tick

    async def stop(self) -> None:
        self._running = False
        if self._stream is not None:
            self._stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream
        self.writer.stop()
        if self._writer_task is not None:
            await asyncio.wait_for(self._writer_task, 10.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def fastflow_process(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastflow", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), DEADLINE)
    assert line, "the process ended early"
    return line.decode()


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """The process's status and output once it has ended; one that does not end
    within the deadline is killed (never left behind) and the test fails."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    except TimeoutError:
        process.kill()
        await asyncio.wait_for(process.wait(), DEADLINE)
        raise AssertionError(f"pid {process.pid} did not end within {DEADLINE} s; killed") from None
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def gateway_process(server: EmbeddedRedis, *options: str) -> AsyncIterator[str]:
    """``fastflow gateway`` as a subprocess (on a free port unless ``options`` say
    otherwise); its WebSocket URL. Stopped with SIGTERM, which must exit 0."""
    process = await fastflow_process("gateway", "--redis", f"unix://{server.unix_socket}", "--port", "0", *options)
    try:
        line = await read_line(process)
        found = re.search(r"websocket (ws://\S+)", line)
        assert found, line
        assert (await read_line(process)).startswith("fastflow gateway: ready:")  # its own, not a neighbour's
        yield found.group(1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        status, _, err = await finish(process)
        assert status == 0, err


# -- a client's side --------------------------------------------------------------------


async def recv(ws: ClientConnection, deadline: float = DEADLINE) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), deadline)
    value: dict[str, Any] = json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)
    return value


async def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message``; its reply (a ``status`` the server may send at any moment is skipped)."""
    await ws.send(msgpack.packb(message))
    while (reply := await recv(ws))["type"] == "status":
        pass
    return reply


async def hello(ws: ClientConnection) -> dict[str, Any]:
    """The ``hello``, and the ``status`` that follows it on every connection."""
    first = await recv(ws)
    assert first["type"] == "hello"
    status = await recv(ws)
    assert status["type"] == "status" and status["feed"] in ("streaming", "stale", "down"), status
    return first


async def subscribe(ws: ClientConnection, symbols: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """subscribe; the ``subscribed`` reply and the ``snapshot`` that follows."""
    reply = await request(ws, {"op": "subscribe", "symbols": symbols})
    assert reply["type"] == "subscribed", reply
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return reply, snapshot


def flushed(batch: Any) -> list[tuple[str, int]]:
    return [(t["symbol"], t["seq"]) for t in msgpack.unpackb(batch.frame())]


def by_symbol(pairs: list[tuple[str, int]]) -> dict[str, list[int]]:
    """Each symbol's seqs in arrival order (a frame lists its ticks in slot order,
    so the order that matters is per instrument)."""
    out: dict[str, list[int]] = {}
    for symbol, seq in pairs:
        out.setdefault(symbol, []).append(seq)
    return out


class Collector:
    """Reads a client's tick frames in the background: every (symbol, seq) in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[tuple[str, int]] = []
        self.last: dict[str, dict[str, Any]] = {}
        self.other: list[dict[str, Any]] = []
        self.frames = 0  # ticks frames received
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                value = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
                if value["type"] != "ticks":
                    self.other.append(value)
                    continue
                self.frames += 1
                for tick in value["ticks"]:
                    self.seen.append((tick["symbol"], tick["seq"]))
                    self.last[tick["symbol"]] = tick

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
