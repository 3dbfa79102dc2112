"""The WebSocket gateway over real sockets, fed through a real Redis by the
real writer: every client gets exactly its instruments, in the plant's order;
snapshots; both subprotocols; auth and origin at the handshake; bad, fuzzed,
oversized and too many messages; a stalled client is conflated, bounded and
closed while the others get every frame; a Redis restart and a late plant
are survived; HTTP routes on the same port."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fastflow.gateway.auth import Auth, make_token
from fastflow.gateway.server import Gateway, serve_gateway
from fastflow.obs import metrics
from fastflow.store.embedded import EmbeddedRedis

from ..gateway_harness import (
    Collector,
    MarketFeed,
    by_symbol,
    flushed,
    hello,
    make_gateway,
    recv,
    request,
    subscribe,
    target_of,
)
from ..waiting import DEADLINE, until

pytestmark = pytest.mark.usefixtures("event_loop_policy")  # asyncio, then uvloop

Scenario = Callable[[Gateway, MarketFeed], Awaitable[None]]


def run(server: EmbeddedRedis, scenario: Scenario, *, feed_first: bool = True, **config: Any) -> None:
    """A MarketFeed writing to ``server`` and a Gateway reading from it; ``scenario(gateway, feed)``."""

    async def main() -> None:
        target = target_of(server)
        feed = MarketFeed(target)
        if feed_first:
            await feed.start()
            await feed.step(200)
        gateway = make_gateway(target, **config)
        await gateway.start()
        try:
            if feed_first:
                await gateway.wait_ready()
            await scenario(gateway, feed)
        finally:
            await gateway.stop()
            await feed.stop()

    asyncio.run(main())


# -- fan-out ----------------------------------------------------------------------------


def test_many_clients_each_get_exactly_their_instruments_every_tick_in_order(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        rng = random.Random(7)
        watchlists = [rng.sample(feed.symbols, rng.randint(1, 60)) for _ in range(40)]
        clients = [await connect(gateway.ws_url, compression=None) for _ in watchlists]
        try:
            for ws, symbols in zip(clients, watchlists, strict=True):
                await hello(ws)
                reply, snapshot = await subscribe(ws, symbols)
                assert sorted(reply["symbols"]) == sorted(symbols) and reply["unknown"] == []
                # the snapshot: every watched instrument the plant has, at the plant's state
                assert {t["symbol"] for t in snapshot["ticks"]} == {s for s in symbols if feed.tick(s)["seq"]}
                for tick in snapshot["ticks"]:
                    assert tick == feed.tick(tick["symbol"])
            collectors = [Collector(ws) for ws in clients]
            expected: list[tuple[str, int]] = []
            for _ in range(30):
                expected += flushed(await feed.step(100))
            for collector, symbols in zip(collectors, watchlists, strict=True):
                mine = [(s, q) for s, q in expected if s in set(symbols)]
                await until(lambda c=collector, m=mine: len(c.seen) >= len(m), "every tick of the watchlist")
                assert by_symbol(collector.seen) == by_symbol(mine)  # exactly its instruments, every tick, in order
                for symbol, tick in collector.last.items():
                    assert tick == feed.tick(symbol)
            for collector in collectors:
                await collector.stop()
        finally:
            for ws in clients:
                await ws.close()
        assert gateway.counters["conflations"] == 0

    run(redis_server, scenario)


def test_subscribe_by_token_unknown_symbols_unsubscribe_and_snapshot(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        infy_token = int(feed.state.instruments.token_of("NSE:INFY"))
        async with connect(gateway.ws_url, compression=None) as ws:
            info = await hello(ws)
            assert info["partition"] == "kite" and info["symbols"] == len(feed.symbols)
            reply, _ = await subscribe(ws, [infy_token, "NSE:TCS", "NSE:NOPE", "NSE:TCS", 1])
            assert reply["symbols"] == ["NSE:INFY", "NSE:TCS"] and reply["unknown"] == ["NSE:NOPE", 1]
            reply = await request(ws, {"op": "unsubscribe", "symbols": ["NSE:TCS"]})
            assert reply == {"type": "unsubscribed", "symbols": ["NSE:TCS"], "unknown": []}
            collector = Collector(ws)
            expected: list[tuple[str, int]] = []
            for _ in range(20):
                expected += [(s, q) for s, q in flushed(await feed.step(200)) if s == "NSE:INFY"]
            await until(lambda: len(collector.seen) >= len(expected), "INFY's ticks")
            assert collector.seen == expected  # and none of TCS
            await ws.send(msgpack.packb({"op": "snapshot"}))
            await until(lambda: any(m["type"] == "snapshot" for m in collector.other), "the snapshot")
            snapshot = next(m for m in collector.other if m["type"] == "snapshot")
            assert [t["symbol"] for t in snapshot["ticks"]] == ["NSE:INFY"]
            await ws.send(msgpack.packb({"op": "ping", "id": "x1"}))
            await until(lambda: {"type": "pong", "id": "x1"} in collector.other, "the pong")
            await collector.stop()

    run(redis_server, scenario)


def test_json_subprotocol_and_the_msgpack_default(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, subprotocols=["fastflow.json.v1"], compression=None) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "fastflow.json.v1"
            first = json.loads(await ws.recv())
            assert first["type"] == "hello" and first["subprotocol"] == "fastflow.json.v1"
            status = json.loads(await ws.recv())  # then the feed's status, as JSON text too
            assert status == {"type": "status", "feed": "streaming", "market": "open",
                              "last_tick_age_s": status["last_tick_age_s"]}, status
            await ws.send(json.dumps({"op": "subscribe", "symbols": ["NSE:INFY", "NSE:NIFTY 50"]}))
            assert json.loads(await ws.recv())["type"] == "subscribed"
            snapshot = json.loads(await ws.recv())
            for tick in snapshot["ticks"]:
                assert tick == json.loads(json.dumps(feed.tick(tick["symbol"])))
            await ws.send(msgpack.packb({"op": "ping"}))  # binary on a JSON connection
            error = json.loads(await ws.recv())
            assert error["type"] == "error" and error["code"] == "bad_message"
            collector = Collector(ws)
            await feed.step(300)
            await until(lambda: collector.last, "JSON ticks")
            await collector.stop()
        async with connect(gateway.ws_url, compression=None) as ws:  # no subprotocol offered: msgpack
            assert ws.subprotocol is None
            assert (await hello(ws))["subprotocol"] == "fastflow.msgpack.v1"
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.ws_url, subprotocols=["graphql-ws"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 400

    run(redis_server, scenario)


def not_json(constant: str) -> None:
    raise AssertionError(f"{constant} in a JSON reply")


def test_json_input_without_nan_infinity_or_deep_nesting_and_no_traceback(
        redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture) -> None:
    """``{"op":"ping","id":NaN}`` was answered with NaN (not JSON), ``1e999`` with
    Infinity, and 3,000-deep nesting closed the connection with 1011 and a
    traceback: each is a ``bad_message`` now, on a connection that stays usable."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, subprotocols=["fastflow.json.v1"], compression=None) as ws:  # type: ignore[list-item]
            await hello(ws)
            for text in ('{"op":"ping","id":NaN}', '{"op":"ping","id":1e999}', '{"op":"ping","id":-Infinity}',
                         '{"op":"ping","id":' + "[" * 3000 + "]" * 3000 + "}", "[" * 60_000):
                await ws.send(text)
                raw = await asyncio.wait_for(ws.recv(), DEADLINE)
                error = json.loads(raw, parse_constant=not_json)  # NaN, Infinity: not JSON
                assert error["type"] == "error" and error["code"] == "bad_message", error
            await ws.send('{"op":"ping","id":1.5}')
            assert json.loads(await ws.recv()) == {"type": "pong", "id": 1.5}
        async with connect(gateway.ws_url, compression=None) as ws:  # msgpack carries NaN: refused too
            await hello(ws)
            assert (await request(ws, {"op": "ping", "id": float("nan")}))["code"] == "bad_message"
            assert (await request(ws, {"op": "ping", "id": 7}))["type"] == "pong"
        assert gateway.disconnects["error"] == 0 and not gateway.core.faults.counts

    with caplog.at_level(logging.INFO):
        run(redis_server, scenario)
    assert not [r for r in caplog.records if r.exc_info], "a traceback for a client's message"


