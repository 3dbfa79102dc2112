"""The gateway's sans-I/O core (``fastflow.gateway.core``) without a socket: fan-out
to watchlists, the slow-client policy (conflation while paused, one catch-up frame
on drain, closing past the lag limit, the others unaffected), catch-up on
subscribe, control-message strikes, and one JSON conversion per tick shared by
every JSON client of a pass. Frames come from the real decoder over the
simulated market, as the plant publishes them."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from fastflow.gateway import protocol as proto
from fastflow.gateway.core import Client, FanoutCore
from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe

EMPTY_FRAME = msgpack.packb([])


class Recorder(Client):
    """A client whose socket is a list of the WebSocket frames written to it."""

    __slots__ = ("frames",)

    def __init__(self, binary: bool = True, name: str = "test") -> None:
        self.frames: list[bytes] = []
        super().__init__(binary, name, proto.RateLimit(20.0, 50, 0.0), self.frames.append)

    def messages(self) -> list[Any]:
        """The frames' payloads, decoded (msgpack, or JSON for a text client)."""
        out = []
        for frame in self.frames:
            opcode, payload = unframe(frame)
            assert opcode == (0x2 if self.binary else 0x1)
            out.append(msgpack.unpackb(payload) if self.binary else json.loads(payload))
        return out

    def ticks(self) -> list[dict[str, Any]]:
        return [t for m in self.messages() if m["type"] in ("ticks", "snapshot") for t in m["ticks"]]


