"""``fastflow bench e2e``: the whole pipeline, end to end, under load.

One run starts the :class:`~fastflow.services.stack.Stack` that ``fastflow run``
starts (embedded Redis, the Kite simulator at ``rate`` updates/s over loopback,
the plant, the gateway), then ``clients`` msgpack WebSocket clients in
``workers`` processes (:mod:`fastflow.tools.loadgen`), each subscribed to ``watch``
random symbols. After ``warmup`` seconds it measures for ``duration`` seconds:

- **end to end**, per tick: the client's decode time minus the plant's receive
  time (``receive_time_ns`` in the tick), p50 / p99 / p99.9 over every tick
  every client received in the window;
- **per hop**, from the plant's and the gateway's ``/metrics``
  (``fastflow_tick_age_seconds{stage=...}`` over the window): the tick's age
  when decoded, acknowledged by Redis, received by the gateway, and written to
  the clients' sockets;
- the plant's ticks/s (did the pipeline keep up with the rate?), the ticks/s
  delivered to clients, the CPU of every process and of the machine.

With ``check`` (what ``make test``'s budget test uses) it also proves that no
tick was lost or reordered: a recorder subscribes to the plant's live channel
before the clients connect and keeps every published ``(symbol, seq)``; at the
end the simulator is stopped, and each client must have received, for each of
its symbols, exactly the published seqs after its snapshot, in order, up to
the last one published.

Everything binds 127.0.0.1 (or a unix socket) and stops by itself.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastflow.config import Config, load_config
from fastflow.obs import metrics
from fastflow.obs.metrics import STAGES
from fastflow.obs.process import die_with_parent
from fastflow.services.stack import Stack
from fastflow.store.keys import Keys
from fastflow.tools.loadgen import (
    cpu_seconds,
    latency_quantiles,
    machine,
    scan_ticks,
    system_times,
    watchlist,
)

QUANTILES = (0.5, 0.99, 0.999)
BUDGET_P99_MS = 50.0


@dataclasses.dataclass(frozen=True)
class E2EOptions:
    rate: float = 20_000.0  # simulator updates (ticks) per second over the universe: the load
    clients: int = 100
    watch: int = 50  # symbols per client
    duration: float = 10.0  # measured seconds
    warmup: float = 3.0  # seconds between the clients being ready and the window
    workers: int = 0  # client processes (0: one per 50 clients, 1 to 4)
    seed: int = 1
    check: bool = False  # prove no tick lost or reordered (stops the simulator at the end)
    pin: bool = False  # gateway on the last CPU, everything else on the others
    # The synthetic universe: "small" (404 instruments) is what the budget and the README's
    # figures are measured on; the full one's far-from-the-money contracts update so rarely
    # at 20k/s that a watched one may never tick in a short run, and cannot be checked.
    universe: str = "small"
    # One more client (in this process) on the options-flow tape: each event's age at it,
    # next to the ticks' in the same run.
    flow: bool = False


class FlowWatcher:
    """A WebSocket client of the gateway's whole flow tape: the age of every live event
    (now - its ``receive_time_ns``) from :meth:`measure` on."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ages_us: list[int] = []
        self.events = 0
        self.measuring = False
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._subscribed.wait(), 30.0)

    async def _read(self) -> None:
        import msgpack
        from websockets.asyncio.client import connect

        async with connect(self.url, compression=None, max_size=None) as ws:
            await ws.send(msgpack.packb({"op": "subscribe_flow"}))
            async for frame in ws:
                now = time.time_ns()
                message = msgpack.unpackb(frame, raw=False)
                kind = message.get("type")
                if kind == "flow_subscribed":
                    self._subscribed.set()
                elif kind == "flow" and not message.get("snapshot") and self.measuring:
                    for event in message["events"]:
                        self.ages_us.append((now - int(event["receive_time_ns"])) // 1000)
                    self.events += len(message["events"])

    def measure(self) -> None:
        self.measuring = True

    async def stop(self) -> None:
        self.measuring = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def summary(self, seconds: float) -> dict[str, Any]:
        ages = sorted(self.ages_us)

        def quantile(q: float) -> float | None:
            return None if not ages else ages[min(len(ages) - 1, int(q * len(ages)))] / 1000

        return {"events": self.events, "events_per_s": round(self.events / seconds, 1) if seconds > 0 else 0.0,
                "p50_ms": quantile(0.5), "p99_ms": quantile(0.99), "max_ms": ages[-1] / 1000 if ages else None}


class Recorder:
    """Every (symbol, seq) the plant publishes on the live channel, in order."""

    def __init__(self, redis_url: str, keys: Keys) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.frames = 0
        self.ticks = 0
        self.out_of_order = 0
        self._task: asyncio.Task[None] | None = None
        self._pong = asyncio.Event()
        self._pubsub: Any = None
        self._client: Any = None

    async def start(self) -> None:
        import redis.asyncio

        self._client = redis.asyncio.from_url(self.redis_url)
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self.keys.live)
        while True:  # the subscribe confirmation: from here on, nothing published is missed
            message = await self._pubsub.get_message(timeout=5.0)
            if message is not None and message["type"] == "subscribe":
                break
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._pubsub is not None
        seqs = self.seqs
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "pong":
                self._pong.set()
                continue
            if message["type"] != "message":
                continue
            self.frames += 1
            for symbol, seq, _ in scan_ticks(message["data"]):
                published = seqs[symbol]
                if published and seq <= published[-1]:
                    self.out_of_order += 1
                published.append(seq)
                self.ticks += 1

    async def fence(self, timeout: float) -> None:
        """Until everything published before this call has been read (PING in
        subscribed mode answers in order with the messages)."""
        assert self._pubsub is not None
        self._pong.clear()
        await self._pubsub.ping()
        await asyncio.wait_for(self._pong.wait(), timeout)

    def final(self) -> dict[str, int]:
        return {symbol: seqs[-1] for symbol, seqs in self.seqs.items() if seqs}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()


