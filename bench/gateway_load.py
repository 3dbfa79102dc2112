"""The WebSocket gateway's fan-out under load: many clients, each with its own
watchlist, fed from Redis pub/sub at a fixed flush rate.

    .venv/bin/python bench/gateway_load.py --scenario a     # 1,000 clients, 20k ticks/s
    .venv/bin/python bench/gateway_load.py --scenario b     # 5,000 clients, 10 flushes/s
    .venv/bin/python bench/gateway_load.py --scenario c     # a ramp of client counts at 10 flushes/s
    .venv/bin/python bench/gateway_load.py --scenario d     # 1,000 clients, a ramp of ticks per flush
    .venv/bin/python bench/gateway_load.py --scenario floor # plain socket.send() cost, no gateway
    .venv/bin/python bench/gateway_load.py --scenario all --repeat 3

Every figure can be overridden (--clients, --flush-hz, --ticks, --duration,
--ramp, --workers, ...; see --help); --profile DIR samples the gateway with
py-spy over the measured window.

Writes bench/results/gateway.json (one entry per scenario run, merged with the
entries already there) and bench/results/gateway.md (a table of all of them).

Processes, all on this machine (bound to 127.0.0.1 / a unix socket only):

1. an embedded ``redis-server`` (``fastflow.store.embedded``);
2. the gateway, ``python -m fastflow gateway --port 0`` (uvloop), as a
   subprocess; with ``--pin`` (the default on 2+ cores) it is pinned to CPU 1
   and every other process to CPU 0, so it has a core of its own.
   ``--gateway-loop asyncio`` runs the CLI on the default loop instead;
3. this process, the publisher: it writes the instrument master and the
   latest state of all 404 synthetic Kite instruments once with the plant's
   RedisWriter, then PUBLISHes one frame to ``ff:{kite}:live`` every
   1/flush-hz seconds. Each frame is the plant's own: KiteMarket packets of
   ``--ticks`` distinct instruments -> KiteDecoder -> MarketState.flush() ->
   TickBatch.frame(). ``time.time_ns()`` taken just before the decode is the
   ticks' ``receive_time_ns``, so a client's ``now - receive_time_ns`` is the
   publish -> client latency (decode + PUBLISH + Redis + gateway + socket +
   the client's own event loop);
4. ``--workers`` client processes (``python -m fastflow.tools.loadgen``, the load
   client ``fastflow bench e2e`` uses too), each running its share of the
   clients on one uvloop loop. A client is a minimal
   raw-asyncio WebSocket client (handshake by hand, masked client frames,
   unmasked server frames parsed from the header only) that subscribes to
   ``--watch`` random symbols (seeded per client) and counts frames, bytes and
   ticks (from the msgpack array header) of every frame. It checks a sample:
   every frame of the first ``--full-clients`` clients and 1 in
   ``--sample-every`` frames of the others are scanned for each tick's
   symbol, seq and receive_time_ns (a regex over the msgpack bytes, checked
   against ``msgpack.unpackb`` on 1 in ``--verify-every`` of them): symbols
   must be on the client's watchlist, seqs must increase per symbol, and
   every scanned tick gives one latency sample, timed when ``data_received``
   starts on the frame's last bytes (the worker's ``"stamp": "receive"``).

The gateway's own view comes from its ``/metrics`` (scraped before and after
the measured window, parsed with ``fastflow.obs.metrics``): the fan-out histogram
(the gateway hop, coarse buckets), the tick-age histograms at the gateway's
stages (``tick_age`` in the JSON: publish -> frame received, publish -> every
client's frame written), frames and ticks sent, conflations, disconnects. RSS comes from
/proc (before any client and with all of them subscribed), CPU from
/proc/<pid>/stat over the window, for every process, and the machine's busy
time from /proc/stat: when the machine is saturated the load generator
competes with the gateway, so the figures understate what the gateway would
do on a machine of its own (the notes say so, run by run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastflow.obs import health, metrics
from fastflow.obs.process import LineReader, die_with_parent, stop_process, wait_ready
from fastflow.tools.loadgen import (
    cpu_seconds,
    cpu_times,
    latency_quantiles,
    machine,
    raise_fd_limit,
    rss_kb,
    system_times,
    watchlist,
)

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"

SCENARIOS: dict[str, dict[str, Any]] = {
    "a": {"title": "1,000 clients at 20k ticks/s", "clients": 1000, "flush_hz": 100.0, "ticks": 200,
          "duration": 15.0},
    "b": {"title": "5,000 clients at 10 frames/s each", "clients": 5000, "flush_hz": 10.0, "ticks": 200,
          "duration": 15.0},
    "c": {"title": "ramp at 10 flushes/s", "ramp": [1000, 2000, 3000, 4000, 5000, 8000], "flush_hz": 10.0,
          "ticks": 200, "duration": 10.0},
    "d": {"title": "1,000 clients, flush size ramp", "clients": 1000, "ramp": [25, 50, 100, 200, 404],
          "flush_hz": 10.0, "ticks": 200, "duration": 8.0},
    "floor": {"title": "the kernel's floor: plain socket.send() to N loopback sockets, no gateway",
              "ramp": [1000, 5000], "sizes": [2000, 19000], "rounds": 40},
}
SCAN_RATE = 2000
TARGET_P99_MS = 50.0
TARGET_HOP_P99_MS = 2.0


# -- the driver: processes, /proc, /metrics ----------------------------------------------


NETSTAT_KEYS = ("PruneCalled", "RcvPruned", "TCPRcvCollapsed", "TCPBacklogDrop", "TCPRcvQDrop",
                "TCPWantZeroWindowAdv", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv", "TCPMemoryPressures")


def tcp_counters() -> dict[str, int]:
    """TcpExt counters of this network namespace that show receive-side pressure."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith("TcpExt:"):
                out.update({k: int(v) for k, v in zip(names.split()[1:], values.split()[1:], strict=False)
                            if k in NETSTAT_KEYS})
    return out


def scrape(port: int) -> dict[str, float]:
    """The gateway's /metrics as {series (with labels): value} (:func:`fastflow.obs.metrics.fetch`)."""
    return metrics.fetch(f"http://127.0.0.1:{port}/metrics", 10.0)


