"""The day's instrument master, downloaded from the simulator's REST endpoints over
real loopback sockets and cached by day: reused the same day, downloaded again the
next (the older day removed), the 08:30 IST cut-over, and one clear line when the
download fails (with the `fastflow plant` exit status)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest

from fastflow.brokers import masters
from fastflow.brokers.tokens import IST
from fastflow.brokers.upstox.constants import INSTRUMENTS_PATH
from fastflow.config import BrokerSection
from fastflow.sim.servers.kite import KiteSimConfig
from fastflow.sim.servers.rest import KiteRest, RestServer, UpstoxRest
from fastflow.sim.servers.upstox import UpstoxSimConfig
from fastflow.sim.universe import kite_universe, upstox_universe

DEADLINE = 20.0
MORNING = dt.datetime(2026, 12, 1, 9, 0, tzinfo=IST)


def serve(app: Any, test: Callable[[RestServer], Awaitable[None]]) -> None:
    async def main() -> None:
        rest = await RestServer(app).start()
        try:
            await asyncio.wait_for(test(rest), DEADLINE)
        finally:
            await rest.stop()

    asyncio.run(main())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kite(rest: RestServer, state: Path, credentials: KiteSimConfig) -> BrokerSection:
    return BrokerSection(name="kite", api_key="fastflow", access_token=credentials.access_token, api_url=rest.url,
                         state_dir=str(state))


def upstox(rest: RestServer, state: Path) -> BrokerSection:
    return BrokerSection(name="upstox", access_token="t", instruments_url=rest.url + INSTRUMENTS_PATH,
                         state_dir=str(state))


@pytest.mark.parametrize("broker", ["kite", "upstox"])
def test_downloaded_once_a_day_and_again_the_next(tmp_path: Path, broker: str) -> None:
    credentials = KiteSimConfig()
    app: KiteRest | UpstoxRest = (KiteRest(credentials, kite_universe()) if broker == "kite"
                                  else UpstoxRest(UpstoxSimConfig(), upstox_universe()))
    rows = len(app.rows) if isinstance(app, KiteRest) else len(app.records)
    lines: list[str] = []

    async def test(rest: RestServer) -> None:
        section = kite(rest, tmp_path, credentials) if broker == "kite" else upstox(rest, tmp_path)

        async def master(now: dt.datetime) -> tuple[int, str]:
            instruments, path = await asyncio.to_thread(masters.day_master, section, now=now, report=lines.append)
            return len(instruments), path

        suffix = "csv.gz" if broker == "kite" else "json.gz"
        first = await master(MORNING)
        assert first == (rows, str(tmp_path / "instruments" / f"{broker}-2026-12-01.{suffix}"))
        assert "downloaded from http://127.0.0.1:" in lines[-1] and app.stats["instruments"] == 1
        assert await master(MORNING + dt.timedelta(hours=6)) == first  # the same day: the cached file
        assert lines[-1].endswith(f"{first[1]} (cached)") and app.stats["instruments"] == 1
        early = await master(dt.datetime(2026, 12, 2, 7, 0, tzinfo=IST))  # before 08:30: still the 1st's
        assert early == first and app.stats["instruments"] == 1
        second = await master(dt.datetime(2026, 12, 2, 8, 30, tzinfo=IST))  # the next day's
        assert second[1].endswith(f"{broker}-2026-12-02.{suffix}") and app.stats["instruments"] == 2
        assert os.listdir(tmp_path / "instruments") == [os.path.basename(second[1])]  # the older day removed

    serve(app, test)


def test_a_failed_download_is_one_line_naming_the_url_and_an_older_copy(tmp_path: Path) -> None:
    credentials = KiteSimConfig()
    app = KiteRest(credentials, kite_universe())

    async def test(rest: RestServer) -> None:
        section = kite(rest, tmp_path, credentials)
        await asyncio.to_thread(masters.day_master, section, now=MORNING)
        app.instruments_status = HTTPStatus.SERVICE_UNAVAILABLE
        with pytest.raises(masters.MasterDownloadError) as info:
            await asyncio.to_thread(masters.day_master, section, now=MORNING + dt.timedelta(days=1))
        older = tmp_path / "instruments" / "kite-2026-12-01.csv.gz"
        assert str(info.value).startswith(f"cannot download the kite instrument master from {rest.url}/instruments: "
                                          "HTTP 503: ")
        assert str(info.value).endswith(f"(an older copy: {older}; set broker.instruments to it to run with it)")
        assert "\n" not in str(info.value) and older.exists()
        app.instruments_status = HTTPStatus.OK
        wrong = dataclasses.replace(section, access_token="not-the-token")  # the session's Authorization is sent
        with pytest.raises(masters.MasterDownloadError, match=r"HTTP 403: .*TokenException"):
            await asyncio.to_thread(masters.day_master, wrong, now=MORNING + dt.timedelta(days=1))

    serve(app, test)
    unreachable = BrokerSection(name="kite", api_key="k", access_token="t", state_dir=str(tmp_path / "s"),
                                api_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(masters.MasterDownloadError, match=r"^cannot download the kite instrument master from "
                                                          r"http://127\.0\.0\.1:\d+/instruments: .*refused"):
        masters.day_master(unreachable, now=MORNING)


def test_when_the_master_is_downloaded() -> None:
    live = BrokerSection(api_key="k", access_token="t")
    assert masters.wants_download(live)  # the real broker, no dump named
    assert masters.master_url(live) == "https://api.kite.trade/instruments"
    assert masters.master_url(BrokerSection(name="upstox", access_token="t")) == \
        "https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz"
    assert not masters.wants_download(BrokerSection())  # the simulator: its synthetic universe
    assert not masters.wants_download(dataclasses.replace(live, instruments="/x.csv"))
    assert not masters.wants_download(dataclasses.replace(live, url="ws://127.0.0.1:9/"))  # a simulator's ticker
    assert masters.wants_download(dataclasses.replace(live, url="ws://127.0.0.1:9/", api_url="http://127.0.0.1:8"))


def test_the_plant_exits_1_with_one_line_when_the_download_fails(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTFLOW_")}
    env.update({"FASTFLOW_BROKER_API_KEY": "k", "FASTFLOW_BROKER_ACCESS_TOKEN": "t",
                "FASTFLOW_BROKER_API_URL": f"http://127.0.0.1:{closed_port()}",
                "FASTFLOW_BROKER_STATE_DIR": str(tmp_path)})
    result = subprocess.run([sys.executable, "-m", "fastflow", "plant", "--symbols", "NSE:INFY", "--redis", "none"],
                            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("fastflow plant: cannot download the kite instrument master from http://127.0.0.1:")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
