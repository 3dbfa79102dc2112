"""`fastflow run`: the main job as separate processes (embedded Redis, simulator or
broker, plant, gateway), its status line, clean stops, a dead child, the real-broker
path (pointed at a separately started simulator) and configuration errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastflow.client import connect
from fastflow.store.embedded import EmbeddedRedis
from tests.waiting import synchronous, until

START = 90.0  # seconds for the whole stack to come up on a loaded CI machine


class Run:
    """A `fastflow run` subprocess and everything it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def expect(self, pattern: str, deadline: float = START) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines:
                if match := regex.search(line):
                    found.append(match)
                    return True
            assert not self._reader.done(), f"`fastflow run` ended before {pattern!r}:\n{self.text}"
            return False

        await until(seen, f"{pattern!r} in the output of `fastflow run`:\n{self.text}", deadline)
        return found[0]

    async def finish(self, deadline: float = 60.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), deadline)
        await asyncio.wait_for(self._reader, deadline)
        return code

    def pids(self) -> dict[str, int]:
        """The children's pids from the `up:` line."""
        match = re.search(r"processes: (.*)$", self.text, re.M)
        assert match, self.text
        return {name: int(pid) for name, pid in re.findall(r"([\w-]+) (\d+)", match.group(1))}


async def start_run(*args: str, env: dict[str, str] | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastflow", "run", "--port", "0", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", "FASTFLOW_RUN_STATUS_EVERY": "0.5",
                                               "FASTFLOW_SIMULATOR_RATE": "2000", **(env or {})})
    return Run(process)


@contextlib.asynccontextmanager
async def started(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Run]:
    """`fastflow run` that is killed at the end if the test did not stop it."""
    run = await start_run(*args, env=env)
    try:
        yield run
    finally:
        if run.process.returncode is None:
            run.process.kill()
            await run.process.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: it has exited and waits for its parent
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def all_gone(pids: dict[str, int]) -> None:
    await until(lambda: not any(alive(pid) for pid in pids.values()), f"every child exited: {pids}")


@synchronous
async def test_run_serves_live_prices_and_stops_clean_on_sigint() -> None:
    async with started() as running:
        await _serves_and_stops(running)


async def _serves_and_stops(running: Run) -> None:
    match = await running.expect(r"dashboard (http://\S+)\s+websocket (ws://\S+)\s+redis unix://(\S+)")
    ws_url, socket_path = match.group(2), match.group(3)
    pids = running.pids()
    assert set(pids) == {"simulator", "plant", "gateway", "redis-server"}
    assert all(alive(pid) for pid in pids.values())
    assert Path(socket_path).exists()
    async with connect(ws_url, ["NSE:INFY", "NSE:NIFTY 50"]) as client:
        seen: set[str] = set()
        async for tick in client:
            assert tick["symbol"] in ("NSE:INFY", "NSE:NIFTY 50")
            assert tick["last_price"] > 0 and tick["receive_time_ns"] > 0
            seen.add(tick["symbol"])
            if len(seen) == 2:
                break
        # the status line reports the traffic and the connected client
        # and (issue 15) the embedded Redis's memory against its maxmemory, and the drops so far
        status = await running.expect(r"([\d,]+) ticks/s \| e2e p99 (\S+ ms|-) .* \| ([1-9]\d*) clients? \| redis "
                                      r"\S+ of 512\.00M \| dropped ([\d,]+) flush(es)? to redis, ([\d,]+) frames? "
                                      r"to slow clients")
        assert int(status.group(1).replace(",", "")) > 0
    running.process.send_signal(signal.SIGINT)
    assert await running.finish() == 0, running.text
    assert "stopped: every child exited, files removed" in running.text
    await all_gone(pids)
    assert not Path(socket_path).exists() and not Path(socket_path).parent.exists()
    run_dirs = re.findall(r"(/\S*fastflow-run-\w+)", running.text)
    assert all(not Path(d).exists() for d in run_dirs)


