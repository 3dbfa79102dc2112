"""fastflow.client and ``fastflow tail`` against a real gateway over real
sockets, fed by a simulated plant writing to a real redis-server: snapshot
then live ticks equal to the plant's, subscriptions by symbol and token,
unknown symbols, errors, ping, JSON, reconnects (also to a gateway still
loading, and across a plant restart), handshake auth, gap detection under
server-side conflation, and the ``tail`` command as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fastflow.client import AuthError, Client, ClientClosed, ServerError, Tick, Unreachable, connect
from fastflow.client.tail import TailOptions, tail
from fastflow.gateway.auth import Auth, make_token
from fastflow.gateway.server import Gateway
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget

from ..gateway_harness import (
    MarketFeed,
    fastflow_process,
    finish,
    free_port,
    gateway_process,
    make_gateway,
    read_line,
    target_of,
)
from ..waiting import DEADLINE, until

SYMBOLS = ["NSE:INFY", "NSE:TCS", "NSE:NIFTY 50"]
FAST = {"backoff_base": 0.02, "backoff_cap": 0.2}  # reconnect quickly in tests


@contextlib.asynccontextmanager
async def gateway(target: RedisTarget, **config: Any) -> AsyncIterator[Gateway]:
    gw = make_gateway(target, keys=Keys(), host="127.0.0.1", **config)
    await gw.start()
    try:
        await gw.wait_ready()
        yield gw
    finally:
        await gw.stop()


def run(server: EmbeddedRedis, test: Callable[[MarketFeed, RedisTarget], Awaitable[None]]) -> None:
    """A plant (every instrument ticked once) writing to ``server``, then ``test``."""

    async def main() -> None:
        target = target_of(server)
        feed = MarketFeed(target)
        await feed.start()
        try:
            await feed.step(404)  # every instrument has a state
            await asyncio.wait_for(test(feed, target), 4 * DEADLINE)
        finally:
            await feed.stop()

    asyncio.run(main())


def current(client: Client, feed: MarketFeed, symbols: list[str]) -> Callable[[], bool]:
    """A condition: the client's latest tick of every symbol is the plant's."""
    return lambda: all(client.last.get(s) == feed.tick(s) for s in symbols)


class Collector:
    """Reads the client's iterator in the background."""

    def __init__(self, client: Client) -> None:
        self.ticks: list[Tick] = []
        self.task = asyncio.create_task(self._read(client))

    async def _read(self, client: Client) -> None:
        async for tick in client:
            self.ticks.append(tick)

    def seqs(self, symbol: str) -> list[int]:
        return [t["seq"] for t in self.ticks if t["symbol"] == symbol]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# -- ticks ------------------------------------------------------------------------------------


def test_snapshot_then_live_ticks_equal_the_plants(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target) as gw, connect(gw.ws_url, symbols=SYMBOLS) as client:
            assert client.state == "live"
            reader = Collector(client)
            await until(current(client, feed, SYMBOLS), "the snapshot")
            first = {s: feed.tick(s)["seq"] for s in SYMBOLS}
            assert sorted(t["symbol"] for t in reader.ticks[:3]) == sorted(SYMBOLS)  # the snapshot first
            for _ in range(5):
                await feed.step(404)  # every instrument moves in every flush
                await until(current(client, feed, SYMBOLS), "the live ticks")
            await until(lambda: len(reader.ticks) == 3 * 6, "every tick out of the iterator")
            for symbol in SYMBOLS:
                # once each, in order, no gap: the snapshot tick, then one tick per flush
                assert reader.seqs(symbol) == list(range(first[symbol], first[symbol] + 6))
                assert [t for t in reader.ticks if t["symbol"] == symbol][-1] == feed.tick(symbol)
            assert client.hello is not None and client.hello["server"] == "fastflow"
            assert client.watchlist == SYMBOLS
            assert client.gaps == 0
            stats = client.stats
            assert stats["snapshots"] == 1 and stats["ticks"] == 18 and stats["errors"] == 0
            assert stats["reconnects"] == 0 and stats["duplicates"] == 0
            await reader.stop()
        assert client.state == "closed"
        assert [t async for t in client] == []  # iteration ends after close

    run(redis_server, test)


