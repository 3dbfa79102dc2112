"""The Upstox simulator speaks the V3 protocol over real sockets: authorize,
single-use codes, the SDK's redirect, market_info, initial then live feeds in
every mode, limits, pings; decoded with the official protobuf classes and with
fastflow's decoder."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from fastflow.brokers.upstox.constants import AUTHORIZE_PATH, FEED_PATH, limit_error
from fastflow.hotpath import MarketState, UpstoxDecoder
from fastflow.instruments import Instruments
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.servers.upstox import UpstoxSimConfig, UpstoxSimulator
from fastflow.sim.wire import upstox as wire

from ..waiting import until

INFY = "NSE_EQ|INE009A01021"
NIFTY = "NSE_INDEX|Nifty 50"
DEADLINE = 10.0


def _fo_keys(market: UpstoxMarket, n: int) -> list[str]:
    """``n`` NIFTY option keys."""
    records = upstox_pairs()[1]
    return [str(r["instrument_key"]) for r in records if r.get("underlying_symbol") == "NIFTY"
            and r["instrument_type"] in ("CE", "PE")][:n]



def _get(url: str, token: str = "sim-token") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def serve(test: Callable[[UpstoxSimulator], Awaitable[None]], **config: Any) -> None:
    async def main() -> None:
        sim = UpstoxSimulator(UpstoxMarket.from_universe(seed=5), UpstoxSimConfig(**config))
        await sim.start("127.0.0.1", 0)
        try:
            await test(sim)
        finally:
            await sim.stop()

    asyncio.run(main())


async def authorize(sim: UpstoxSimulator, token: str = "sim-token") -> str:
    status, body = await asyncio.to_thread(_get, sim.api_url + AUTHORIZE_PATH, token)
    assert status == 200 and body["status"] == "success", body
    url = body["data"]["authorized_redirect_uri"]
    assert body["data"]["authorizedRedirectUri"] == url and url.startswith("ws://127.0.0.1:")
    return str(url)


async def request(ws: ClientConnection, method: str, keys: list[str], mode: str | None = None) -> None:
    data: dict[str, Any] = {"instrumentKeys": keys}
    if mode is not None:
        data["mode"] = mode
    await ws.send(json.dumps({"guid": "g", "method": method, "data": data}).encode())


async def frames(ws: ClientConnection, pb: Any, count: int) -> list[Any]:
    out = []
    for _ in range(count):
        message = await asyncio.wait_for(ws.recv(), DEADLINE)
        assert isinstance(message, bytes)
        out.append(pb.FeedResponse.FromString(message))
    return out


def test_authorize_gives_a_single_use_url_and_refuses_a_bad_token() -> None:
    async def test(sim: UpstoxSimulator) -> None:
        status, body = await asyncio.to_thread(_get, sim.api_url + AUTHORIZE_PATH, "wrong")
        assert status == 401 and body["status"] == "error" and body["errors"][0]["errorCode"] == "UDAPI100050"
        url = await authorize(sim)
        async with connect(url):
            pass
        with pytest.raises(InvalidStatus) as used:
            async with connect(url):
                pass
        assert used.value.response.status_code == 403  # the code was used once already
        with pytest.raises(InvalidStatus) as forged:
            async with connect(url.rsplit("=", 1)[0] + "=forged"):
                pass
        assert forged.value.response.status_code == 403
        status, _ = await asyncio.to_thread(_get, sim.api_url + "/nowhere")
        assert status == 404

    serve(test)


def test_the_sdk_path_redirects_to_an_authorized_url() -> None:
    async def test(sim: UpstoxSimulator) -> None:
        async with connect(f"ws://127.0.0.1:{sim.port}{FEED_PATH}",
                           additional_headers={"Authorization": "Bearer sim-token"}) as ws:
            assert isinstance(await ws.recv(), bytes)  # market_info
        assert sim.stats["authorized"] == 1

    serve(test)


def test_market_info_then_initial_then_live_feeds_in_every_mode(pb: Any) -> None:
    async def test(sim: UpstoxSimulator) -> None:
        options = _fo_keys(sim.market, 3)
        async with connect(await authorize(sim)) as ws:
            info = (await frames(ws, pb, 1))[0]
            assert info.type == pb.market_info and info.currentTs > 0
            assert dict(info.marketInfo.segmentStatus)["NSE_EQ"] == pb.NORMAL_OPEN
            await request(ws, "sub", [INFY, NIFTY])  # default mode: ltpc
            initial = (await frames(ws, pb, 1))[0]
            assert initial.type == pb.initial_feed and set(initial.feeds) == {INFY, NIFTY}
            assert all(f.WhichOneof("FeedUnion") == "ltpc" for f in initial.feeds.values())
            await request(ws, "sub", options[:1], "full")
            await request(ws, "sub", options[1:2], "option_greeks")
            await request(ws, "sub", options[2:3], "full_d30")
            await request(ws, "change_mode", [NIFTY], "full")
            snapshots = await frames(ws, pb, 4)
            assert [s.type for s in snapshots] == [pb.initial_feed] * 4
            seen: dict[str, Any] = {}
            while len(seen) < 5:
                for frame in await frames(ws, pb, 1):
                    assert frame.type == pb.live_feed
                    seen.update(frame.feeds)
        full = seen[options[0]].fullFeed.marketFF
        assert seen[options[0]].requestMode == pb.full_d5 and len(full.marketLevel.bidAskQuote) == 5
        assert [o.interval for o in full.marketOHLC.ohlc] == ["1d", "I1"] and full.optionGreeks.delta != 0
        assert seen[options[1]].WhichOneof("FeedUnion") == "firstLevelWithGreeks"
        d30 = seen[options[2]].fullFeed.marketFF.marketLevel.bidAskQuote
        assert seen[options[2]].requestMode == pb.full_d30 and len(d30) == 30
        bids = [q.bidP for q in d30 if q.bidQ]
        asks = [q.askP for q in d30]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        assert seen[NIFTY].fullFeed.WhichOneof("FullFeedUnion") == "indexFF"
        assert seen[INFY].ltpc.ltt > 10**12  # epoch milliseconds

    serve(test, rate=2_000)


def test_unsubscribed_keys_stop_streaming_and_fastflow_decodes_the_feed() -> None:
    async def test(sim: UpstoxSimulator) -> None:
        state = MarketState(Instruments.from_upstox_rows(upstox_pairs()[1]))
        decoder = UpstoxDecoder(state)
        async with connect(await authorize(sim)) as ws:
            await request(ws, "sub", [INFY, NIFTY], "full")
            await request(ws, "unsub", [NIFTY])
            await until(lambda: bool(sim._clients) and set(sim._clients[0].modes) == {INFY}, "unsubscribed")
            for _ in range(20):
                message = await asyncio.wait_for(ws.recv(), DEADLINE)
                assert isinstance(message, bytes)
                decoder.feed(message)
            assert decoder.market_status["NSE_EQ"] == "NORMAL_OPEN"
            assert state.tick(INFY)["mode"] == "full" and len(state.tick(INFY)["depth"]["buy"]) == 5
            assert state.tick("NSE:INFY")["seq"] > state.tick(NIFTY)["seq"]

    serve(test, rate=2_000)


def test_limits_and_bad_requests_are_ignored_and_counted() -> None:
    async def test(sim: UpstoxSimulator) -> None:
        keys = _fo_keys(sim.market, 4)
        async with connect(await authorize(sim)) as ws:
            await request(ws, "sub", keys[:3], "full")  # 3 > the full limit of 2
            await request(ws, "sub", keys[:2], "full")
            await request(ws, "sub", keys[2:4], "ltpc")  # mixed: ltpc combined cap 1 < 2
            await ws.send("text frames are not requests")
            await ws.send(b"{not json")
            await request(ws, "change_mode", [INFY])  # change_mode needs a mode
            await request(ws, "sub", [INFY], "fast")
            await until(lambda: sim.stats["bad_requests"] == 4, "bad requests counted")
            assert sim.stats["limit_rejections"] == 2
            assert sim._clients[0].modes == dict.fromkeys(keys[:2], "full")

    limits = {"ltpc": 5, "option_greeks": 5, "full": 2, "full_d30": 2}
    serve(test, individual_limits=limits, combined_limits={**limits, "ltpc": 1})


def test_limit_rule() -> None:
    assert limit_error(dict.fromkeys(map(str, range(5000)), "ltpc")) is None
    assert "at most 5000 (alone)" in str(limit_error(dict.fromkeys(map(str, range(5001)), "ltpc")))
    mixed = {**dict.fromkeys(map(str, range(2001)), "ltpc"), "x": "full"}
    assert "at most 2000 (combined" in str(limit_error(mixed))


def test_one_connection_per_user_the_newest_wins() -> None:
    async def test(sim: UpstoxSimulator) -> None:
        async with connect(await authorize(sim)) as first:
            await first.recv()
            async with connect(await authorize(sim)) as second:
                await second.recv()
                await asyncio.wait_for(first.wait_closed(), DEADLINE)
                assert first.close_code == 1000 and first.close_reason == "replaced by a new connection"
                assert sim.stats["replaced"] == 1 and len(sim._clients) == 1

    serve(test)


def test_pings_when_idle_and_market_status_changes_are_sent(pb: Any) -> None:
    async def test(sim: UpstoxSimulator) -> None:
        async with connect(await authorize(sim)) as ws:
            await frames(ws, pb, 1)
            await until(lambda: sim.stats["pings"] >= 3, "pings while idle")
            await sim.set_market_status(wire.NORMAL_CLOSE, ["NSE_EQ"])
            info = (await frames(ws, pb, 1))[0]
            status = dict(info.marketInfo.segmentStatus)
            assert status["NSE_EQ"] == pb.NORMAL_CLOSE and status["NSE_FO"] == pb.NORMAL_OPEN

    serve(test, ping_interval=0.05)


def test_fastflow_sim_upstox_command(tmp_path: Any, pb: Any) -> None:
    import re
    import signal
    import subprocess
    import sys

    dump = tmp_path / "NSE.json.gz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastflow", "sim", "--broker", "upstox", "--port", "0", "--duration", "60",
         "--instruments-out", str(dump), "--rate", "500"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        assert len(Instruments.from_upstox(dump)) == len(upstox_pairs()[1])

        async def client() -> None:
            status, body = await asyncio.to_thread(
                _get, f"http://127.0.0.1:{match.group(1)}{AUTHORIZE_PATH}")
            assert status == 200
            async with connect(body["data"]["authorized_redirect_uri"]) as ws:
                assert (await frames(ws, pb, 1))[0].type == pb.market_info
                await request(ws, "sub", [INFY], "full")
                assert (await frames(ws, pb, 1))[0].type == pb.initial_feed
                assert (await frames(ws, pb, 1))[0].type == pb.live_feed

        asyncio.run(client())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
        assert "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
