"""The synthetic universe as Upstox's JSON instruments file (``broker-formats.md`` §2.5).

:func:`upstox_universe` expresses the instruments of
:func:`~fastflow.sim.universe.kite.kite_universe` as Upstox records (fields
as in Upstox's published sample objects):

* instrument keys: ``NSE_EQ|<ISIN>`` for equities (the real ISINs of INFY
  ``INE009A01021`` and RELIANCE ``INE002A01018``; the others are synthetic
  but ISIN-shaped, ``INEZ<nn>Z0101`` plus a valid check digit),
  ``NSE_INDEX|Nifty 50``, ``NSE_INDEX|Nifty Bank``, ``BSE_INDEX|SENSEX``
  (and in the full universe ``NSE_INDEX|Nifty Fin Service``,
  ``NSE_INDEX|India VIX``), and
  ``<SEGMENT>|<exchange_token>`` for derivatives: NFO -> ``NSE_FO``, CDS ->
  ``NCD_FO`` (exchange ``NSE``), BCD -> ``BCD_FO`` (exchange ``BSE``), MCX
  -> ``MCX_FO``.  Exchange tokens are the Kite universe's, as strings.
* NCO (NSE commodity) contracts are **dropped**: Upstox lists them under its
  own ``NSE_COM`` segment, whose file format is unverified, and mapping them
  to ``MCX_FO`` would turn them into MCX contracts with the same trading
  symbols as the real MCX ones.
* trading symbols follow Upstox: ``NIFTY 26000 CE 01 DEC 26``,
  ``CRUDEOIL FUT 18 DEC 26`` (``<UNDERLYING> [<STRIKE> <CE|PE>|FUT]
  <DD MON YY>``); equities and indices keep Kite's (``INFY``, ``NIFTY 50``).
* ``expiry`` is epoch milliseconds at 15:30 IST of the expiry date; ``weekly``
  is true for the options Kite names weekly (``NIFTY26D0826000CE``).
* index derivatives have ``underlying_type`` ``INDEX`` and the index's key as
  ``underlying_key``; stock derivatives (full universe) ``EQUITY`` and the
  stock's ``NSE_EQ|<ISIN>``.
* ``tick_size`` is in paise, as in Upstox's files (0.05 rupees -> ``5.0``,
  0.0025 -> ``0.25``); ``last_price`` (not in Upstox's files, read by
  :meth:`fastflow.instruments.Instruments.from_upstox`) is in rupees.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping

from fastflow.sim.universe.calendar import MONTHS, option_symbol, strike_text
from fastflow.sim.universe.kite import kite_universe

__all__ = ["aligned_pairs", "isin_check_digit", "upstox_universe"]

Row = dict[str, object]

#: Real ISINs; the other equities get synthetic ones (:func:`_synthetic_isin`).
_REAL_ISINS = {"INFY": "INE009A01021", "RELIANCE": "INE002A01018"}
#: Kite index tradingsymbol -> Upstox instrument key.
_UPSTOX_INDEX_KEYS = {
    "NIFTY 50": "NSE_INDEX|Nifty 50",
    "NIFTY BANK": "NSE_INDEX|Nifty Bank",
    "SENSEX": "BSE_INDEX|SENSEX",
    "NIFTY FIN SERVICE": "NSE_INDEX|Nifty Fin Service",
    "INDIA VIX": "NSE_INDEX|India VIX",
}
#: Kite exchange of a derivative -> (Upstox segment, Upstox exchange, underlying_type).
_UPSTOX_DERIVATIVE_SEGMENTS = {
    "NFO": ("NSE_FO", "NSE", "INDEX"),
    "CDS": ("NCD_FO", "NSE", "CUR"),
    "BCD": ("BCD_FO", "BSE", "CUR"),
    "MCX": ("MCX_FO", "MCX", "COM"),
}
_UPSTOX_UNDERLYING_KEYS = {
    "NIFTY": "NSE_INDEX|Nifty 50",
    "BANKNIFTY": "NSE_INDEX|Nifty Bank",
    "FINNIFTY": "NSE_INDEX|Nifty Fin Service",
}
_EPOCH = datetime.date(1970, 1, 1)
_ISIN_BODY = re.compile(r"[A-Z0-9]{11}")
#: 15:30 IST is 10:00 UTC.
_CLOSE_UTC_MS = 10 * 3600 * 1000


def isin_check_digit(body: str) -> str:
    """The ISIN check digit (Luhn over the letters-as-numbers expansion) of an 11-char ``body``."""
    if not _ISIN_BODY.fullmatch(body):
        raise ValueError(f"ISIN body must be 11 upper-case letters or digits, got {body!r}")
    digits = "".join(str(int(char, 36)) for char in body)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _synthetic_isin(index: int) -> str:
    body = f"INEZ{index:02d}Z0101"
    return body + isin_check_digit(body)


def _expiry_ms(expiry: datetime.date) -> int:
    """Epoch milliseconds of 15:30 IST on ``expiry``."""
    return (expiry - _EPOCH).days * 86_400_000 + _CLOSE_UTC_MS


def _upstox_date(expiry: datetime.date) -> str:
    return f"{expiry.day:02d} {MONTHS[expiry.month - 1]} {expiry:%y}"


def _paise(tick: object) -> float:
    assert isinstance(tick, float)
    return round(tick * 100.0, 6)


def _upstox_equity(row: Mapping[str, object], index: int) -> Row:
    symbol = str(row["tradingsymbol"])
    isin = _REAL_ISINS.get(symbol) or _synthetic_isin(index)
    return {
        "segment": "NSE_EQ",
        "name": row["name"],
        "exchange": "NSE",
        "isin": isin,
        "instrument_type": "EQ",
        "instrument_key": f"NSE_EQ|{isin}",
        "lot_size": row["lot_size"],
        "exchange_token": str(row["exchange_token"]),
        "tick_size": _paise(row["tick_size"]),
        "trading_symbol": symbol,
        "last_price": row["last_price"],
    }


def _upstox_index(row: Mapping[str, object]) -> Row:
    key = _UPSTOX_INDEX_KEYS[str(row["tradingsymbol"])]
    segment, _, identifier = key.partition("|")
    return {
        "segment": segment,
        "name": identifier,
        "exchange": row["exchange"],
        "instrument_type": "INDEX",
        "instrument_key": key,
        "exchange_token": str(row["exchange_token"]),
        "trading_symbol": row["tradingsymbol"],
        "last_price": row["last_price"],
    }


def _upstox_derivative(row: Mapping[str, object], equity_keys: Mapping[str, str]) -> Row:
    segment, exchange, underlying_type = _UPSTOX_DERIVATIVE_SEGMENTS[str(row["exchange"])]
    expiry = row["expiry"]
    assert isinstance(expiry, datetime.date)
    underlying = str(row["name"])
    kind = str(row["instrument_type"])
    strike = row["strike"]
    assert isinstance(strike, float)
    if kind == "FUT":
        symbol = f"{underlying} FUT {_upstox_date(expiry)}"
        weekly = False
    else:
        symbol = f"{underlying} {strike_text(strike)} {kind} {_upstox_date(expiry)}"
        weekly = str(row["tradingsymbol"]) != option_symbol(underlying, expiry, strike, kind, monthly=True)
    record: Row = {
        "weekly": weekly,
        "segment": segment,
        "name": underlying,
        "exchange": exchange,
        "expiry": _expiry_ms(expiry),
        "instrument_type": kind,
        "underlying_symbol": underlying,
        "instrument_key": f"{segment}|{row['exchange_token']}",
        "lot_size": row["lot_size"],
        "exchange_token": str(row["exchange_token"]),
        "minimum_lot": row["lot_size"],
    }
    stock = segment == "NSE_FO" and underlying in equity_keys
    if underlying in _UPSTOX_UNDERLYING_KEYS:
        record["underlying_key"] = _UPSTOX_UNDERLYING_KEYS[underlying]
    elif stock:
        record["underlying_key"] = equity_keys[underlying]
        underlying_type = "EQUITY"
    record.update(
        {
            "tick_size": _paise(row["tick_size"]),
            "underlying_type": underlying_type,
            "trading_symbol": symbol,
            "strike_price": strike,
            "last_price": row["last_price"],
        }
    )
    return record


def upstox_universe(today: datetime.date | None = None, size: str = "small") -> list[dict[str, object]]:
    """The instruments of :func:`kite_universe` (``today``, ``size``) as Upstox JSON
    records (see the module docstring).

    Same order as the Kite universe, minus its NCO contracts; every value is
    JSON-native (``expiry`` epoch ms, ``exchange_token`` a numeric string),
    so the records can be written with :func:`write_upstox_json` and loaded
    with :meth:`fastflow.instruments.Instruments.from_upstox`.  Equal
    ``today`` and ``size`` give equal records.
    """
    return _records(kite_universe(today, size))


def aligned_pairs(
    today: datetime.date | None = None, size: str = "small"
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The Kite rows (minus NCO) and the Upstox records of one universe, aligned: the
    i-th record is the i-th row's instrument (same exchange token), for either size.
    What the Upstox simulator's market is built from."""
    rows = kite_universe(today, size)
    records = _records(rows)
    kept = [r for r in rows if r["exchange"] != "NCO"]
    if len(kept) != len(records) or any(
        str(r["exchange_token"]) != str(u["exchange_token"]) for r, u in zip(kept, records, strict=True)
    ):  # pragma: no cover - a universe construction bug
        raise AssertionError("the Kite and Upstox universes are not aligned")
    return kept, records


def _records(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    records: list[Row] = []
    equities = 0
    equity_keys: dict[str, str] = {}
    for row in rows:
        segment = row["segment"]
        if segment == "INDICES":
            records.append(_upstox_index(row))
        elif segment == "NSE":
            record = _upstox_equity(row, equities)
            records.append(record)
            equity_keys[str(row["tradingsymbol"])] = str(record["instrument_key"])
            equities += 1
        elif row["exchange"] == "NCO":
            continue
        else:
            records.append(_upstox_derivative(row, equity_keys))
    keys = {r["instrument_key"] for r in records}
    symbols = {f"{r['exchange']}:{r['trading_symbol']}" for r in records}
    if len(keys) != len(records) or len(symbols) != len(records):  # pragma: no cover - construction bug
        raise AssertionError("duplicate instrument_key or EXCHANGE:TRADING_SYMBOL")
    return records
