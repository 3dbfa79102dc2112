"""`fastflow record` and `fastflow plant` when the broker is not there, as
subprocesses of the real CLI over real sockets: pointed at the gateway's port
(which answers the upgrade with the dashboard's HTTP 200), record printed
``refused with HTTP 200`` five times and exited 0 with a 93-byte file; a plant
pointed at a closed port said ``connection lost ... reconnecting`` for ever, with
no way to give up. Now each ends with exit status 1 and one line naming the
reason, and the logs tell "cannot connect" from "connection lost"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastflow.obs.process import LineReader
from fastflow.store.embedded import EmbeddedRedis

from ..gateway_harness import free_port
from ..waiting import DEADLINE

FASTFLOW = [sys.executable, "-m", "fastflow"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def fastflow(*args: str, timeout: float = 4 * DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FASTFLOW, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts: killed (never left behind) whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=DEADLINE)


def start(processes: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*FASTFLOW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    processes.append(process)
    return process


def test_record_at_the_gateway_port_fails_at_once_with_the_reason(
        redis_server: EmbeddedRedis, tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    gateway = start(processes, "gateway", "--redis", f"unix://{redis_server.unix_socket}", "--port", "0")
    banner = LineReader(gateway, DEADLINE).until("websocket ws://")
    port = int(banner.split("websocket ws://127.0.0.1:")[1].split("/")[0])
    capture = tmp_path / "feed.ffcap"
    result = fastflow("record", "--url", f"ws://127.0.0.1:{port}/", "--out", str(capture), "--duration", "15")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"fastflow record: ws://127.0.0.1:{port}/ is not a Kite feed: it answered the WebSocket upgrade with "
        "HTTP 200 OK (check the URL)"]
    assert result.stdout == "" and not capture.exists()  # no empty capture left behind


def test_record_that_never_connects_exits_1_naming_the_reason(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    capture = tmp_path / "feed.ffcap"
    result = fastflow("record", "--url", url, "--out", str(capture), "--duration", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"fastflow record: never connected to {url}: [Errno 111]"), lines
    assert all(line.startswith(f"kite: cannot connect to {url} (never connected): ") for line in lines[:-1])
    assert not capture.exists()

    result = fastflow("record", "--url", url, "--out", str(capture), "--give-up-after", "0.5")  # no --duration
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"fastflow record: cannot connect to {url} for ") and last.endswith(
        "; gave up (give_up_after 0.5 s)"), last
    assert "connection lost" not in result.stderr


def test_plant_at_a_closed_port_says_cannot_connect_and_gives_up() -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    result = fastflow("plant", "--url", url, "--symbols", "NSE:INFY", "--redis", "none", "--give-up-after", "1",
                      "--status-every", "0.2")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"fastflow plant: cannot connect to {url} for ") and lines[-1].endswith(
        "; gave up (give_up_after 1 s)"), lines
    assert lines[:-1] and all(line.startswith(f"kite: cannot connect to {url} (never connected): ")
                              for line in lines[:-1]), lines
    assert "connection lost" not in result.stderr + result.stdout
    assert "; cannot connect for " in result.stdout  # the status line says so too

    result = fastflow("plant", "--url", url, "--symbols", "NSE:INFY", "--redis", "none", "--give-up-after", "-1")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "fastflow plant: command line: broker.give_up_after: expected a number of seconds >= 0 (0: never), "
        "got -1.0"]


def test_plant_whose_broker_goes_away_says_connection_lost_then_gives_up(
        processes: list[subprocess.Popen[bytes]]) -> None:
    sim = start(processes, "sim", "--port", "0", "--duration", "120")
    banner = LineReader(sim, DEADLINE).until("127.0.0.1:")
    port = int(banner.split("127.0.0.1:")[1].split("/")[0].split(" ")[0])
    url = f"ws://127.0.0.1:{port}/"
    plant = start(processes, "plant", "--url", url, "--symbols", "NSE:INFY,NSE:NIFTY 50", "--redis", "none",
                  "--health-port", "0", "--status-every", "0.2", "--give-up-after", "2", "--duration", "120")
    out = LineReader(plant, DEADLINE)
    out.until("fastflow plant: streaming: ")
    sim.send_signal(signal.SIGTERM)  # the broker goes away, for good
    assert sim.wait(timeout=DEADLINE) == 0
    assert plant.wait(timeout=DEADLINE) == 1  # by itself, once give_up_after ran out
    assert plant.stderr is not None
    lines = plant.stderr.read().decode().splitlines()
    assert lines[-1].startswith(f"fastflow plant: the connection to {url} was lost ") and lines[-1].endswith(
        "; gave up (give_up_after 2 s)"), lines
    assert "not re-established" in lines[-1]
    lost = [i for i, line in enumerate(lines) if line.startswith("kite: connection lost (")]
    cannot = [i for i, line in enumerate(lines) if line.startswith(f"kite: cannot connect to {url}: ")]
    assert len(lost) == 1 and cannot and lost[0] < cannot[0], lines  # lost once, then cannot reconnect
    assert not [line for line in lines if "never connected" in line]
    with pytest.raises(EOFError):
        out.until("never printed")  # read what is left of stdout
    assert any("; cannot connect for " in line for line in out.seen), out.seen
    assert not any("sim-token" in line for line in lines + out.seen)  # the query string is never shown
