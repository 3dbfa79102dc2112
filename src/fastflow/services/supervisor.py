"""``fastflow run``: the main job on one command.

It loads the configuration (:mod:`fastflow.config`), starts the
:class:`~fastflow.services.stack.Stack` (embedded Redis, simulator or real broker,
plant, gateway: separate processes), prints the dashboard URL, and shows a
status line while it runs: ticks/s, the end-to-end p99 (plant receive → frame
written to the clients' sockets, from the gateway's ``/metrics``) with the p99
at each stage before it, the gateway's clients, Redis's memory (used, of its
``maxmemory``) and the drops since the run began (flushes the plant could not
write to Redis, frames slow clients did not get).

Ctrl-C or SIGTERM stops every child (gateway, plant, simulator, Redis) and
removes the run's files; the exit status is 0. A child that exits by itself, or
(plant, gateway) stops answering ``/livez`` for ``run.liveness_timeout``
seconds, is reported with its last log lines and restarted after a backoff; the
others stay up meanwhile (the gateway keeps its clients while the plant comes
back). After ``run.restarts`` restarts of one child within
``run.restart_window`` seconds, the next failure stops the whole run with exit
status 1 and the reason (see :mod:`fastflow.services.stack`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import signal
import sys
import time
from typing import Any, TextIO

from fastflow.config import Config
from fastflow.obs import metrics
from fastflow.obs.backoff import Backoff
from fastflow.obs.redact import mask_url
from fastflow.services.stack import ChildExit, Stack, StackError, label

#: The drops the status line shows (counter -> the process that counts it): flushes the
#: plant's Redis writer dropped (Redis slow, full or away: their stream entry and live
#: message are lost, the latest hash is rewritten whole), and frames the gateway did not
#: send a client behind its high-water mark (merged into a later one: conflated).
DROPS = {"fastflow_redis_dropped_total": "plant", "fastflow_gateway_conflations_total": "gateway"}


class Status:
    """The status line: scrapes the plant's and the gateway's ``/metrics`` and
    Redis's INFO, and reports the window since the previous call (rates, p99s) and
    the run so far (drops)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before: dict[str, dict[str, float]] = {"plant": {}, "gateway": {}}
        self.then = time.monotonic()
        self._redis: Any = None
        #: Drops since the run began, summed over restarts of the process that counts them.
        self.dropped = {series: 0.0 for series in DROPS}

    async def scrape(self) -> dict[str, dict[str, float]]:
        urls = {"plant": f"{self.stack.plant_url}/metrics", "gateway": f"{self.stack.dashboard_url}metrics"}
        out: dict[str, dict[str, float]] = {}
        for name, url in urls.items():
            try:
                out[name] = await asyncio.to_thread(metrics.fetch, url, 2.0)
            except OSError:
                out[name] = {}
        return out

    async def redis_memory(self) -> str:
        """``used_memory_human`` of the run's Redis (embedded or not), and its
        ``maxmemory`` when it has one: ``65.21M of 512.00M``; ``?`` when it does not answer."""
        try:
            if self._redis is None:
                import redis.asyncio

                self._redis = redis.asyncio.from_url(self.stack.redis_url, socket_timeout=2.0)
            info = await self._redis.info("memory")
            used = str(info.get("used_memory_human", "?"))
            limit = info.get("maxmemory", 0)
            return f"{used} of {info.get('maxmemory_human', limit)}" if limit else f"{used} (no maxmemory)"
        except Exception:  # a status line must not fail the run
            self._redis = None
            return "?"

    def _count_drops(self, now_scrape: dict[str, dict[str, float]]) -> None:
        for series, process in DROPS.items():
            if not now_scrape[process]:
                continue
            before = self.before[process].get(series, 0.0)
            total = now_scrape[process].get(series, 0.0)
            self.dropped[series] += total - before if total >= before else total  # a restart counts from 0

    async def line(self) -> str:
        """The window since the previous line. A process whose scrape failed keeps
        its previous scrape as the base of the next window and is shown as not
        answering (never a negative rate); a counter that went down (the process
        restarted) counts from zero."""
        scraped = await self.scrape()
        now = time.monotonic()
        elapsed = max(now - self.then, 1e-9)
        silent = [name for name, values in scraped.items() if not values]
        now_scrape = {name: values or self.before[name] for name, values in scraped.items()}
        plant, gateway = now_scrape["plant"], now_scrape["gateway"]
        base = self.before["plant"].get("fastflow_plant_ticks_total", 0.0)
        total = plant.get("fastflow_plant_ticks_total", 0.0)
        ticks = total - base if total >= base else total
        p99 = {stage: metrics.stage_quantile(now_scrape, stage, 0.99, before=self.before) for stage in metrics.STAGES}
        clients = int(gateway.get("fastflow_gateway_clients", 0))
        memory = await self.redis_memory()
        full = " FULL" if plant.get("fastflow_redis_full") else ""
        self._count_drops(now_scrape)
        self.before = now_scrape
        if "plant" not in silent:
            self.then = now  # the rate's window ends at the last scrape that answered
        hops = " ".join(f"{stage} {_ms(p99[stage])}" for stage in metrics.STAGES)
        rate = "plant not answering" if "plant" in silent else f"{ticks / elapsed:,.0f} ticks/s"
        people = "gateway not answering" if "gateway" in silent else f"{clients} client{'s' if clients != 1 else ''}"
        flushes, frames = (int(self.dropped[series]) for series in DROPS)
        drops = (f"dropped {flushes:,} flush{'es' if flushes != 1 else ''} to redis, "
                 f"{frames:,} frame{'s' if frames != 1 else ''} to slow clients")
        return f"{rate} | e2e p99 {_ms(p99['sent'])} ({hops}) | {people} | redis{full} {memory} | {drops}"

    async def close(self) -> None:
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


