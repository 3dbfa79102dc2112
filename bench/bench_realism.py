"""How believable the simulated market is, over simulated market time.

The Kite simulator's market (:class:`~fastflow.sim.servers.kite.KiteSimulator`
driving :class:`~fastflow.sim.market.KiteMarket` at its natural cadence, with its
events) runs in-process from 09:15 IST for ``--realism-hours`` of market time
(``make test``: 1 hour; ``make bench``: the whole session, 6.25 hours), in one-second
rounds, nothing sent. Then, per instrument class, a small table:

* **updates/s**: snapshots per second each instrument got (median and the
  10th-90th percentile over the class). The exchange's snapshot feed gives liquid
  instruments about 1-2 a second, far strikes much less
  (``../shared/reference/flow-and-strategy.md`` §0).
* **range**: the day's high - low over the open, in %, and the annual volatility
  it implies by Parkinson's estimator (E[range] = sqrt(8/pi) x sigma x sqrt(T), with
  T the run's integrated variance under the intraday shape): NSE's NIFTY 50
  realises about 10-15 %, its large caps about 18-40 %.
* **futures basis**: (future / spot - 1) against the cost of carry
  ``exp(CARRY x T) - 1``, in basis points, sampled every 10 market minutes.
* **options vs Black-76**: the last print of every option that traded in the
  sampled second against an independent Black-76 written here with ``math.erf``
  on the index level as the wire gives it and the model's smile volatility, in
  ticks (a print is the value rounded to the tick grid, up for a buyer and down
  for a seller: within a tick plus delta x 0.05 of the index level's rounding).

The benchmark fails when a class leaves the plausible range (the bounds are in
:data:`BOUNDS`). With ``--results-dir`` the table goes to ``realism.md``.
"""

from __future__ import annotations

import datetime
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastflow.sim.market import KiteMarket
from fastflow.sim.market.clock import TRADING_SECONDS_PER_YEAR, intraday_shape
from fastflow.sim.market.derivatives import CARRY, FUTURE, OPTION, ROOT
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
TODAY = datetime.date(2026, 12, 2)
OPEN = datetime.datetime(2026, 12, 2, 9, 15, tzinfo=IST).timestamp()
SAMPLE_EVERY = 600  # market seconds between basis and option samples
PARKINSON = math.sqrt(8.0 / math.pi)

#: class -> (updates/s median range, annual volatility from the range).
BOUNDS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "index": ((0.8, 1.2), (0.05, 0.30)),
    "equity": ((0.7, 2.2), (0.10, 0.60)),
    "future": ((0.2, 2.5), (0.05, 0.60)),
    "option, near the money": ((0.8, 2.5), (0.0, math.inf)),
    "option, far from the money": ((0.05, 1.2), (0.0, math.inf)),
}


def _hours(config: Any) -> float:
    hours = float(config.getoption("--realism-hours"))
    if not 0 < hours <= 6.25:
        raise pytest.UsageError("--realism-hours: between 0 and 6.25 (the session)")
    return hours


def _black76(forward: float, strike: float, years: float, vol: float, call: bool) -> float:
    def cdf(x: float) -> float:
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))

    sd = vol * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    discount = math.exp(-CARRY * years)
    if call:
        return discount * (forward * cdf(d1) - strike * cdf(d2))
    return discount * (strike * cdf(-d2) - forward * cdf(-d1))


