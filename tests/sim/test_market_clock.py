"""The simulated market on a clock: volatility per unit of time, a cadence per
instrument, one walk whoever listens, futures with carry and options by Black-76.

The option prices are checked against an independent Black-76 written here with
``math.erf`` (the simulator's own uses a numpy approximation of the normal CDF).
"""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest

from fastflow.sim.market import KiteMarket
from fastflow.sim.market.clock import Cadence, MarketClock, intraday_shape, parse_start, session
from fastflow.sim.market.derivatives import CARRY, FUTURE, OPTION, black76, smile
from fastflow.sim.servers.kite import KiteSimConfig, KiteSimulator
from fastflow.sim.universe import kite_universe

TODAY = datetime.date(2026, 12, 2)
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
OPEN = int(datetime.datetime(2026, 12, 2, 9, 15, tzinfo=IST).timestamp())


def _market(seed: int = 1) -> tuple[KiteMarket, list[dict[str, object]]]:
    rows = kite_universe(TODAY)
    return KiteMarket.from_rows(rows, seed=seed, start_time=OPEN, events=False), rows


def _stocks(rows: list[dict[str, object]]) -> np.ndarray:
    """Positions of the cash equities."""
    return np.array([i for i, r in enumerate(rows) if r["segment"] == "NSE"], np.int64)


def test_how_far_prices_travel_depends_on_time_not_on_how_often_they_update() -> None:
    """Over the same 10 market minutes, stepping every stock 20 times a second or
    once a second moves prices by the same amount (it used to be sqrt(20) = 4.5x)."""
    moves = []
    for per_second in (1, 20):
        market, rows = _market(seed=3)
        stocks = _stocks(rows)
        start = market.columns(stocks)["last_price"].astype(float)
        for k in range(1, 600 * per_second + 1):
            market.advance(stocks, OPEN + k / per_second)
        end = market.columns(stocks)["last_price"].astype(float)
        moves.append(float(np.std(np.log(end / start))))
    assert 0.5 < moves[1] / moves[0] < 2.0, moves
    # About 10 minutes of 18-38% annual volatility (and twice that right after the open): tenths of a percent.
    assert 0.0005 < moves[0] < 0.02, moves


def test_the_market_moves_whoever_listens() -> None:
    """The same seed and clock give the same market with no connection or with one:
    subscriptions choose what is sent, never what moves."""
    states = []
    for subscribe in (False, True):
        market, rows = _market(seed=5)
        sim = KiteSimulator(market, KiteSimConfig(seed=5))
        if subscribe:
            from fastflow.sim.servers.kite import _Client

            client = _Client(connection=None)  # type: ignore[arg-type]
            client.modes = {int(rows[0]["instrument_token"]): "full"}
            sim._clients.add(client)
        updates = sum(sim.run_rounds(0.05, OPEN + 0.05 * k) for k in range(1, 200))
        states.append((updates, market.columns(np.arange(market.size))["last_price"].tolist()))
    assert states[0] == states[1]
    assert states[0][0] > 0


def test_each_instrument_has_its_own_cadence() -> None:
    market, rows = _market()
    rates = market.update_rates()
    kinds = [str(r["instrument_type"]) for r in rows]
    index = [i for i, r in enumerate(rows) if r["segment"] == "INDICES"]
    equity = [i for i, r in enumerate(rows) if r["segment"] == "NSE"]
    assert np.all(rates[index] == 1.0)
    assert np.all((rates[equity] >= 0.8) & (rates[equity] <= 2.0))
    options = [i for i, k in enumerate(kinds) if k in ("CE", "PE")]
    assert rates[options].max() > 1.5 and rates[options].min() < 0.2  # at the money vs far from it
    # About 1-2 a second for the liquid, fewer for the illiquid: a few hundred for ~400 instruments.
    assert 200 < rates.sum() < 800
    cadence = Cadence(rates, total=20_000)
    assert cadence.total == pytest.approx(20_000)
    counts = cadence.draw(1.0, np.random.default_rng(0))
    assert abs(int(counts.sum()) - 20_000) < 1_000
    rounds = Cadence.rounds(counts)
    assert sum(r.size for r in rounds) == counts.sum()
    assert all(np.unique(r).size == r.size for r in rounds)  # no instrument twice in a round


def test_futures_follow_their_underlying_with_carry() -> None:
    market, rows = _market(seed=7)
    by_symbol = {str(r["tradingsymbol"]): i for i, r in enumerate(rows)}
    future = next(i for i, r in enumerate(rows) if r["instrument_type"] == "FUT" and r["name"] == "NIFTY")
    spot = by_symbol["NIFTY 50"]
    assert market.contracts.kind[future] == FUTURE and market.contracts.underlying[future] == spot
    everything = np.arange(market.size)
    for k in range(1, 1801):  # half an hour, everything once a second
        market.advance(everything, OPEN + k)
    columns = market.columns(np.array([future, spot]))
    basis = columns["last_price"][0] / columns["last_price"][1]
    years = (market.contracts.expiry[future] - market.time) / (365 * 86_400)
    assert basis == pytest.approx(math.exp(CARRY * years), abs=0.003)
    # The index moved in that half hour, and the future with it.
    start, _ = _market(seed=7)
    moved = columns["last_price"] / start.columns(np.array([future, spot]))["last_price"]
    assert moved[0] == pytest.approx(moved[1], abs=0.003)


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


