"""Black-Scholes helpers: the universe's day-one prices, and the normal
distribution the Upstox market's greeks use."""

from __future__ import annotations

import math


def on_grid(price: float, tick: float) -> float:
    """``price`` rounded to the nearest multiple of ``tick`` (at least one tick)."""
    steps = max(1, round(price / tick))
    return round(steps * tick, 6)


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def option_price(spot: float, strike: float, days: int, vol: float, kind: str, tick: float) -> float:
    """Black-Scholes premium (r = 0) on the tick grid; at least one tick."""
    t = (days + 0.5) / 365.0
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    call = spot * norm_cdf(d1) - strike * norm_cdf(d2)
    price = call if kind == "CE" else call - spot + strike
    return on_grid(max(price, tick), tick)


def future_price(spot: float, days: int, tick: float, carry: float = 0.065) -> float:
    return on_grid(spot * (1.0 + carry * days / 365.0), tick)
