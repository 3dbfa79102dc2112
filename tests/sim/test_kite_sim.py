"""The Kite simulator over real loopback sockets: credentials, requests,
limits, heartbeats, frames fastflow decodes, and the official KiteTicker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

INFY, NIFTY50, RELIANCE = 408065, 256265, 738561
T = TypeVar("T")
DEADLINE = 10.0  # seconds; every wait below stops as soon as its condition holds


def run_with_sim(test: Callable[[KiteSimulator, str], Awaitable[T]], **config: Any) -> T:
    async def main() -> T:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=1), KiteSimConfig(**config))
        await sim.start("127.0.0.1", 0)
        try:
            return await asyncio.wait_for(test(sim, f"ws://127.0.0.1:{sim.port}"), DEADLINE * 3)
        finally:
            await sim.stop()

    return asyncio.run(main())


def url(base: str, key: str = "fastflow", token: str = "sim-token") -> str:
    return f"{base}/?api_key={key}&access_token={token}"


async def receive_until(ws: ClientConnection, done: Callable[[bytes | str], bool]) -> bytes | str:
    """Messages until one satisfies ``done`` (bounded by DEADLINE)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            message = await ws.recv()
            if done(message):
                return message


def test_wrong_credentials_get_403() -> None:
    async def test(sim: KiteSimulator, base: str) -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(base, token="expired")):
                pass
        assert info.value.response.status_code == 403
        assert sim.stats["refused"] == 1

    run_with_sim(test)


def test_subscribe_defaults_to_quote_then_mode_full_then_unsubscribe() -> None:
    state = MarketState(Instruments.from_kite_rows(kite_universe()))
    decoder = KiteDecoder(state)

    async def test(sim: KiteSimulator, base: str) -> None:
        async with connect(url(base)) as ws:
            await ws.send(json.dumps({"a": "subscribe", "v": [INFY, NIFTY50]}))

            def seen(mode: str) -> Callable[[bytes | str], bool]:
                def check(message: bytes | str) -> bool:
                    if isinstance(message, bytes):
                        decoder.feed(message)
                    return all(state.tick(t)["mode"] == mode for t in (INFY, NIFTY50))
                return check

            await receive_until(ws, seen("quote"))
            await ws.send(json.dumps({"a": "mode", "v": ["full", [INFY, NIFTY50]]}))
            await receive_until(ws, seen("full"))
            await ws.send(json.dumps({"a": "unsubscribe", "v": [INFY, NIFTY50]}))
            await receive_until(ws, lambda m: m == b"\x00")  # idle again: heartbeats only

    run_with_sim(test, rate=2_000)
    infy = state.tick("NSE:INFY")
    assert len(infy["depth"]["buy"]) == 5 and infy["depth"]["buy"][0]["price"] < infy["depth"]["sell"][0]["price"]
    assert decoder.stats()["frame_errors"] == 0 and decoder.stats()["unknown_tokens"] == 0


def test_idle_connection_gets_1_byte_heartbeats() -> None:
    async def test(sim: KiteSimulator, base: str) -> None:
        async with connect(url(base)) as ws:
            started = time.monotonic()
            assert await receive_until(ws, lambda m: True) == b"\x00"
            assert time.monotonic() - started >= 0.2  # after a stretch of silence, not at once

    run_with_sim(test, heartbeat=0.3)


def test_limits_and_bad_requests_get_error_frames() -> None:
    async def test(sim: KiteSimulator, base: str) -> list[dict[str, str]]:
        errors = []
        async with connect(url(base)) as ws:
            await ws.send(json.dumps({"a": "subscribe", "v": list(range(1, 7))}))  # 6 > max_tokens
            for bad in ("not json", json.dumps({"a": "subscribe", "v": "x"}), json.dumps({"a": "fly", "v": []})):
                await ws.send(bad)
            for _ in range(4):
                message = await receive_until(ws, lambda m: isinstance(m, str))
                errors.append(json.loads(message))
        return errors

    errors = run_with_sim(test, max_tokens=5)
    assert all(e["type"] == "error" for e in errors)
    assert "Maximum tokens per connection exceeded (5)" in errors[0]["data"]
    assert "Invalid message" in errors[1]["data"] and "Unknown action" in errors[3]["data"]


def test_fourth_connection_is_refused() -> None:
    async def test(sim: KiteSimulator, base: str) -> None:
        async with connect(url(base)), connect(url(base)), connect(url(base)):
            with pytest.raises(InvalidStatus) as info:
                async with connect(url(base)):
                    pass
            assert info.value.response.status_code == 429
        async with connect(url(base)):  # a slot is free again
            pass

    run_with_sim(test)