def check_delivery(recorder: Recorder, tracked: dict[str, dict[str, list[int]]]) -> dict[str, int]:
    """Compare what each client received (per symbol: snapshot seq, first seq,
    ticks, last seq) with what was published. Returns counts: ``lost`` (published
    after a client's snapshot and not received), ``extra`` (received more than
    published in that range), ``unverifiable`` (a first seq published before
    the recorder started), ``symbols`` checked."""
    lost = extra = unverifiable = checked = 0
    for per_symbol in tracked.values():
        for symbol, (snap, first, count, last) in per_symbol.items():
            published = recorder.seqs.get(symbol, [])
            checked += 1
            after_snap = len(published) - bisect.bisect_right(published, snap)
            if not count:
                lost += after_snap
                continue
            at = bisect.bisect_left(published, first)
            if at == len(published) or published[at] != first:
                unverifiable += 1
                continue
            expected = bisect.bisect_right(published, last) - at
            gap_before = at - bisect.bisect_right(published, snap)  # published between snapshot and first
            lost += max(0, gap_before) + max(0, expected - count) + (len(published) - bisect.bisect_right(published, last))
            extra += max(0, count - expected)
    return {"lost": lost, "extra": extra, "unverifiable": unverifiable, "symbols": checked}


def e2e_config(options: E2EOptions) -> Config:
    """The default configuration (no file, no environment) at the run's rate, on a free port."""
    return load_config(env={}, overrides={"simulator.rate": options.rate, "simulator.seed": options.seed,
                                          "simulator.universe": options.universe, "gateway.port": 0,
                                          "run.status_every": 0})


