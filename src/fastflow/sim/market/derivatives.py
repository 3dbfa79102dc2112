"""Derivatives tied to their underlying: futures with carry, options by Black-76 on a smile.

:class:`Contracts` describes each position of the market by what drives its
price (from instruments-dump rows, :func:`contracts_from_rows`):

* a **root** walks on its own (cash equities, indices without constituents,
  futures with no spot in the universe such as USDINR or CRUDEOIL);
* a **future** on a spot (an index or a stock) is priced
  ``spot * exp(CARRY * T) * exp(basis)``, ``T`` the calendar years to its
  expiry (15:30 IST of the expiry day) and ``basis`` a small mean-reverting
  noise (:data:`BASIS_VOLATILITY`, :data:`BASIS_HALF_LIFE_S`);
* an **option** is priced with Black-76 on the forward of its underlying (the
  spot carried to the option's expiry, or the underlying future's price where
  the universe has no spot, e.g. USDINR options) with the volatility of
  :func:`smile`, discounted at :data:`CARRY`; it moves with its underlying
  (its delta) and decays with time.

The underlying of a derivative is its ``name``: an index by
:data:`fastflow.sim.universe.UNDERLYING_INDEX` (``NIFTY`` -> ``NIFTY 50``),
else the cash equity with that ``tradingsymbol``, else (options only) the
nearest future of the same name and exchange.

The normal distribution is computed in numpy (Abramowitz-Stegun 7.1.26,
absolute error below 1.5e-7), so a whole round of options is priced at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fastflow.sim.market.clock import CALENDAR_SECONDS_PER_YEAR, IST
from fastflow.sim.market.listing import CASH_SEGMENTS
from fastflow.sim.universe import UNDERLYING_INDEX

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Annual carry (the rate futures are priced at over their spot, and options discounted at).
CARRY = 0.065
#: Standard deviation of a future's basis noise (fraction of its price).
BASIS_VOLATILITY = 0.0004
#: The basis noise halves its distance to zero in this many market seconds.
BASIS_HALF_LIFE_S = 600.0
#: Smile: ``sigma(K) = atm * (1 + SKEW * x + CURVATURE * x**2)``, ``x = ln(K/F) / (atm * sqrt(T))``.
SKEW = -0.08
CURVATURE = 0.02
#: The smile stays within these multiples of the at-the-money volatility.
SMILE_BOUNDS = (0.6, 3.0)
#: Shortest time to expiry used in pricing (years): an expiring option keeps a sliver of time value.
MIN_YEARS = 60.0 / CALENDAR_SECONDS_PER_YEAR

ROOT, FUTURE, OPTION = 0, 1, 2


def expiry_time(expiry: object) -> float:
    """Epoch seconds of 15:30 IST on ``expiry`` (a date or ISO text); 0 for none."""
    if isinstance(expiry, str) and expiry:
        expiry = datetime.date.fromisoformat(expiry[:10])
    if isinstance(expiry, datetime.datetime):
        expiry = expiry.date()
    if not isinstance(expiry, datetime.date):
        return 0.0
    return datetime.datetime.combine(expiry, datetime.time(15, 30), tzinfo=IST).timestamp()


def norm_cdf(x: FloatArray) -> FloatArray:
    """The standard normal CDF, vectorised (absolute error below 1.5e-7)."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    cdf: FloatArray = 0.5 * (1.0 + np.where(x >= 0, erf, -erf))
    return cdf


def smile(atm: FloatArray, forward: FloatArray, strike: FloatArray, years: FloatArray) -> FloatArray:
    """Implied volatility by strike: a put skew and a curvature in standardised moneyness."""
    x = np.log(strike / forward) / (atm * np.sqrt(years))
    vol: FloatArray = atm * np.clip(1.0 + SKEW * x + CURVATURE * x * x, *SMILE_BOUNDS)
    return vol


