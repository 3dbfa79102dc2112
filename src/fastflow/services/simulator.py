"""The simulator process (``fastflow sim``): the local broker on loopback.

``main(config)`` serves ``config.broker.name``'s wire (Kite's ticker WebSocket or
Upstox's authorize endpoint and protobuf feed) over the synthetic market, with
``config.simulator``'s universe (small or full), rate, seed, credentials, address and scheduled faults,
until SIGINT/SIGTERM or ``duration``. It prints where it listens, announces
``{"service": "simulator", "url": ..., "instruments": N}`` to a parent
(:mod:`fastflow.obs.ready`), and prints its counters when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from fastflow.brokers.kite import SPEC as KITE
from fastflow.brokers.upstox import SPEC as UPSTOX
from fastflow.config import Config, SimulatorSection
from fastflow.obs.ready import announce
from fastflow.sim.market.clock import IST, Cadence, MarketClock, parse_start
from fastflow.sim.servers.faults import Fault, FaultTarget, run_faults


class _Simulator(FaultTarget, Protocol):
    stats: Any
    config: Any
    clock: MarketClock
    cadence: Cadence

    @property
    def port(self) -> int: ...

    async def start(self, host: str, port: int) -> object: ...

    async def stop(self) -> None: ...


@dataclasses.dataclass
class _Served:
    """A built simulator: the server, its instrument count, and how to describe its address."""

    server: _Simulator
    instruments: int
    url: Callable[[str, int], str]
    where: Callable[[str, int], str]
    #: Writes the instrument dump (``instruments_out``), once the server listens.
    write_instruments: Callable[[], None]
    #: The universe in the broker's dump format: what the REST endpoints serve (sim/servers/rest.py).
    rows: Sequence[Mapping[str, object]] = ()


def _kite(section: SimulatorSection) -> _Served:
    from fastflow.sim.market import KiteMarket
    from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
    from fastflow.sim.universe import kite_universe, write_kite_csv

    rows = kite_universe(size=section.universe)
    market = KiteMarket.from_rows(rows, seed=section.seed, start_time=int(parse_start(section.start)))
    server = KiteSimulator(market, KiteSimConfig(
        api_key=section.api_key, access_token=section.access_token, rate=section.rate, speed=section.speed,
        seed=section.seed))
    return _Served(server, len(rows), lambda host, port: f"ws://{host}:{port}/",
                   lambda host, port: f"Kite ticker on ws://{host}:{port}/?api_key={section.api_key}"
                   f"&access_token={section.access_token}",
                   lambda: write_kite_csv(rows, section.instruments_out), rows=rows)


def _upstox(section: SimulatorSection) -> _Served:
    from fastflow.sim.market.upstox import UpstoxMarket
    from fastflow.sim.servers.upstox import UpstoxSimConfig, UpstoxSimulator
    from fastflow.sim.universe import aligned_pairs, write_upstox_json

    kite_rows, records = aligned_pairs(size=section.universe)
    market = UpstoxMarket(kite_rows, records, seed=section.seed, start_time=int(parse_start(section.start)))
    server = UpstoxSimulator(market, UpstoxSimConfig(
        access_token=section.access_token, rate=section.rate, speed=section.speed, seed=section.seed))
    return _Served(server, len(records), lambda host, port: f"http://{host}:{port}",
                   lambda host, port: f"Upstox feed on http://{host}:{port} (authorize: GET "
                   f"/v3/feed/market-data-feed/authorize with Authorization: Bearer {section.access_token})",
                   lambda: write_upstox_json(records, section.instruments_out), rows=records)


def _pace(server: _Simulator) -> str:
    """How fast the simulated market runs, for the start line."""
    cadence, clock = server.cadence, server.clock
    how = "at each instrument's own cadence" if not cadence.natural.sum() or server.config.rate <= 0 else "load knob"
    speed = "real time" if clock.speed == 1 else f"{clock.speed:g}x real time"
    return f"about {cadence.total:,.0f} updates/s {how}; market clock {clock.phase()} at " \
        f"{datetime.datetime.fromtimestamp(clock.now(), IST):%H:%M:%S} IST, {speed}"


def _rest(config: Config, served: _Served) -> Any:
    """The REST endpoints (login, token exchange, instrument dump) beside ``served``."""
    from fastflow.sim.servers.rest import KiteRest, RestServer, UpstoxRest

    section = config.simulator
    if config.broker.name == KITE.name:
        return RestServer(KiteRest(served.server.config, served.rows, api_key=section.api_key,
                                   api_secret=section.api_secret, redirect_url=config.login.redirect_url))
    return RestServer(UpstoxRest(served.server.config, served.rows, client_id=section.api_key,
                                 client_secret=section.api_secret, redirect_url=config.login.redirect_url))


#: The simulator of each broker's wire.
SIMULATORS: dict[str, Callable[[SimulatorSection], _Served]] = {KITE.name: _kite, UPSTOX.name: _upstox}


def main(config: Config, *, duration: float | None = None) -> int:
    """Serve until SIGINT/SIGTERM or ``duration``; 0, or 2 for a bad fault or an
    address it cannot listen on (then no instrument dump is written)."""
    section = config.simulator
    try:
        faults = [Fault.parse(text) for text in section.faults]
    except ValueError as exc:
        print(f"fastflow sim: {exc}", file=sys.stderr)
        return 2
    served = SIMULATORS[config.broker.name](section)

    async def serve() -> int:
        server = served.server
        try:
            await server.start(section.host, section.port)
        except OSError as exc:
            print(f"fastflow sim: cannot listen on {section.host}:{section.port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        rest = _rest(config, served)
        try:
            await rest.start(section.host, section.rest_port)
        except OSError as exc:
            await server.stop()
            print(f"fastflow sim: cannot listen on {section.host}:{section.rest_port} for the REST API: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 2
        if section.instruments_out:
            served.write_instruments()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"fastflow sim: {served.where(section.host, server.port)} ({served.instruments} instruments, "
              f"{_pace(server)})", flush=True)
        print(f"fastflow sim: REST API on {rest.url} (login, token exchange, instrument dump; "
              "docs/configuration.md: broker.api_url, broker.login_url, broker.instruments_url)", flush=True)
        announce("simulator", url=served.url(section.host, server.port), instruments=served.instruments,
                 rest_url=rest.url)
        faulting = asyncio.create_task(run_faults(server, faults, lambda m: print(f"fastflow sim: {m}", flush=True)))
        with contextlib.suppress(TimeoutError):  # the duration elapsed
            await asyncio.wait_for(stop.wait(), duration)
        faulting.cancel()
        await server.stop()
        await rest.stop()
        print(f"fastflow sim: stopped; {server.stats}", flush=True)
        return 0

    return asyncio.run(serve())
