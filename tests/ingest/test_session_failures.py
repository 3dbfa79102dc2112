"""How a broker session fails, over real sockets on 127.0.0.1: "cannot connect"
(nothing listens, a web server, an overloaded broker) is told apart from
"connection lost" (it streamed, then the broker went away) in the logs and in
``health()``; an answer that is not a feed ends the session at once; and
``give_up_after`` ends it after that long without a streaming connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from fastflow.brokers.kite.session import KiteIngest, KiteSession
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments

from ..conftest import INFY, NIFTY50, kite_row
from ..gateway_harness import free_port
from ..waiting import DEADLINE, until

FAST = {"backoff_base": 0.01, "backoff_cap": 0.05, "rng": random.Random(3), "watchdog": 0.5}


def state() -> MarketState:
    return MarketState(Instruments.from_kite_rows([kite_row(INFY, "INFY", "NSE", "NSE"),
                                                   kite_row(NIFTY50, "NIFTY 50", "NSE", "INDICES", "INDEX")]))


def session(url: str, **options: Any) -> KiteSession:
    return KiteSession(KiteDecoder(state()), api_key="key", access_token="secret-token",
                       subscriptions={INFY: "full"}, url=url, **{**FAST, **options})


class Lines(logging.Handler):
    """The session's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def having(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def logged() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("fastflow.ingest.session")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextlib.asynccontextmanager
async def http_server(reply: bytes) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers every request with ``reply``; its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def finished(s: KiteSession) -> None:
    """``s.run()`` returns by itself, within the deadline."""
    await asyncio.wait_for(s.run(), DEADLINE)


def test_nothing_listening_is_cannot_connect_and_gives_up_after_the_time(logged: Lines) -> None:
    """A plant pointed at a closed port said ``connection lost ... reconnecting`` for ever:
    it never connected, and there was no way to give up."""

    async def main() -> None:
        port = free_port()
        s = session(f"ws://127.0.0.1:{port}/", give_up_after=0.3)
        task = asyncio.create_task(s.run())
        await until(lambda: s.counters["connect_failures"] >= 2, "retried")
        health = s.health()
        assert health["failure"] == "cannot_connect" and health["state"] in ("backoff", "connecting")
        assert health["down_for_s"] is not None and "Errno 111" in health["last_error"]
        await asyncio.wait_for(task, DEADLINE)  # it ends by itself
        assert s.state == "gave_up" and not s.streamed
        assert s.counters["disconnects"] == 0 and s.counters["connects"] == 0
        assert s.gave_up.startswith(f"cannot connect to ws://127.0.0.1:{port}/ for ")
        assert s.gave_up.endswith("; gave up (give_up_after 0.3 s)") and "\n" not in s.gave_up
        assert logged.having(f"kite: cannot connect to ws://127.0.0.1:{port}/ (never connected): ")
        assert not logged.having("connection lost")
        assert not [line for line in logged.lines if "secret-token" in line]  # the query string is never shown

    asyncio.run(main())


