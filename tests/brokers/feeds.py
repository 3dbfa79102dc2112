"""The broker feeds the session tests run against: one :class:`Feed` per broker
(its subscriptions, how to build its simulator, state and session, and its
values for the scenarios every broker shares), and one :func:`run`.

``tests/brokers/test_feed_faults.py`` runs the shared scenarios over
:data:`FEEDS`; the per-broker files use :func:`run` for what only one broker has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastflow.brokers.kite.session import KiteSession
from fastflow.brokers.upstox.session import UpstoxSession
from fastflow.hotpath import KiteDecoder, MarketState, TickBatch, UpstoxDecoder
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.servers.upstox import GARBAGE, UpstoxSimConfig, UpstoxSimulator
from fastflow.sim.universe import kite_universe

from ..waiting import drive, subscribed, ticks_flow_again, until

#: A scenario body: ``test(sim, session, state, batches)``, run once the session streams.
Test = Callable[[Any, Any, MarketState, list[TickBatch]], Awaitable[None]]
#: A per-broker extra check of a shared scenario: ``check(sim, session, state)``.
Check = Callable[[Any, Any, MarketState], None]

#: Session options every run starts from (a test's own options override them).
SESSION_OPTIONS: dict[str, Any] = {"watchdog": 1.0, "backoff_base": 0.01, "backoff_cap": 0.05}


@dataclasses.dataclass(frozen=True)
class Feed:
    """One broker as the session tests see it."""

    name: str
    subscriptions: Mapping[Any, str]
    #: A fresh state over the broker's synthetic instrument master.
    new_state: Callable[[], MarketState]
    #: An unstarted simulator; ``sim_options`` override its config defaults.
    new_sim: Callable[[Mapping[str, Any]], Any]
    #: ``new_session(state, subscriptions, **options)``: a session with sim credentials.
    new_session: Callable[..., Any]
    #: The session options that point a session at a started simulator.
    endpoint: Callable[[Any], dict[str, Any]]

    # -- the broker's values in the shared scenarios --------------------------------
    #: How long a half-open connection stays silent.
    silence: float
    #: Sim options for an idle connection, what counts its keep-alives, and how many to see.
    idle_sim: Mapping[str, Any]
    keepalives: Callable[[Any, Any], int]
    keepalives_needed: int
    #: How a garbage frame ends, and what its decode error says.
    garbage: bytes
    garbage_error: str
    #: The sim.stats key counting refused logins.
    refusals: str
    #: (subscriptions, error pattern): configurations a session refuses.
    refused_subscriptions: tuple[tuple[Mapping[Any, str], str], ...]
    #: Extra per-broker checks, by scenario name (see :meth:`check`).
    checks: Mapping[str, Check] = dataclasses.field(default_factory=dict)

    def check(self, scenario: str, sim: Any, session: Any, state: MarketState) -> None:
        """Run this broker's extra check of ``scenario``, if it has one."""
        if scenario in self.checks:
            self.checks[scenario](sim, session, state)

    def subscribed_everything(self, sim: Any) -> bool:
        return subscribed(sim, self.subscriptions)

    def ticks_flow_again(self, state: MarketState) -> Callable[[], bool]:
        return ticks_flow_again(state, self.subscriptions)

    def __str__(self) -> str:
        return self.name


def run(feed: Feed, test: Test, sim_options: Mapping[str, Any] | None = None, **session_options: Any) -> None:
    """Start ``feed``'s simulator (with ``sim_options``) and a session on it (with
    ``session_options`` over :data:`SESSION_OPTIONS`); once it streams, run
    ``test(sim, session, state, batches)``; then stop both."""

    async def main() -> None:
        sim = feed.new_sim(sim_options or {})
        await sim.start("127.0.0.1", 0)
        state = feed.new_state()
        batches: list[TickBatch] = []
        options = {**SESSION_OPTIONS, "on_flush": batches.append, "rng": random.Random(7), **session_options}
        session = feed.new_session(state, feed.subscriptions, **feed.endpoint(sim), **options)
        await drive(sim, session, lambda: test(sim, session, state, batches))

    asyncio.run(main())


# -- Kite -------------------------------------------------------------------------------

KITE_INFY, KITE_RELIANCE, KITE_NIFTY50 = 408065, 738561, 256265


def kite_state() -> MarketState:
    return MarketState(Instruments.from_kite_rows(kite_universe()))