@synchronous
async def test_with_no_restarts_a_dead_child_stops_the_run_with_its_last_lines() -> None:
    async with started(env={"FASTFLOW_RUN_RESTARTS": "0"}) as running:
        await running.expect(r"dashboard http://")
        pids = running.pids()
        os.kill(pids["plant"], signal.SIGKILL)
        assert await running.finish() == 1, running.text
        assert re.search(rf"the plant \(pid {pids['plant']}\) was killed by SIGKILL; its last lines:\n    "
                         "fastflow plant:", running.text), running.text
        assert "stopping everything (exit status 1)" in running.text
        await all_gone(pids)


@synchronous
async def test_a_dead_or_hung_plant_is_restarted_while_the_gateway_keeps_its_clients() -> None:
    """SIGKILL, then SIGSTOP (a hung process answers nothing, /livez included): each
    time the plant comes back on its own, the gateway and its clients never left,
    and after the budget (2 restarts) the next failure gives up with the reason."""
    async with started(env={"FASTFLOW_RUN_RESTARTS": "2", "FASTFLOW_RUN_LIVENESS_TIMEOUT": "2"}) as running:
        ws_url = (await running.expect(r"websocket (ws://\S+)")).group(1)
        pids = running.pids()
        async with connect(ws_url, ["NSE:INFY"], reconnect=False) as client:
            ticks = aiter(client)

            async def fresh() -> None:
                """Ticks the plant received from now on reach this same connection."""
                since = time.time_ns()
                while (await asyncio.wait_for(anext(ticks), START))["receive_time_ns"] <= since:
                    pass

            await fresh()
            os.kill(pids["plant"], signal.SIGKILL)
            await running.expect(rf"the plant \(pid {pids['plant']}\) was killed by SIGKILL")
            back = int((await running.expect(r"the plant is back \(pid (\d+)\)")).group(1))
            assert back != pids["plant"] and alive(back)
            await fresh()
            os.kill(back, signal.SIGSTOP)
            await running.expect(rf"the plant \(pid {back}\) did not answer /livez for 2 s and was killed")
            again = int((await running.expect(rf"the plant is back \(pid (?!{back}\))(\d+)\)")).group(1))
            assert alive(again) and not alive(back)
            await fresh()
            assert alive(pids["gateway"]) and alive(pids["simulator"]) and alive(pids["redis-server"])
        os.kill(again, signal.SIGKILL)
        assert await running.finish() == 1, running.text
        assert "the plant failed 3 times within 300 s: giving up; stopping everything (exit status 1)" in running.text
        assert "restarting the plant in" in running.text and "(restart 2 of 2 within 300 s)" in running.text


@synchronous
async def test_a_dead_embedded_redis_is_restarted_and_clients_get_ticks_again() -> None:
    """The embedded redis-server SIGKILLed: restarted on the same socket, the plant
    rewrites its state, the gateway resubscribes, and the same client connection
    gets fresh ticks; the other children never left."""
    async with started() as running:
        ws_url = (await running.expect(r"websocket (ws://\S+)")).group(1)
        pids = running.pids()
        async with connect(ws_url, ["NSE:INFY"], reconnect=False) as client:
            ticks = aiter(client)
            await asyncio.wait_for(anext(ticks), START)
            os.kill(pids["redis-server"], signal.SIGKILL)
            await running.expect(rf"the embedded redis-server \(pid {pids['redis-server']}\) was killed by SIGKILL")
            back = int((await running.expect(r"the embedded redis-server is back \(pid (\d+)\)")).group(1))
            assert back != pids["redis-server"] and alive(back)
            since = time.time_ns()
            while (await asyncio.wait_for(anext(ticks), START))["receive_time_ns"] <= since:
                pass
            assert all(alive(pids[name]) for name in ("simulator", "plant", "gateway"))
        running.process.send_signal(signal.SIGTERM)
        assert await running.finish() == 0, running.text


@synchronous
async def test_a_gateway_that_cannot_listen_is_reported() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        async with started("--port", str(port)) as run:
            code = await run.finish(START)
    assert code == 1, run.text
    assert "could not start: the gateway" in run.text and "cannot listen on" in run.text, run.text


SECRETS = {"broker": "my-secret-token", "redis": "redis-pass-5f2c", "api key": "client-key-77aa",
           "token secret": "hmac-secret-91bd"}


