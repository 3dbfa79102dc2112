"""A live Kite market written to a real Redis, for the gateway, client and
dashboard tests: the simulated market goes through the real decoder into a
MarketState, and every flush through the real RedisWriter (latest hash,
stream, live channel), exactly as the plant does."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.config import RedisTarget
from fastflow.store.keys import Keys
from fastflow.store.writer import RedisWriter

from .waiting import until


class MarketFeed:
    """``await feed.start()``, then ``await feed.step()`` for one flush written
    (and acknowledged), or ``feed.run(hz)`` for a background stream."""

    def __init__(self, target: RedisTarget, keys: Keys | None = None, seed: int = 1) -> None:
        rows = kite_universe()
        self.market = KiteMarket.from_rows(rows, seed=seed)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        self.decoder = KiteDecoder(self.state)
        self.keys = keys or Keys()
        self.writer = RedisWriter(self.state, target, self.keys)
        self.symbols = [str(s) for s in self.state.instruments.symbol]
        self.flushes = 0
        self._writer_task: asyncio.Task[None] | None = None
        self._stream: asyncio.Task[None] | None = None

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

    def run(self, hz: float = 50.0, packets: int = 20) -> None:
        """Flush ``hz`` times a second in the background until :meth:`stop`."""

        async def stream() -> None:
            while True:
                if self.writer.ready:
                    self.decoder.feed(self.market.step(packets, "full"))
                    self.writer.on_flush(self.state.flush())
                    self.flushes += 1
                await asyncio.sleep(1.0 / hz)

        self._stream = asyncio.create_task(stream())

    def tick(self, symbol: str) -> dict[str, Any]:
        """The plant's current tick map of ``symbol``."""
        tick: dict[str, Any] = self.state.tick(symbol)
        return tick

    async def stop(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream
        self.writer.stop()
        if self._writer_task is not None:
            await asyncio.wait_for(self._writer_task, 10.0)