class Workers:
    """The client worker processes (``python -m fastflow.tools.loadgen``)."""

    def __init__(self) -> None:
        self.processes: list[asyncio.subprocess.Process] = []

    async def start(self, configs: list[dict[str, Any]], cpus: set[int] | None) -> list[dict[str, Any]]:
        for cfg in configs:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fastflow.tools.loadgen", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent, limit=2**26)
            if cpus:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(process.pid, cpus)
            assert process.stdin is not None
            process.stdin.write((json.dumps(cfg) + "\n").encode())
            await process.stdin.drain()
            self.processes.append(process)
        return [await self.read(p, 180.0) for p in self.processes]

    async def read(self, process: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"client worker {process.pid} exited (status {await process.wait()})")
        message: dict[str, Any] = json.loads(line)
        return message

    async def command(self, text: str) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write((text + "\n").encode())
            await process.stdin.drain()

    async def results(self, timeout: float) -> list[dict[str, Any]]:
        return [await self.read(p, timeout) for p in self.processes]

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 10.0)


async def _quiet_plant(stack: Stack, recorder: Recorder, timeout: float = 20.0) -> None:
    """After the simulator stopped: until the plant's flushes and Redis
    acknowledgements stop changing (two scrapes apart), then a PING through the
    recorder's subscription, whose reply comes after every message published
    before it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous: tuple[float, float] = (-1.0, -1.0)
    while True:
        plant = await asyncio.to_thread(metrics.fetch, f"{stack.plant_url}/metrics", 5.0)
        now = (plant.get("fastflow_plant_flushes_total", 0.0),
               plant.get('fastflow_tick_age_seconds_count{stage="redis"}', 0.0))
        if now == previous:
            break
        if loop.time() > deadline:
            raise TimeoutError(f"the plant did not go quiet in {timeout:g} s")
        previous = now
        await asyncio.sleep(0.25)  # a poll interval: the plant has no push notification for "idle"
    await recorder.fence(max(1.0, deadline - loop.time()))


async def run_once(options: E2EOptions, report: Callable[[str], object] = print) -> dict[str, Any]:
    """One end-to-end run; returns its figures (see the module docstring)."""
    config = e2e_config(options)
    ncpu = os.cpu_count() or 1
    pinned = options.pin and ncpu >= 2
    last = {ncpu - 1}
    rest = set(range(ncpu - 1))
    cpus = {"gateway": last, "plant": rest, "simulator": rest} if pinned else None
    stack = Stack(config, cpus=cpus)
    workers = Workers()
    recorder: Recorder | None = None
    watcher: FlowWatcher | None = None
    started = time.monotonic()
    symbols: list[str] = []
    try:
        await stack.start()
        if pinned and stack.redis is not None and stack.redis.process is not None:
            os.sched_setaffinity(stack.redis.process.pid, rest)
        keys = Keys(config.broker.name, prefix=config.redis.prefix)
        if options.check:  # a subscriber that must keep up: only when the delivery is checked
            recorder = Recorder(stack.redis_url, keys)
            await recorder.start()
        import redis.asyncio

        async with redis.asyncio.from_url(stack.redis_url) as client:
            symbols = sorted(s.decode() if isinstance(s, bytes) else s for s in await client.hkeys(keys.instruments))
        host, port = "127.0.0.1", int(stack.ws_url.rsplit(":", 1)[1].split("/", 1)[0])
        nworkers = options.workers or max(1, min(4, -(-options.clients // 50)))
        ids = list(range(options.clients))
        configs = [{"host": host, "port": port, "seed": options.seed, "symbols": symbols, "watch": options.watch,
                    "ids": ids[w::nworkers], "full_clients": options.clients, "track": options.check,
                    "verify_every": 500} for w in range(nworkers)]
        ready = await workers.start(configs, rest if pinned else None)
        connected = sum(r["connected"] for r in ready)
        if connected != options.clients:
            failures = [r.get("failures") for r in ready]
            raise RuntimeError(f"{connected} of {options.clients} clients connected: {failures}")
        report(f"e2e: {options.clients} clients ready ({max(r['seconds'] for r in ready):.1f} s); "
               f"warming up {options.warmup:g} s")
        if options.flow:
            watcher = FlowWatcher(stack.ws_url)
            await watcher.start()
        await asyncio.sleep(options.warmup)  # load generator timing: let the pipeline settle
        pids = {name: child.pid for name, child in stack.children.items()}
        if stack.redis is not None and stack.redis.process is not None:
            pids["redis"] = stack.redis.process.pid
        pids.update({f"clients{i}": p.pid for i, p in enumerate(workers.processes)})
        before = {name: await asyncio.to_thread(metrics.fetch, url, 5.0)
                  for name, url in (("plant", f"{stack.plant_url}/metrics"),
                                    ("gateway", f"{stack.dashboard_url}metrics"))}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        sys0 = system_times()
        t0 = time.monotonic()
        await workers.command("go")
        if watcher is not None:
            watcher.measure()
        await asyncio.sleep(options.duration)  # the measured window
        if watcher is not None:
            await watcher.stop()
        after = {name: await asyncio.to_thread(metrics.fetch, url, 5.0)
                 for name, url in (("plant", f"{stack.plant_url}/metrics"),
                                   ("gateway", f"{stack.dashboard_url}metrics"))}
        elapsed = time.monotonic() - t0
        cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        sys1 = system_times()
        if recorder is not None:
            await stack.children["simulator"].stop()
            await _quiet_plant(stack, recorder)
            await workers.command("finish " + json.dumps(recorder.final()))
        else:
            await workers.command("stop")
        results = await workers.results(120.0)
    finally:
        if watcher is not None:
            await watcher.stop()
        await workers.stop()
        if recorder is not None:
            await recorder.stop()
        await stack.stop()
    out = summarise(options, results, before, after, elapsed, cpu0, cpu1, sys0, sys1, recorder,
                    time.monotonic() - started, symbols)
    if watcher is not None:
        out["flow"] = watcher.summary(elapsed)
    return out


def summarise(options: E2EOptions, results: list[dict[str, Any]], before: dict[str, dict[str, float]],
              after: dict[str, dict[str, float]], elapsed: float, cpu0: dict[str, float], cpu1: dict[str, float],
              sys0: tuple[float, float], sys1: tuple[float, float], recorder: Recorder | None,
              wall: float, symbols: list[str] | None = None) -> dict[str, Any]:
    hist: Counter[int] = Counter()
    for r in results:
        hist.update({int(k): v for k, v in r["latency"].items()})
    e2e = latency_quantiles(hist, QUANTILES)
    e2e["max_ms"] = max(r["latency_max_us"] for r in results) / 1e3
    hops: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        hops[stage] = {f"p{q * 100:g}_ms": _ms(metrics.stage_quantile(after, stage, q, before=before))
                       for q in QUANTILES}

    def delta(source: str, name: str) -> float:
        return after[source].get(name, 0.0) - before[source].get(name, 0.0)

    plant_ticks = delta("plant", "fastflow_plant_ticks_total")
    delivered = sum(r["ticks"] for r in results)
    busy = (sys1[0] - sys0[0]) / max(1, sys1[1] - sys0[1])
    out: dict[str, Any] = {
        "rate": options.rate, "clients": options.clients, "watch": options.watch, "duration_s": round(elapsed, 3),
        "plant_ticks_per_s": round(plant_ticks / elapsed, 1),
        "delivered_ticks_per_s": round(delivered / elapsed, 1),
        "frames_per_s": round(sum(r["frames"] for r in results) / elapsed, 1),
        "e2e": e2e, "hops": hops,
        "conflations": delta("gateway", "fastflow_gateway_conflations_total"),
        "redis_dropped": delta("plant", "fastflow_redis_dropped_total"),
        "seq_errors": sum(r["seq_errors"] for r in results),
        "foreign": sum(r["foreign"] for r in results),
        "scan_mismatch": sum(r["scan_mismatch"] for r in results),
        "disconnects": sum(r["lost"] for r in results) + sum(sum(r["closes"].values()) for r in results),
        "clients_without_frames": sum(r["no_frames"] for r in results),
        "cpu": {name: round((cpu1[name] - cpu0[name]) / elapsed, 3) for name in cpu0},
        "machine_busy": round(busy, 3),
        "wall_s": round(wall, 1),
    }
    if options.check and recorder is not None:
        tracked: dict[str, dict[str, list[int]]] = {}
        for r in results:
            tracked.update(r.get("tracked", {}))
        out["delivery"] = check_delivery(recorder, tracked)
        # Watched symbols a client never saw (not in its snapshot, no tick), with how
        # often the plant published each: what to look at when "symbols" falls short.
        unseen = [f"{symbol} (client {cid}, published {len(recorder.seqs.get(symbol, []))})"
                  for cid, per in tracked.items()
                  for symbol in watchlist(options.seed, int(cid), symbols or [], options.watch) if symbol not in per]
        out["delivery"]["unseen"] = unseen[:10]
        out["delivery"]["caught_up"] = all(r.get("caught_up", False) for r in results)
        out["delivery"]["published_ticks"] = recorder.ticks
        out["delivery"]["published_out_of_order"] = recorder.out_of_order
    out["p99_ok"] = e2e.get("p99_ms") is not None and e2e["p99_ms"] < BUDGET_P99_MS
    out["kept_up"] = out["plant_ticks_per_s"] >= 0.9 * options.rate
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


# -- the suite: a matrix, a rate search, results files -------------------------------------------


def run_suite(rates: list[float], clients: list[int], *, duration: float, warmup: float, watch: int,
              search: list[float], search_clients: int, pin: bool, out_dir: Path,
              report: Callable[[str], object] = print) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for n in clients:
        for rate in rates:
            report(f"e2e: {rate:,.0f} ticks/s, {n} clients x {watch} symbols, {duration:g} s")
            result = _attempt(E2EOptions(rate=rate, clients=n, watch=watch, duration=duration, warmup=warmup,
                                         pin=pin), report)
            if result is not None:
                runs.append(result)
    ramp: list[dict[str, Any]] = []
    best = None
    for rate in search:
        report(f"e2e search: {rate:,.0f} ticks/s, {search_clients} clients")
        result = _attempt(E2EOptions(rate=rate, clients=search_clients, watch=watch, duration=duration,
                                     warmup=warmup, pin=pin), report)
        if result is None:
            break
        ramp.append(result)
        if result["p99_ok"] and result["kept_up"]:
            best = result["plant_ticks_per_s"]
        else:
            break
    payload = {"suite": "end to end", "machine": machine(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "command": " ".join(["fastflow bench e2e", *sys.argv[3:]]) if sys.argv[1:3] == ["bench", "e2e"]
               else "fastflow bench e2e", "runs": runs, "search": ramp, "search_clients": search_clients,
               "highest_rate_p99_under_50ms": best}
    write_results(payload, out_dir)
    return payload


def _attempt(options: E2EOptions, report: Callable[[str], object]) -> dict[str, Any] | None:
    """One run of the suite; a run that fails is reported and left out (the suite goes on)."""
    try:
        result = asyncio.run(run_once(options, report))
    except Exception as exc:  # a saturated machine can fail a run: say so, keep the others
        report(f"e2e: the run at {options.rate:,.0f} ticks/s with {options.clients} clients failed: "
               f"{type(exc).__name__}: {exc}")
        return None
    report("e2e: " + one_line(result))
    return result


def one_line(r: dict[str, Any]) -> str:
    e = r["e2e"]
    hops = ", ".join(f"{s} {_fmt(r['hops'][s]['p99_ms'])}" for s in STAGES)
    flow = r.get("flow")
    tape = "" if flow is None else (f"; flow {flow['events_per_s']:,.0f} events/s, p50 {_fmt(flow['p50_ms'])} "
                                    f"p99 {_fmt(flow['p99_ms'])} ms")
    return (f"plant {r['plant_ticks_per_s']:,.0f} ticks/s, delivered {r['delivered_ticks_per_s']:,.0f}/s; "
            f"e2e p50 {_fmt(e.get('p50_ms'))} p99 {_fmt(e.get('p99_ms'))} p99.9 {_fmt(e.get('p99.9_ms'))} ms; "
            f"p99 by stage: {hops}; conflations {r['conflations']:g}; machine busy {r['machine_busy']:.0%}{tape}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# End to end: simulator → plant → Redis → gateway → clients", "",
             f"Machine: {payload['machine']}; {payload['date']}. All processes on this machine, over loopback.",
             f"Command: `{payload['command']}`.", "",
             "Latency = client decode time - plant receive time, over every tick every client received "
             "in the window. Stage columns: p99 of the tick's age at that stage, from the plant's and the "
             "gateway's `/metrics` (decoded, acknowledged by Redis, received by the gateway, written to the "
             "client sockets).", "",
             "| ticks/s (target) | plant ticks/s | clients x symbols | delivered ticks/s | e2e p50 ms | p99 ms | "
             "p99.9 ms | decoded p99 | redis p99 | gateway p99 | sent p99 | conflations | machine busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["runs"] + payload["search"]:
        e, h = r["e2e"], r["hops"]
        lines.append(
            f"| {r['rate']:,.0f} | {r['plant_ticks_per_s']:,.0f} | {r['clients']} x {r['watch']} | "
            f"{r['delivered_ticks_per_s']:,.0f} | {_fmt(e.get('p50_ms'))} | {_fmt(e.get('p99_ms'))} | "
            f"{_fmt(e.get('p99.9_ms'))} | " + " | ".join(_fmt(h[s]["p99_ms"]) for s in STAGES) +
            f" | {r['conflations']:,.0f} | {r['machine_busy']:.0%} |")
    best = payload.get("highest_rate_p99_under_50ms")
    lines += ["", f"Highest rate with e2e p99 < 50 ms and the plant keeping up "
              f"({payload['search_clients']} clients): " + (f"**{best:,.0f} ticks/s**" if best else "none in the ramp")]
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: Path) -> bool:
    """Latency percentiles against rate, one line per client count; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    by_clients: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in payload["runs"]:
        by_clients[r["clients"]].append(r)
    styles = {"p50_ms": ":", "p99_ms": "-", "p99.9_ms": "--"}
    for n, runs in sorted(by_clients.items()):
        runs.sort(key=lambda r: r["rate"])
        color = None
        for key, style in styles.items():
            xs = [r["rate"] for r in runs if r["e2e"].get(key)]
            ys = [r["e2e"][key] for r in runs if r["e2e"].get(key)]
            (line,) = ax.plot(xs, ys, style, marker="o", color=color, label=f"{n} clients {key[:-3]}")
            color = line.get_color()
    if payload["search"]:
        runs = sorted(payload["search"], key=lambda r: r["rate"])
        ax.plot([r["rate"] for r in runs], [r["e2e"].get("p99_ms") or float("nan") for r in runs], "-", marker="s",
                color="black", label=f"rate search p99 ({payload['search_clients']} clients)")
    ax.axhline(50, color="red", linewidth=0.8)
    ax.axhline(5, color="green", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ticks/s into the plant (simulator rate)")
    ax.set_ylabel("end-to-end latency, ms (plant receive → client decode)")
    ax.set_title("fastflow end to end: " + payload["machine"].split(",")[0], fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_results(payload: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "e2e.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out_dir / "e2e.md").write_text(markdown(payload))
    if not plot(payload, out_dir / "e2e.png"):
        print("e2e: matplotlib is not installed: no plot (pip install matplotlib, or make bench)", file=sys.stderr)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(args: Any) -> int:
    """``fastflow bench e2e`` (the argparse namespace of cli.py)."""
    if args.quick:
        rates, clients, search = [1000.0, 20000.0], [10, 100], []
    else:
        rates, clients, search = _floats(args.rates), [int(v) for v in _floats(args.clients)], _floats(args.search)
    run_suite(rates, clients, duration=args.duration, warmup=args.warmup, watch=args.watch, search=search,
              search_clients=args.search_clients, pin=args.pin, out_dir=Path(args.out),
              report=lambda m: print(m, flush=True))
    print(f"e2e: results in {args.out}/e2e.md, e2e.json, e2e.png")
    return 0