def test_ping_floods_and_fragment_floods_are_closed_with_1008(redis_server: EmbeddedRedis) -> None:
    """A client sending pings in a loop (~175 k/s held the gateway at 100% CPU and
    a normal client's p99 went from 3 ms to 800 ms) and one sending a message in
    4,000 one-byte fragments: each is closed with 1008 and a reason, counted; a
    normal client meanwhile gets every flush."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as normal:
            await hello(normal)
            await subscribe(normal, ["NSE:INFY"])
            collector = Collector(normal)
            async with connect(gateway.ws_url, compression=None, ping_interval=None) as flooder:
                await hello(flooder)
                with pytest.raises(ConnectionClosed) as closed:
                    for _ in range(100_000):
                        await flooder.ping()
                    await asyncio.wait_for(flooder.recv(), DEADLINE)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert "frames a second" in closed.value.rcvd.reason
            async with connect(gateway.ws_url, compression=None) as fragments:
                await hello(fragments)
                with pytest.raises(ConnectionClosed) as closed:
                    await fragments.send(msgpack.packb({"op": "ping", "id": "x" * 3990})[i:i + 1]
                                         for i in range(4000))
                    await asyncio.wait_for(fragments.recv(), DEADLINE)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            await until(lambda: gateway.disconnects["flood"] == 2, "both counted")
            expected: list[tuple[str, int]] = []
            while not expected:
                expected = [(sym, q) for sym, q in flushed(await feed.step(300)) if sym == "NSE:INFY"]
            await until(lambda: set(expected) <= set(collector.seen), "the normal client is served")
            await collector.stop()
            assert (await request(normal, {"op": "ping", "id": 1}))["type"] == "pong"

    run(redis_server, scenario)


async def handshake(port: int, headers: str) -> bytes:
    """A raw WebSocket upgrade to ``/ws`` with ``headers`` (CRLF-terminated lines, Host
    included); the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\n{headers}Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    finally:
        writer.close()