class Restarts:
    """The restart budget: at most ``limit`` restarts of one child within
    ``window`` seconds, each after a backoff (the one of the house: it starts
    again once a child has stayed up for the window)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, collections.deque[float]] = {}
        self._backoff: dict[str, Backoff] = {}

    def next(self, name: str, now: float) -> float | None:
        """The delay before restarting ``name`` (that failed at ``now``), or None: over budget."""
        times = self._times.setdefault(name, collections.deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.limit:
            return None
        times.append(now)
        backoff = self._backoff.setdefault(name, Backoff(0.5, 10.0, reset_after=self.window))
        return backoff.next_delay(now)

    def count(self, name: str) -> int:
        return len(self._times.get(name, ()))

    def up(self, name: str, now: float) -> None:
        if name in self._backoff:
            self._backoff[name].up(now)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``; True when ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f} ms"


async def supervise(config: Config, *, duration: float | None = None, out: TextIO = sys.stdout,
                    verbose: bool = False) -> int:
    """Run the stack until a signal, ``duration`` or a child's death; returns the exit status."""
    tty = out.isatty()

    def say(message: str) -> None:
        out.write(("\r\x1b[2K" if tty else "") + f"fastflow run: {message}\n")
        out.flush()

    echo = (lambda name, line: say(f"[{name}] {line}")) if verbose else None
    stack = Stack(config, echo=echo)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    source = "the real broker" if config.broker.live else "the simulator"
    say(f"starting: {config.broker.name} from {source}, redis {'embedded' if config.redis.url == 'embedded' else 'external'}")
    started = asyncio.create_task(stack.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():  # a signal during start-up
        started.cancel()
        with contextlib.suppress(asyncio.CancelledError, StackError):
            await started
        await stack.stop()
        say("stopped before it was up")
        return 0
    try:
        started.result()
    except StackError as exc:
        say(f"could not start: {exc}")
        return 1
    pids = ", ".join(f"{name} {child.pid}" for name, child in stack.children.items())
    redis_pid = f", redis-server {stack.redis.process.pid}" if stack.redis and stack.redis.process else ""
    say(f"up: {stack.instruments} instruments; processes: {pids}{redis_pid}")
    say(f"dashboard {stack.dashboard_url}  websocket {stack.ws_url}  redis {mask_url(stack.redis_url)}  "
        f"plant {stack.plant_url}/metrics")
    say(f"files in {stack.directory}; Ctrl-C stops everything")
    if duration is not None:
        loop.call_later(duration, stop.set)
    status = Status(stack)
    restarts = Restarts(config.run.restarts, config.run.restart_window)
    died = asyncio.create_task(stack.wait())
    hung = asyncio.create_task(stack.hung(config.run.liveness_timeout))
    every = config.run.status_every
    exit_code = 0
    try:
        while True:
            done, _ = await asyncio.wait({died, hung, stopping}, timeout=every if every > 0 else None,
                                         return_when=asyncio.FIRST_COMPLETED)
            failed = died if died in done else hung if hung in done else None
            if failed is not None:
                if stop.is_set():
                    break
                dead: ChildExit = failed.result()
                dead = dataclasses.replace(dead, log=dead.log[-config.run.log_lines:])
                if tty:
                    out.write("\n")
                say(dead.describe())
                delay = restarts.next(dead.name, time.monotonic())
                if delay is None:
                    say(f"the {label(dead.name)} failed {restarts.limit + 1} times within "
                        f"{restarts.window:g} s: giving up; stopping everything (exit status 1)"
                        if restarts.limit else "stopping everything (exit status 1)")
                    exit_code = 1
                    break
                say(f"restarting the {label(dead.name)} in {delay:.1f} s "
                    f"(restart {restarts.count(dead.name)} of {restarts.limit} within {restarts.window:g} s)")
                died.cancel()
                hung.cancel()
                if await _sleep_unless(stop, delay):
                    break
                try:
                    pid = await stack.restart(dead.name)
                except StackError as exc:
                    say(f"could not restart: {exc}; stopping everything (exit status 1)")
                    exit_code = 1
                    break
                restarts.up(dead.name, time.monotonic())
                say(f"the {label(dead.name)} is back (pid {pid})")
                died = asyncio.create_task(stack.wait())
                hung = asyncio.create_task(stack.hung(config.run.liveness_timeout))
                continue
            if stopping in done:
                break
            line = await status.line()
            if tty:
                out.write(f"\r\x1b[2K{line}")
                out.flush()
            else:
                say(line)
    finally:
        died.cancel()
        hung.cancel()
        stopping.cancel()
        await status.close()
        if tty:
            out.write("\n")
        await stack.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if exit_code == 0:
        say("stopped: every child exited, files removed")
    return exit_code


def main(config: Config, *, duration: float | None = None, verbose: bool = False) -> int:
    """``fastflow run``: blocks until Ctrl-C/SIGTERM, ``duration`` or a child's death."""
    return asyncio.run(supervise(config, duration=duration, verbose=verbose))
