"""Shared fixtures: both hot-path implementations and a small Kite universe."""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fastflow.instruments import Instruments

from .redis_servers import redis_cluster, redis_server  # noqa: F401

IMPLEMENTATIONS = ("compiled", "reference")


def load_impl(name: str) -> types.ModuleType:
    module = "fastflow._hotpath" if name == "compiled" else "fastflow.reference"
    return importlib.import_module(module)


@pytest.fixture(params=IMPLEMENTATIONS)
def hp(request: pytest.FixtureRequest) -> types.ModuleType:
    """The hot-path module under test: compiled ``_hotpath`` or ``reference``."""
    return load_impl(request.param)


@pytest.fixture
def compiled() -> types.ModuleType:
    return load_impl("compiled")


@pytest.fixture(params=("asyncio", "uvloop"))
def event_loop_policy(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test's ``asyncio.run`` on asyncio's loop, then on uvloop's (the loop the
    plant and the gateway run on as processes). Use with
    ``pytestmark = pytest.mark.usefixtures("event_loop_policy")``."""
    import asyncio

    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield request.param
    finally:
        asyncio.set_event_loop_policy(None)


def kite_row(token: int, symbol: str, exchange: str, segment: str, itype: str = "EQ") -> dict[str, Any]:
    return {
        "instrument_token": token,
        "exchange_token": token >> 8,
        "tradingsymbol": symbol,
        "name": "",
        "last_price": 0.0,
        "expiry": None,
        "strike": 0.0,
        "tick_size": 0.05,
        "lot_size": 1,
        "instrument_type": itype,
        "segment": segment,
        "exchange": exchange,
    }


# One instrument per Kite segment rule (segment id = token & 0xff).
INFY = 408065  # NSE (1)
RELIANCE = 738561  # NSE (1)
NIFTY_FUT = 5720322  # NFO (2)
USDINR = (1234 << 8) | 3  # CDS (3): divisor 1e7
SBIN_BSE = (500112 << 8) | 4  # BSE (4)
SENSEX_FUT = (8000 << 8) | 5  # BFO (5)
BCD_FUT = (2222 << 8) | 6  # BCD (6): divisor 1e4
CRUDE = (3333 << 8) | 7  # MCX (7)
MCXSX = (4444 << 8) | 8  # MCXSX (8)
NIFTY50 = 256265  # INDICES (9): not tradable, index layouts
NIFTYBANK = 260105  # INDICES (9)
NCO_FUT = (5555 << 8) | 12  # NCO (12): divisor 1e4
OTHER_SEG = (6666 << 8) | 11  # a segment id kiteconnect does not name: default divisor 100

KITE_ROWS = [
    kite_row(INFY, "INFY", "NSE", "NSE"),
    kite_row(RELIANCE, "RELIANCE", "NSE", "NSE"),
    kite_row(NIFTY_FUT, "NIFTY26NOVFUT", "NFO", "NFO-FUT", "FUT"),
    kite_row(USDINR, "USDINR26NOVFUT", "CDS", "CDS-FUT", "FUT"),
    kite_row(SBIN_BSE, "SBIN", "BSE", "BSE"),
    kite_row(SENSEX_FUT, "SENSEX26NOVFUT", "BFO", "BFO-FUT", "FUT"),
    kite_row(BCD_FUT, "EURINR26NOVFUT", "BCD", "BCD-FUT", "FUT"),
    kite_row(CRUDE, "CRUDEOIL26DECFUT", "MCX", "MCX-FUT", "FUT"),
    kite_row(MCXSX, "USDINR26DECFUT", "MCXSX", "MCXSX-FUT", "FUT"),
    kite_row(NIFTY50, "NIFTY 50", "NSE", "INDICES"),
    kite_row(NIFTYBANK, "NIFTY BANK", "NSE", "INDICES"),
    kite_row(NCO_FUT, "GOLD26DECFUT", "NCO", "NCO-FUT", "FUT"),
    kite_row(OTHER_SEG, "OTHER26DECFUT", "OTHER", "OTHER-FUT", "FUT"),
]
TOKENS = [int(r["instrument_token"]) for r in KITE_ROWS]


@pytest.fixture(scope="session")
def instruments() -> Instruments:
    return Instruments.from_kite_rows(KITE_ROWS)


# -- Upstox ------------------------------------------------------------------

UPSTOX_KEYS = [
    "NSE_FO|45450",
    "NSE_FO|45451",
    "NSE_EQ|INE009A01021",
    "NSE_EQ|INE002A01018",
    "NSE_INDEX|Nifty 50",
    "NSE_INDEX|Nifty Bank",
    "NCD_FO|1234",  # currency: divisor 1e7
    "MCX_FO|434855",
]
UPSTOX_SYMBOLS = [
    "NFO:NIFTY26NOV24000CE", "NFO:NIFTY26NOV24000PE", "NSE:INFY", "NSE:RELIANCE",
    "NSE:NIFTY 50", "NSE:NIFTY BANK", "NCD:USDINR26NOVFUT", "MCX:CRUDEOIL26DECFUT",
]


class UpstoxInstruments(types.SimpleNamespace):
    """A duck-typed Upstox instrument master (what MarketState reads)."""

    def slot(self, key: str) -> int:
        column = self.instrument_key if "|" in key else self.symbol
        for i, value in enumerate(column):
            if value == key:
                return i
        raise KeyError(f"unknown instrument {key!r}")


def make_upstox_instruments(keys: list[str] = UPSTOX_KEYS, symbols: list[str] = UPSTOX_SYMBOLS) -> UpstoxInstruments:
    import numpy as np

    segments = {"NSE_EQ": 1, "NSE_FO": 2, "NCD_FO": 3, "MCX_FO": 7, "NSE_INDEX": 9}
    return UpstoxInstruments(
        broker="upstox",
        token=np.zeros(len(keys), np.uint32),
        price_divisor=np.array([10_000_000 if k.startswith("NCD_FO") else 10_000 for k in keys], np.int64),
        symbol=np.array(symbols, object),
        segment_id=np.array([segments.get(k.split("|")[0], 0) for k in keys], np.uint8),
        tradable=np.array([not k.split("|")[0].endswith("_INDEX") for k in keys], bool),
        instrument_key=np.array(keys, object),
    )


@pytest.fixture(scope="session")
def upstox_instruments() -> UpstoxInstruments:
    return make_upstox_instruments()


@pytest.fixture(scope="session")
def pb() -> types.ModuleType:
    """The official classes generated from tests/proto/MarketDataFeedV3.proto."""
    from .upstox_pb import load

    return load()
