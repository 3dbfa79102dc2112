"""Everything broker-specific, behind one registry.

:func:`get` returns a broker's :class:`BrokerSpec`: its subscription modes and
limits, its default URL, its hot-path decoder, its live ingest and its
instrument-master loader. Stages above ``brokers/`` ask the spec and never
branch on a broker's name::

    spec = brokers.get(config.broker.name)
    instruments = spec.load_instruments(path)
    subscriptions, note = spec.subscriptions(instruments, ["NSE:INFY"], "full")
    decoder = spec.decoder(MarketState(instruments))
    ingest = spec.ingest(decoder, subscriptions, api_key=..., access_token=..., url=spec.default_url)

Each broker's package (``kite/``, ``upstox/``) defines ``SPEC``; it is imported
on first use, so ``import fastflow.brokers`` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fastflow.errors import FastflowError

if TYPE_CHECKING:
    from fastflow.hotpath import KiteDecoder, MarketState, TickBatch, UpstoxDecoder
    from fastflow.instruments import Instruments

    Decoder = KiteDecoder | UpstoxDecoder

#: The registered brokers, in the order the CLI lists them; the first is the default.
NAMES = ("kite", "upstox")
DEFAULT = NAMES[0]


class UnknownBroker(FastflowError, ValueError):
    """A broker name that is not registered."""


class Ingest(Protocol):
    """A broker's live ingest (every connection of one login)."""

    async def run(self) -> None:
        """Run until :meth:`stop` (or until the ingest gives up by itself)."""
        ...

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        ...

    def health(self) -> dict[str, Any]:
        """A JSON-able dict with ``"state"`` and ``"connections"``."""
        ...

    def resubscribe(self, decoder: Any, subscriptions: Mapping[Any, str]) -> None:
        """Feed ``decoder`` and subscribe ``subscriptions`` from the next message on,
        on the open connections (the day's rollover); ``ValueError``, with nothing
        changed, when they cannot take them."""
        ...


class BrokerSpec(Protocol):
    """What the stages above ``brokers/`` know of a broker."""

    #: The registry name ("kite") and the name shown to people ("Kite").
    name: str
    title: str
    #: Subscription modes, the default first-listed.
    modes: tuple[str, ...]
    #: Where the live ingest connects by default.
    default_url: str
    #: Instruments are identified by instrument_key strings (True) or int tokens (False).
    keyed: bool
    #: The file suffix of its instrument master ("csv", "json").
    instruments_suffix: str

    def load_instruments(self, path: str) -> Instruments:
        """The instrument master at ``path`` (the broker's own dump format)."""
        ...

    def instruments_from_rows(self, rows: Iterable[Mapping[str, object]]) -> Instruments:
        """An instrument master from rows in the broker's dump format."""
        ...

    def subscription_limit(self, mode: str) -> int:
        """How many instruments one plant (one login) may subscribe in ``mode``."""
        ...

    def subscriptions(self, instruments: Instruments, symbols: Iterable[str] | None, mode: str, *,
                      limit: int | None = None) -> tuple[dict[Any, str], str]:
        """``{instrument: mode}`` for ``symbols`` (or every instrument, up to ``limit``),
        with a note ("" unless something was left out); ``KeyError`` for an unknown symbol."""
        ...

    def decoder(self, state: MarketState) -> Decoder:
        """The hot-path decoder over ``state``."""
        ...

    def ingest(self, decoder: Decoder, subscriptions: Mapping[Any, str], *, api_key: str = "",
               access_token: str = "", url: str = "", watchdog: float | None = None,
               on_flush: Callable[[TickBatch], None] | None = None, **options: Any) -> Ingest:
        """The live ingest feeding ``decoder`` (``url`` "" is :attr:`default_url`)."""
        ...


_SPECS: dict[str, BrokerSpec] = {}


def get(name: str) -> BrokerSpec:
    """The spec of broker ``name``; :class:`UnknownBroker` if there is none."""
    spec = _SPECS.get(name)
    if spec is None:
        if name not in NAMES:
            raise UnknownBroker(f"unknown broker {name!r}; expected one of {', '.join(NAMES)}")
        spec = _SPECS[name] = importlib.import_module(f"{__name__}.{name}").SPEC
    return spec


def names() -> tuple[str, ...]:
    """The registered brokers' names."""
    return NAMES


def select_symbols(instruments: Instruments, symbols: Iterable[str] | None, mode: str, limit: int,
                   ids: Callable[[int], list[Any]], resolve: Callable[[str], Any],
                   who: str) -> tuple[dict[Any, str], str]:
    """The shared body of :meth:`BrokerSpec.subscriptions`: ``ids(n)`` lists the first
    ``n`` instruments' subscription ids, ``resolve`` maps one symbol to it, ``who`` says
    what caps a subscription at ``limit`` (for the note)."""
    if symbols is None:
        note = ""
        if len(instruments) > limit:
            note = (f"{len(instruments):,} instruments: subscribing the first {limit:,} ({who}); "
                    "run another plant with another key for the rest")
        return dict.fromkeys(ids(limit), mode), note
    subscriptions = {resolve(text): mode for text in symbols}
    if len(subscriptions) > limit:
        raise ValueError(f"{len(subscriptions):,} instruments: at most {limit:,} in {mode} mode")
    return subscriptions, ""