def test_a_dns_rebinding_host_is_refused_and_listed_hosts_pass(redis_server: EmbeddedRedis) -> None:
    """``Host`` and ``Origin`` both ``attacker.example:PORT`` (a rebinding page) were
    let in as loopback without a credential."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        port = gateway.port
        attacker = f"Host: attacker.example:{port}\r\nOrigin: http://attacker.example:{port}\r\n"
        assert (await handshake(port, attacker)).startswith(b"HTTP/1.1 403")
        assert gateway.rejected["host"] == 1
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{socket.gethostname()}:{port}",
                     f"desk.example:{port}"):
            head = await handshake(port, f"Host: {host}\r\n")
            assert head.startswith(b"HTTP/1.1 101"), (host, head)

    run(redis_server, scenario, allow_hosts=("desk.example",))


def test_per_ip_cap_pending_handshake_cap_and_slowloris(redis_server: EmbeddedRedis) -> None:
    """A per-address client cap (loopback counted here, as behind no proxy), a cap on
    connections still in their handshake, and a handshake timeout: slowloris
    connections that never send their request are closed and counted, and once
    they are gone clients get in again."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        clients = [await connect(gateway.ws_url, compression=None) for _ in range(3)]
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.ws_url, compression=None)
        assert refused.value.response.status_code == 503 and gateway.rejected["per_ip"] == 1
        await clients.pop().close()
        await until(lambda: gateway.admission.per_ip.get("127.0.0.1") == 2, "one left")
        clients.append(await connect(gateway.ws_url, compression=None))  # room again
        silent = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(4)]
        await until(lambda: gateway.admission.handshaking == 4, "four handshakes pending")
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # the fifth: closed unanswered
        writer.close()
        assert gateway.rejected["handshakes"] == 1
        for silent_reader, _ in silent:  # handshake_timeout: each slowloris is closed
            assert await asyncio.wait_for(silent_reader.read(), DEADLINE) == b""
        await until(lambda: gateway.counters["handshakes_abandoned"] >= 4 and gateway.admission.handshaking == 0,
                    "counted and released")
        for _, silent_writer in silent:
            silent_writer.close()
        for ws in clients:
            await ws.close()
        await until(lambda: not gateway.admission.per_ip, "every address released")
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)

    run(redis_server, scenario, max_clients_per_ip=3, per_ip_loopback=True, max_handshakes=4,
        handshake_timeout=1.0)