@pytest.mark.parametrize(("reply", "said"), [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi", "HTTP 200 OK"),
    (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404 Not Found"),
    (b"HTTP/1.0 200 OK\r\n\r\n<html></html>", "something else than HTTP/1.1"),
    (b"-ERR unknown command 'GET'\r\n", "something else than HTTP/1.1"),
], ids=["web-page", "not-found", "http-1.0", "not-http"])
def test_an_answer_that_is_not_a_feed_ends_the_session_at_once(reply: bytes, said: str, logged: Lines) -> None:
    """`fastflow record` pointed at the gateway's port printed ``refused with HTTP 200``
    five times and exited 0: retrying cannot turn a web page into a broker."""

    async def main() -> None:
        async with http_server(reply) as port:
            s = session(f"ws://127.0.0.1:{port}/")  # no give_up_after: it ends by itself all the same
            await finished(s)
        assert s.state == "gave_up" and s.counters["connect_failures"] == 1
        assert s.gave_up.startswith(f"ws://127.0.0.1:{port}/ is not a Kite feed: it answered the WebSocket upgrade ")
        assert said in s.gave_up and s.gave_up.endswith("(check the URL)")
        assert s.health()["failure"] == "cannot_connect"
        assert not logged.having("retrying") and not logged.having("connection lost")

    asyncio.run(main())


def test_a_busy_broker_is_retried_not_refused() -> None:
    """HTTP 503 (or 429, 5xx) says "not now": the session retries, and gives up only
    when give_up_after runs out."""

    async def main() -> None:
        async with http_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n") as port:
            s = session(f"ws://127.0.0.1:{port}/", give_up_after=0.3)
            await finished(s)
        assert s.state == "gave_up" and s.counters["connect_failures"] > 1
        assert s.gave_up.startswith(f"cannot connect to ws://127.0.0.1:{port}/ for ")
        assert "HTTP 503 Service Unavailable" in s.gave_up

    asyncio.run(main())


class Broker:
    """A minimal Kite ticker on 127.0.0.1: accepts, reads the subscription, sends a
    1-byte heartbeat every 50 ms; :meth:`close` stops listening and drops everyone."""

    def __init__(self) -> None:
        self.port = 0
        self._server: Any = None

    async def start(self, port: int = 0) -> None:
        async def handler(ws: ServerConnection) -> None:
            with contextlib.suppress(Exception):
                while True:
                    await ws.send(b"\x00")
                    await asyncio.sleep(0.05)

        self._server = await serve(handler, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1] if port == 0 else port

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()


def test_a_lost_connection_is_not_cannot_connect_and_give_up_counts_from_the_loss(logged: Lines) -> None:
    async def main() -> None:
        broker = Broker()
        await broker.start()
        s = session(f"ws://127.0.0.1:{broker.port}/", give_up_after=0.5)
        task = asyncio.create_task(s.run())
        try:
            await until(lambda: s.state == "streaming" and s.counters["heartbeats"] > 2, "streaming")
            assert s.health()["failure"] is None and s.health()["down_for_s"] is None
            await broker.close()  # the broker goes away: lost, then it cannot reconnect
            await until(lambda: s.counters["disconnects"] == 1, "the loss seen")
            assert s.health()["failure"] in ("connection_lost", "cannot_connect")
            await asyncio.wait_for(task, DEADLINE)
        finally:
            s.stop()
            with contextlib.suppress(Exception):
                await task
        assert s.state == "gave_up" and s.streamed and s.counters["connect_failures"] >= 1
        assert s.health()["failure"] == "cannot_connect"
        assert s.gave_up.startswith(f"the connection to ws://127.0.0.1:{broker.port}/ was lost ")
        assert "not re-established" in s.gave_up and s.gave_up.endswith("; gave up (give_up_after 0.5 s)")
        lost = logged.having("kite: connection lost (")
        cannot = logged.having(f"kite: cannot connect to ws://127.0.0.1:{broker.port}/: ")  # no "never connected"
        assert len(lost) == 1 and cannot, logged.lines
        assert logged.lines.index(lost[0]) < logged.lines.index(cannot[0])

    asyncio.run(main())


def test_a_broker_that_comes_back_in_time_resets_the_clock() -> None:
    """give_up_after counts the time without a streaming connection since the last
    one was lost: a broker that is back before it runs out keeps the session going,
    and the next outage counts from its own start."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        broker = Broker()
        await broker.start()
        port = broker.port
        s = session(f"ws://127.0.0.1:{port}/", give_up_after=30.0)
        task = asyncio.create_task(s.run())
        first_down = 0.0
        try:
            for outage in range(2):
                await until(lambda: s.state == "streaming", "streaming")
                if outage:  # the clock restarted: it counts from this outage, not the first
                    await broker.close()
                    await until(lambda: s.health()["down_for_s"] is not None, "down again")
                    assert s.health()["down_for_s"] < loop.time() - first_down
                else:
                    first_down = loop.time()
                    await broker.close()
                failures = s.counters["connect_failures"]
                await until(lambda failures=failures: s.counters["connect_failures"] > failures,
                            "cannot connect")
                assert s.health()["failure"] == "cannot_connect"
                broker = Broker()
                await broker.start(port)
                await until(lambda: s.state == "streaming", "back")
                assert s.health()["down_for_s"] is None and s.health()["failure"] is None
            assert not task.done()
        finally:
            s.stop()
            await asyncio.wait_for(task, DEADLINE)
            await broker.close()
        assert s.state == "stopped" and s.gave_up == "" and s.counters["disconnects"] == 2

    asyncio.run(main())


def test_one_session_giving_up_stops_the_whole_ingest() -> None:
    async def main() -> None:
        port = free_port()
        ingest = KiteIngest(KiteDecoder(state()), subscriptions={INFY: "full", NIFTY50: "ltp"},
                            tokens_per_connection=1, api_key="key", access_token="token",
                            url=f"ws://127.0.0.1:{port}/", **{**FAST, "give_up_after": 0.2})
        await asyncio.wait_for(ingest.run(), DEADLINE)
        health = ingest.health()
        assert health["state"] == "gave_up"
        assert {c["state"] for c in health["connections"]} <= {"gave_up", "stopped"}
        assert any(c["gave_up"] for c in health["connections"])

    asyncio.run(main())