class Day:
    """The market over the run, with the samples the table needs."""

    def __init__(self, hours: float, seed: int = 1) -> None:
        self.rows = kite_universe(TODAY)
        self.market = KiteMarket.from_rows(self.rows, seed=seed, start_time=int(OPEN))
        self.sim = KiteSimulator(self.market, KiteSimConfig(seed=seed))
        self.seconds = int(hours * 3600)
        self.basis_bp: list[float] = []  # measured - carry, per future and sample
        self.option_ticks: list[float] = []  # |print - Black-76| in ticks, per option and sample
        self.variance = 0.0  # integrated intraday variance factor (market seconds x shape^2)
        self.elapsed = 0.0  # wall-clock seconds the run took
        self.samples = 0  # extra snapshots of every instrument, for the samples

    def run(self) -> None:
        m = self.market
        opening = m.columns(np.arange(m.size))["open"].astype(np.float64)
        self.opening = opening
        began = time.perf_counter()
        for k in range(1, self.seconds + 1):
            t = OPEN + k
            self.variance += intraday_shape(t) ** 2
            self.sim.run_rounds(1.0, t)
            if k % SAMPLE_EVERY == 0 or k == self.seconds:
                self._sample(t)
        self.elapsed = time.perf_counter() - began

    def _sample(self, t: float) -> None:
        """Every instrument prints once more at ``t`` (so each option is compared
        with its underlying's level of the same second) and the checks sample them."""
        m, c = self.market, self.market.contracts
        everything = np.arange(m.size)
        m.advance(everything, t)
        self.samples += 1
        col = m.columns(everything)
        rupees = col["last_price"] / col["divisor"]
        years = (c.expiry - m.time) / (365 * 86_400)
        for i in np.flatnonzero(c.kind == FUTURE):
            spot = rupees[c.underlying[i]]
            self.basis_bp.append(((rupees[i] / spot - 1.0) - (math.exp(CARRY * years[i]) - 1.0)) * 1e4)
        now = int(m.time)
        options = np.flatnonzero((c.kind == OPTION) & ~c.on_future & (col["last_trade_time"] == now))
        vols = m.implied_vols(options)
        for i, vol in zip(options, vols, strict=True):
            spot = rupees[c.underlying[i]]
            theory = _black76(spot * math.exp(CARRY * years[i]), float(c.strike[i]), float(years[i]), float(vol),
                              bool(c.call[i]))
            tick = m.tick(int(m.tokens[i])) / col["divisor"][i]
            self.option_ticks.append(abs(rupees[i] - max(theory, tick)) / tick)

    def classes(self) -> dict[str, np.ndarray]:
        """Positions per class (options split by moneyness against the spot at the end)."""
        m, c = self.market, self.market.contracts
        col = m.columns(np.arange(m.size))
        is_index = col["is_index"].astype(bool)
        segment = np.array([str(r["segment"]) for r in self.rows])
        spot = (col["last_price"] / col["divisor"])[c.underlying]
        away = np.abs(c.strike / np.where(spot > 0, spot, 1.0) - 1.0)
        option = c.kind == OPTION
        return {
            "index": np.flatnonzero(is_index & (c.kind == ROOT)),
            "equity": np.flatnonzero(np.isin(segment, ("NSE", "BSE")) & ~is_index),
            "future": np.flatnonzero(c.kind == FUTURE),
            "option, near the money": np.flatnonzero(option & (away <= 0.01)),
            "option, far from the money": np.flatnonzero(option & (away >= 0.03)),
        }

    def table(self) -> tuple[list[str], dict[str, dict[str, float]]]:
        m = self.market
        col = m.columns(np.arange(m.size))
        rates = (m.update_counts - self.samples) / self.seconds
        range_frac = (col["high"] - col["low"]) / self.opening
        years = self.variance / TRADING_SECONDS_PER_YEAR
        implied = range_frac / (PARKINSON * math.sqrt(years))
        lines = [
            f"Simulated market: {m.size} instruments (the small synthetic Kite universe), {self.seconds / 3600:g} "
            f"market hours from 09:15 IST at the natural cadence, {int(rates.sum() * self.seconds):,} snapshots "
            f"({rates.sum():,.0f}/s), run in {self.elapsed:.1f} s.",
            "",
            "| class | instruments | updates/s median [p10-p90] | high - low over the run, % of the open, median [p10-p90] "
            "| annual vol from the range, median |",
            "|---|---|---|---|---|",
        ]
        summary: dict[str, dict[str, float]] = {}
        for name, idx in self.classes().items():
            if not idx.size:
                continue
            r10, r50, r90 = np.percentile(rates[idx], (10, 50, 90))
            g10, g50, g90 = np.percentile(range_frac[idx] * 100, (10, 50, 90))
            vol = float(np.median(implied[idx]))
            summary[name] = {"rate": float(r50), "vol": vol}
            vol_text = f"{vol:.0%}" if not name.startswith("option") else "(premium: not a price walk)"
            lines.append(f"| {name} | {idx.size} | {r50:.2f} [{r10:.2f}-{r90:.2f}] | {g50:.2f} [{g10:.2f}-{g90:.2f}]"
                         f" | {vol_text} |")
        basis = np.abs(np.array(self.basis_bp))
        ticks = np.array(self.option_ticks)
        summary["basis"] = {"median": float(np.median(basis)), "p90": float(np.percentile(basis, 90))}
        summary["options"] = {"median": float(np.median(ticks)), "p90": float(np.percentile(ticks, 90)),
                              "within": float(np.mean(ticks <= 1.0 + 1e-9))}
        lines += [
            "",
            "| check | samples | median | p90 | max |",
            "|---|---|---|---|---|",
            f"| futures: \\|basis - carry\\| (bp) | {basis.size} | {np.median(basis):.1f} | "
            f"{np.percentile(basis, 90):.1f} | {basis.max():.1f} |",
            f"| options: \\|print - Black-76\\| (ticks) | {ticks.size} | {np.median(ticks):.2f} | "
            f"{np.percentile(ticks, 90):.2f} | {ticks.max():.2f} |",
            "",
            f"{summary['options']['within']:.0%} of option prints are within one tick of the independent Black-76 "
            f"value; the rest differ by the index level's 0.05 rounding times the option's delta, or are event "
            f"trades (a sweep or a block prints through the book).",
        ]
        return lines, summary


def test_realism_over_a_simulated_day(request: pytest.FixtureRequest) -> None:
    hours = _hours(request.config)
    day = Day(hours)
    day.run()
    lines, summary = day.table()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
    target = request.config.getoption("--results-dir")
    if target:
        stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "realism.md").write_text(f"{stamp}\n\n" + "\n".join(lines) + "\n")
    for name, ((rate_lo, rate_hi), (vol_lo, vol_hi)) in BOUNDS.items():
        assert rate_lo <= summary[name]["rate"] <= rate_hi, (name, summary[name])
        assert vol_lo <= summary[name]["vol"] <= vol_hi, (name, summary[name])
    assert summary["basis"]["median"] < 10.0, summary["basis"]
    assert summary["options"]["median"] <= 1.0 and summary["options"]["p90"] <= 2.0, summary["options"]