def test_duplicate_handshake_headers_get_400(redis_server: EmbeddedRedis) -> None:
    """Two Origin, Authorization or Host headers got 500 and a MultipleValuesError traceback."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        host = f"127.0.0.1:{gateway.port}"
        for extra in (f"Origin: http://{host}\r\nOrigin: http://evil.example\r\n",
                      "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
                      f"Host: attacker.example\r\nOrigin: http://{host}\r\n"):
            head = await handshake(gateway.port, f"Host: {host}\r\n{extra}")
            assert head.startswith(b"HTTP/1.1 400"), (extra, head)
        assert gateway.rejected["duplicate_header"] == 3
        async with connect(gateway.ws_url, compression=None) as ws:  # and the gateway serves on
            await hello(ws)

    run(redis_server, scenario)


# -- the handshake ----------------------------------------------------------------------


def test_auth_api_keys_tokens_and_loopback(redis_server: EmbeddedRedis) -> None:
    secret = b"s3cret"
    auth = Auth(api_keys={"key-alice": "alice"}, secret=secret, allow_loopback=False)

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async def refused(**kwargs: Any) -> int:
            with pytest.raises(InvalidStatus) as exc:
                await connect(kwargs.pop("url", gateway.ws_url), **kwargs)
            return exc.value.response.status_code

        assert await refused() == 401  # no credential, and loopback is not enough here
        assert await refused(additional_headers={"Authorization": "Bearer key-bob"}) == 401
        expired = make_token(secret, "carol", ttl=-1)
        assert await refused(url=f"{gateway.ws_url}?token={expired}") == 401
        forged = make_token(b"other", "mallory", ttl=60)
        assert await refused(url=f"{gateway.ws_url}?token={forged}") == 401
        async with connect(gateway.ws_url, additional_headers={"Authorization": "Bearer key-alice"}) as ws:
            assert (await hello(ws))["client"] == "alice"
        async with connect(f"{gateway.ws_url}?token={make_token(secret, 'dave', ttl=60)}") as ws:
            assert (await hello(ws))["client"] == "dave"
        assert gateway.rejected["auth"] == 4
        too_long = make_token(secret, "erin", ttl=2 * 86_400)  # past gateway.token_max_ttl (a day)
        assert await refused(url=f"{gateway.ws_url}?token={too_long}") == 401
        async with connect(f"{gateway.ws_url}?token={make_token(secret, 'fay', ttl=1.5)}") as ws:
            assert (await hello(ws))["client"] == "fay"
            with pytest.raises(ConnectionClosed) as closed:  # the expiry holds on an open connection
                while True:
                    await asyncio.wait_for(ws.recv(), DEADLINE)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert closed.value.rcvd.reason == "credential expired"
        await until(lambda: gateway.disconnects["expired"] == 1, "counted")

    run(redis_server, scenario, auth=auth)


def test_browser_origins(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        own = f"http://127.0.0.1:{gateway.port}"
        async with connect(gateway.ws_url, origin=own) as ws:  # type: ignore[arg-type]
            await hello(ws)
        async with connect(gateway.ws_url, origin="http://localhost:3000") as ws:  # type: ignore[arg-type]
            await hello(ws)  # configured
        with pytest.raises(InvalidStatus) as exc:
            await connect(gateway.ws_url, origin="http://evil.example")  # type: ignore[arg-type]
        assert exc.value.response.status_code == 403

    run(redis_server, scenario, allow_origins=("http://localhost:3000",))


# -- bad clients --------------------------------------------------------------------------


def test_bad_and_fuzzed_messages_get_errors_and_the_connection_stays_usable(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        rng = random.Random(3)
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            cases: list[tuple[bytes | str, str]] = [
                (b"\xc1", "bad_message"), (msgpack.packb([1, 2]), "bad_message"), ("{}", "bad_message"),
                (msgpack.packb({"op": "fly"}), "unknown_op"), (msgpack.packb({}), "unknown_op"),
                (msgpack.packb({"op": "subscribe"}), "bad_symbols"),
                (msgpack.packb({"op": "subscribe", "symbols": [None]}), "bad_symbols"),
                (msgpack.packb({"op": "subscribe", "symbols": ["X"] * 1001}), "too_many_symbols"),
            ]
            for message, code in cases:
                await ws.send(message)
                reply = await recv(ws)
                assert reply["type"] == "error" and reply["code"] == code, (message[:20], reply)
                assert (await request(ws, {"op": "ping", "id": 1}))["type"] == "pong"  # resets the strikes
            for _ in range(200):
                junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
                await ws.send(junk)
                reply = await recv(ws)
                if reply["type"] != "error":  # random bytes that happen to be a valid request
                    assert reply["type"] in ("pong", "subscribed", "unsubscribed", "snapshot")
                    if reply["type"] == "subscribed":
                        assert (await recv(ws))["type"] == "snapshot"
                if rng.random() < 0.2:
                    assert (await request(ws, {"op": "ping"}))["type"] == "pong"
                    continue
                assert (await request(ws, {"op": "ping"}))["type"] == "pong"
            reply, _ = await subscribe(ws, ["NSE:INFY"])
            assert reply["symbols"] == ["NSE:INFY"]

    run(redis_server, scenario, control_rate=1e6, control_burst=1_000_000)


def test_abuse_closes_the_connection_with_a_reason(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None, max_size=None) as ws:  # oversized: 1009
            await hello(ws)
            await ws.send(b"\x00" * (64 * 1024 + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with connect(gateway.ws_url, compression=None) as ws:  # ten refusals in a row: 1008
            await hello(ws)
            for _ in range(10):
                await ws.send(b"\xc1")
            codes = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    codes.append((await recv(ws))["code"])
            assert codes == ["bad_message"] * 5 + ["rate_limited"] * 5  # both kinds of refusal count
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert "refused" in closed.value.rcvd.reason
        async with connect(gateway.ws_url, compression=None) as ws:  # the rate limit: a burst of 5 here
            await hello(ws)
            for _ in range(8):
                await ws.send(msgpack.packb({"op": "ping"}))
            replies = [(await recv(ws))["type"] for _ in range(8)]
            assert replies[:5] == ["pong"] * 5 and "error" in replies[5:]
        async with connect(gateway.ws_url, compression=None) as ws:  # the watchlist limit
            await hello(ws)
            await subscribe(ws, feed.symbols[:8])
            error = await request(ws, {"op": "subscribe", "symbols": feed.symbols[8:12]})
            assert error["code"] == "too_many_symbols" and error["op"] == "subscribe"
        await until(lambda: gateway.disconnects["abuse"] == 1 and gateway.disconnects["too_big"] == 1,
                    "the closes counted")

    run(redis_server, scenario, control_rate=0.001, control_burst=5, max_symbols=10)


# -- slow clients ---------------------------------------------------------------------------


class RawClient:
    """A WebSocket client on a plain socket with a small receive buffer, which
    reads only once told to (a stalled or slow client)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last: dict[str, dict[str, Any]] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, port: int) -> RawClient:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      ).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, value: dict[str, Any]) -> None:
        payload = msgpack.packb(value)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 1 << 16
        size = bytes((0x80 | len(payload),)) if len(payload) < 126 else b"\xfe" + len(payload).to_bytes(2, "big")
        self.writer.write(b"\x82" + size + mask + masked)

    def start_reading(self) -> None:
        """Read from now on, keeping the latest tick per symbol."""

        async def read() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError):
                while True:
                    head = await self.reader.readexactly(2)
                    n = head[1] & 0x7F
                    if n == 126:
                        n = int.from_bytes(await self.reader.readexactly(2), "big")
                    elif n == 127:
                        n = int.from_bytes(await self.reader.readexactly(8), "big")
                    payload = await self.reader.readexactly(n)
                    if head[0] & 0x0F != 2:
                        continue
                    message = msgpack.unpackb(payload)
                    for tick in message.get("ticks", []):
                        if message["type"] == "ticks" or tick["symbol"] not in self.last:
                            self.last[tick["symbol"]] = tick

        self.task = asyncio.create_task(read())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.writer.close()