KITETICKER_CLIENT = r"""
import json, sys
from kiteconnect import KiteTicker

port = int(sys.argv[1])
kws = KiteTicker("fastflow", "sim-token", root=f"ws://127.0.0.1:{port}", reconnect=False)
seen = {}

def on_connect(ws, response):
    ws.subscribe([408065, 256265])
    ws.set_mode(ws.MODE_FULL, [408065, 256265])

def on_ticks(ws, ticks):
    for t in ticks:
        seen.setdefault(t["instrument_token"], []).append(t)
    full = {tok for tok, ts in seen.items() if any(t["mode"] == "full" for t in ts)}
    if full >= {408065, 256265}:
        print(json.dumps({str(k): v[-1] for k, v in seen.items()}, default=str), flush=True)
        ws.stop()

def on_error(ws, code, reason):
    print("ERROR", code, reason, file=sys.stderr, flush=True)

kws.on_connect, kws.on_ticks, kws.on_error = on_connect, on_ticks, on_error
kws.connect()
"""


def test_official_kiteticker_consumes_the_simulator() -> None:
    """kiteconnect's own KiteTicker, unchanged, pointed at `fastflow sim`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim = subprocess.Popen(
        [sys.executable, "-m", "fastflow", "sim", "--rate", "2000", "--duration", "60"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert sim.stdout is not None
        banner = sim.stdout.readline()
        port = int(banner.split("ws://127.0.0.1:")[1].split("/")[0])
        client = subprocess.run(
            [sys.executable, "-c", KITETICKER_CLIENT, str(port)], capture_output=True, text=True, timeout=60, env=env
        )
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert client.returncode == 0, client.stderr
    ticks = json.loads(client.stdout.strip().splitlines()[-1])
    infy, nifty = ticks[str(INFY)], ticks[str(NIFTY50)]
    assert infy["mode"] == "full" and infy["tradable"] is True and len(infy["depth"]["sell"]) == 5
    assert nifty["mode"] == "full" and nifty["tradable"] is False and "exchange_timestamp" in nifty
    assert infy["ohlc"]["low"] <= infy["last_price"] <= infy["ohlc"]["high"]


def test_market_steps_chosen_tokens() -> None:
    market = KiteMarket.from_rows(kite_universe(), seed=3)
    state = MarketState(Instruments.from_kite_rows(kite_universe()))
    decoder = KiteDecoder(state)
    assert decoder.feed(market.step_tokens([INFY, RELIANCE, NIFTY50], "quote")) == 3
    assert {state.tick(t)["mode"] for t in (INFY, RELIANCE, NIFTY50)} == {"quote"}
    assert state.dirty_count == 3
    with pytest.raises(KeyError):
        market.step_tokens([INFY, 12345], "full")
    with pytest.raises(ValueError, match="distinct"):
        market.step_tokens([INFY, INFY], "full")
    with pytest.raises(ValueError, match="mode"):
        market.step_tokens([INFY], "fast")


def test_fault_switch_parsing() -> None:
    from fastflow.sim.servers.faults import Fault

    assert Fault.parse("drop@10") == Fault("drop", 10.0, 0.0)
    assert Fault.parse("silence@2.5:7") == Fault("silence", 2.5, 7.0)
    assert Fault.parse("silence@1") == Fault("silence", 1.0, 5.0)
    for bad in ("explode@1", "drop", "drop@soon", "silence@1:-2"):
        with pytest.raises(ValueError, match="fault"):
            Fault.parse(bad)


def test_sim_command_injects_scheduled_faults() -> None:
    """`fastflow sim --fault drop@0.5`: a connected client is cut off, a reconnect is accepted."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim = subprocess.Popen(
        [sys.executable, "-m", "fastflow", "sim", "--duration", "20", "--fault", "drop@1", "--fault", "expire@2"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert sim.stdout is not None
        port = int(sim.stdout.readline().split("ws://127.0.0.1:")[1].split("/")[0])

        async def client() -> int:
            from websockets.exceptions import ConnectionClosed

            async with connect(url(f"ws://127.0.0.1:{port}")) as ws:
                with pytest.raises(ConnectionClosed):
                    async with asyncio.timeout(DEADLINE):
                        while True:
                            await ws.recv()
            async with asyncio.timeout(DEADLINE):  # after expire@2, upgrades get 403
                while True:
                    try:
                        async with connect(url(f"ws://127.0.0.1:{port}")):
                            await asyncio.sleep(0.05)
                    except InvalidStatus as exc:
                        return exc.response.status_code

        assert asyncio.run(client()) == 403
        lines = (line for line in iter(sim.stdout.readline, "") if "REST API on" not in line)
        assert "fault: dropped 1 connection(s)" in next(lines)
        assert "fault: access token expired" in next(lines)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    bad = subprocess.run([sys.executable, "-m", "fastflow", "sim", "--fault", "boom@1"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "expected NAME@SECONDS" in bad.stderr