def unframe(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one unmasked, final WebSocket frame."""
    assert frame[0] & 0x80 and not frame[1] & 0x80
    n, offset = frame[1] & 0x7F, 2
    if n == 126:
        n, offset = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, offset = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == offset + n
    return frame[0] & 0x0F, frame[offset:]


class Market:
    """The simulated market through the real decoder: each step is one published frame."""

    def __init__(self) -> None:
        rows = kite_universe()
        self.market = KiteMarket.from_rows(rows, seed=3)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        self.decoder = KiteDecoder(self.state)
        self.symbols = [str(s) for s in self.state.instruments.symbol]

    def step(self, packets: int = 200) -> bytes:
        self.decoder.feed(self.market.step(packets, "full"))
        frame: bytes = self.state.flush().frame()
        return frame

    def latest(self, symbol: str) -> dict[str, Any]:
        tick: dict[str, Any] = self.state.tick(symbol)
        return tick


@pytest.fixture
def market() -> Market:
    return Market()


def loaded(market: Market, **options: Any) -> FanoutCore:
    core = FanoutCore(**options)
    core.reset(market.symbols, {}, EMPTY_FRAME, {"broker": "kite"})
    return core


def subscribe(core: FanoutCore, client: Client, symbols: list[str]) -> list[Any]:
    replies, abusive = core.control(client, msgpack.packb({"op": "subscribe", "symbols": symbols}),
                                    proto.MSGPACK, now=0.0)
    assert not abusive
    return replies


def publish(core: FanoutCore, frame: bytes, now: float = 0.0) -> int:
    assert core.apply(frame) >= 0
    return core.send(now)


def test_each_client_gets_only_its_watchlist(market: Market) -> None:
    core = loaded(market)
    a, b = Recorder(), Recorder()
    core.connect(a)
    core.connect(b)
    subscribe(core, a, market.symbols[:10])
    subscribe(core, b, market.symbols[5:15])
    for _ in range(5):
        publish(core, market.step())
    assert {t["symbol"] for t in a.ticks()} <= set(market.symbols[:10])
    assert {t["symbol"] for t in b.ticks()} <= set(market.symbols[5:15])
    for client, symbols in ((a, market.symbols[:10]), (b, market.symbols[5:15])):
        last = {t["symbol"]: t for t in client.ticks()}
        for symbol in symbols:
            if market.latest(symbol)["seq"]:
                assert last[symbol]["seq"] == market.latest(symbol)["seq"]


def test_subscribe_replies_then_sends_the_snapshot(market: Market) -> None:
    core = loaded(market)
    frame = market.step(len(market.symbols))  # every instrument, NSE:INFY among them
    publish(core, frame)
    client = Recorder()
    core.connect(client)
    replies = subscribe(core, client, ["NSE:INFY", "NSE:NOSUCH"])
    assert replies[0] == {"type": "subscribed", "symbols": ["NSE:INFY"], "unknown": ["NSE:NOSUCH"]}
    snapshot = msgpack.unpackb(replies[1])
    assert snapshot["type"] == "snapshot" and [t["symbol"] for t in snapshot["ticks"]] == ["NSE:INFY"]
    assert snapshot["ticks"][0]["seq"] == market.latest("NSE:INFY")["seq"]


def test_a_paused_client_is_conflated_then_caught_up_with_one_frame(market: Market) -> None:
    core = loaded(market, lag_limit=1.0)
    slow, fast = Recorder(), Recorder()
    for client in (slow, fast):
        core.connect(client)
        subscribe(core, client, market.symbols)
    publish(core, market.step(), now=100.0)
    slow.frames.clear()
    slow.paused = True  # its socket went over the high-water mark
    for i in range(10):
        publish(core, market.step(), now=100.0 + i * 0.1)
    assert slow.frames == [] and core.counters["conflations"] == 10
    assert len(fast.frames) == 11  # the others get every frame
    assert slow.behind_since == 100.0  # behind since the first frame it missed
    core.drained(slow)
    assert len(slow.frames) == 1 and core.counters["catch_ups"] == 1
    latest = {t["symbol"]: t["seq"] for t in slow.ticks()}
    for symbol in market.symbols:
        if market.latest(symbol)["seq"] and symbol in latest:
            assert latest[symbol] == market.latest(symbol)["seq"]  # only the latest tick per instrument
    assert len(latest) == len(slow.ticks())  # one tick per instrument: conflated
    assert not slow.paused and slow.behind_since == 0.0


def test_a_client_behind_past_the_lag_limit_is_named_for_closing(market: Market) -> None:
    core = loaded(market, lag_limit=1.0)
    slow = Recorder()
    core.connect(slow)
    subscribe(core, slow, market.symbols)
    slow.paused = True
    publish(core, market.step(), now=50.0)
    assert core.lagging(50.9) == []
    assert core.lagging(51.5) == [slow]
    assert core.closing(slow, "lagging") and not core.closing(slow, "lagging")
    slow.frames.clear()
    slow.paused = False
    publish(core, market.step(), now=52.0)
    assert slow.frames == [] and core.lagging(60.0) == []  # a closing client gets nothing more


def test_a_drained_client_that_kept_up_is_sent_nothing(market: Market) -> None:
    core = loaded(market)
    client = Recorder()
    core.connect(client)
    subscribe(core, client, market.symbols)
    publish(core, market.step())
    client.frames.clear()
    core.drained(client)
    assert client.frames == [] and core.counters["catch_ups"] == 0


def test_json_clients_share_one_conversion_per_tick(market: Market) -> None:
    core = loaded(market)
    json_clients = [Recorder(binary=False, name=f"j{i}") for i in range(3)]
    binary = Recorder()
    for client in [*json_clients, binary]:
        core.connect(client)
        subscribe(core, client, market.symbols)
    for client in [*json_clients, binary]:
        client.frames.clear()
    before = core.json.conversions
    frame = market.step()
    publish(core, frame)
    ticks_in_frame = len(msgpack.unpackb(frame))
    assert core.json.conversions - before == ticks_in_frame  # once per tick, not once per client
    expected = binary.messages()
    for client in json_clients:
        assert client.messages() == expected  # the same message, as JSON text


def test_json_text_equals_a_full_conversion(market: Market) -> None:
    core = loaded(market)
    payload = msgpack.packb({"type": "ticks", "ticks": [market.latest(s) for s in market.symbols[:20]],
                             "seq": 7, "note": {"a": [1, 2.5, None, "x"]}})
    core.json.new_pass()
    text = core.json.text(payload)
    assert text == json.dumps(msgpack.unpackb(payload), separators=(",", ":")).encode()


def test_refused_messages_in_a_row_make_a_client_abusive(market: Market) -> None:
    core = loaded(market, max_strikes=3)
    client = Recorder()
    core.connect(client)
    for strike in range(1, 4):
        replies, abusive = core.control(client, b"\xc1", proto.MSGPACK, now=float(strike))
        assert replies[0]["type"] == "error" and abusive == (strike == 3)
    replies, abusive = core.control(client, msgpack.packb({"op": "ping", "id": 1}), proto.MSGPACK, now=9.0)
    assert replies == [{"type": "pong", "id": 1}] and not abusive and client.strikes == 0


def test_before_the_instrument_list_clients_wait_and_keep_their_place(market: Market) -> None:
    core = FanoutCore()
    early = Recorder()
    core.connect(early)
    replies, _ = core.control(early, msgpack.packb({"op": "subscribe", "symbols": ["NSE:INFY"]}),
                              proto.MSGPACK, now=0.0)
    assert replies[0]["code"] == "unavailable"
    core.reset(market.symbols, {}, EMPTY_FRAME, {})
    assert early.cid >= 0 and core.clients == [early]
    subscribe(core, early, ["NSE:INFY"])
    publish(core, market.step(400))
    assert {t["symbol"] for t in early.ticks()} == {"NSE:INFY"}