def test_a_stalled_client_is_conflated_bounded_and_closed_and_the_others_get_every_frame(
        redis_server: EmbeddedRedis) -> None:
    high_water = 64 * 1024

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        stalled = await RawClient.open(gateway.port)
        stalled.send({"op": "subscribe", "symbols": feed.symbols})
        await until(lambda: gateway.clients == 1 and any(
            c is not None and c.symbols for c in gateway._clients), "the stalled client subscribed")
        (me,) = [c for c in gateway._clients if c is not None]
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await subscribe(ws, feed.symbols)
            fast = Collector(ws)
            expected: list[tuple[str, int]] = []
            biggest = 0
            for _ in range(2000):
                if gateway.counters["conflations"] > 20 and me.conn.paused:
                    break
                batch = await feed.step(300)
                expected += flushed(batch)
                biggest = max(biggest, len(batch.frame()) + 64)
                assert me.transport.get_write_buffer_size() <= high_water + 2 * biggest  # bounded memory
            for _ in range(10):  # the stalled client is behind: more flushes, still bounded
                expected += flushed(await feed.step(300))
                assert me.transport.get_write_buffer_size() <= high_water + 2 * biggest
            await until(lambda: len(fast.seen) >= len(expected), "the fast client got every tick")
            assert by_symbol(fast.seen) == by_symbol(expected)  # every tick of every flush: never conflated
            # past the lag limit the stalled client is closed with a reason
            await until(lambda: gateway.disconnects["lagging"] == 1, "the lagging client closed")
            await fast.stop()
        await stalled.close()

    run(redis_server, scenario, high_water=high_water, lag_limit=0.5)


