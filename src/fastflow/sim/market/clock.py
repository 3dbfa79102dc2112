"""The simulated market's clock, its sessions, and each instrument's update cadence.

A real exchange feed is driven by time, not by who listens: the market moves
whether or not a client is subscribed, and each instrument's snapshot arrives
at its own cadence (NSE's snapshot feed gives about 1-2 a second for a liquid
contract, fewer for an illiquid one; ``flow-and-strategy.md`` §0).

* :class:`MarketClock`: exchange time (epoch seconds, float) from the
  monotonic clock, starting at a time of day (09:15 IST by default) and running
  at ``speed`` x real time (``speed`` 60 plays a 6 h 15 min session in 6 min 15 s);
* :func:`session`: the phase of the simulated day at an exchange time
  (pre-open 09:00-09:15, open 09:15-15:30, closed otherwise; the simulated day
  is always a trading day);
* :func:`intraday_shape`: volatility per unit of time through the day (high
  after the open, low at midday, up again into the close; mean about 1.15);
* :class:`Cadence`: how many times each instrument updates in the next
  interval of real time (Poisson draws around its rate), and the rounds those
  updates are published in.

Volatility is per unit of *market* time: a price step over ``dt`` market seconds
has a standard deviation of ``sigma * sqrt(dt / TRADING_SECONDS_PER_YEAR)``, so
the ``--rate`` load knob (which only scales the cadence) does not change how
far prices travel in a minute.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

Phase = Literal["pre_open", "open", "closed"]

IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")
#: Seconds of the day (IST) of the session boundaries.
PRE_OPEN_S = 9 * 3600
OPEN_S = 9 * 3600 + 15 * 60
CLOSE_S = 15 * 3600 + 30 * 60
SESSION_S = CLOSE_S - OPEN_S
#: 252 trading days of 6 h 15 min: the year that annual volatilities are quoted over.
TRADING_SECONDS_PER_YEAR = 252.0 * SESSION_S
#: Calendar seconds in a year: time to expiry for carry and option pricing.
CALENDAR_SECONDS_PER_YEAR = 365.0 * 86_400


def parse_start(text: str, today: datetime.date | None = None) -> float:
    """Exchange time (epoch seconds) named by ``text``: ``HH:MM`` or ``HH:MM:SS``
    (IST, on ``today``) or ``now`` (the wall clock). ``ValueError`` otherwise."""
    if text == "now":
        return time.time()
    try:
        clock = datetime.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"a start time is HH:MM (IST) or 'now', got {text!r}") from None
    day = datetime.date.today() if today is None else today
    return datetime.datetime.combine(day, clock, tzinfo=IST).timestamp()


def seconds_of_day(t: float) -> float:
    """Seconds since midnight IST of exchange time ``t``."""
    return (t + 19_800.0) % 86_400.0


def session(t: float) -> Phase:
    """The phase of the simulated day at exchange time ``t`` (every day trades)."""
    s = seconds_of_day(t)
    if PRE_OPEN_S <= s < OPEN_S:
        return "pre_open"
    return "open" if OPEN_S <= s < CLOSE_S else "closed"


def intraday_shape(t: float) -> float:
    """Volatility multiplier at exchange time ``t``: 2x at the open decaying over
    about 20 minutes, 0.85x at midday, 1.4x in the last 20 minutes."""
    minutes = min(max(seconds_of_day(t) - OPEN_S, 0.0), SESSION_S) / 60.0
    left = SESSION_S / 60.0 - minutes
    return 0.85 + 1.15 * math.exp(-minutes / 20.0) + 0.55 * math.exp(-left / 20.0)


class MarketClock:
    """Exchange time from the monotonic clock: ``start + speed * elapsed``.

    ``start`` is epoch seconds (see :func:`parse_start`); ``speed`` > 0 compresses
    the day (1 = real time). ``monotonic`` is injectable for tests.
    """

    def __init__(self, start: float, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"the clock speed must be a number > 0, got {speed!r}")
        self.start = float(start)
        self.speed = float(speed)
        self._monotonic = monotonic
        self._origin = monotonic()

    def now(self) -> float:
        """The exchange time now."""
        return self.start + self.speed * (self._monotonic() - self._origin)

    def phase(self) -> Phase:
        """The session phase now."""
        return session(self.now())


class Cadence:
    """Per-instrument update rates (updates per real second) and their Poisson draws.

    ``natural`` are the instruments' own rates; ``total`` > 0 scales them all so
    they sum to ``total`` (the load knob), 0 keeps them.
    """

    def __init__(self, natural: FloatArray, total: float = 0.0) -> None:
        natural = np.asarray(natural, np.float64)
        if natural.ndim != 1 or np.any(~np.isfinite(natural)) or np.any(natural < 0):
            raise ValueError("update rates must be a 1-D array of finite numbers >= 0")
        self.natural = natural
        self.rates = natural
        self.load = -1.0
        self.retune(total)

    def retune(self, total: float) -> None:
        """Scale to ``total`` updates per second (0: the natural rates); cheap when unchanged."""
        if total == self.load:
            return
        self.load = total
        scale = total / self.natural.sum() if total > 0 and self.natural.sum() > 0 else 1.0
        self.rates = self.natural * scale

    @property
    def total(self) -> float:
        """Updates per second over the whole universe."""
        return float(self.rates.sum())

    def draw(self, seconds: float, rng: np.random.Generator) -> IntArray:
        """How many times each instrument updates in the next ``seconds`` of real time."""
        counts: IntArray = rng.poisson(self.rates * max(seconds, 0.0)).astype(np.int64)
        return counts

    @staticmethod
    def rounds(counts: IntArray) -> list[IntArray]:
        """The positions updating in each round: round ``r`` holds every position
        with more than ``r`` updates (so no round holds a position twice)."""
        top = int(counts.max()) if counts.size else 0
        return [np.flatnonzero(counts > r).astype(np.int64) for r in range(top)]
