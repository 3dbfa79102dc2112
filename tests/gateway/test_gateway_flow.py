"""The options-flow tape over real sockets: the plant's writer publishes the
flow the detector finds in the simulated market through a real Redis; clients
subscribe with filters and get the recent matching events, then exactly the
matching events of every flush, spliced (msgpack) or converted (JSON)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect

from fastflow.analytics import flow
from fastflow.config import FlowSection
from fastflow.gateway.server import Gateway
from fastflow.store.embedded import EmbeddedRedis

from ..gateway_harness import MarketFeed, hello, make_gateway, recv, target_of
from ..waiting import DEADLINE, until

pytestmark = pytest.mark.usefixtures("event_loop_policy")  # asyncio, then uvloop

LOOSE = FlowSection(premium_floor=0.0, premium_floors=(), z_min_samples=5, voi_min_lots=1, repeat_hits=2,
                    sweep_min_lots=0)


class FlowMarket(MarketFeed):
    """A MarketFeed whose state detects flow; ``events`` holds every event it made, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        flow.enable(self.state, LOOSE)
        self.events: list[dict[str, Any]] = []

    async def step(self, packets: int = 300, mode: str = "full") -> Any:
        batch = await super().step(packets, mode)
        self.events += flow.decode(batch.flow)
        return batch


def run(server: EmbeddedRedis, scenario: Any) -> None:
    async def main() -> None:
        target = target_of(server)
        feed = FlowMarket(target)
        await feed.start()
        for _ in range(10):
            await feed.step()
        gateway = make_gateway(target)
        await gateway.start()
        try:
            await gateway.wait_ready()
            await scenario(gateway, feed)
        finally:
            await gateway.stop()
            await feed.stop()

    asyncio.run(main())


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message) if ws.subprotocol == "fastflow.json.v1" else msgpack.packb(message))


async def next_of(ws: ClientConnection, *types: str) -> dict[str, Any]:
    """The next message of one of ``types`` (status messages may come at any moment)."""
    while (message := await recv(ws))["type"] not in types:
        assert message["type"] == "status", message
    return message