def test_options_are_priced_by_black76_on_a_smile_and_move_with_their_underlying() -> None:
    market, rows = _market(seed=9)
    contracts = market.contracts
    options = np.flatnonzero(contracts.kind == OPTION)
    assert options.size > 300
    everything = np.arange(market.size)
    for k in range(1, 121):
        market.advance(everything, OPEN + k)
    columns = market.columns(options)
    under = contracts.underlying[options]
    spot = market.columns(under)["last_price"] / market.columns(under)["divisor"]
    years = (contracts.expiry[options] - market.time) / (365 * 86_400)
    checked = 0
    for j, i in enumerate(options):
        if contracts.on_future[i] or columns["last_trade_time"][j] != int(market.time):
            continue  # priced on a future's basis, or last printed an earlier second
        forward = spot[j] * math.exp(CARRY * years[j])
        vol = market.implied_vols(np.array([i]))[0]
        theory = _black76(forward, contracts.strike[i], years[j], vol, bool(contracts.call[i]))
        price = columns["last_price"][j] / columns["divisor"][j]
        tick = market.tick(int(market.tokens[i])) / columns["divisor"][j]
        # The print is the model's value rounded to the tick grid (up for a buyer, down for a seller);
        # the index level on the wire is rounded to 0.05 (an option's delta is at most 1).
        assert abs(price - max(theory, tick)) <= tick + 0.05 + 1e-9, (rows[i]["tradingsymbol"], price, theory)
        checked += 1
    assert checked > 0.5 * options.size
    # A put skew: out-of-the-money puts carry a higher volatility than calls as far out.
    forward, years_1 = np.array([26_000.0, 26_000.0]), np.array([0.02, 0.02])
    low, high = smile(np.array([0.12, 0.12]), forward, np.array([25_000.0, 27_000.0]), years_1)
    assert low > 0.12 > high * 0.99
    assert black76(forward, np.array([26_000.0, 26_000.0]), years_1, np.array([0.12, 0.12]),
                   np.array([True, False]))[0] == pytest.approx(_black76(26_000.0, 26_000.0, 0.02, 0.12, True),
                                                               abs=0.01)  # the numpy CDF is good to ~1e-7


def test_an_option_moves_with_its_underlying() -> None:
    market, rows = _market(seed=11)
    contracts = market.contracts
    by_symbol = {str(r["tradingsymbol"]): i for i, r in enumerate(rows)}
    spot = by_symbol["NIFTY 50"]
    near = min(contracts.expiry[i] for i in np.flatnonzero(contracts.kind == OPTION) if contracts.underlying[i] == spot)
    chain = [i for i in np.flatnonzero(contracts.kind == OPTION)
             if contracts.underlying[i] == spot and contracts.expiry[i] == near]
    level = market.columns(np.array([spot]))["last_price"][0] / 100
    atm_call = min((i for i in chain if contracts.call[i]), key=lambda i: abs(contracts.strike[i] - level))
    atm_put = min((i for i in chain if not contracts.call[i]), key=lambda i: abs(contracts.strike[i] - level))
    legs = np.array([spot, atm_call, atm_put])
    before = market.fair_values(legs)
    stocks = _stocks(rows)
    market._quotes.ltp[stocks] = np.rint(market._quotes.ltp[stocks] * 1.01)  # every constituent up 1%
    after = market.fair_values(legs)
    assert after[0] / before[0] == pytest.approx(1.01, abs=1e-4)
    call_delta = (after[1] - before[1]) / (after[0] - before[0])
    put_delta = (after[2] - before[2]) / (after[0] - before[0])
    assert 0.3 < call_delta < 0.8 and -0.8 < put_delta < -0.3


def test_books_and_trades_follow_moneyness() -> None:
    market, _ = _market(seed=13)
    contracts = market.contracts
    options = np.flatnonzero(contracts.kind == OPTION)
    everything = np.arange(market.size)
    volume0 = market.columns(options)["volume_traded"]
    for k in range(1, 301):
        market.advance(everything, OPEN + k)
    columns = market.columns(options)
    traded = (columns["volume_traded"] - volume0) / columns["lot"]  # in lots
    rates = market.update_rates()[options]
    liquid, illiquid = rates >= np.quantile(rates, 0.8), rates <= np.quantile(rates, 0.2)
    assert traded[liquid].mean() > 2 * traded[illiquid].mean()  # at the money trades more, at every update
    # Expensive options quote wider in ticks; a 5-paise option has an empty bid below it or a bid of one tick.
    spread_ticks = (columns["ask_px"][:, 0] - columns["bid_px"][:, 0]) / 5
    expensive = columns["last_price"] > 100_000  # above Rs 1,000
    assert spread_ticks[expensive].mean() > 2 * spread_ticks[~expensive].mean()


def test_sessions_and_a_compressed_day() -> None:
    assert session(OPEN - 600) == "pre_open" and session(OPEN) == "open"
    assert session(OPEN + 6 * 3600 + 15 * 60) == "closed" and session(OPEN - 3600) == "closed"
    assert intraday_shape(OPEN) > 1.8 > 0.9 > intraday_shape(OPEN + 3 * 3600)
    now = [100.0]
    clock = MarketClock(OPEN, speed=60, monotonic=lambda: now[0])
    now[0] += 10
    assert clock.now() == OPEN + 600 and clock.phase() == "open"
    assert parse_start("09:00", TODAY) == OPEN - 900
    with pytest.raises(ValueError, match="HH:MM"):
        parse_start("9 o'clock", TODAY)
    with pytest.raises(ValueError, match="speed"):
        MarketClock(OPEN, speed=0)
    # Nothing trades outside the session: a simulator whose clock is past the close sends nothing.
    market, _ = _market()
    sim = KiteSimulator(market, KiteSimConfig())
    assert sim.run_rounds(1.0, OPEN + 7 * 3600) == 0
    assert sim.run_rounds(1.0, OPEN + 1.0) > 0