def test_a_slow_client_catches_up_with_the_latest_state(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        slow = await RawClient.open(gateway.port)
        slow.send({"op": "subscribe", "symbols": feed.symbols})
        await until(lambda: any(c is not None and c.symbols for c in gateway._clients), "subscribed")
        (me,) = [c for c in gateway._clients if c is not None]
        for _ in range(2000):
            if me.conn.paused:
                break
            await feed.step(300)
        assert me.conn.paused
        for _ in range(20):  # behind: these are merged for it
            await feed.step(300)
        slow.start_reading()  # reading lets the socket drain
        await until(lambda: all(slow.last.get(s, {}).get("seq") == feed.tick(s)["seq"] for s in feed.symbols
                                if feed.tick(s)["seq"]), "the slow client's view equals the plant's")
        for symbol, tick in slow.last.items():
            assert tick == feed.tick(symbol)
        assert gateway.counters["catch_ups"] >= 1 and gateway.counters["conflations"] >= 1
        await slow.close()

    run(redis_server, scenario, high_water=32 * 1024, lag_limit=60.0)


# -- Redis and the plant ----------------------------------------------------------------------


def test_a_redis_restart_is_survived_and_clients_converge(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await subscribe(ws, feed.symbols)
            collector = Collector(ws)
            await feed.step(300)
            redis_server.kill()
            await until(lambda: not gateway.subscription.live, "the gateway saw redis go")
            for _ in range(5):  # the plant keeps decoding while Redis is away
                feed.decoder.feed(feed.market.step(300, "full"))
                feed.writer.on_flush(feed.state.flush())
            redis_server.restart()
            await until(lambda: gateway.subscription.live and gateway.subscription.counters["seeds"] >= 2,
                        "the gateway resubscribed and reseeded", deadline=20)
            for _ in range(3):
                await feed.step(300)
            await until(lambda: all(collector.last.get(s, {}).get("seq") == feed.tick(s)["seq"]
                                    for s in feed.symbols if feed.tick(s)["seq"]), "the client converged")
            for symbol, tick in collector.last.items():
                assert tick == feed.tick(symbol)
            await collector.stop()

    run(redis_server, scenario)


def test_the_resubscribe_backoff_starts_again_after_a_live_subscription(redis_server: EmbeddedRedis) -> None:
    """``CLIENT KILL TYPE pubsub`` again and again, each after the subscription
    was live for ``backoff_reset_after``: every retry is a first one (the delays
    grew toward the 5 s cap when only a stop reset the count)."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        admin = redis.Redis(unix_socket_path=redis_server.unix_socket)
        subscription = gateway.subscription
        for kills in range(1, 6):
            await until(lambda: subscription.live, "live")
            live_since = asyncio.get_running_loop().time()
            await until(lambda s=live_since: asyncio.get_running_loop().time() - s > 0.3, "0.3 s live")
            assert admin.client_kill_filter(_type="pubsub") >= 1
            await until(lambda k=kills: subscription.counters["reconnects"] == k, "retried")
            assert subscription._backoff.attempt == 1
        admin.close()

    run(redis_server, scenario, backoff_reset_after=0.2)


def test_clients_get_the_feeds_status_on_connect_and_on_every_change(redis_server: EmbeddedRedis) -> None:
    """A plant that stops (SIGSTOP looked the same) left clients on a silent feed and
    /healthz at 200 with nothing said: now the feed reads stale after stale_after
    seconds without a frame (the simulated market is open), streaming again with the
    next frame, and down while Redis is away; each change reaches every client once."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            assert (await recv(ws))["type"] == "hello"
            first = await recv(ws)
            assert (first["type"], first["feed"], first["market"]) == ("status", "streaming", "open")
            stale = await recv(ws, deadline=DEADLINE)  # nothing published for 0.5 s
            assert (stale["feed"], stale["market"]) == ("stale", "open") and stale["last_tick_age_s"] >= 0.5
            assert gateway.health()["feed"]["feed"] == "stale"
            await feed.step(100)  # a frame from the plant (this client watches nothing: no ticks for it)
            back = await recv(ws)
            assert (back["type"], back["feed"]) == ("status", "streaming") and back["last_tick_age_s"] < 0.5
            redis_server.kill()
            while (message := await recv(ws))["type"] != "status":
                pass
            assert message["feed"] == "down"
            assert gateway.counters["status_changes"] == 3

    run(redis_server, scenario, stale_after=0.5)


def test_the_plants_ingest_state_reaches_clients_as_degraded_or_down(redis_server: EmbeddedRedis) -> None:
    """The plant keeps its ingest state in the partition's meta (Plant._publish_state):
    some connections down reads degraded, none streaming reads down, within a
    second of the change."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        admin = redis.Redis(unix_socket_path=redis_server.unix_socket)
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            for state, expected in (("degraded", "degraded"), ("backoff", "down"), ("streaming", "streaming")):
                admin.hset(feed.keys.meta, "ingest_state", state)
                await feed.step(50)  # frames keep coming: only the plant's own state changes
                while (message := await recv(ws))["type"] != "status":
                    pass
                assert message["feed"] == expected, (state, message)
            assert gateway.health()["feed"]["feed"] == "streaming"
        admin.close()

    run(redis_server, scenario)


def test_a_gateway_started_before_the_plant_waits_for_it(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        await until(lambda: gateway.subscription.state == "waiting_for_plant", "waiting for the plant")
        body = gateway.health()
        healthy = body["status"] == "ok"
        assert not healthy and body["redis"]["state"] == "waiting_for_plant"
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            reply = await request(ws, {"op": "subscribe", "symbols": ["NSE:INFY"]})
            assert reply["type"] == "error" and reply["code"] == "unavailable"
            await feed.start()
            await feed.step(300)
            await gateway.wait_ready()
            ticked = next(s for s in feed.symbols if feed.tick(s)["seq"])
            reply, snapshot = await subscribe(ws, [ticked])
            assert snapshot["ticks"] == [feed.tick(ticked)]

    run(redis_server, scenario, feed_first=False)


def test_malformed_frames_on_the_live_channel_are_skipped(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await subscribe(ws, ["NSE:INFY"])
            collector = Collector(ws)
            client = redis.Redis(unix_socket_path=redis_server.unix_socket)
            for junk in (b"", b"\x91\xc1", msgpack.packb([{"no": "symbol"}]), msgpack.packb({"a": 1})):
                client.publish(feed.keys.live, junk)
            client.close()
            await until(lambda: gateway.counters["frame_errors"] == 4, "the bad frames counted")
            expected: list[tuple[str, int]] = []
            for _ in range(10):
                expected += [(s, q) for s, q in flushed(await feed.step(300)) if s == "NSE:INFY"]
            await until(lambda: len(collector.seen) >= len(expected), "ticks flow on")
            assert collector.seen == expected
            await collector.stop()

    run(redis_server, scenario)


# -- HTTP ---------------------------------------------------------------------------------------


def http_get(url: str) -> tuple[int, str, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=DEADLINE) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_healthz_metrics_and_other_paths(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await subscribe(ws, ["NSE:INFY", "NSE:TCS"])
            for _ in range(3):
                await feed.step(300)
            status, kind, body = await asyncio.to_thread(http_get, gateway.http_url + "healthz")
            assert status == 200 and kind == "application/json"
            health = json.loads(body)
            assert health["status"] == "ok" and health["gateway"]["clients"] == 1
            assert health["redis"]["state"] == "live" and health["plant"]["meta"]["broker"] == "kite"
            status, kind, body = await asyncio.to_thread(http_get, gateway.http_url + "metrics")
            assert status == 200 and kind.startswith("text/plain; version=0.0.4")
            text = body.decode()
            series = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                      if line and not line.startswith("#")}
            assert series["fastflow_gateway_clients"] == 1
            assert series["fastflow_gateway_frames_in_total"] >= 3
            assert series['fastflow_gateway_fanout_seconds_bucket{le="+Inf"}'] == \
                series["fastflow_gateway_fanout_seconds_count"] >= 3
            assert all(line.startswith(("# HELP fastflow_", "# TYPE fastflow_", "fastflow_"))
                       for line in text.splitlines())
            status, _, _ = await asyncio.to_thread(http_get, gateway.http_url + "nope")
            assert status == 404
            status, _, _ = await asyncio.to_thread(http_get, gateway.http_url + "static/../server.py")
            assert status == 404

    run(redis_server, scenario)


def test_tick_age_at_the_gateway_and_sent_stages(redis_server: EmbeddedRedis) -> None:
    """Stage gateway counts every tick of every published frame, stage sent every
    client frame written (binary and JSON clients), in the window between two
    scrapes; the seed frame of a (re)connect is not observed."""

    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        seeded = metrics.parse(gateway.metrics())
        assert seeded['fastflow_tick_age_seconds_count{stage="gateway"}'] == 0  # the seed is not a published frame
        binary = await connect(gateway.ws_url, compression=None)
        text = await connect(gateway.ws_url, subprotocols=["fastflow.json.v1"], compression=None)  # type: ignore[list-item]
        try:
            await hello(binary)
            await subscribe(binary, feed.symbols[:40])
            assert [json.loads(await text.recv())["type"] for _ in range(2)] == ["hello", "status"]
            await text.send(json.dumps({"op": "subscribe", "symbols": feed.symbols[20:60]}))
            assert json.loads(await text.recv())["type"] == "subscribed"
            assert json.loads(await text.recv())["type"] == "snapshot"
            collectors = [Collector(binary), Collector(text)]
            before = metrics.parse(await asyncio.to_thread(lambda: http_get(gateway.http_url + "metrics")[2]))
            frames_in = gateway.counters["frames_in"]
            ticks = 0
            for _ in range(12):
                ticks += len(await feed.step(50))
            await until(lambda: gateway.counters["frames_in"] == frames_in + 12, "every frame in")
            await until(lambda: gateway.counters["frames_out"] - before["fastflow_gateway_frames_total"]
                        == sum(c.frames for c in collectors), "every client frame read")
            _, kind, body = await asyncio.to_thread(http_get, gateway.http_url + "metrics")
            assert kind == "text/plain; version=0.0.4; charset=utf-8"
            after = metrics.parse(body)

            def delta(series: str) -> float:
                return after[series] - before.get(series, 0.0)

            assert body.decode().count("# TYPE fastflow_tick_age_seconds histogram") == 1
            assert delta('fastflow_tick_age_seconds_count{stage="gateway"}') == ticks
            assert delta('fastflow_tick_age_seconds_bucket{stage="gateway",le="+Inf"}') == ticks
            sent = sum(c.frames for c in collectors)
            assert all(c.frames > 0 for c in collectors)
            assert delta('fastflow_tick_age_seconds_count{stage="sent"}') == sent == \
                delta("fastflow_gateway_frames_total")
            for stage in ("gateway", "sent"):
                p99 = metrics.quantile(after, "fastflow_tick_age_seconds", 0.99, labels=f'stage="{stage}"',
                                       before=before)
                assert p99 is not None and 0 < p99 < 5.0
            for collector in collectors:
                await collector.stop()
        finally:
            await binary.close()
            await text.close()

    run(redis_server, scenario)


def test_frames_without_receive_times_are_not_observed(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: MarketFeed) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await subscribe(ws, ["NSE:INFY"])
            collector = Collector(ws)
            client = redis.Redis(unix_socket_path=redis_server.unix_socket)
            client.publish(feed.keys.live, msgpack.packb([{"symbol": "NSE:INFY", "seq": 10**9}]))
            client.close()
            await until(lambda: collector.frames == 1, "the frame delivered")
            assert gateway.age_gateway.count == 0 and gateway.age_sent.count == 0
            await feed.step(300)
            await until(lambda: gateway.age_gateway.count > 0, "a frame of the plant observed")
            await collector.stop()

    run(redis_server, scenario)


def test_the_gateway_status_line_has_the_p99_sent(redis_server: EmbeddedRedis) -> None:
    async def main() -> None:
        target = target_of(redis_server)
        feed = MarketFeed(target)
        await feed.start()
        await feed.step(200)
        lines: list[str] = []
        task = asyncio.create_task(serve_gateway(make_gateway(target), status_every=0.05,
                                                 report=lines.append, handle_signals=False))
        try:
            await until(lambda: any("ready:" in line for line in lines), "ready")
            url = next(re.search(r"websocket (ws://\S+)", line) for line in lines if "websocket" in line)
            assert url is not None
            async with connect(url.group(1), compression=None) as ws:
                await hello(ws)
                await subscribe(ws, feed.symbols)
                collector = Collector(ws)
                feed.run(hz=50, packets=50)
                await until(lambda: any(re.search(r"p99 sent [0-9.]+ ms", line) for line in lines), "p99 sent")
                await collector.stop()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await feed.stop()

    asyncio.run(main())