def http_text(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


@synchronous
async def test_broker_credentials_connect_to_that_broker_and_no_secret_shows_anywhere(tmp_path: Path) -> None:
    """Credentials in the configuration: no simulator child; the plant logs in to
    the configured URL (here a simulator started on its own, standing in for Kite).
    With every secret set (the broker's token, a Redis password, the gateway's API
    keys and token secret), none appears in a child's argv or environment, in what
    `fastflow run` prints, in /healthz or /metrics of the plant and the gateway, or
    in `fastflow config` (the Redis password was in the children's argv and the banner)."""
    dump = tmp_path / "instruments.csv"
    redis_server = EmbeddedRedis(port=0, extra=("--requirepass", SECRETS["redis"])).start()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fastflow", "sim", "--port", "0", "--rate", "2000", "--api-key", "my-key",
        "--access-token", SECRETS["broker"], "--instruments-out", str(dump), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    env = {"FASTFLOW_BROKER_API_KEY": "my-key", "FASTFLOW_BROKER_ACCESS_TOKEN": SECRETS["broker"],
           "FASTFLOW_BROKER_INSTRUMENTS": str(dump), "FASTFLOW_BROKER_SYMBOLS": "NSE:INFY,NSE:TCS",
           "FASTFLOW_REDIS_URL": f"redis://:{SECRETS['redis']}@127.0.0.1:{redis_server.port}/0",
           "FASTFLOW_GATEWAY_API_KEYS": f"{SECRETS['api key']}=desk",
           "FASTFLOW_GATEWAY_TOKEN_SECRET": SECRETS["token secret"]}

    def leaks(text: str | bytes, where: str) -> None:
        for name, secret in SECRETS.items():
            found = secret.encode() in text if isinstance(text, bytes) else secret in text
            assert not found, f"the {name} secret in {where}"

    try:
        assert sim.stdout is not None
        line = (await asyncio.wait_for(sim.stdout.readline(), START)).decode()
        port = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        assert port, line
        env["FASTFLOW_BROKER_URL"] = f"ws://127.0.0.1:{port.group(1)}/"
        async with started(env=env) as run:
            match = await run.expect(r"websocket (ws://\S+)")
            plant = (await run.expect(r"plant (http://\S+)/metrics")).group(1)
            assert "from the real broker" in run.text
            assert set(run.pids()) == {"plant", "gateway"}
            for pid in run.pids().values():  # the configuration reached them in a file, not argv or environment
                for part in ("cmdline", "environ"):
                    with open(f"/proc/{pid}/{part}", "rb") as handle:
                        leaks(handle.read(), f"/proc/{pid}/{part}")
            async with connect(match.group(1), ["NSE:TCS"]) as client:
                async for tick in client:
                    assert tick["symbol"] == "NSE:TCS"
                    break
            dashboard = (await run.expect(r"dashboard (http://\S+)")).group(1)
            for url in (f"{plant}/healthz", f"{plant}/metrics", f"{dashboard}healthz", f"{dashboard}metrics"):
                body = await asyncio.to_thread(http_text, url)
                assert body
                leaks(body, url)
            await run.expect(r"ticks/s")  # a status line
            run.process.send_signal(signal.SIGTERM)
            assert await run.finish() == 0, run.text
            leaks(run.text, "the output of fastflow run")
        shown = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fastflow", "config", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env={**os.environ, **env})
        out, _ = await asyncio.wait_for(shown.communicate(), START)
        assert shown.returncode == 0 and b"[redis]" in out, out
        leaks(out, "fastflow config")
    finally:
        sim.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sim.wait(), 30)
        redis_server.stop()


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fastflow.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("env", "text", "needle"), [
    ({"FASTFLOW_GATEWAY_PORT": "http"}, "", "FASTFLOW_GATEWAY_PORT"),
    ({}, "[gateway]\nprot = 1\n", "gateway.prot"),
    ({}, "[broker]\nname = 'zerodha'\n", "broker.name"),
])
@synchronous
async def test_bad_configuration_is_refused_naming_the_key(tmp_path: Path, env: dict[str, str], text: str,
                                                          needle: str) -> None:
    async with started("--config", str(_toml(tmp_path, text)), env=env) as run:
        assert await run.finish() == 2
    assert needle in run.text, run.text
    assert "starting" not in run.text