def test_subscribe_unsubscribe_by_symbol_and_token(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        tokens = feed.state.instruments
        infy, tcs = tokens.token_of("NSE:INFY"), tokens.token_of("NSE:TCS")
        async with gateway(target) as gw, connect(gw.ws_url) as client:
            assert client.watchlist == []
            reply = await client.subscribe(["NSE:INFY", tcs, "NSE:NOSUCH", 4_000_000_000])
            assert reply["symbols"] == ["NSE:INFY", "NSE:TCS"]
            assert reply["unknown"] == ["NSE:NOSUCH", 4_000_000_000]
            assert client.unknown == ["NSE:NOSUCH", 4_000_000_000]
            assert client.watchlist == ["NSE:INFY", "NSE:TCS"]  # the token became its symbol
            await until(current(client, feed, ["NSE:INFY", "NSE:TCS"]), "the snapshot")

            reply = await client.unsubscribe([infy])
            assert reply["symbols"] == ["NSE:INFY"]
            assert client.watchlist == ["NSE:TCS"]
            assert "NSE:INFY" not in client.last
            for _ in range(3):
                await feed.step(404)
            await until(current(client, feed, ["NSE:TCS"]), "NSE:TCS live")
            assert "NSE:INFY" not in client.last  # nothing more of it

            ticks = await client.snapshot()
            assert [t["symbol"] for t in ticks] == ["NSE:TCS"]
            assert ticks[0] == feed.tick("NSE:TCS")
            # known and unknown: the known ones' snapshot, then a bad_symbols error (counted)
            ticks = await client.snapshot(["NSE:INFY", "NSE:NOSUCH"])
            assert [t for t in ticks] == [feed.tick("NSE:INFY")]
            await until(lambda: client.stats["errors"] == 1, "the bad_symbols error counted")
            rtt = await client.ping()  # the error did not answer a later request
            assert rtt >= 0.0
            assert client.gaps == 0

    run(redis_server, test)


def test_server_errors_raise_from_the_call(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target, max_symbols=3) as gw, connect(gw.ws_url, symbols=["NSE:INFY"]) as client:
            with pytest.raises(ServerError) as caught:
                await client.subscribe(["NSE:TCS", "NSE:SBIN", "NSE:RELIANCE", "NSE:WIPRO"])
            assert caught.value.code == "too_many_symbols" and caught.value.op == "subscribe"
            assert client.watchlist == ["NSE:INFY"]  # a refused subscription leaves it as it was
            with pytest.raises(ServerError) as caught:
                await client.subscribe([""])  # not a symbol
            assert caught.value.code == "bad_symbols"
            reply = await client.subscribe(["NSE:TCS"])  # the connection stays usable
            assert reply["symbols"] == ["NSE:TCS"]
            assert await client.ping() >= 0.0
            assert client.stats["errors"] == 0  # both errors went to their callers

    run(redis_server, test)


def test_json_encoding(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target) as gw, connect(gw.ws_url, symbols=SYMBOLS, encoding="json") as client:
            await until(lambda: client.hello is not None, "hello")
            assert client.hello is not None and client.hello["subprotocol"] == "fastflow.json.v1"
            await until(current(client, feed, SYMBOLS), "the snapshot")
            for _ in range(3):
                await feed.step(404)
                await until(current(client, feed, SYMBOLS), "the live ticks")
            reply = await client.subscribe(["NSE:SBIN"])
            assert reply == {"type": "subscribed", "symbols": ["NSE:SBIN"], "unknown": [], "id": reply["id"]}
            assert await client.ping() >= 0.0
            assert client.gaps == 0 and client.stats["errors"] == 0

    run(redis_server, test)


# -- reconnects -----------------------------------------------------------------------------------


def test_reconnect_resubscribes_and_catches_up(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        tcs = feed.state.instruments.token_of("NSE:TCS")
        both = ["NSE:INFY", "NSE:TCS"]
        first = make_gateway(target)
        await first.start()
        client = await connect(first.ws_url, symbols=["NSE:INFY", tcs], **FAST)
        try:
            await until(current(client, feed, both), "the snapshot")
            assert client.watchlist == both
            await first.stop()  # the gateway goes away
            await until(lambda: client.state == "reconnecting", "reconnecting")
            assert client.close_code == 1001
            for _ in range(3):
                await feed.step(404)  # the plant moves on meanwhile
            async with gateway(target, port=first.port):  # a new gateway on the same port
                await until(lambda: client.state == "live" and client.stats["reconnects"] == 1, "reconnected")
                await until(current(client, feed, both), "caught up by the fresh snapshot")
                assert client.stats["snapshots"] == 2
                await feed.step(404)
                await until(current(client, feed, both), "live again")
                assert client.gaps == 0  # a snapshot is a new baseline, not a gap
                assert client.watchlist == both
        finally:
            await client.close()

    run(redis_server, test)


def test_reconnect_to_a_gateway_still_loading(redis_server: EmbeddedRedis) -> None:
    """A gateway accepts connections before it has the instrument list; the client's
    resubscription is refused (``unavailable``) and repeated until it is taken."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        empty = Keys("empty")
        gw = make_gateway(target, keys=empty)
        await gw.start()
        try:
            async with connect(gw.ws_url, symbols=["NSE:INFY"], **FAST) as client:
                await until(lambda: client.stats["errors"] >= 2, "resubscriptions refused while loading")
                assert "NSE:INFY" not in client.last
                # a plant comes up in the gateway's partition
                other = MarketFeed(target, keys=empty, seed=5)
                await other.start()
                try:
                    await other.step(404)
                    await until(lambda: client.last.get("NSE:INFY") == other.tick("NSE:INFY"),
                                "subscribed once the gateway loaded")
                    assert client.watchlist == ["NSE:INFY"]
                finally:
                    await other.stop()
        finally:
            await gw.stop()

    run(redis_server, test)


def test_a_restarted_plant_is_followed(redis_server: EmbeddedRedis) -> None:
    """A restarted plant counts seq from 1 again: its (newer) ticks are not duplicates."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        for _ in range(3):
            await feed.step(404)
        async with gateway(target) as gw, connect(gw.ws_url, symbols=SYMBOLS) as client:
            await until(current(client, feed, SYMBOLS), "the snapshot")
            before = {s: client.last[s]["seq"] for s in SYMBOLS}
            await feed.stop()
            restarted = MarketFeed(target, seed=9)
            await restarted.start()
            try:
                await restarted.step(404)
                await until(current(client, restarted, SYMBOLS), "the restarted plant's ticks")
                assert all(client.last[s]["seq"] < before[s] for s in SYMBOLS)
                assert client.stats["duplicates"] == 0
            finally:
                await restarted.stop()

    run(redis_server, test)


# -- auth ---------------------------------------------------------------------------------------


def test_auth(redis_server: EmbeddedRedis) -> None:
    secret = b"s3cret"

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        auth = Auth(api_keys={"k1": "alice"}, secret=secret, allow_loopback=False)
        async with gateway(target, auth=auth) as gw:
            for credential in ({"api_key": "wrong"}, {}, {"token": make_token(secret, "bob", ttl=-60)},
                               {"token": make_token(b"other", "bob", ttl=60)}):
                client = connect(gw.ws_url, symbols=SYMBOLS, **credential)  # type: ignore[arg-type]
                with pytest.raises(AuthError) as caught:
                    async with client:
                        pass
                assert caught.value.status == 401, credential
                assert client.state == "closed"
            assert gw.rejected["auth"] == 4  # one handshake each: a refusal is not retried
            async with connect(gw.ws_url, symbols=SYMBOLS, api_key="k1") as client:
                await until(current(client, feed, SYMBOLS), "the snapshot with an API key")
                assert client.hello is not None and client.hello["client"] == "alice"
            async with connect(gw.ws_url, symbols=SYMBOLS, token=make_token(secret, "bob", ttl=60)) as client:
                await until(current(client, feed, SYMBOLS), "the snapshot with a token")
                assert client.hello is not None and client.hello["client"] == "bob"

    run(redis_server, test)


def test_async_for_over_connect_without_async_with(redis_server: EmbeddedRedis) -> None:
    """``async for tick in connect(url, symbols=[...])``, as the README phrases it: it
    printed nothing for 20 s (the iterator waited for a connection nobody opened)."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target) as gw:
            client = connect(gw.ws_url, symbols=SYMBOLS)
            seen: list[Tick] = []

            async def read() -> None:
                async for tick in client:
                    seen.append(tick)
                    if len(seen) == len(SYMBOLS):
                        return

            try:
                await asyncio.wait_for(read(), DEADLINE)
            finally:
                await client.close()
            assert sorted(t["symbol"] for t in seen) == sorted(SYMBOLS)  # the snapshot
            assert all(t == feed.tick(t["symbol"]) for t in seen)

            # ... and it fails loudly when there is nothing to connect to
            with pytest.raises(Unreachable, match="connection attempt"):
                async for _ in connect(f"ws://127.0.0.1:{free_port()}/ws", max_retries=1, **FAST):
                    pass

    run(redis_server, test)


def test_unreachable_gives_up_after_max_retries() -> None:
    async def main() -> None:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        client = connect(f"ws://127.0.0.1:{port}/ws", max_retries=2, **FAST)
        with pytest.raises(Unreachable, match="3 connection attempt"):
            await client.start()
        assert client.state == "closed"
        with pytest.raises(Unreachable):
            await connect(f"ws://127.0.0.1:{port}/ws", reconnect=False)

    asyncio.run(main())


# -- gaps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("snapshot_on_gap", [False, True])
def test_gaps_under_server_conflation(redis_server: EmbeddedRedis, snapshot_on_gap: bool) -> None:
    """The client stops reading its socket (its transport is paused), so the gateway
    conflates its ticks; when it reads again it sees seq jumps, counts them, and
    (with snapshot_on_gap) asks for one snapshot."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        everything = feed.symbols
        async with gateway(target, high_water=4096) as gw, \
                connect(gw.ws_url, symbols=everything, snapshot_on_gap=snapshot_on_gap) as client:
            reader = Collector(client)
            await until(current(client, feed, everything), "the snapshot")
            assert client.stats["snapshots"] == 1
            transport = client._ws.transport  # type: ignore[union-attr]  # stop reading the socket
            transport.pause_reading()
            end = asyncio.get_running_loop().time() + DEADLINE
            while gw.counters["conflations"] < 3:  # the kernel's buffers fill, then the gateway conflates
                assert asyncio.get_running_loop().time() < end, "the gateway never conflated"
                await feed.step(404)
            transport.resume_reading()
            await until(current(client, feed, everything), "caught up")
            assert client.gaps > 0
            if snapshot_on_gap:
                await until(lambda: client.stats["snapshots"] >= 2, "the snapshot asked for after the gap")
                await feed.step(404)
                await until(current(client, feed, everything), "live after the snapshot")
            else:
                assert client.stats["snapshots"] == 1
            await until(lambda: all(reader.seqs(s)[-1] == feed.tick(s)["seq"] for s in ("NSE:INFY", "NSE:NIFTY 50")),
                        "the iterator drained")
            for symbol in ("NSE:INFY", "NSE:NIFTY 50"):
                seqs = reader.seqs(symbol)
                assert seqs == sorted(set(seqs)), "no tick twice, none out of order"
                assert seqs[-1] == feed.tick(symbol)["seq"]
            await reader.stop()

    run(redis_server, test)


# -- fastflow tail --------------------------------------------------------------------------------


def test_tail_in_process(redis_server: EmbeddedRedis) -> None:
    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target, auth=Auth(api_keys={"k1": "alice"}, allow_loopback=False)) as gw:
            history = {(s, feed.tick(s)["seq"]): feed.tick(s) for s in SYMBOLS}

            async def tail_of(**options: Any) -> tuple[int, str, str]:
                out, err = io.StringIO(), io.StringIO()
                status = await tail(TailOptions(url=gw.ws_url, **options), out=out, err=err, handle_signals=False)
                return status, out.getvalue(), err.getvalue()

            status, out, _ = await tail_of(symbols=SYMBOLS, api_key="k1", count=3, json=True)
            assert status == 0
            ticks = [json.loads(line) for line in out.splitlines()]
            assert sorted(t["symbol"] for t in ticks) == sorted(SYMBOLS)  # the snapshot
            assert all(t == history[t["symbol"], t["seq"]] for t in ticks)

            status, out, _ = await tail_of(symbols=["NSE:INFY"], api_key="k1", count=1)
            assert status == 0 and out.split()[:2] == ["NSE:INFY", f"{feed.tick('NSE:INFY')['last_price']:.2f}"]

            status, out, _ = await tail_of(symbols=SYMBOLS, api_key="k1", count=3, tty=True)
            assert status == 0 and out.startswith("\x1b[?25l\x1b[2J\x1b[H\x1b[J") and out.endswith("\x1b[?25h")
            screen = out.rsplit("\x1b[H\x1b[J", 1)[1].splitlines()  # the last redraw
            assert screen[0].split()[:3] == ["symbol", "ltp", "chg"]
            assert [row[:22].rstrip() for row in screen[1:4]] == SYMBOLS
            assert screen[1].split()[1] == f"{feed.tick(SYMBOLS[0])['last_price']:.2f}"

            # an unknown symbol: one warning line, once; the known ones are shown (nse:infy is NSE:INFY)
            status, out, err = await tail_of(symbols=["nse:infy", "NSE:NOSUCH", "nse:nosuch"], api_key="k1",
                                             count=1)
            assert status == 0 and out.split()[0] == "NSE:INFY", (out, err)
            assert err.splitlines() == ["fastflow tail: warning: unknown symbol NSE:NOSUCH (not shown)"]
            status, out, err = await tail_of(symbols=["NSE:NOSUCH", "BSE:NOPE"], api_key="k1", count=1)
            assert (status, out) == (2, "")
            assert err.splitlines() == ["fastflow tail: unknown symbols: NSE:NOSUCH, BSE:NOPE; nothing to tail"]
            status, out, err = await tail_of(symbols=["NSE:INFY"], api_key="wrong", count=1)
            assert (status, out) == (2, "") and "refused the handshake (HTTP 401" in err
            status, out, err = await tail_of(symbols=["NSE:INFY"], count=1)
            assert status == 2 and "a credential is required" in err

    run(redis_server, test)


def test_tail_command(redis_server: EmbeddedRedis) -> None:
    """``fastflow tail --count 5`` against a ``fastflow gateway`` process: the snapshot
    lines, then a line per live tick, each with the plant's price at that seq; exit 0."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        symbols = ["NSE:INFY", "NSE:TCS"]
        history = {(s, feed.tick(s)["seq"]): feed.tick(s) for s in symbols}
        async with gateway_process(redis_server) as url:
            tail = await fastflow_process("tail", *symbols, "--url", url, "--count", "5")
            lines = [await read_line(tail), await read_line(tail)]  # the snapshot
            for _ in range(2):
                await feed.step(404)
                history.update({(s, feed.tick(s)["seq"]): feed.tick(s) for s in symbols})
            status, out, err = await finish(tail)
            assert status == 0, err
            lines += out.splitlines()
            assert len(lines) == 5
            seen = set()
            for line in lines:
                fields = line.split()
                symbol, ltp, seq = fields[0], fields[1], int(fields[-2])
                tick = history[symbol, seq]
                assert ltp == f"{tick['last_price']:.2f}", line
                assert f"{tick['ohlc']['close']:.2f}" in line
                seen.add((symbol, seq))
            assert len(seen) == 5  # no tick twice

            # Ctrl-C exits cleanly
            tail = await fastflow_process("tail", "NSE:INFY", "--url", url)
            assert (await read_line(tail)).startswith("NSE:INFY ")
            tail.send_signal(signal.SIGINT)
            status, _, err = await finish(tail)
            assert status == 0, err

    run(redis_server, test)


def test_tail_command_normalises_symbols_and_warns_once_about_unknown_ones(redis_server: EmbeddedRedis) -> None:
    """``fastflow tail nse:infy NSE:NOSUCH``: one unknown symbol exited 2, showed nothing and
    printed its message twice; lowercase was not normalised as the dashboard does."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway_process(redis_server) as url:
            tail = await fastflow_process("tail", "nse:infy", "NSE:NOSUCH", "tcs", "--url", url, "--count", "2")
            status, out, err = await finish(tail)
            assert status == 0, err
            assert sorted(line.split()[0] for line in out.splitlines()) == ["NSE:INFY", "NSE:TCS"]
            assert err.splitlines() == ["fastflow tail: warning: unknown symbol NSE:NOSUCH (not shown)"]

    run(redis_server, test)


def test_tail_command_exit_codes() -> None:
    async def main() -> None:
        url = f"ws://127.0.0.1:{free_port()}/ws"
        status, out, err = await finish(await fastflow_process("tail", "NSE:INFY", "--url", url, "--retries", "0"))
        assert (status, out) == (1, "") and "gateway unreachable" in err
        status, _, err = await finish(await fastflow_process("tail", "NSE:INFY", "--url", url, "--count", "0"))
        assert status == 2 and "--count" in err
        status, _, err = await finish(await fastflow_process("tail", "NSE:INFY", "--url", "http://x/"))
        assert status == 2 and "ws://" in err
        status, _, err = await finish(await fastflow_process("tail", "NSE:INFY", "--api-key", "a", "--token", "b"))
        assert status == 2 and "not allowed with" in err

    asyncio.run(main())


def test_a_consumer_far_behind_gets_the_latest(redis_server: EmbeddedRedis) -> None:
    """Nobody reads the iterator: past max_pending buffered ticks the client keeps the
    latest per symbol (the connection is never stalled); the iterator then yields each
    symbol's latest tick, once, in seq order."""

    async def test(feed: MarketFeed, target: RedisTarget) -> None:
        async with gateway(target) as gw, connect(gw.ws_url, symbols=SYMBOLS, max_pending=10) as client:
            await until(current(client, feed, SYMBOLS), "the snapshot")
            for _ in range(10):
                await feed.step(404)
            await until(current(client, feed, SYMBOLS), "the live ticks")
            assert client.stats["conflated"] > 0 and client.gaps == 0
            seen: dict[str, list[int]] = {s: [] for s in SYMBOLS}
            while any(not seen[s] or seen[s][-1] != feed.tick(s)["seq"] for s in SYMBOLS):
                tick = await asyncio.wait_for(client.__anext__(), DEADLINE)
                seen[tick["symbol"]].append(tick["seq"])
            assert sum(map(len, seen.values())) <= 10 + 3
            assert all(seqs == sorted(set(seqs)) for seqs in seen.values())
            assert client.stats["ticks"] == 3 * 11  # every tick arrived; the consumer got the latest
            with pytest.raises(ServerError):
                await client.subscribe([3.5])  # type: ignore[list-item]
        with pytest.raises(ClientClosed):
            await client.ping()

    run(redis_server, test)
