"""The full synthetic universe (``kite_universe(today, "full")``, ``upstox_universe``,
``aligned_pairs``): its size against the brokers' limits, Kite/Upstox alignment,
unique ids, lot and tick sizes, expiry days (holidays included), strikes around the
price, the naming rules; and how a size is chosen (``load``, ``simulator.universe``,
``fastflow sim --universe``). The small universe's own tests are in test_sim.py."""

from __future__ import annotations

import datetime
import itertools
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fastflow import config as config_module
from fastflow.brokers.kite.constants import MAX_TOKENS
from fastflow.brokers.upstox.constants import INDIVIDUAL_LIMITS
from fastflow.config import ConfigError, SimulatorSection, load_config
from fastflow.instruments import Instruments
from fastflow.instruments.calendar import HOLIDAYS
from fastflow.sim.universe import (
    INDEX_CONSTITUENTS,
    NIFTY50,
    SIZES,
    SOURCES,
    UNDERLYING_INDEX,
    aligned_pairs,
    kite_universe,
    load,
    upstox_universe,
    write_kite_csv,
    write_upstox_json,
)
from fastflow.sim.universe.kite import stock_lot, stock_strike_step

TODAY = datetime.date(2026, 12, 2)  # a Wednesday; NIFTY weeklies 8, 15, 22, 29 Dec (monthly)
#: Dates whose expiries cross NSE holidays: Tue 2026-03-03 (Holi) and 03-31 (Mahavir
#: Jayanti), Tue 2026-11-24 (Guru Nanak Jayanti); a month with five Tuesdays; a year
#: without a holiday list; a date before the January 2026 lot revision.
DATES = [
    TODAY,
    datetime.date(2026, 3, 1),
    datetime.date(2026, 11, 21),
    datetime.date(2026, 12, 28),
    datetime.date(2027, 6, 1),
    datetime.date(2025, 12, 10),
]
INDICES = {"NIFTY": "NIFTY 50", "BANKNIFTY": "NIFTY BANK", "FINNIFTY": "NIFTY FIN SERVICE"}
STOCKS = {symbol for symbol, _, _ in NIFTY50}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

Row = dict[str, object]


def _date(value: object) -> datetime.date:
    assert isinstance(value, datetime.date)
    return value


def _float(value: object) -> float:
    assert isinstance(value, (int, float))
    return float(value)