def black76(
    forward: FloatArray, strike: FloatArray, years: FloatArray, vol: FloatArray, call: BoolArray,
    rate: float = CARRY,
) -> FloatArray:
    """Black-76 premiums (same units as ``forward``/``strike``), discounted at ``rate``."""
    t = np.maximum(years, MIN_YEARS)
    sd = vol * np.sqrt(t)
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    discount = np.exp(-rate * t)
    calls = discount * (forward * norm_cdf(d1) - strike * norm_cdf(d2))
    puts = discount * (strike * norm_cdf(-d2) - forward * norm_cdf(-d1))
    price: FloatArray = np.where(call, calls, puts)
    return price


@dataclass(frozen=True, eq=False)
class Contracts:
    """What drives each position's price (parallel arrays over the universe).

    ``kind`` is :data:`ROOT`, :data:`FUTURE` (with a spot) or :data:`OPTION`;
    ``underlying`` is the driving position (-1 for a root); ``on_future`` marks
    options whose underlying is a future (its price is the forward);
    ``expiry`` is epoch seconds (0 for none), ``strike`` rupees, ``call`` CE.
    ``series`` is a contract's rank among its underlying's expiries (0 = the
    nearest), which sets its liquidity.
    """

    kind: npt.NDArray[np.int8]
    underlying: IntArray
    on_future: BoolArray
    expiry: FloatArray
    strike: FloatArray
    call: BoolArray
    series: IntArray

    @classmethod
    def none(cls, size: int) -> Contracts:
        """Every position a root."""
        return cls(
            kind=np.zeros(size, np.int8), underlying=np.full(size, -1, np.int64), on_future=np.zeros(size, bool),
            expiry=np.zeros(size), strike=np.zeros(size), call=np.zeros(size, bool), series=np.zeros(size, np.int64),
        )

    @property
    def futures(self) -> IntArray:
        return np.flatnonzero(self.kind == FUTURE).astype(np.int64)

    @property
    def options(self) -> IntArray:
        return np.flatnonzero(self.kind == OPTION).astype(np.int64)


def contracts_from_rows(items: Iterable[Mapping[str, object]], tokens: Iterable[int]) -> Contracts:
    """The :class:`Contracts` of instruments-dump rows (see the module docstring)."""
    rows = list(items)
    toks = [int(t) for t in tokens]
    n = len(rows)
    out = Contracts.none(n)
    spots: dict[str, int] = {}
    for i, (row, token) in enumerate(zip(rows, toks, strict=True)):
        segment = token & 0xFF
        if segment in CASH_SEGMENTS or row.get("segment") == "INDICES":
            spots.setdefault(str(row.get("tradingsymbol", "")), i)
    futures: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for i, row in enumerate(rows):
        if row.get("instrument_type") == "FUT":
            key = (str(row.get("exchange", "")), str(row.get("name", "")))
            futures.setdefault(key, []).append((expiry_time(row.get("expiry")), i))
    for listed in futures.values():
        listed.sort()
    expiries: dict[tuple[str, str], list[float]] = {}
    for i, row in enumerate(rows):
        kind = row.get("instrument_type")
        if kind not in ("FUT", "CE", "PE"):
            continue
        name, exchange = str(row.get("name", "")), str(row.get("exchange", ""))
        out.expiry[i] = expiry_time(row.get("expiry"))
        expiries.setdefault((exchange, name), []).append(out.expiry[i])
        spot = spots.get(UNDERLYING_INDEX.get(name, name))
        if kind == "FUT":
            if spot is not None:
                out.kind[i], out.underlying[i] = FUTURE, spot
            continue
        out.strike[i] = float(row.get("strike") or 0.0)  # type: ignore[arg-type]
        out.call[i] = kind == "CE"
        if spot is None:
            nearest = futures.get((exchange, name))
            if not nearest or out.strike[i] <= 0:
                continue  # nothing to price it on: it walks as a root
            spot = nearest[0][1]
            out.on_future[i] = True
        if out.strike[i] > 0:
            out.kind[i], out.underlying[i] = OPTION, spot
    ranks = {key: sorted(set(values)) for key, values in expiries.items()}
    for i, row in enumerate(rows):
        if out.expiry[i]:
            key = (str(row.get("exchange", "")), str(row.get("name", "")))
            out.series[i] = ranks[key].index(out.expiry[i])
    return out