def hist_quantiles(before: dict[str, float], after: dict[str, float], name: str,
                   qs: tuple[float, ...], labels: str = "") -> dict[str, Any]:
    """Quantiles of a histogram (``name`` without the ``fastflow_`` prefix) over the
    window (after - before): the bucket's upper bound (what the gateway can say) and a
    linear interpolation inside it (:func:`fastflow.obs.metrics.quantile`)."""
    full = f"fastflow_{name}"
    suffix = f"{{{labels}}}" if labels else ""
    count = after.get(f"{full}_count{suffix}", 0.0) - before.get(f"{full}_count{suffix}", 0.0)
    total_s = after.get(f"{full}_sum{suffix}", 0.0) - before.get(f"{full}_sum{suffix}", 0.0)
    result: dict[str, Any] = {"count": int(count), "mean_ms": total_s / count * 1e3 if count else None}
    for q in qs:
        bound = metrics.quantile(after, full, q, labels=labels, before=before, interpolate=False)
        estimate = metrics.quantile(after, full, q, labels=labels, before=before)
        result[f"p{q * 100:g}_le_ms"] = None if bound is None else bound * 1e3
        result[f"p{q * 100:g}_est_ms"] = None if estimate is None else estimate * 1e3
    return result


class Publisher:
    """The plant's frames into Redis: the instrument master and latest state once
    (RedisWriter), then one PUBLISH per flush at a fixed rate."""

    def __init__(self, redis_url: str, seed: int = 1) -> None:
        from fastflow.hotpath import KiteDecoder, MarketState
        from fastflow.instruments import Instruments
        from fastflow.sim.market import KiteMarket
        from fastflow.sim.universe import kite_universe
        from fastflow.store.keys import Keys
        from fastflow.store.target import RedisTarget

        rows = kite_universe()
        self.target = RedisTarget.parse(redis_url)
        self.keys = Keys()
        self.market = KiteMarket.from_rows(rows, seed=seed)
        self.state = MarketState(Instruments.from_kite_rows(rows))
        self.decoder = KiteDecoder(self.state)
        self.symbols = [str(s) for s in self.state.instruments.symbol]
        self.slot = {s: i for i, s in enumerate(self.symbols)}
        self.redis_url = redis_url
        self._client: Any = None

    def load(self) -> None:
        """Instruments, ids, meta and the latest tick of every instrument, as the plant writes them."""
        from fastflow.store.writer import RedisWriter

        async def main() -> None:
            writer = RedisWriter(self.state, self.target, self.keys)
            task = asyncio.create_task(writer.run())
            deadline = time.monotonic() + 20
            while not writer.ready:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis writer not connected: {writer.last_error}")
                await asyncio.sleep(0.01)
            self.decoder.feed(self.market.step(len(self.symbols), "full"), time.time_ns())
            writer.on_flush(self.state.flush())
            await writer.drain()
            writer.stop()
            await asyncio.wait_for(task, 10)

        asyncio.run(main())

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.redis_url)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def publish(self, seconds: float, hz: float, ticks: int, mode: str) -> dict[str, Any]:
        """Publish ``seconds * hz`` flushes of ``ticks`` instruments, one every 1/hz s
        (on an absolute schedule); their slot lists, for the expected deliveries."""
        client, channel = self.client, self.keys.live
        market, decoder, state = self.market, self.decoder, self.state
        total = max(1, round(seconds * hz))
        interval = 1.0 / hz
        flushes: list[list[int]] = []
        late = 0
        frame_bytes = 0
        start = time.perf_counter()
        for i in range(total):
            packets = market.step(ticks, mode)  # made before its slot: not part of the latency
            due = start + i * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif -wait > interval:
                late += 1
            decoder.feed(packets, time.time_ns())
            batch = state.flush()
            frame = batch.frame()
            client.publish(channel, frame)
            frame_bytes += len(frame)
            flushes.append([int(s) for s in batch.slots])
        elapsed = time.perf_counter() - start + interval  # flush i is due at i * interval: total intervals
        return {"flushes": total, "seconds": elapsed, "late": late, "frame_bytes": frame_bytes,
                "slots": flushes}


def expected_deliveries(publisher: Publisher, watchlists: list[list[str]], flushes: list[list[int]]) -> dict[str, int]:
    """Frames and ticks the fan-out owes the clients for these flushes, with no conflation."""
    import numpy as np

    n = len(publisher.symbols)
    watch = np.zeros((len(watchlists), n), dtype=bool)
    for i, symbols in enumerate(watchlists):
        watch[i, [publisher.slot[s] for s in symbols]] = True
    frames = ticks = 0
    for slots in flushes:
        hits = watch[:, slots].sum(axis=1)
        frames += int(np.count_nonzero(hits))
        ticks += int(hits.sum())
    return {"frames": frames, "ticks": ticks}


