"""The plant (ingest + hot path in one process) and its /healthz endpoint,
against the Kite simulator over real loopback sockets: in-process, and as
`fastflow sim` + `fastflow plant` subprocesses stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from fastflow.cli import main
from fastflow.hotpath import MarketState, TickBatch
from fastflow.ingest.capture import CaptureWriter
from fastflow.ingest.replay import replay
from fastflow.instruments import Instruments
from fastflow.obs import metrics
from fastflow.obs.process import LineReader, children
from fastflow.services.plant import Plant, health_server, serve_plant
from fastflow.sim.market import KiteMarket
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe
from fastflow.store.consumer import TickStore
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from ..waiting import until

pytestmark = pytest.mark.usefixtures("event_loop_policy")  # asyncio, then uvloop

INFY, RELIANCE, NIFTY50 = 408065, 738561, 256265
SUBSCRIPTIONS = {INFY: "full", RELIANCE: "quote", NIFTY50: "ltp"}
DEADLINE = 10.0
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}



async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request to 127.0.0.1:port; return status, headers and body
    of the response (the server closes the connection after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            raw = await reader.read()  # until the server closes
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body) and headers["Connection"] == "close"
    return int(lines[0].split(" ")[1]), headers, body


async def healthz(port: int) -> tuple[int, dict[str, Any]]:
    status, _, body = await http(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return status, json.loads(body)


async def healthz_until(port: int, want: int, what: str) -> dict[str, Any]:
    """Poll /healthz until it answers ``want``; return that body."""
    async with asyncio.timeout(DEADLINE):
        while True:
            status, body = await healthz(port)
            if status == want:
                return body
            await asyncio.sleep(0.01)


def with_plant(test: Callable[[KiteSimulator, Plant, int], Awaitable[None]], **ingest_options: Any) -> Plant:
    async def main() -> Plant:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=8), KiteSimConfig(rate=1_000, heartbeat=0.2))
        await sim.start("127.0.0.1", 0)
        options = {"api_key": "fastflow", "access_token": "sim-token", "url": f"ws://127.0.0.1:{sim.port}/",
                   "watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05, "rng": random.Random(5),
                   **ingest_options}
        plant = Plant("kite", Instruments.from_kite_rows(rows), SUBSCRIPTIONS, ingest_options=options)
        server = health_server(plant, "127.0.0.1", 0)
        await server.start()
        task = asyncio.create_task(plant.run())
        try:
            await test(sim, plant, server.port)
        finally:
            plant.stop()
            await asyncio.wait_for(task, DEADLINE)
            await server.stop()
            await sim.stop()
        return plant

    return asyncio.run(main())


def test_healthz_is_200_with_the_plant_state_once_streaming() -> None:
    batches: list[TickBatch] = []

    async def test(sim: KiteSimulator, plant: Plant, port: int) -> None:
        plant.add_consumer(batches.append)
        body = await healthz_until(port, 200, "streaming")
        assert body["status"] == "ok" and body["state"] == "streaming" and body["broker"] == "kite"
        assert body["source"] == "live" and body["uptime_s"] >= 0 and "started_at" in body
        [connection] = body["ingest"]["connections"]
        assert connection["state"] == "streaming" and connection["connects"] == 1
        assert body["plant"]["subscriptions"] == 3 and body["plant"]["instruments"] == len(plant.state)
        await until(lambda: plant.flushes >= 5, "flushes")
        _, body = await healthz(port)
        assert body["plant"]["flushes"] >= 5 and body["plant"]["ticks"] >= body["plant"]["flushes"]
        assert body["last_tick_age_s"] is not None and body["decoder"]["frame_errors"] == 0

    plant = with_plant(test)
    assert len(batches) == plant.flushes and sum(len(b) for b in batches) == plant.ticks
    assert plant.ticks == plant.decoder.stats()["packets"]  # every packet was one tick of some flush


def test_healthz_is_503_while_the_feed_is_silent_or_down_then_200_again() -> None:
    async def test(sim: KiteSimulator, plant: Plant, port: int) -> None:
        await healthz_until(port, 200, "streaming")
        sim.silence(2.0)  # half-open: the watchdog fires, reconnects find a silent server
        body = await healthz_until(port, 503, "unavailable while silent")
        assert body["status"] == "unavailable" and body["state"] != "streaming"
        body = await healthz_until(port, 200, "streaming again")
        assert body["ingest"]["connections"][0]["watchdog_timeouts"] >= 1
        sim.expire_token()  # reconnects get 403 until the breaker opens: 503 for good
        sim.drop()
        body = await healthz_until(port, 503, "unavailable after the drop")
        await until(lambda: plant.ingest.health()["state"] == "auth_failed", "breaker open")
        status, body = await healthz(port)
        assert status == 503 and body["state"] == "auth_failed"

    with_plant(test, watchdog=0.3, backoff_base=0.2, backoff_cap=0.2)


def test_healthz_refuses_other_paths_methods_and_bad_requests() -> None:
    async def test(sim: KiteSimulator, plant: Plant, port: int) -> None:
        for path in (b"/nope", b"/metrics/x", b"/healthz/", b"/"):
            status, headers, body = await http(port, b"GET " + path + b" HTTP/1.1\r\n\r\n")
            error = json.loads(body)["error"]
            assert status == 404 and headers["Content-Type"] == "application/json"
            assert "GET /healthz" in error and "GET /metrics" in error
        status, headers, _ = await http(port, b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert status == 405 and headers["Allow"] == "GET"
        status, _, _ = await http(port, b"DELETE /healthz HTTP/1.0\r\n\r\n")
        assert status == 405
        status, headers, body = await http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert status == 405 and headers["Allow"] == "GET" and "/metrics" in json.loads(body)["error"]
        status, _, _ = await http(port, b"PUT /metrics?x=1 HTTP/1.0\r\n\r\n")
        assert status == 405
        status, headers, _ = await http(port, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")  # a query is fine
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
        status, _, _ = await http(port, b"nonsense\r\n\r\n")
        assert status == 400
        status, _, _ = await http(port, b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"x" * 20_000 + b"\r\n\r\n")
        assert status == 431
        status, _, _ = await http(port, b"GET /healthz?verbose=1 HTTP/1.1\r\n\r\n")  # a query is fine
        assert status in (200, 503)

    with_plant(test)


async def scrape(port: int) -> dict[str, float]:
    status, headers, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode()
    assert all(line.startswith(("# HELP fastflow_", "# TYPE fastflow_", "fastflow_")) for line in text.splitlines())
    assert text.count("# TYPE fastflow_tick_age_seconds histogram") == 1  # one family, one header
    return metrics.parse(text)


def age_count(series: dict[str, float], stage: str) -> float:
    count = series[f'fastflow_tick_age_seconds_count{{stage="{stage}"}}']
    assert series[f'fastflow_tick_age_seconds_bucket{{stage="{stage}",le="+Inf"}}'] == count
    return count


def test_metrics_count_every_tick_decoded_and_acknowledged_by_redis(redis_server: EmbeddedRedis) -> None:
    """/metrics: the plant's counters, the writer's, and the tick-age histograms:
    stage decoded counts every tick flushed, stage redis every tick of every
    flush Redis acknowledged (dropped flushes are not observed)."""
    from fastflow.store.writer import RedisWriter

    acknowledged = 0

    async def test(sim: KiteSimulator, plant: Plant, port: int) -> None:
        nonlocal acknowledged
        writer = RedisWriter(plant.state, RedisTarget.parse(f"unix://{redis_server.unix_socket}"), Keys("kite"),
                             max_in_flight=2)

        def on_flush(batch: TickBatch) -> None:
            nonlocal acknowledged
            written = writer.counters["written"]
            writer.on_flush(batch)
            if writer.counters["written"] > written:
                acknowledged += len(batch)

        plant.attach_store(writer, on_flush)
        task = asyncio.create_task(writer.run())  # the plant already runs: the store beside it, by hand
        try:
            series = await scrape(port)
            assert series["fastflow_plant_ticks_total"] == age_count(series, "decoded") == plant.ticks
            await until(lambda: plant.flushes >= 30 and writer.counters["written"] >= 20, "flushes written")
            series = await scrape(port)  # while streaming: the decoded stage is every tick flushed so far
            assert series["fastflow_plant_ticks_total"] == age_count(series, "decoded") > 0
            assert series["fastflow_plant_flushes_total"] > 0 and series["fastflow_plant_streaming_connections"] == 1
            assert series["fastflow_plant_healthy"] == 1 and series["fastflow_plant_connections"] == 1
            sim.config.rate = 1e-9  # stop the feed; let every write be acknowledged
            await until(lambda: writer.ready and writer.health()["in_flight"] == 0, "drained")
            await writer.drain()
            flushes = plant.flushes
            series = await scrape(port)
            assert plant.flushes == flushes, "the feed did not stop"
            assert age_count(series, "decoded") == plant.ticks == series["fastflow_plant_ticks_total"]
            assert age_count(series, "redis") == acknowledged > 0
            assert series["fastflow_plant_flushes_total"] == plant.flushes
            assert series["fastflow_redis_written_total"] == writer.counters["written"]
            assert series["fastflow_redis_dropped_total"] == writer.counters["dropped"]
            assert series["fastflow_redis_flushes_total"] == writer.counters["flushes"] <= plant.flushes
            assert series["fastflow_redis_errors_total"] == 0 and series["fastflow_redis_connected"] == 1
            assert series["fastflow_redis_in_flight"] == 0
            for name in ("frame_errors", "reconnects", "consumer_errors"):
                assert series[f"fastflow_plant_{name}_total"] == 0
            # ages are positive and small next to the windows they are measured in
            for stage in ("decoded", "redis"):
                p50 = metrics.quantile(series, "fastflow_tick_age_seconds", 0.5, labels=f'stage="{stage}"')
                assert p50 is not None and 0 < p50 < 5.0
            line = plant.status_line(0.0)
            assert re.search(r"p99 decoded [0-9.]+ ms, redis [0-9.]+ ms", line), line
            assert "p99 decoded -, redis -" in plant.status_line(0.0)  # nothing new since the last line
        finally:
            writer.stop()
            await asyncio.wait_for(task, DEADLINE)

    with_plant(test)


def test_a_failing_consumer_is_counted_and_the_plant_goes_on() -> None:
    def broken(batch: TickBatch) -> None:
        raise RuntimeError("redis down")

    async def test(sim: KiteSimulator, plant: Plant, port: int) -> None:
        plant.add_consumer(broken)
        await until(lambda: plant.consumer_errors >= 3, "errors counted")
        status, body = await healthz(port)
        assert status == 200 and body["plant"]["last_consumer_error"] == "RuntimeError: redis down"

    with_plant(test)


def test_replay_drives_the_same_state_as_the_replay_module(tmp_path: Path) -> None:
    rows = kite_universe()
    market = KiteMarket.from_rows(rows, seed=9)
    path = tmp_path / "feed.ffcap"
    with CaptureWriter(path, broker="kite", instruments="synthetic") as writer:
        for i in range(600):
            writer.append(1_763_700_000_000_000_000 + i * 1_000_000, market.step(20, ("full", "quote", "ltp")[i % 3]))
    instruments = Instruments.from_kite_rows(rows)
    expected = MarketState(instruments)
    reference = replay(path, expected)
    plant = Plant("kite", instruments, {}, replay=path)
    lines: list[str] = []
    asyncio.run(serve_plant(plant, health_port=None, status_every=None, report=lines.append))
    assert plant.state.array.tobytes() == expected.array.tobytes()
    assert plant.flushes == reference.flushes and plant.ticks == reference.updates
    health = plant.health()
    assert health["state"] == "finished" and health["status"] == "unavailable" and health["source"] == "replay"


def test_cli_plant_replay_exits_0_when_the_capture_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    market = KiteMarket.from_rows(kite_universe(), seed=10)
    path = tmp_path / "feed.ffcap"
    with CaptureWriter(path, broker="kite", instruments="synthetic") as writer:
        for i in range(50):
            writer.append(1_763_700_000_000_000_000 + i * 1_000_000, market.step(10, "quote"))
    assert main(["plant", "--replay", str(path), "--status-every", "60"]) == 0
    out = capsys.readouterr().out
    assert "/healthz on http://127.0.0.1:" in out and "500 ticks in 50 flushes" in out
    assert "/metrics on http://127.0.0.1:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbols", "NSE:INFY,NSE:NOSUCH"], "unknown instrument symbol 'NSE:NOSUCH'"),
        (["--symbols", "99999999"], "unknown instrument token 99999999"),
        ([], "--symbols NSE:INFY,... or --all"),
        (["--broker", "upstox", "--all"], "the feed is authorized over HTTP(S)"),
        (["--broker", "upstox", "--all", "--mode", "quote"], "not a upstox mode"),
        (["--all", "--instruments", "/nonexistent/instruments.csv"], "/nonexistent/instruments.csv"),
        (["--replay", "/nonexistent/feed.ffcap"], "/nonexistent/feed.ffcap"),
        (["--all", "--speed", "fast"], "--speed takes max or a number"),
    ],
)
def test_bad_configuration_exits_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plant", "--url", "ws://127.0.0.1:9/", *args]) == 2
    assert message in capsys.readouterr().err


def test_plant_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plant", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--health-port", "--symbols", "--all", "--replay", "--duration"):
        assert option in out


# -- subprocesses ------------------------------------------------------------------------------


def get_healthz(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(url, timeout=DEADLINE) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("broker", ["kite", "upstox"])
def test_plant_and_sim_commands_run_and_stop_cleanly_on_sigterm(broker: str) -> None:
    fastflow = [sys.executable, "-m", "fastflow"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sim = subprocess.Popen([*fastflow, "sim", "--broker", broker, "--port", "0", "--rate", "2000",
                                "--duration", "120"], stdout=subprocess.PIPE, env=ENV)
        processes.append(sim)
        banner = LineReader(sim, DEADLINE).until("127.0.0.1:")
        port = int(banner.split("127.0.0.1:")[1].split("/")[0].split(" ")[0])
        url = f"ws://127.0.0.1:{port}/" if broker == "kite" else f"http://127.0.0.1:{port}"
        plant = subprocess.Popen(
            [*fastflow, "plant", "--broker", broker, "--url", url, "--symbols", "NSE:INFY,NSE:NIFTY 50",
             "--health-port", "0", "--status-every", "0.2", "--duration", "120"],
            stdout=subprocess.PIPE, env=ENV,
        )
        processes.append(plant)
        out = LineReader(plant, DEADLINE)
        health = out.until("/healthz on ").split("/healthz on ")[1].strip()
        deadline = time.monotonic() + DEADLINE
        while get_healthz(health) != 200:
            assert time.monotonic() < deadline, f"/healthz never 200; plant said {out.seen}"
            time.sleep(0.05)
        redis_url = next(line for line in out.seen if "redis: unix://" in line).split("redis: ")[1].split()[0]
        store = TickStore(RedisTarget.parse(redis_url).client(), Keys(broker))
        deadline = time.monotonic() + DEADLINE
        while store.latest("NSE:INFY") is None:  # the embedded Redis gets the ticks
            assert time.monotonic() < deadline, "no NSE:INFY in Redis"
            time.sleep(0.05)
        assert store.latest("NSE:INFY")["symbol"] == "NSE:INFY"  # type: ignore[index]
        out.until("flushes written")  # a status line with the writer's counters
        assert re.search(r"p99 decoded ([0-9.]+ ms|-), redis ([0-9.]+ ms|-)", out.until("p99 decoded"))
        metrics_url = next(line for line in out.seen if "/metrics on " in line).split("/metrics on ")[1].strip()
        assert metrics_url == health.removesuffix("/healthz") + "/metrics"
        scraped = metrics.fetch(metrics_url, DEADLINE)
        assert scraped["fastflow_plant_ticks_total"] > 0
        assert scraped['fastflow_tick_age_seconds_count{stage="decoded"}'] == scraped["fastflow_plant_ticks_total"]
        assert scraped["fastflow_redis_written_total"] > 0
        redis_dir = redis_url.removeprefix("unix://").rsplit("/", 1)[0]
        plant.send_signal(signal.SIGTERM)
        assert plant.wait(timeout=DEADLINE) == 0
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=DEADLINE) == 0
        assert "stopped after" in out.until("stopped after")
        assert not os.path.exists(redis_dir), "the embedded Redis left its directory behind"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=DEADLINE)
    assert all(p.returncode is not None for p in processes)
    assert not [pid for pid in children() if pid in {p.pid for p in processes}], "orphan processes"


def test_hostile_broker_text_frames_do_not_end_the_plant_process() -> None:
    """``fastflow sim --fault hostile@T`` (JSON nested 5,000 deep: the plant exited 1
    on its RecursionError) every second: the plant counts them and streams on."""
    fastflow = [sys.executable, "-m", "fastflow"]
    faults = [f"--fault=hostile@{t}" for t in range(1, 40)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sim = subprocess.Popen([*fastflow, "sim", "--port", "0", "--rate", "2000", "--duration", "60", *faults],
                               stdout=subprocess.PIPE, env=ENV)
        processes.append(sim)
        banner = LineReader(sim, DEADLINE).until("127.0.0.1:")
        port = int(banner.split("127.0.0.1:")[1].split("/")[0].split(" ")[0])
        plant = subprocess.Popen(
            [*fastflow, "plant", "--url", f"ws://127.0.0.1:{port}/", "--symbols", "NSE:INFY", "--redis", "none",
             "--health-port", "0", "--status-every", "0.2", "--duration", "60"], stdout=subprocess.PIPE, env=ENV)
        processes.append(plant)
        out = LineReader(plant, DEADLINE)
        metrics_url = out.until("/metrics on ").split("/metrics on ")[1].strip()
        name = 'fastflow_plant_contained_errors_total{reason="text"}'
        deadline = time.monotonic() + 3 * DEADLINE
        while metrics.fetch(metrics_url, DEADLINE).get(name, 0) < 4:  # two per fault: nested, not JSON
            assert plant.poll() is None, f"the plant ended: {out.seen}"
            assert time.monotonic() < deadline, "no contained text frames"
            time.sleep(0.1)
        ticks = metrics.fetch(metrics_url, DEADLINE)["fastflow_plant_ticks_total"]
        while metrics.fetch(metrics_url, DEADLINE)["fastflow_plant_ticks_total"] <= ticks:
            assert time.monotonic() < deadline, "ticks stopped"
            time.sleep(0.05)
        assert get_healthz(metrics_url.removesuffix("/metrics") + "/healthz") == 200
        assert "contained failures" in out.until("contained failures")  # the status line says so
        plant.send_signal(signal.SIGTERM)
        assert plant.wait(timeout=DEADLINE) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=DEADLINE)


def test_unknown_symbol_exits_2_from_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "fastflow", "plant", "--symbols", "NSE:NOSUCH"],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 2
    assert "fastflow plant: unknown instrument symbol 'NSE:NOSUCH'" in result.stderr


def _redis_test(target_of: Callable[[], Any], restart: Callable[[], None] | None) -> None:
    """The plant against the simulator with a Redis writer; optionally Redis is
    killed and restarted mid-stream. Then the feed is stopped and Redis must
    hold exactly the plant's state."""
    from fastflow.store.writer import RedisWriter

    async def main() -> None:
        rows = kite_universe()
        sim = KiteSimulator(KiteMarket.from_rows(rows, seed=9), KiteSimConfig(rate=2_000, heartbeat=0.2))
        await sim.start("127.0.0.1", 0)
        options = {"api_key": "fastflow", "access_token": "sim-token", "url": f"ws://127.0.0.1:{sim.port}/",
                   "watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05}
        subscriptions = dict.fromkeys([int(t) for t in Instruments.from_kite_rows(rows).token[:100]], "full")
        plant = Plant("kite", Instruments.from_kite_rows(rows), subscriptions, ingest_options=options)
        target = target_of()
        keys = Keys("kite", prefix="plant")
        writer = RedisWriter(plant.state, target, keys, backoff_cap=0.1)
        plant.attach_store(writer, writer.on_flush)
        store = TickStore(target.client(), keys)
        task = asyncio.create_task(plant.run())
        try:
            # Every subscribed instrument has ticked (the market updates each at its own pace), so
            # what a test before this one left in Redis is overwritten, not compared.
            await until(lambda: plant.flushes > 20 and writer.counters["written"] > 20
                        and int((plant.state.array["seq"] > 0).sum()) == len(subscriptions), "writing")
            if restart is not None:
                restart()  # kill -9 and start again: Redis comes back empty
                await until(lambda: writer.counters["connects"] >= 2 and writer.state_name == "connected",
                            "writer reconnected")
                flushes = plant.flushes
                await until(lambda: plant.flushes > flushes + 20, "the feed went on")
            sim.config.rate = 1e-9  # stop the feed, let the writer catch up
            await until(lambda: writer.ready and writer.health()["in_flight"] == 0, "drained")
            await writer.drain()
            snapshot = plant.state.snapshot()
            expected = {symbol: snapshot[i] for i, symbol in enumerate(snapshot.symbols())}
            assert {s: msgpack.packb(t) for s, t in store.everything().items()} == expected
            assert plant.health()["redis"]["state"] == "connected"
        finally:
            plant.stop()
            await asyncio.wait_for(task, DEADLINE)
            await sim.stop()

    asyncio.run(main())


def test_the_plant_keeps_redis_current_across_a_redis_restart() -> None:
    from fastflow.store.embedded import EmbeddedRedis
    from fastflow.store.target import RedisTarget

    with EmbeddedRedis() as server:
        def restart() -> None:
            server.kill()
            server.restart()

        _redis_test(lambda: RedisTarget.parse(server.url), restart)


def test_the_plant_runs_on_a_redis_cluster(redis_cluster: Any) -> None:
    _redis_test(lambda: redis_cluster.target, None)


def test_a_replay_into_redis_waits_for_the_writer_and_drops_nothing(tmp_path: Path,
                                                                     redis_server: EmbeddedRedis) -> None:
    """At full speed a replay outruns Redis; it waits on the writer's backpressure
    instead of making it drop: every flush is written and acknowledged, in order."""
    rows = kite_universe()
    market = KiteMarket.from_rows(rows, seed=3)
    path = tmp_path / "feed.ffcap"
    with CaptureWriter(path, broker="kite", instruments="synthetic") as capture:
        for i in range(400):
            capture.append(1_763_700_000_000_000_000 + i * 1_000_000, market.step(200, "full"))
    plant = Plant("kite", Instruments.from_kite_rows(rows), {}, replay=path)
    writer = RedisWriter(plant.state, RedisTarget.parse(f"unix://{redis_server.unix_socket}"), Keys("kite"),
                         maxlen=10_000)
    plant.attach_store(writer, writer.on_flush)
    asyncio.run(serve_plant(plant, health_port=None, status_every=None, report=lambda _: None))
    assert plant.flushes == 400
    assert writer.counters["dropped"] == 0 and writer.counters["written"] == 400, writer.counters
    assert writer.tick_age.count == plant.ticks  # every flush acknowledged
    client = RedisTarget.parse(f"unix://{redis_server.unix_socket}").client()
    assert client.xlen(Keys("kite").ticks) == 400