class Tape:
    """Every flow event a client receives, in order, until stopped."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = await recv(self.ws, 3600)
            if message["type"] == "flow":
                self.events += message["events"]
            elif message["type"] != "status":
                self.other.append(message)

    async def stop(self) -> None:
        self.task.cancel()
        with __import__("contextlib").suppress(asyncio.CancelledError):
            await self.task


def test_the_tape_gives_the_recent_events_then_every_matching_one(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        async with connect(gateway.ws_url, compression=None) as ws, \
                connect(gateway.ws_url, compression=None) as picky:
            await hello(ws)
            await hello(picky)
            await send(ws, {"op": "subscribe_flow", "id": 1})
            reply = await next_of(ws, "flow_subscribed")
            assert reply["id"] == 1 and reply["filter"]["kinds"] == [] and reply["filter"]["min_score"] == 0
            snapshot = await next_of(ws, "flow")
            assert snapshot["snapshot"] is True
            before = len(feed.events)
            assert before > 0 and snapshot["events"] == feed.events[-min(before, 500):]  # seeded from the stream
            await send(picky, {"op": "subscribe_flow", "kinds": ["sweep", "REPEATED"], "min_score": 20,
                               "underlyings": ["NIFTY"], "sentiments": ["bullish", "bearish"]})
            reply = await next_of(picky, "flow_subscribed")
            assert reply["filter"]["underlyings"] == ["NSE:NIFTY 50"]
            assert reply["filter"]["kinds"] == ["repeated", "sweep"]
            await next_of(picky, "flow")
            everything, some = Tape(ws), Tape(picky)
            for _ in range(25):
                await feed.step()
            after = feed.events[before:]

            def wanted(e: dict[str, Any]) -> bool:
                return (e["kind"] in ("sweep", "repeated") and e["score"] >= 20
                        and e["underlying"] == "NSE:NIFTY 50" and e["sentiment"] != "neutral")

            chosen = [e for e in after if wanted(e)]
            assert chosen and len(chosen) < len(after), "the market made no events that tell the filter apart"
            await until(lambda: len(everything.events) >= len(after) and len(some.events) >= len(chosen),
                        "every event on both tapes")
            assert everything.events == after and some.events == chosen
            await everything.stop()
            await some.stop()
        assert gateway.core.flow.counters["events_in"] >= len(after)

    run(redis_server, scenario)


def test_a_json_client_gets_the_same_events_as_json(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        async with connect(gateway.ws_url, subprotocols=["fastflow.json.v1"],  # type: ignore[list-item]
                           compression=None) as ws:
            await hello(ws)
            await send(ws, {"op": "subscribe_flow", "kinds": ["sweep"]})
            await next_of(ws, "flow_subscribed")
            await next_of(ws, "flow")
            tape = Tape(ws)
            before = len(feed.events)
            for _ in range(10):
                await feed.step()
            sweeps = [e for e in feed.events[before:] if e["kind"] == "sweep"]
            assert sweeps
            await until(lambda: len(tape.events) >= len(sweeps), "the sweeps as JSON")
            assert tape.events == json.loads(json.dumps(sweeps))
            await tape.stop()

    run(redis_server, scenario)


@pytest.mark.parametrize(("message", "says"), [
    ({"kinds": ["sweeps"]}, '"kinds" takes sweep, block, repeated, unusual; got sweeps'),
    ({"min_score": -1}, '"min_score" must be a number >= 0'),
    ({"min_premium": "big"}, '"min_premium" must be a number >= 0'),
    ({"underlyings": "NIFTY"}, '"underlyings" must be a list'),
    ({"symbols": ["NSE:NOPE"]}, "unknown symbols: NSE:NOPE"),
    ({"side": ["buy"]}, "unknown filter field(s) side"),
])
def test_a_bad_filter_is_refused_with_the_field_and_the_connection_goes_on(
        redis_server: EmbeddedRedis, message: dict[str, Any], says: str) -> None:
    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await send(ws, {"op": "subscribe_flow", **message})
            error = await next_of(ws, "error")
            assert error["code"] == "bad_filter" and says in error["message"] and error["op"] == "subscribe_flow"
            await send(ws, {"op": "ping", "id": 2})
            assert (await next_of(ws, "pong"))["id"] == 2

    run(redis_server, scenario)


def test_unsubscribe_flow_stops_the_tape(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await send(ws, {"op": "subscribe_flow", "symbols": [feed.events[-1]["symbol"]]})
            assert (await next_of(ws, "flow_subscribed"))["filter"]["symbols"] == [feed.events[-1]["symbol"]]
            await next_of(ws, "flow")
            await send(ws, {"op": "unsubscribe_flow", "id": "u"})
            assert (await next_of(ws, "flow_unsubscribed"))["id"] == "u"
            for _ in range(10):
                await feed.step()
            await send(ws, {"op": "ping", "id": 3})
            pong = await next_of(ws, "pong", "flow")  # nothing but the pong: no flow frame before it
            assert pong["type"] == "pong"
        assert not gateway.core.flow.filters

    run(redis_server, scenario)


def test_a_malformed_flow_frame_is_counted_and_skipped(redis_server: EmbeddedRedis) -> None:
    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        import redis

        client = redis.Redis(unix_socket_path=redis_server.unix_socket)
        client.publish(feed.keys.flowlive, b"\x93\x01")  # an array of 3 with one int
        await until(lambda: gateway.counters["frame_errors"] >= 1, "the bad frame counted", DEADLINE)
        async with connect(gateway.ws_url, compression=None) as ws:
            await hello(ws)
            await send(ws, {"op": "subscribe_flow"})
            await next_of(ws, "flow_subscribed")

    run(redis_server, scenario)


def test_the_python_client_and_fastflow_flow_read_the_tape(redis_server: EmbeddedRedis) -> None:
    import io

    from fastflow.client import ServerError
    from fastflow.client import connect as client_connect
    from fastflow.client.tape import TapeOptions, format_event, tape

    async def scenario(gateway: Gateway, feed: FlowMarket) -> None:
        async with client_connect(gateway.ws_url) as client:
            events = client.flow(kinds=["sweep"])
            first = await asyncio.wait_for(events.__anext__(), DEADLINE)  # the recent ones first
            assert first == next(e for e in feed.events[-500:] if e["kind"] == "sweep")
            before = len(feed.events)
            for _ in range(10):
                await feed.step()
            sweeps = [e for e in feed.events[before:] if e["kind"] == "sweep"]
            got: list[dict[str, Any]] = []
            while len(got) < len(sweeps):
                event = await asyncio.wait_for(events.__anext__(), DEADLINE)
                if event["id"] > feed.events[before - 1]["id"]:
                    got.append(event)
            assert got == sweeps and client.stats["flow_events"] >= len(sweeps)
            with pytest.raises(ServerError, match="bad_filter"):
                await client.subscribe_flow(kinds=["nope"])
        out, err = io.StringIO(), io.StringIO()
        status = await tape(TapeOptions(url=gateway.ws_url, underlyings=["NIFTY"], count=3), out, err,
                            handle_signals=False)
        lines = out.getvalue().splitlines()
        assert status == 0 and len(lines) == 3, err.getvalue()
        recent = [e for e in feed.events[-500:] if e["underlying"] == "NSE:NIFTY 50"]  # the gateway keeps 500
        assert lines == [format_event(e) for e in recent[:3]]
        assert " lots ₹" in lines[0] and " score " in lines[0]
        status = await tape(TapeOptions(url=gateway.ws_url, kinds=["sweeps"]), out, err, handle_signals=False)
        assert status == 2 and '"kinds" takes sweep' in err.getvalue()

    run(redis_server, scenario)