class Run:
    """One measured run: a fresh gateway and client workers against a shared Redis and publisher."""

    def __init__(self, publisher: Publisher, redis_pid: int, *, clients: int, flush_hz: float, ticks: int,
                 duration: float, watch: int = 50, workers: int = 2, mode: str = "full", seed: int = 7,
                 full_clients: int = 10, sample_every: int = 0, verify_every: int = 50,
                 high_water: int | None = None, lag_limit: float | None = None, pin: bool = False,
                 connect_concurrency: int = 64, connect_timeout: float = 60.0, gateway_loop: str = "uvloop",
                 profile_dir: Path | None = None, py_spy: str = "py-spy", py_spy_args: tuple[str, ...] = (),
                 log: Any = None) -> None:
        self.publisher = publisher
        self.redis_pid = redis_pid
        self.clients = clients
        self.flush_hz = flush_hz
        self.ticks = ticks
        self.duration = duration
        self.watch = watch
        self.workers = max(1, min(workers, clients))
        self.mode = mode
        self.seed = seed
        self.full_clients = full_clients
        # 0: about SCAN_RATE checked frames a second in all (the checks cost the client side CPU)
        self.sample_every = sample_every or max(1, round(clients * flush_hz / SCAN_RATE))
        self.verify_every = verify_every
        self.high_water = high_water
        self.lag_limit = lag_limit
        self.pin = pin
        self.connect_concurrency = connect_concurrency
        self.connect_timeout = connect_timeout
        self.gateway_loop = gateway_loop
        self.profile_dir = profile_dir
        self.profile_path = Path()
        self.py_spy = py_spy
        self.py_spy_args = py_spy_args
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.gateway: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.extra: list[subprocess.Popen[bytes]] = []  # py-spy

    def _start_gateway(self, stderr_path: Path) -> int:
        if self.gateway_loop == "uvloop":
            cmd = [sys.executable, "-m", "fastflow"]
        else:  # the CLI on the default asyncio loop: uvloop made unimportable
            cmd = [sys.executable, "-c", "import sys; sys.modules['uvloop'] = None; from fastflow.cli import main; "
                   "sys.exit(main(sys.argv[1:]))"]
        cmd += ["gateway", "--redis", self.publisher.redis_url, "--host", "127.0.0.1", "--port", "0",
                "--partition", self.publisher.keys.partition]
        if self.high_water is not None:
            cmd += ["--high-water", str(self.high_water)]
        if self.lag_limit is not None:
            cmd += ["--lag-limit", str(self.lag_limit)]
        with open(stderr_path, "wb") as err:
            self.gateway = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                            preexec_fn=die_with_parent)
        line = LineReader(self.gateway).readline(30.0)
        found = re.search(r"websocket ws://[^ ]*:(\d+)/ws", line)
        if not found:
            raise RuntimeError(f"cannot read the gateway's port from {line!r}")
        port = int(found.group(1))

        def healthy() -> bool:
            with contextlib.suppress(OSError):
                return health.get(f"http://127.0.0.1:{port}/healthz", 2.0)[0] == 200
            return False

        if not wait_ready(self.gateway, healthy, 30.0, 0.05):
            tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
            code = self.gateway.poll()
            why = "not ready (healthz) in 30 s" if code is None else f"exited ({code})"
            raise TimeoutError(f"gateway {why}: {' / '.join(tail)}")
        return port

    def execute(self) -> dict[str, Any]:
        try:
            return self._execute()
        finally:
            for proc in self.procs:
                with contextlib.suppress(OSError, ValueError):
                    if proc.stdin is not None:
                        proc.stdin.close()
            for proc in self.procs + self.extra:
                stop_process(proc, 5.0)
            stop_process(self.gateway)

    def _execute(self) -> dict[str, Any]:
        pub = self.publisher
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"fastflow-gateway-load-{os.getpid()}.log"
        port = self._start_gateway(log_path)
        assert self.gateway is not None
        gw_pid = self.gateway.pid
        if self.pin and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(gw_pid, {1})
            os.sched_setaffinity(0, {0})
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.redis_pid, {0})
        time.sleep(0.3)
        rss_before = rss_kb(gw_pid)
        self.log(f"  gateway pid {gw_pid} on port {port}, RSS {rss_before / 1024:.1f} MiB; "
                 f"connecting {self.clients:,} clients over {self.workers} workers")
        ids = [list(range(w, self.clients, self.workers)) for w in range(self.workers)]
        readers = []
        for share in ids:
            proc = subprocess.Popen([sys.executable, "-m", "fastflow.tools.loadgen"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent)
            self.procs.append(proc)
            # latency stamped in data_received (publish -> client receive), as the results say
            cfg = {"host": "127.0.0.1", "port": port, "ids": share, "symbols": sorted(pub.symbols),
                   "watch": self.watch, "seed": self.seed, "full_clients": self.full_clients,
                   "sample_every": self.sample_every, "verify_every": self.verify_every, "stamp": "receive",
                   "concurrency": self.connect_concurrency, "connect_timeout": self.connect_timeout}
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(cfg) + "\n").encode())
            proc.stdin.flush()
            readers.append(LineReader(proc))
        readies = [json.loads(r.readline(self.connect_timeout + 60)) for r in readers]
        connected = sum(r["connected"] for r in readies)
        failures: Counter[str] = Counter()
        for r in readies:
            failures.update(r["failures"])
        if not connected:
            raise RuntimeError(f"no client connected: {dict(failures)}")
        time.sleep(0.5)
        rss_connected = rss_kb(gw_pid)
        self.log(f"  {connected:,}/{self.clients:,} clients subscribed in "
                 f"{max(r['seconds'] for r in readies):.1f} s; gateway RSS {rss_connected / 1024:.1f} MiB"
                 + (f"; failures {dict(failures)}" if failures else ""))
        if self.pin:
            for proc in self.procs:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(proc.pid, {0})

        # -- the measured window
        m0 = scrape(port)
        pids = {"gateway": [gw_pid], "clients": [p.pid for p in self.procs], "redis": [self.redis_pid],
                "publisher": [os.getpid()]}
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        gw_sys0 = cpu_times(gw_pid)[1]
        sys0 = system_times()
        net0 = tcp_counters()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        time.sleep(0.2)
        spy = None
        if self.profile_dir:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            self.profile_path = self.profile_dir / f"gateway-{self.clients}c-{self.flush_hz:g}hz.txt"
            spy = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(gw_pid), "--rate", "250",
                 *(self.py_spy_args or ("--nonblocking",)), "--duration", str(max(1, int(self.duration))),
                 "--format", "raw", "--output", str(self.profile_path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
            self.extra.append(spy)
        t0 = time.monotonic()
        self.log(f"  publishing {self.flush_hz:g} flushes/s x {self.ticks} ticks for {self.duration:g} s")
        published = pub.publish(self.duration, self.flush_hz, self.ticks, self.mode)
        # where the backlog is when publishing stops: in Redis (the gateway's subscriber output
        # buffer), or flushes taken but not yet seen by the clients
        omem = sum(int(c.get("omem", 0)) for c in pub.client.client_list(_type="pubsub"))
        frames_in0 = m0.get("fastflow_gateway_frames_in_total", 0.0)
        taken = scrape(port).get("fastflow_gateway_frames_in_total", 0.0) - frames_in0
        # until the gateway has taken every flush off Redis, then a moment for the sockets
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if scrape(port).get("fastflow_gateway_frames_in_total", 0.0) - frames_in0 >= published["flushes"]:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        window = time.monotonic() - t0
        cpu1 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        gw_sys1 = cpu_times(gw_pid)[1]
        sys1 = system_times()
        net1 = tcp_counters()
        m1 = scrape(port)
        rss_end = rss_kb(gw_pid)
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"stop\n")
            proc.stdin.flush()
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(spy)
        results = [json.loads(r.readline(60)) for r in readers]

        # -- figures
        seconds = published["seconds"]
        latency: Counter[int] = Counter()
        for r in results:
            latency.update({int(k): v for k, v in r["latency"].items()})
        per_client = sorted(f for r in results for f in r["per_client_frames"])
        total = {k: sum(r[k] for r in results) for k in
                 ("frames", "ticks", "bytes", "uncounted", "scanned", "verified", "scan_mismatch", "foreign",
                  "seq_errors", "lost", "no_frames", "live_at_end")}
        closes: Counter[str] = Counter()
        other: Counter[str] = Counter()
        for r in results:
            closes.update(r["closes"])
            other.update(r["other"])
        watchlists = [watchlist(self.seed, cid, sorted(pub.symbols), self.watch) for cid in range(self.clients)]
        expected = expected_deliveries(pub, watchlists, published["slots"])

        def delta(name: str) -> float:
            return m1.get(name, 0.0) - m0.get(name, 0.0)

        disconnects = {k.split('"')[1]: v - m0.get(k, 0.0) for k, v in m1.items()
                       if k.startswith("fastflow_gateway_disconnects_total{") and v - m0.get(k, 0.0)}
        busy = (sys1[0] - sys0[0]) / max(1, sys1[1] - sys0[1]) * (os.cpu_count() or 1) * 100
        cpu = {k: round((cpu1[k] - cpu0[k]) / window * 100, 1) for k in pids}
        hop = hist_quantiles(m0, m1, "gateway_fanout_seconds", (0.5, 0.99, 0.999))
        # the gateway's own latency accounting: age of the ticks (from the publisher's receive_time_ns)
        # when the frame arrives and when every client's frame is written (docs/protocol.md)
        ages = {stage: hist_quantiles(m0, m1, "tick_age_seconds", (0.5, 0.99, 0.999), f'stage="{stage}"')
                for stage in ("gateway", "sent")}
        lat = latency_quantiles(latency, (0.5, 0.99, 0.999))
        lat["max_ms"] = max((r["latency_max_us"] for r in results), default=0) / 1e3
        by_second: dict[int, Counter[int]] = {}
        for r in results:
            for sec, hist in r["latency_by_second"].items():
                by_second.setdefault(int(sec), Counter()).update({int(k): v for k, v in hist.items()})
        lat["p99_by_second_ms"] = [round(latency_quantiles(by_second[sec], (0.99,))["p99_ms"], 1)
                                   for sec in sorted(by_second) if sum(by_second[sec].values()) >= 100]
        mid = per_client[len(per_client) // 2] if per_client else 0
        figures: dict[str, Any] = {
            "clients": self.clients, "connected": connected, "connect_failures": dict(failures),
            "watchlist": self.watch, "ticks_per_flush": self.ticks, "mode": self.mode,
            "flush_hz_target": self.flush_hz, "flush_hz": published["flushes"] / seconds,
            "offered_ticks_per_s": published["flushes"] * self.ticks / seconds,
            "published_flushes": published["flushes"], "publish_seconds": round(seconds, 3),
            "late_flushes": published["late"], "frame_bytes_mean": published["frame_bytes"] / published["flushes"],
            "gateway_frames_in": int(delta("fastflow_gateway_frames_in_total")),
            "backlog_at_end": {"flushes_not_taken_by_gateway": published["flushes"] - int(taken),
                               "redis_output_buffer_mb": round(omem / 1e6, 1)},
            "frames_expected": expected["frames"], "ticks_expected": expected["ticks"],
            "frames_sent": int(delta("fastflow_gateway_frames_total")),
            "ticks_sent": int(delta("fastflow_gateway_ticks_delivered_total")),
            "frames_received": total["frames"], "ticks_received": total["ticks"],
            "frames_per_s": total["frames"] / seconds, "deliveries_per_s": total["ticks"] / seconds,
            "expected_deliveries_per_s": expected["ticks"] / seconds,
            "mb_per_s": total["bytes"] / seconds / 1e6,
            "per_client_frames_per_s": {"min": per_client[0] / seconds if per_client else 0,
                                        "median": mid / seconds,
                                        "max": per_client[-1] / seconds if per_client else 0},
            "latency": lat, "gateway_hop": hop, "tick_age": ages,
            "conflations": int(delta("fastflow_gateway_conflations_total")),
            "catch_ups": int(delta("fastflow_gateway_catch_ups_total")),
            "gateway_disconnects": disconnects,
            "redis_reconnects": int(delta("fastflow_gateway_redis_connects_total")),
            "gateway_rss_mib": {"before": round(rss_before / 1024, 1), "connected": round(rss_connected / 1024, 1),
                                "end": round(rss_end / 1024, 1)},
            "gateway_rss_kib_per_client": round((rss_connected - rss_before) / max(1, connected), 1),
            "cpu_percent": cpu, "gateway_kernel_cpu_percent": round((gw_sys1 - gw_sys0) / window * 100, 1),
            "machine_busy_percent": round(busy, 1),
            "tcp_pressure": {k: net1[k] - net0.get(k, 0) for k in net1 if net1[k] - net0.get(k, 0)},
            "cores": os.cpu_count(),
            "window_seconds": round(window, 3),
            "checks": {**{k: total[k] for k in ("scanned", "verified", "scan_mismatch", "foreign", "seq_errors",
                                                 "uncounted", "lost", "no_frames", "live_at_end")},
                       "closes": dict(closes), "other_frames": dict(other)},
            "sample_every": self.sample_every, "workers": self.workers, "pinned": self.pin,
            "gateway_loop": self.gateway_loop, "high_water": self.high_water, "lag_limit": self.lag_limit,
        }
        if spy is not None and self.profile_path.exists():
            figures["profile"] = {"file": str(self.profile_path), "top": profile_summary(self.profile_path)}
        errors = log_path.read_text(errors="replace").strip().splitlines()[-5:] if log_path.exists() else []
        with contextlib.suppress(OSError):
            log_path.unlink()
        if errors:
            figures["gateway_log_tail"] = errors
        figures["notes"] = notes(figures)
        return figures


def profile_summary(path: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: the share of samples per leaf frame (self)
    and per frame anywhere on the stack (inclusive), in percent."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1].split(":")[0] if " (" in f else f
                  for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return {"self": [], "inclusive": []}
    return {"self": [(f, round(n / total * 100, 1)) for f, n in own.most_common(top)],
            "inclusive": [(f, round(n / total * 100, 1)) for f, n in inclusive.most_common(top * 2)]}


def send_floor(clients: int, size: int, reading: bool, rounds: int = 20,
               pin: bool = True) -> tuple[float, float, float]:
    """Microseconds per ``socket.send(size bytes)`` to each of ``clients`` loopback TCP
    sockets in turn (the 10th, 50th and 90th percentile of ``rounds`` rounds 0.1 s apart), with a child process
    holding the other ends: blocked in epoll and reading everything (``reading``), or
    never reading. The least a one-write-per-client fan-out pays on this machine."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    port = srv.getsockname()[1]
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader: never returns
        try:
            if pin:
                os.sched_setaffinity(0, {0})
            socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
            os.write(ready_w, b"x")
            poll = select.epoll()
            by_fd = {}
            for sock in socks:
                sock.setblocking(False)
                by_fd[sock.fileno()] = sock
                poll.register(sock.fileno(), select.EPOLLIN)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if not reading:
                    time.sleep(0.2)
                    continue
                for fd, _ in poll.poll(0.5):
                    with contextlib.suppress(BlockingIOError):
                        by_fd[fd].recv(1 << 20)
        finally:
            os._exit(0)
    conns: list[socket.socket] = []
    try:
        if pin:
            os.sched_setaffinity(0, {1})
        conns = [srv.accept()[0] for _ in range(clients)]
        os.read(ready_r, 1)
        payload = b"x" * size
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for conn in conns:
                conn.send(payload)
            times.append(time.perf_counter() - start)
            time.sleep(0.1)
        times.sort()
        p10, p50, p90 = (times[int(q * (len(times) - 1))] / clients * 1e6 for q in (0.1, 0.5, 0.9))
        return p10, p50, p90
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for conn in conns:
            conn.close()
        srv.close()
        os.close(ready_r)
        os.close(ready_w)
        if pin:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def run_floor(spec: dict[str, Any], pin: bool) -> dict[str, Any]:
    rows = []
    for clients in spec["ramp"]:
        for size in spec["sizes"]:
            for reading in (True, False):
                # unread data piles up in the kernel: at most ~64 KB per socket (TCP memory limits)
                rounds = spec["rounds"] if reading else max(3, min(spec["rounds"], 65536 // size))
                p10, us, p90 = send_floor(clients, size, reading, rounds, pin=pin and (os.cpu_count() or 1) > 1)
                rows.append({"clients": clients, "bytes": size, "rounds": rounds,
                             "reader": "reading (blocked in epoll)" if reading else "not reading",
                             "us_per_send": round(us, 2), "us_p10": round(p10, 2), "us_p90": round(p90, 2),
                             "ms_per_round": round(us * clients / 1e3, 2)})
                print(f"  {clients:,} sockets, {size:,} bytes, reader {rows[-1]['reader']}: {us:.2f} us per send "
                      f"(rounds p10 {p10:.2f}, p90 {p90:.2f}), {us * clients / 1e3:.2f} ms per round",
                      file=sys.stderr, flush=True)
    return {"kind": "floor", "rows": rows, "pinned": pin}


def notes(f: dict[str, Any]) -> list[str]:
    """What the figures mean on this machine, said plainly."""
    out = []
    cpu = f["cpu_percent"]
    cores = f["cores"] or 1
    if f["machine_busy_percent"] >= 90 * cores:
        out.append(f"machine saturated ({f['machine_busy_percent']:.0f}% of {cores} cores busy): the load "
                   f"generator (clients {cpu['clients']:.0f}%, redis {cpu['redis']:.0f}%, publisher "
                   f"{cpu['publisher']:.0f}%) shares the cores with the gateway ({cpu['gateway']:.0f}%), so "
                   "client-side queueing is part of the latency")
    if cpu["gateway"] >= 90:
        out.append(f"gateway process at {cpu['gateway']:.0f}% CPU: its one core is the bottleneck")
    elif cpu["clients"] >= 90 * max(1, cores - 1):
        out.append("the client workers are the bottleneck")
    generator = cpu["clients"] + cpu["redis"] + cpu["publisher"]
    if f.get("pinned") and generator >= 80:
        out.append(f"CPU 0 (clients, redis, publisher) at {generator:.0f}%: the load generator is at or near its "
                   "limit, so client-side queueing is part of the latency")
    backlog = f.get("backlog_at_end", {})
    if backlog.get("flushes_not_taken_by_gateway", 0) >= 10:
        out.append(f"the gateway fell behind its feed: {backlog['flushes_not_taken_by_gateway']} flushes "
                   f"({backlog['redis_output_buffer_mb']} MB) still queued in Redis when publishing stopped; "
                   "nothing conflates that queue, it grows until Redis's pub/sub output limit (32 MB hard, "
                   "8 MB for 60 s by default) drops the subscription (then the gateway reconnects and reseeds "
                   "from the latest hash)")
    if f["conflations"]:
        out.append(f"{f['conflations']:,} conflations: clients were behind their high-water mark "
                   "(sockets not drained fast enough), so some ticks were merged, as designed")
    if f["gateway_frames_in"] < f["published_flushes"]:
        out.append(f"the gateway took only {f['gateway_frames_in']} of {f['published_flushes']} flushes off "
                   "Redis within the window")
    if f["redis_reconnects"]:
        out.append(f"the gateway's Redis subscription reconnected {f['redis_reconnects']} times "
                   "(pub/sub output buffer limit?)")
    if f["late_flushes"]:
        out.append(f"the publisher was late for {f['late_flushes']} flushes")
    trend = f["latency"].get("p99_by_second_ms") or []
    if len(trend) >= 4 and trend[-2] > 2 * trend[0] and trend[-2] > 20:
        out.append(f"latency grew during the run (p99 by second {trend[0]:g} -> {trend[-2]:g} ms): queues "
                   "were building, the offered load is above what this machine sustains, and the figures "
                   "depend on the run's length")
    lat = f["latency"]["p99_ms"]
    if lat is not None:
        verdict = "meets" if lat < TARGET_P99_MS else "misses"
        out.append(f"publish -> client p99 {lat:.1f} ms {verdict} the {TARGET_P99_MS:g} ms target")
    hop = f["gateway_hop"]["p99_le_ms"]
    if hop is not None:
        out.append(f"gateway hop p99 <= {hop:g} ms (histogram bucket; interpolated ~"
                   f"{f['gateway_hop']['p99_est_ms']:.2f} ms) vs the {TARGET_HOP_P99_MS:g} ms target")
    return out


# -- results ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else "inf" if math.isinf(value) else f"{value:.1f}"


ROWS: list[tuple[str, Any]] = [
    ("clients connected / asked", lambda f: f"{f['connected']:,} / {f['clients']:,}"),
    ("watchlist (symbols per client)", lambda f: f"{f['watchlist']}"),
    ("flushes/s (target)", lambda f: f"{f['flush_hz']:.1f} ({f['flush_hz_target']:g})"),
    ("ticks per flush (mode)", lambda f: f"{f['ticks_per_flush']} ({f['mode']})"),
    ("offered ticks/s", lambda f: f"{f['offered_ticks_per_s']:,.0f}"),
    ("frames/s received (all clients)", lambda f: f"{f['frames_per_s']:,.0f}"),
    ("frames/s per client (min / median / max)",
     lambda f: "{min:.1f} / {median:.1f} / {max:.1f}".format(**f["per_client_frames_per_s"])),
    ("deliveries/s received (ticks)", lambda f: f"{f['deliveries_per_s']:,.0f}"),
    ("deliveries/s owed (no conflation)", lambda f: f"{f['expected_deliveries_per_s']:,.0f}"),
    ("frames sent / received / owed",
     lambda f: f"{f['frames_sent']:,} / {f['frames_received']:,} / {f['frames_expected']:,}"),
    ("MB/s received", lambda f: f"{f['mb_per_s']:,.1f}"),
    ("latency p50 (publish -> client)", lambda f: _ms(f["latency"]["p50_ms"]) + " ms"),
    ("latency p99", lambda f: _ms(f["latency"]["p99_ms"]) + " ms"),
    ("latency p99.9", lambda f: _ms(f["latency"]["p99.9_ms"]) + " ms"),
    ("latency max", lambda f: _ms(f["latency"]["max_ms"]) + " ms"),
    ("latency p99 by second of the run", lambda f: " ".join(f"{v:g}" for v in f["latency"]["p99_by_second_ms"])),
    ("latency samples (ticks)", lambda f: f"{f['latency']['samples']:,}"),
    ("gateway hop p50 / p99 (bucket bound)",
     lambda f: f"<= {f['gateway_hop']['p50_le_ms']:g} / <= {f['gateway_hop']['p99_le_ms']:g} ms"
     if f["gateway_hop"]["p99_le_ms"] is not None else "n/a"),
    ("gateway hop p99 interpolated / mean",
     lambda f: f"~{_ms2(f['gateway_hop']['p99_est_ms'])} / {_ms2(f['gateway_hop']['mean_ms'])} ms"),
    ("backlog when publishing stopped: flushes not yet read by the gateway (Redis buffer)",
     lambda f: "{flushes_not_taken_by_gateway} ({redis_output_buffer_mb} MB)".format(**f["backlog_at_end"])),
    ("conflations / catch-ups", lambda f: f"{f['conflations']:,} / {f['catch_ups']:,}"),
    ("gateway disconnects", lambda f: ", ".join(f"{k} {v:g}" for k, v in f["gateway_disconnects"].items()) or "0"),
    ("gateway RSS before / connected / end",
     lambda f: "{before} / {connected} / {end} MiB".format(**f["gateway_rss_mib"])),
    ("gateway RSS per client", lambda f: f"{f['gateway_rss_kib_per_client']:.1f} KiB"),
    ("CPU % gateway / clients / redis / publisher",
     lambda f: "{gateway} / {clients} / {redis} / {publisher}".format(**f["cpu_percent"])),
    ("gateway CPU in the kernel (socket writes)", lambda f: f"{f['gateway_kernel_cpu_percent']:.0f}%"),
    ("machine busy", lambda f: f"{f['machine_busy_percent']:.0f}% of {f['cores']} cores"),
    ("checks: foreign symbols / seq errors / clients without frames",
     lambda f: f"{f['checks']['foreign']} / {f['checks']['seq_errors']} / {f['checks']['no_frames']}"),
    ("checks: frames scanned (msgpack-verified, mismatches)",
     lambda f: f"{f['checks']['scanned']:,} ({f['checks']['verified']:,}, {f['checks']['scan_mismatch']})"),
]


def _generator_cpu(e: dict[str, Any]) -> float:
    """CPU % of the load generator: the client workers, redis and the publisher."""
    return float(e["cpu_percent"]["clients"] + e["cpu_percent"]["redis"] + e["cpu_percent"]["publisher"])


def _runs(runs: list[Any]) -> str:
    return f"{len(runs)} run" + ("" if len(runs) == 1 else "s")


def summary(entries: dict[str, dict[str, Any]]) -> list[str]:
    """What the stored runs say about the targets, one line per scenario family."""
    out: list[str] = []
    fam: dict[str, list[dict[str, Any]]] = {}
    for e in entries.values():
        fam.setdefault(e.get("family", ""), []).append(e)

    def rng(values: list[float], fmt: str = "{:.1f}") -> str:
        values = sorted(values)
        return fmt.format(values[0]) if len(values) == 1 else f"{fmt.format(values[0])} - {fmt.format(values[-1])}"

    for name in sorted(fam):
        runs = [e for e in fam[name] if e.get("kind") != "floor"]
        if name.startswith("a") and runs:
            hops = [e["gateway_hop"]["mean_ms"] for e in runs]
            p99s = [e["latency"]["p99_ms"] for e in runs]
            out.append(f"**{name}** ({runs[0]['clients']:,} clients, {runs[0]['flush_hz']:.0f} flushes/s x "
                       f"{runs[0]['ticks_per_flush']} ticks, {_runs(runs)}): every frame delivered and checked, "
                       f"{rng([e['mb_per_s'] for e in runs], '{:,.0f}')} MB/s; gateway hop mean "
                       f"{rng(hops)} ms, p99 <= {max(e['gateway_hop']['p99_le_ms'] for e in runs):g} ms "
                       f"(target {TARGET_HOP_P99_MS:g} ms: missed); publish -> client p99 {rng(p99s)} ms; gateway "
                       f"CPU {rng([e['cpu_percent']['gateway'] for e in runs], '{:.0f}')}%, the load generator's "
                       f"{rng([_generator_cpu(e) for e in runs], '{:.0f}')}%: "
                       "both sides near their core's limit, so the latency swings from run to run.")
        elif name.startswith("b") and runs:
            p99s = [e["latency"]["p99_ms"] for e in runs]
            met = sum(1 for v in p99s if v < TARGET_P99_MS)
            out.append(f"**{name}** ({runs[0]['clients']:,} clients at {runs[0]['flush_hz']:.0f} frames/s each, "
                       f"{_runs(runs)}): publish -> client p99 {', '.join(f'{v:.1f}' for v in p99s)} ms: "
                       f"{met} of {len(runs)} under {TARGET_P99_MS:g} ms; the gateway's fan-out of one flush "
                       f"takes {rng([e['gateway_hop']['mean_ms'] for e in runs])} ms (mean hop), which is most "
                       "of it: the last client of a flush waits for all the others' writes.")
        elif name.startswith("c") and runs:
            ok = [e["clients"] for e in runs if e["latency"]["p99_ms"] is not None
                  and e["latency"]["p99_ms"] < TARGET_P99_MS]
            steps = ", ".join(f"{e['clients']:,}: {e['latency']['p99_ms']:.0f} ms"
                              for e in sorted(runs, key=lambda e: (e["clients"], e.get("repeat", 1))))
            out.append(f"**{name}** (ramp at {runs[0]['flush_hz']:.0f} flushes/s): p99 by client count {steps}; "
                       f"the largest count with p99 < {TARGET_P99_MS:g} ms: "
                       f"{max(ok):,}." if ok else f"**{name}**: no step under {TARGET_P99_MS:g} ms ({steps}).")
        elif name.startswith("d") and runs:
            steps = ", ".join(f"{e['ticks_per_flush']}: {e['gateway_hop']['mean_ms']:.1f} ms"
                              for e in sorted(runs, key=lambda e: e["ticks_per_flush"]))
            ordered = sorted(runs, key=lambda e: e["ticks_per_flush"])
            small, large = ordered[0], ordered[-1]

            def per(e: dict[str, Any]) -> float:
                return float(e["gateway_hop"]["mean_ms"] * 1e3 / max(1, e["connected"]))

            out.append(f"**{name}** ({runs[0]['clients']:,} clients, ramp of ticks per flush): gateway hop mean by "
                       f"ticks per flush {steps}: {per(small):.1f} us per client with "
                       f"{small['mb_per_s'] * 1e6 / max(1, small['frames_per_s']) / 1e3:.1f} KB frames, "
                       f"{per(large):.1f} us with {large['mb_per_s'] * 1e6 / max(1, large['frames_per_s']) / 1e3:.1f} "
                       "KB frames: a per-client cost (one socket write each), not the bytes, sets the hop.")
        floor = [e for e in fam[name] if e.get("kind") == "floor"]
        for e in floor:
            us = [r["us_per_send"] for r in e["rows"] if r["reader"].startswith("reading")]
            out.append(f"**{name}**: a plain `socket.send()` to a loopback TCP socket costs {rng(us, '{:.1f}')} us "
                       "here whatever the size (2-19 KB): any design with one write per client per flush pays that "
                       f"per client, i.e. >= {min(us):.1f} ms per flush at 1,000 clients.")
    return out


def _ms2(value: float | None) -> str:
    return "n/a" if value is None else "inf" if math.isinf(value) else f"{value:.2f}"


def write_results(runs: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """Merge ``runs`` into gateway.json and rewrite gateway.md from all entries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "gateway.json"
    stored: dict[str, Any] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            stored = json.loads(path.read_text())
    families = {e["family"] for e in runs.values()}  # a family run again replaces all its entries
    entries = {k: e for k, e in stored.get("runs", {}).items() if e.get("family") not in families}
    entries.update(runs)
    payload = {"suite": "gateway load", "machine": machine(), "runs": entries}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    lines = [
        "# Gateway fan-out under load",
        "",
        f"Machine: {machine()}. Everything on this one machine: redis-server (unix socket), the gateway "
        "process (uvloop), the publisher (this script) and the client worker processes share the cores.",
        "",
        "Latency is publish -> client: `time.time_ns()` just before the plant's decoder makes the flush "
        "(its ticks' `receive_time_ns`) to the client's `time.time_ns()` in `data_received` of the frame's "
        "last bytes; so it includes the decode, PUBLISH, Redis, the gateway, the socket and the client's "
        "own event loop. The gateway hop is the gateway's `fastflow_gateway_fanout_seconds` histogram (frame "
        "parsed off Redis -> last client's frame written), whose buckets are coarse (1, 2.5, 5, 10 ms): the "
        "bound is what it can say, the interpolation is a guess inside the bucket.",
        "",
        "The gateway runs as `python -m fastflow gateway` (uvloop, as the CLI runs it; the runs below "
        "before 2026-11-21T04:30 used `python -O`, to step around an assert that failed on uvloop's "
        "transports, since fixed; -O changes nothing else on this path). With `--pin` (the default here) "
        "the gateway has CPU 1 to itself and "
        "everything else (redis, the publisher, the client workers) shares CPU 0.",
        "",
    ]
    lines += ["## Summary", "", *[f"- {line}" for line in summary(entries)], ""]
    order = sorted({e["family"] for e in entries.values() if e.get("kind") != "floor"})
    for e in (e for e in entries.values() if e.get("kind") == "floor"):
        lines += [f"## {e['family']}: {e.get('title', '')}", "",
                  f"`{e.get('command', '')}` ({e.get('when', '')}). Writer pinned to CPU 1 and the reader "
                  "process to CPU 0, as the gateway and the clients are above." if e.get("pinned") else "", "",
                  "| sockets | bytes per send | the other ends | us per send, median round (p10 - p90) "
                  "| ms per round (all sockets) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['clients']:,} | {r['bytes']:,} | {r['reader']} | {r['us_per_send']:.2f} "
                  f"({r.get('us_p10', 0):.2f} - {r.get('us_p90', 0):.2f}) | {r['ms_per_round']:.2f} |"
                  for r in e["rows"]]
        lines += [""] + [f"- {note}" for note in e.get("extra_notes", [])] + [""]
    for family in order:
        keys = sorted((k for k, e in entries.items() if e["family"] == family),
                      key=lambda k: (entries[k].get("step", 0), entries[k].get("repeat", 1)))
        first = entries[keys[0]]
        lines += [f"## {family}: {first.get('title', '')}", "",
                  f"`{first.get('command', '')}` ({first.get('when', '')})", "",
                  "| | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for label, fn in ROWS:
            cells = []
            for k in keys:
                try:
                    cells.append(fn(entries[k]))
                except (KeyError, TypeError, ValueError):
                    cells.append("n/a")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        for k in keys:
            notes_k = entries[k].get("notes", []) + entries[k].get("extra_notes", [])
            if notes_k:
                lines.append(f"{k}:")
                lines.append("")
                lines += [f"- {note}" for note in notes_k]
                lines.append("")
    (out_dir / "gateway.md").write_text("\n".join(lines).rstrip() + "\n")


# -- main ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Load-test the WebSocket gateway's fan-out (see the module docstring). Scenarios: "
        + "; ".join(f"{k}: {v['title']}" for k, v in SCENARIOS.items()) + ".")
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="a", help="which scenario (default a)")
    p.add_argument("--clients", type=int, default=None, help="override the scenario's client count")
    p.add_argument("--ramp", default=None,
                   help="scenario c's client counts, or scenario d's ticks per flush, comma-separated")
    p.add_argument("--flush-hz", type=float, default=None, help="override the flushes per second")
    p.add_argument("--ticks", type=int, default=None, help="override the ticks per flush (at most 404)")
    p.add_argument("--duration", type=float, default=None, help="override the publishing seconds")
    p.add_argument("--mode", choices=["ltp", "quote", "full"], default="full", help="Kite packet mode")
    p.add_argument("--watch", type=int, default=50, help="symbols per client (default 50)")
    p.add_argument("--workers", type=int, default=2, help="client worker processes (default 2)")
    p.add_argument("--full-clients", type=int, default=10, help="clients that check every frame (default 10)")
    p.add_argument("--sample-every", type=int, default=0,
                   help=f"the other clients check 1 in this many frames (default 0: about {SCAN_RATE:,} checked "
                   "frames/s in all)")
    p.add_argument("--verify-every", type=int, default=50,
                   help="1 in this many checked frames is also decoded with msgpack (default 50)")
    p.add_argument("--high-water", type=int, default=None, help="the gateway's --high-water (default its own)")
    p.add_argument("--lag-limit", type=float, default=None, help="the gateway's --lag-limit (default its own)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) > 1,
                   help="pin the gateway to CPU 1 and everything else to CPU 0, so the gateway has a core of "
                   "its own (default on with 2+ cores)")
    p.add_argument("--gateway-loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="the gateway's event loop: uvloop as the CLI runs it, "
                   "or the default asyncio loop")
    p.add_argument("--profile", default=None, metavar="DIR",
                   help="sample the gateway with py-spy (pip install py-spy) over the window; collapsed "
                   "stacks go to DIR, a summary to the results")
    p.add_argument("--py-spy", default=None, help="the py-spy binary (default: on PATH)")
    p.add_argument("--profile-native", action="store_true",
                   help="py-spy --native: C frames too (pauses the gateway for each sample: slows it)")
    p.add_argument("--seed", type=int, default=7, help="watchlist seed (default 7)")
    p.add_argument("--repeat", type=int, default=1, help="run each scenario (step) this many times (default 1)")
    p.add_argument("--label", default="", help="suffix for the result keys (e.g. -pinned)")
    p.add_argument("--stop-above-ms", type=float, default=None,
                   help="scenario c: stop the ramp after a step whose p99 is above this (default: run all)")
    p.add_argument("--out-dir", default=str(RESULTS_DIR), help="results directory (default bench/results)")
    p.add_argument("--no-write", action="store_true", help="print the figures, write no files")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite gateway.md (and the notes) from gateway.json; run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render_only:
        stored = json.loads((Path(args.out_dir) / "gateway.json").read_text())["runs"]
        for e in stored.values():
            if e.get("kind") != "floor":
                e["notes"] = notes(e)
        write_results(stored, Path(args.out_dir))
        return 0
    from fastflow.store.embedded import EmbeddedRedis

    limit = raise_fd_limit()
    command = "python bench/gateway_load.py " + " ".join(sys.argv[1:] if argv is None else argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    steps: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        spec = {**SCENARIOS[name], "family": f"{name}{args.label}"}
        if name == "floor":
            if args.ramp:
                spec["ramp"] = [int(x) for x in args.ramp.split(",")]
            steps.append((f"floor{args.label}", {**spec, "clients": max(spec["ramp"])}))
            continue
        changed = []
        for key in ("clients", "flush_hz", "ticks", "duration"):
            if getattr(args, key) is not None:
                spec[key] = getattr(args, key)
                changed.append(f"{key} {spec[key]:g}")
        if changed:
            spec["title"] += f" (changed: {', '.join(changed)})"
        if name in ("c", "d"):
            field = "clients" if name == "c" else "ticks"
            ramp = [int(x) for x in args.ramp.split(",")] if args.ramp else spec["ramp"]
            variants = [(f"{name}:{n}{args.label}", {**spec, field: n, "step": n}) for n in ramp]
        else:
            variants = [(f"{name}{args.label}", {**spec, "step": 0})]
        for key, variant in variants:
            for i in range(1, args.repeat + 1):
                steps.append((key if i == 1 else f"{key}#{i}", {**variant, "repeat": i}))
    need = max(s["clients"] for _, s in steps) + 200
    if limit < need:
        print(f"warning: RLIMIT_NOFILE {limit} < {need}: raise the hard limit (ulimit -Hn)", file=sys.stderr)
    py_spy = args.py_spy or shutil.which("py-spy") or "py-spy"
    if args.profile and not os.access(py_spy, os.X_OK) and not shutil.which(py_spy):
        print("--profile needs py-spy: pip install py-spy (or --py-spy PATH)", file=sys.stderr)
        return 2
    runs: dict[str, dict[str, Any]] = {}
    server = EmbeddedRedis().start()
    publisher: Publisher | None = None
    try:
        assert server.process is not None
        publisher = Publisher(server.url)
        publisher.load()
        for key, spec in steps:
            if spec.get("sizes"):
                print(f"{key}: {spec['title']}", file=sys.stderr, flush=True)
                figures = run_floor(spec, args.pin)
                figures.update({"title": spec["title"], "command": command, "family": spec["family"],
                                "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine()})
                runs[key] = figures
                continue
            print(f"{key}: {spec['clients']:,} clients x {args.watch} symbols, {spec['flush_hz']:g} flushes/s x "
                  f"{spec['ticks']} {args.mode} ticks, {spec['duration']:g} s", file=sys.stderr, flush=True)
            run = Run(publisher, server.process.pid, clients=spec["clients"], flush_hz=spec["flush_hz"],
                      ticks=spec["ticks"], duration=spec["duration"], watch=args.watch, workers=args.workers,
                      mode=args.mode, seed=args.seed, full_clients=args.full_clients,
                      sample_every=args.sample_every, verify_every=args.verify_every,
                      high_water=args.high_water, lag_limit=args.lag_limit, pin=args.pin,
                      gateway_loop=args.gateway_loop, profile_dir=Path(args.profile) if args.profile else None,
                      py_spy=py_spy, py_spy_args=("--native",) if args.profile_native else ())
            figures = run.execute()
            figures.update({"title": spec["title"], "command": command, "family": spec["family"],
                            "step": spec["step"], "repeat": spec["repeat"],
                            "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine()})
            runs[key] = figures
            for label, fn in ROWS:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    print(f"  {label}: {fn(figures)}", file=sys.stderr)
            for note in figures["notes"]:
                print(f"  - {note}", file=sys.stderr, flush=True)
            if "profile" in figures:
                print(f"  gateway profile ({figures['profile']['file']}), self time:", file=sys.stderr)
                for frame, share in figures["profile"]["top"]["self"]:
                    print(f"    {share:5.1f}%  {frame}", file=sys.stderr)
                print("  inclusive:", file=sys.stderr)
                for frame, share in figures["profile"]["top"]["inclusive"]:
                    print(f"    {share:5.1f}%  {frame}", file=sys.stderr, flush=True)
            p99 = figures["latency"]["p99_ms"]
            if args.stop_above_ms is not None and key.startswith("c:") and (p99 is None or p99 > args.stop_above_ms):
                break
    finally:
        if publisher is not None:
            publisher.close()
        server.stop()
        if args.pin:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    if args.no_write:
        print(json.dumps(runs, indent=2, default=str))
    else:
        write_results(runs, Path(args.out_dir))
        print(f"wrote {Path(args.out_dir) / 'gateway.md'} and gateway.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