def kite_sim(sim_options: Mapping[str, Any], seed: int = 2) -> KiteSimulator:
    # The market spreads its rate over all ~400 instruments: about 100 updates/s for each subscribed one.
    config = KiteSimConfig(**{"rate": 40_000, "heartbeat": 0.2, **sim_options})
    return KiteSimulator(KiteMarket.from_rows(kite_universe(), seed=seed), config)


def kite_session(state: MarketState, subscriptions: Mapping[int, str], **options: Any) -> KiteSession:
    return KiteSession(KiteDecoder(state), api_key="fastflow", access_token="sim-token",
                       subscriptions=subscriptions, **options)


KITE = Feed(
    name="kite",
    subscriptions={KITE_INFY: "full", KITE_RELIANCE: "quote", KITE_NIFTY50: "ltp"},
    new_state=kite_state,
    new_sim=kite_sim,
    new_session=kite_session,
    endpoint=lambda sim: {"url": f"ws://127.0.0.1:{sim.port}/"},
    silence=3.0,
    idle_sim={},  # only the 0.2 s heartbeats
    keepalives=lambda sim, session: session.counters["heartbeats"],
    keepalives_needed=5,
    garbage=b"garbage",
    garbage_error="truncated",
    refusals="refused",
    refused_subscriptions=(
        ({KITE_INFY: "fast"}, "mode"),
        (dict.fromkeys(range(3001), "ltp"), "3000"),
    ),
)


# -- Upstox -----------------------------------------------------------------------------

UPSTOX_INFY = "NSE_EQ|INE009A01021"
UPSTOX_RELIANCE = "NSE_EQ|INE002A01018"
UPSTOX_NIFTY = "NSE_INDEX|Nifty 50"
UPSTOX_OPTION = next(str(r["instrument_key"]) for r in upstox_pairs()[1] if r["instrument_type"] == "CE")


def upstox_state() -> MarketState:
    return MarketState(Instruments.from_upstox_rows(upstox_pairs()[1]))


def upstox_sim(sim_options: Mapping[str, Any]) -> UpstoxSimulator:
    # The market spreads its rate over all ~400 instruments: about 50 updates/s for each subscribed one.
    config = UpstoxSimConfig(**{"rate": 20_000, "ping_interval": 0.2, **sim_options})
    return UpstoxSimulator(UpstoxMarket.from_universe(seed=2), config)


def upstox_session(state: MarketState, subscriptions: Mapping[str, str], **options: Any) -> UpstoxSession:
    return UpstoxSession(UpstoxDecoder(state), access_token="sim-token", subscriptions=subscriptions, **options)


def _upstox_streams(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState) -> None:
    assert session.health()["market_status"]["NSE_EQ"] == "NORMAL_OPEN"
    assert sim.stats["authorized"] == 1 and sim.stats["snapshots"] == 3  # one initial_feed per mode group
    assert "greeks" in state.tick(UPSTOX_OPTION) and len(state.tick(UPSTOX_INFY)["depth"]["buy"]) == 5


def _upstox_reauthorized(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState) -> None:
    assert sim.stats["authorized"] == 2  # a fresh code each time


def _upstox_not_probed(sim: UpstoxSimulator, session: UpstoxSession, state: MarketState) -> None:
    assert session.counters["probes"] == 0  # an open market: silence is death, no probe


UPSTOX = Feed(
    name="upstox",
    subscriptions={UPSTOX_INFY: "full", UPSTOX_RELIANCE: "ltpc", UPSTOX_NIFTY: "full", UPSTOX_OPTION: "option_greeks"},
    new_state=upstox_state,
    new_sim=upstox_sim,
    new_session=upstox_session,
    endpoint=lambda sim: {"api_url": sim.api_url},
    silence=2.0,  # nothing sent, nothing read: no data, no pings, no pongs
    idle_sim={"ping_interval": 0.1},  # only the 0.1 s server pings
    keepalives=lambda sim, session: sim.stats["pings"],
    keepalives_needed=10,
    garbage=GARBAGE,
    garbage_error="FeedResponse",
    refusals="unauthorized",
    refused_subscriptions=(
        ({UPSTOX_INFY: "quote"}, "mode"),
        (dict.fromkeys(map(str, range(2001)), "full"), "at most 2000"),
        ({**dict.fromkeys(map(str, range(1501)), "full"), UPSTOX_INFY: "ltpc"}, "combined"),
    ),
    checks={"streams": _upstox_streams, "drop": _upstox_reauthorized, "silence": _upstox_not_probed},
)

FEEDS = (KITE, UPSTOX)

__all__ = ["FEEDS", "KITE", "UPSTOX", "Feed", "run", "until"]