def _trading_day(day: datetime.date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS.get(day.year, frozenset())


def _nse_expiry_of_week(tuesday: datetime.date) -> datetime.date:
    """The Tuesday, or the trading day before it when it is a holiday."""
    day = tuesday
    while not _trading_day(day):
        day -= datetime.timedelta(days=1)
    return day


def _monthly(year: int, month: int) -> datetime.date:
    last = datetime.date(year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)
    return _nse_expiry_of_week(last - datetime.timedelta(days=(last.weekday() - 1) % 7))


def _kind(row: Row) -> str:
    """The class of a row, for counting."""
    segment, name = str(row["segment"]), str(row["name"])
    if segment == "NFO-FUT":
        return "index futures" if name in INDICES else "stock futures"
    if segment == "NFO-OPT":
        return f"{name} options" if name in INDICES else "stock options"
    return segment


@pytest.fixture(scope="module", params=DATES, ids=str)
def day(request: pytest.FixtureRequest) -> datetime.date:
    value = request.param
    assert isinstance(value, datetime.date)
    return value


@pytest.fixture(scope="module")
def full(day: datetime.date) -> list[Row]:
    return kite_universe(day, "full")


@pytest.fixture(scope="module")
def today_rows() -> list[Row]:
    return kite_universe(TODAY, "full")


# ------------------------------------------------------------------------------ size


def test_counts_per_class_today(today_rows: list[Row]) -> None:
    counts = Counter(_kind(row) for row in today_rows)
    assert counts == {
        "INDICES": 5, "NSE": 50,
        "index futures": 9, "stock futures": 150,
        "NIFTY options": 6 * 81 * 2, "BANKNIFTY options": 3 * 61 * 2, "FINNIFTY options": 3 * 61 * 2,
        "stock options": 50 * 3 * 21 * 2,
        "CDS-FUT": 4, "CDS-OPT": 10, "BCD-FUT": 2, "MCX-FUT": 3, "NCO-FUT": 2,
    }
    assert len(today_rows) == 8_239


def test_within_the_brokers_limits(full: list[Row], day: datetime.date) -> None:
    # One Kite api_key subscribes all of it (3 connections x 3000 tokens).
    assert 8_000 <= len(full) <= MAX_TOKENS
    records = upstox_universe(day, "full")
    assert len(records) == len(full) - 2  # minus the NCO contracts
    # One Upstox connection takes 2,000 keys in full mode: the first 2,000 hold the
    # indices, the stocks, every future and the nearest NIFTY chains.
    first = records[: INDIVIDUAL_LIMITS["full"]]
    assert {r["segment"] for r in first} >= {"NSE_INDEX", "NSE_EQ", "NSE_FO"}
    futures_first = [r for r in first if r["instrument_type"] == "FUT" and r["segment"] == "NSE_FO"]
    assert len(futures_first) == 159
    nifty = sorted({int(str(r["expiry"])) for r in first if r["name"] == "NIFTY" and r["instrument_type"] != "FUT"})
    assert len(nifty) >= 4
    assert len(records) > INDIVIDUAL_LIMITS["full"]  # documented: --all takes the first 2,000 on Upstox


def test_the_small_universe_is_the_default_and_unchanged() -> None:
    assert kite_universe(TODAY) == kite_universe(TODAY, "small")
    assert upstox_universe(TODAY) == upstox_universe(TODAY, "small")
    assert len(kite_universe(TODAY)) == 404
    assert SIZES == config_module.UNIVERSES == ("small", "full")
    with pytest.raises(ValueError, match="unknown universe size 'huge'"):
        kite_universe(TODAY, "huge")
    with pytest.raises(ValueError, match="unknown universe size"):
        upstox_universe(TODAY, "medium")


def test_load_names_the_size() -> None:
    assert SOURCES["synthetic"] == "small" and SOURCES["synthetic-full"] == "full"
    small, big = load("kite", "synthetic"), load("kite", "synthetic-full")
    assert len(small) == len(kite_universe()) < 1_000 < len(big) == len(kite_universe(None, "full"))
    upstox = load("upstox", "synthetic-full")
    assert upstox.broker == "upstox" and len(upstox) == len(big) - 2
    assert len(load("kite", "")) == len(small)


# ---------------------------------------------------------------- alignment and ids


@pytest.mark.parametrize("size", SIZES)
def test_kite_and_upstox_are_aligned(size: str, day: datetime.date) -> None:
    rows, records = aligned_pairs(day, size)
    assert rows == [r for r in kite_universe(day, size) if r["exchange"] != "NCO"]
    assert records == upstox_universe(day, size)
    for row, record in zip(rows, records, strict=True):
        assert record["exchange_token"] == str(row["exchange_token"])
        assert record["last_price"] == row["last_price"]
        if row["expiry"] is None:
            continue
        assert record["name"] == record["underlying_symbol"] == row["name"]
        assert record["lot_size"] == row["lot_size"] and record["strike_price"] == row["strike"]
        assert record["instrument_type"] == row["instrument_type"]


def test_tokens_keys_and_symbols_are_unique(full: list[Row], day: datetime.date, tmp_path: Path) -> None:
    assert len({r["instrument_token"] for r in full}) == len(full)
    assert len({f"{r['exchange']}:{r['tradingsymbol']}" for r in full}) == len(full)
    records = upstox_universe(day, "full")
    assert len({r["instrument_key"] for r in records}) == len(records)
    assert len({f"{r['exchange']}:{r['trading_symbol']}" for r in records}) == len(records)
    # ... and both masters load (the loaders refuse duplicates), through the files.
    write_kite_csv(full, tmp_path / "kite.csv.gz")
    write_upstox_json(records, tmp_path / "upstox.json.gz")
    kite = Instruments.from_kite_csv(tmp_path / "kite.csv.gz")
    upstox = Instruments.from_upstox(tmp_path / "upstox.json.gz")
    assert len(kite) == len(full) and len(upstox) == len(records)
    assert kite.row("NSE:NIFTY FIN SERVICE")["instrument_token"] == 257801
    assert kite.row("NSE:INDIA VIX")["instrument_token"] == 264969
    assert upstox.symbol_of("NSE_INDEX|Nifty Fin Service") == "NSE:NIFTY FIN SERVICE"
    assert upstox.symbol_of("NSE_INDEX|India VIX") == "NSE:INDIA VIX"


def test_every_derivative_links_to_its_underlying(full: list[Row], day: datetime.date) -> None:
    by_symbol = {str(r["tradingsymbol"]): r for r in full if r["segment"] in ("INDICES", "NSE")}
    nfo = [r for r in full if r["exchange"] == "NFO"]
    for row in nfo:
        name = str(row["name"])
        assert UNDERLYING_INDEX.get(name, name) in by_symbol, name
    assert {str(r["name"]) for r in nfo} == set(INDICES) | STOCKS
    assert {UNDERLYING_INDEX[n] for n in INDICES} <= set(INDEX_CONSTITUENTS)  # the indices follow constituents
    records = {str(r["trading_symbol"]): r for r in upstox_universe(day, "full")}
    keys = {str(r["trading_symbol"]): r["instrument_key"] for r in records.values() if r["segment"] != "NSE_FO"}
    for record in records.values():
        if record["segment"] == "NSE_FO":
            name = str(record["name"])
            assert record["underlying_key"] == keys[UNDERLYING_INDEX.get(name, name)]
            assert record["underlying_type"] == ("INDEX" if name in INDICES else "EQUITY")


# ------------------------------------------------------------------ contract facts


def test_lot_sizes(full: list[Row]) -> None:
    for row in full:
        if row["segment"] in ("INDICES",):
            assert row["lot_size"] == 0
        elif row["segment"] == "NSE":
            assert row["lot_size"] == 1
    lots: dict[str, set[int]] = defaultdict(set)
    for row in full:
        if row["exchange"] != "NFO":
            continue
        name, expiry = str(row["name"]), _date(row["expiry"])
        lot = row["lot_size"]
        assert isinstance(lot, int)
        if name in INDICES:  # indian-market-facts.md §4
            revised = {"NIFTY": 65, "BANKNIFTY": 30, "FINNIFTY": 60}[name]
            before = {"NIFTY": 75, "BANKNIFTY": 35, "FINNIFTY": 65}[name]
            assert lot == (revised if expiry >= datetime.date(2026, 1, 1) else before), (name, expiry)
        else:
            lots[name].add(lot)
    prices = {symbol: price for symbol, _, price in NIFTY50}
    for name, found in lots.items():
        assert found == {stock_lot(prices[name])}  # futures and options of a stock share one lot
        assert 500_000 <= prices[name] * stock_lot(prices[name]) <= 1_000_000


def test_tick_sizes_and_prices_on_the_grid(full: list[Row]) -> None:
    spots = {str(r["tradingsymbol"]): _float(r["last_price"]) for r in full if r["segment"] in ("INDICES", "NSE")}
    for row in full:
        price, tick = _float(row["last_price"]), _float(row["tick_size"])
        assert price > 0
        if row["segment"] == "INDICES":
            continue
        assert math.isclose(price / tick, round(price / tick), abs_tol=1e-6), row
        name = str(row["name"])
        if row["segment"] == "NFO-OPT":
            spot = spots[UNDERLYING_INDEX.get(name, name)]
            assert tick == (0.01 if name in STOCKS and spot < 250 else 0.05)
        elif row["segment"] == "NFO-FUT" and name in INDICES:  # by the index level
            level = spots[UNDERLYING_INDEX[name]]
            assert tick == (0.05 if level <= 15_000 else 0.10 if level <= 30_000 else 0.20)
        elif row["segment"] in ("NSE", "NFO-FUT"):  # stocks and stock futures: the stock's price band
            spot = spots[str(row["tradingsymbol"]) if row["segment"] == "NSE" else name]
            bands = ((250, 0.01), (1_000, 0.05), (5_000, 0.10), (10_000, 0.50), (20_000, 1.0))
            assert tick == next((t for bound, t in bands if spot < bound), 5.0), row


def test_expiries_fall_on_the_right_days(full: list[Row], day: datetime.date) -> None:
    expiries: dict[tuple[str, str], set[datetime.date]] = defaultdict(set)
    for row in full:
        if row["exchange"] == "NFO":
            expiries[(str(row["name"]), str(row["instrument_type"]))].add(_date(row["expiry"]))
    # The monthly expiries: the last Tuesday of the next three months (from today's
    # on), moved to the trading day before when it is a holiday.
    month, year, monthly = day.month, day.year, []
    while len(monthly) < 3:
        if _monthly(year, month) >= day:
            monthly.append(_monthly(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for name in [*INDICES, *STOCKS]:
        assert sorted(expiries[(name, "FUT")]) == monthly, name
        if name != "NIFTY":  # BANKNIFTY and FINNIFTY: monthly only since Nov 2024; stocks: monthly
            assert sorted(expiries[(name, "CE")]) == sorted(expiries[(name, "PE")]) == monthly, name
    nifty = sorted(expiries[("NIFTY", "CE")])
    assert sorted(expiries[("NIFTY", "PE")]) == nifty
    tuesday = day + datetime.timedelta(days=(1 - day.weekday()) % 7)
    weekly = []
    while len(weekly) < 4:
        if _nse_expiry_of_week(tuesday) >= day:
            weekly.append(_nse_expiry_of_week(tuesday))
        tuesday += datetime.timedelta(weeks=1)
    assert nifty == sorted(set(weekly) | set(monthly))
    for expiry in nifty:
        assert expiry >= day and _trading_day(expiry)
        # a Tuesday, or a Monday/earlier day only because that Tuesday is a holiday
        following_tuesday = expiry + datetime.timedelta(days=(1 - expiry.weekday()) % 7)
        assert expiry == _nse_expiry_of_week(following_tuesday)


def test_holiday_expiries_move_to_the_previous_trading_day() -> None:
    march = kite_universe(datetime.date(2026, 3, 1), "full")
    days = {_date(r["expiry"]) for r in march if r["name"] == "NIFTY" and r["instrument_type"] == "CE"}
    assert datetime.date(2026, 3, 2) in days and datetime.date(2026, 3, 3) not in days  # Holi
    assert datetime.date(2026, 3, 30) in days and datetime.date(2026, 3, 31) not in days  # monthly
    keys = {f"{r['exchange']}:{r['tradingsymbol']}" for r in march}
    assert "NFO:NIFTY26MARFUT" in keys and "NFO:NIFTY26MAR26050CE" in keys  # 30 Mar: monthly name
    assert "NFO:NIFTY2630226050CE" in keys  # 2 Mar: weekly name


def test_strikes_around_the_price(full: list[Row]) -> None:
    spots = {str(r["tradingsymbol"]): _float(r["last_price"]) for r in full if r["segment"] in ("INDICES", "NSE")}
    chains: dict[tuple[str, object], list[Row]] = defaultdict(list)
    for row in full:
        if row["segment"] == "NFO-OPT":
            chains[(str(row["name"]), row["expiry"])].append(row)
    steps = {"NIFTY": 50.0, "BANKNIFTY": 100.0, "FINNIFTY": 50.0}
    sides = {"NIFTY": 40, "BANKNIFTY": 30, "FINNIFTY": 30}
    for (name, _), rows in chains.items():
        spot = spots[UNDERLYING_INDEX.get(name, name)]
        step = steps.get(name) or stock_strike_step(spot)
        each_side = sides.get(name, 10)
        pairs = Counter((_float(r["strike"]), r["instrument_type"]) for r in rows)
        assert set(pairs.values()) == {1}
        strikes = sorted({strike for strike, _ in pairs})
        assert len(pairs) == 2 * len(strikes) and len(strikes) == 2 * each_side + 1, name
        gaps = {round(b - a, 6) for a, b in itertools.pairwise(strikes)}
        assert gaps == {step}, (name, gaps)
        atm = strikes[each_side]
        assert abs(atm - spot) <= step / 2 + 1e-9, (name, atm, spot)
        assert all(s > 0 for s in strikes)
        assert 0.04 <= each_side * step / spot <= 0.25, name  # a chain covers a few % to 25% either way


def test_symbols_follow_the_naming_rules(full: list[Row], day: datetime.date) -> None:
    weekly_re = re.compile(r"^(?P<u>[A-Z&-]+)(?P<y>\d\d)(?P<m>[1-9OND])(?P<d>\d\d)(?P<k>[\d.]+)(?P<t>CE|PE)$")
    monthly_re = re.compile(r"^(?P<u>[A-Z&-]+)(?P<y>\d\d)(?P<m>[A-Z]{3})(?P<k>[\d.]+)(?P<t>CE|PE)$")
    last: dict[tuple[str, int, int], datetime.date] = {}
    for row in full:
        if row["exchange"] == "NFO":
            expiry = _date(row["expiry"])
            key = (str(row["name"]), expiry.year, expiry.month)
            last[key] = max(last.get(key, expiry), expiry)
    records = {str(r["exchange_token"]): r for r in upstox_universe(day, "full")}
    for row in full:
        if row["exchange"] != "NFO":
            continue
        name, expiry, symbol = str(row["name"]), _date(row["expiry"]), str(row["tradingsymbol"])
        record = records[str(row["exchange_token"])]
        date = f"{expiry.day:02d} {MONTHS[expiry.month - 1]} {expiry:%y}"
        if row["instrument_type"] == "FUT":
            assert symbol == f"{name}{expiry:%y}{MONTHS[expiry.month - 1]}FUT"
            assert record["trading_symbol"] == f"{name} FUT {date}"
            continue
        monthly = expiry == last[(name, expiry.year, expiry.month)]
        match = (monthly_re if monthly else weekly_re).match(symbol)
        assert match, symbol
        assert match["u"] == name and int(match["y"]) == expiry.year % 100
        assert float(match["k"]) == row["strike"] and match["t"] == row["instrument_type"]
        if not monthly:
            assert match["m"] == "123456789OND"[expiry.month - 1] and int(match["d"]) == expiry.day
        assert record["weekly"] is (not monthly)
        strike = _float(row["strike"])
        text = str(int(strike)) if strike.is_integer() else f"{strike:g}"
        assert record["trading_symbol"] == f"{name} {text} {row['instrument_type']} {date}"


# --------------------------------------------------------------- choosing the size


def test_the_config_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./fastflow.toml
    assert load_config(None, env={}, command="sim").simulator.universe == "small"
    config = load_config(None, env={"FASTFLOW_SIMULATOR_UNIVERSE": "full"}, command="sim")
    assert config.simulator.universe == "full"
    assert config.sources["simulator.universe"] == "FASTFLOW_SIMULATOR_UNIVERSE"
    with pytest.raises(ConfigError, match="FASTFLOW_SIMULATOR_UNIVERSE: expected small or full"):
        load_config(None, env={"FASTFLOW_SIMULATOR_UNIVERSE": "huge"}, command="sim")
    (tmp_path / "fastflow.toml").write_text('[simulator]\nuniverse = "full"\n')
    assert load_config(None, env={}, command="run").simulator.universe == "full"
    flag = load_config(None, env={}, command="sim", overrides={"simulator.universe": "small"})
    assert flag.simulator.universe == "small"


def test_fastflow_sim_universe_flag_reaches_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fastflow import cli

    monkeypatch.chdir(tmp_path)
    seen: list[str] = []

    def main(config: config_module.Config, *, duration: float | None = None) -> int:
        seen.append(config.simulator.universe)
        return 0

    monkeypatch.setattr("fastflow.services.simulator.main", main)
    assert cli.main(["sim", "--universe", "full", "--duration", "1"]) == 0
    assert cli.main(["sim", "--duration", "1"]) == 0
    assert seen == ["full", "small"]


@pytest.mark.parametrize("broker", ["kite", "upstox"])
def test_the_simulator_serves_the_size_it_is_given(broker: str, tmp_path: Path) -> None:
    from fastflow.services.simulator import SIMULATORS

    dump = tmp_path / f"instruments.{'csv' if broker == 'kite' else 'json'}"
    served = SIMULATORS[broker](SimulatorSection(universe="full", instruments_out=str(dump)))
    expected = load(broker, "synthetic-full")
    assert served.instruments == len(expected)
    served.write_instruments()
    written = load(broker, str(dump))
    assert written.symbol.tolist() == expected.symbol.tolist()
