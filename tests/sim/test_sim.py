"""Tests for the synthetic Kite universe (``fastflow.sim.universe``) and market
(``fastflow.sim.market``), checked against kiteconnect's own parsers and the
``fastflow.sim.wire.kite`` encoders."""

from __future__ import annotations

import datetime
import gzip
import itertools
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import kiteconnect
import numpy as np
import pytest

from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import COLUMNS, kite_universe, write_kite_csv
from fastflow.sim.wire import kite as kite_wire

TODAY = datetime.date(2026, 11, 21)  # a Saturday; next Tuesdays: 24 Nov (monthly), 1 Dec
START = 1_795_000_000
HEADER = (
    "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,"
    "tick_size,lot_size,instrument_type,segment,exchange"
)
SEGMENT_ID = {"NSE": 1, "NFO-FUT": 2, "NFO-OPT": 2, "CDS-FUT": 3, "CDS-OPT": 3}
SEGMENT_ID.update({"BCD-FUT": 6, "MCX-FUT": 7, "INDICES": 9, "NCO-FUT": 12})
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _by_key(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {f"{r['exchange']}:{r['tradingsymbol']}": r for r in rows}


def _date(value: object) -> datetime.date:
    assert isinstance(value, datetime.date)
    return value


def _float(value: object) -> float:
    assert isinstance(value, (int, float))
    return float(value)


def _last_tuesday(year: int, month: int) -> datetime.date:
    day = datetime.date(year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)
    return day - datetime.timedelta(days=(day.weekday() - 1) % 7)


# ---------------------------------------------------------------------------- universe


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return kite_universe(TODAY)


def test_columns_and_types(rows: list[dict[str, object]]) -> None:
    for row in rows:
        assert tuple(row) == COLUMNS
        assert isinstance(row["instrument_token"], int)
        assert isinstance(row["exchange_token"], int)
        assert isinstance(row["lot_size"], int)
        for col in ("last_price", "strike", "tick_size"):
            assert isinstance(row[col], float)
        assert row["expiry"] is None or isinstance(row["expiry"], datetime.date)
        assert _float(row["last_price"]) > 0


def test_nifty50_constituents(rows: list[dict[str, object]]) -> None:
    eq = [r for r in rows if r["segment"] == "NSE"]
    assert len(eq) == 50
    symbols = {r["tradingsymbol"] for r in eq}
    assert {"RELIANCE", "INFY", "TCS", "HDFCBANK", "ICICIBANK", "SBIN", "ITC", "LT"} <= symbols
    for r in eq:
        assert (r["instrument_type"], r["exchange"], r["lot_size"]) == ("EQ", "NSE", 1)
        assert r["expiry"] is None and r["strike"] == 0.0
        assert r["tick_size"] == (0.01 if _float(r["last_price"]) < 250 else 0.05)
        assert round(_float(r["last_price"]) / _float(r["tick_size"]), 6).is_integer()
    by_key = _by_key(rows)
    assert by_key["NSE:INFY"]["instrument_token"] == 408065
    assert by_key["NSE:RELIANCE"]["instrument_token"] == 738561


def test_indices(rows: list[dict[str, object]]) -> None:
    by_key = _by_key(rows)
    for key, token in (("NSE:NIFTY 50", 256265), ("NSE:NIFTY BANK", 260105), ("BSE:SENSEX", 265)):
        row = by_key[key]
        assert row["instrument_token"] == token
        assert token & 0xFF == kite_wire.SEGMENT_INDICES
        assert (row["segment"], row["instrument_type"]) == ("INDICES", "EQ")
        assert (row["tick_size"], row["lot_size"]) == (0.0, 0)


def test_tokens_and_keys_unique(rows: list[dict[str, object]]) -> None:
    tokens = [r["instrument_token"] for r in rows]
    assert len(set(tokens)) == len(rows)
    assert len(_by_key(rows)) == len(rows)
    for r in rows:
        token = r["instrument_token"]
        assert isinstance(token, int) and 0 < token < 2**32
        assert token == _float(r["exchange_token"]) * 256 + SEGMENT_ID[str(r["segment"])]


def test_every_special_segment_present(rows: list[dict[str, object]]) -> None:
    segments = Counter(int(_float(r["instrument_token"])) & 0xFF for r in rows)
    for seg in (1, 2, 3, 6, 7, 9, 12):
        assert segments[seg] > 0, seg
    exchanges = {r["exchange"] for r in rows}
    assert {"NSE", "BSE", "NFO", "CDS", "BCD", "MCX", "NCO"} <= exchanges
    by_key = _by_key(rows)
    usdinr = [r for k, r in by_key.items() if k.startswith("CDS:USDINR") and r["instrument_type"] == "FUT"]
    assert usdinr and usdinr[0]["segment"] == "CDS-FUT" and usdinr[0]["tick_size"] == 0.0025
    assert any(k.startswith("MCX:CRUDEOIL") for k in by_key)


@pytest.mark.parametrize(
    "today",
    [TODAY, datetime.date(2026, 1, 13), datetime.date(2026, 12, 28), datetime.date(2027, 3, 31)],
)
def test_derivatives(today: datetime.date) -> None:
    rows = kite_universe(today)
    futs = [r for r in rows if r["segment"] == "NFO-FUT"]
    assert {r["name"] for r in futs} == {"NIFTY", "BANKNIFTY"}
    expiry = _date(futs[0]["expiry"])
    assert expiry >= today and expiry == _last_tuesday(expiry.year, expiry.month)
    assert (expiry.year, expiry.month) in {
        (today.year, today.month),
        (today.year + today.month // 12, today.month % 12 + 1),
    }
    for f in futs:
        assert f["tradingsymbol"] == f"{f['name']}{expiry:%y}{MONTHS[expiry.month - 1]}FUT"
        assert f["lot_size"] == (75 if f["name"] == "NIFTY" else 35)

    opts = [r for r in rows if r["segment"] == "NFO-OPT"]
    assert 200 <= len(opts) <= 1000
    weekly_re = re.compile(r"^(NIFTY|BANKNIFTY)(\d\d)([1-9OND])(\d\d)(\d+)(CE|PE)$")
    monthly_re = re.compile(r"^(NIFTY|BANKNIFTY)(\d\d)([A-Z]{3})(\d+)(CE|PE)$")
    expiries: dict[str, set[datetime.date]] = defaultdict(set)
    for o in opts:
        name, exp = str(o["name"]), _date(o["expiry"])
        strike = _float(o["strike"])
        expiries[name].add(exp)
        assert exp >= today and exp.weekday() == 1  # Tuesday
        assert o["exchange"] == "NFO" and o["instrument_type"] in ("CE", "PE")
        assert strike % (50 if name == "NIFTY" else 100) == 0
        assert o["lot_size"] == (75 if name == "NIFTY" else 35)
        symbol = str(o["tradingsymbol"])
        if exp == _last_tuesday(exp.year, exp.month):
            match = monthly_re.match(symbol)
            assert match, symbol
            assert match.group(3) == MONTHS[exp.month - 1]
        else:
            match = weekly_re.match(symbol)
            assert match, symbol
            assert match.group(3) == "123456789OND"[exp.month - 1]
            assert int(match.group(4)) == exp.day
        assert match.group(1) == name and int(match.group(2)) == exp.year % 100
        assert int(match.group(len(match.groups()) - 1)) == strike
        assert match.group(len(match.groups())) == o["instrument_type"]
    # NIFTY: the next two weekly expiries; BANKNIFTY: its next two (monthly) expiries.
    nifty = sorted(expiries["NIFTY"])
    assert len(nifty) == 2 and nifty[1] - nifty[0] == datetime.timedelta(days=7)
    assert nifty[0] - today < datetime.timedelta(days=7)
    assert len(expiries["BANKNIFTY"]) == 2
    # Calls and puts come in pairs, centred on the spot.
    pairs = Counter((o["name"], o["expiry"], o["strike"]) for o in opts)
    assert set(pairs.values()) == {2}


def test_known_symbols() -> None:
    keys = _by_key(kite_universe(TODAY))
    assert "NFO:NIFTY26NOVFUT" in keys and "NFO:BANKNIFTY26NOVFUT" in keys
    assert "NFO:NIFTY26NOV26050CE" in keys and "NFO:NIFTY26D0126050PE" in keys
    assert "NFO:BANKNIFTY26DEC59100CE" in keys
    jan = _by_key(kite_universe(datetime.date(2026, 1, 13)))
    assert "NFO:NIFTY26JANFUT" in jan and "NFO:NIFTY2611326000CE" in jan


def test_universe_is_deterministic() -> None:
    assert kite_universe(TODAY) == kite_universe(TODAY)
    before = datetime.date.today()
    rows = kite_universe()
    after = datetime.date.today()  # the run may cross midnight
    assert rows in (kite_universe(before), kite_universe(after))


def _expected_parsed(row: dict[str, object]) -> dict[str, object]:
    """What ``KiteConnect._parse_instruments`` yields for ``row``."""
    out: dict[str, object] = {col: str(row[col]) for col in COLUMNS}
    out["instrument_token"] = row["instrument_token"]
    out["last_price"] = row["last_price"]
    out["strike"] = row["strike"]
    out["tick_size"] = row["tick_size"]
    out["lot_size"] = row["lot_size"]
    out["expiry"] = row["expiry"] if row["expiry"] is not None else ""
    return out


def test_csv_parses_with_kiteconnect(rows: list[dict[str, object]], tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv"
    write_kite_csv(rows, path)
    data = path.read_bytes()
    assert data.decode().splitlines()[0] == HEADER
    assert b'"NIFTY 50"' in data and b"\r" not in data
    parsed = kiteconnect.KiteConnect("api_key")._parse_instruments(data)
    assert parsed == [_expected_parsed(r) for r in rows]


def test_csv_gzip(rows: list[dict[str, object]], tmp_path: Path) -> None:
    plain, packed = tmp_path / "i.csv", tmp_path / "i.csv.gz"
    write_kite_csv(rows, plain)
    write_kite_csv(rows, str(packed))
    raw = packed.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert gzip.decompress(raw) == plain.read_bytes()
    parsed = kiteconnect.KiteConnect("api_key")._parse_instruments(gzip.decompress(raw))
    assert parsed == [_expected_parsed(r) for r in rows]
    write_kite_csv(rows, str(packed))
    assert packed.read_bytes() == raw  # byte-reproducible (mtime 0)


# ------------------------------------------------------------------------------ market


def _market(seed: int = 7) -> KiteMarket:
    return KiteMarket.from_rows(kite_universe(TODAY), seed=seed, start_time=START)


def _split(msg: bytes) -> list[bytes]:
    count = int.from_bytes(msg[:2], "big")
    packets, pos = [], 2
    for _ in range(count):
        length = int.from_bytes(msg[pos : pos + 2], "big")
        packets.append(msg[pos + 2 : pos + 2 + length])
        pos += 2 + length
    assert pos == len(msg)
    return packets


def _raw(price: float, token: int) -> int:
    raw = round(price * kite_wire.price_divisor(token))
    assert abs(raw - price * kite_wire.price_divisor(token)) < 1e-3
    return raw


@pytest.fixture(scope="module")
def ticker() -> Any:
    return kiteconnect.KiteTicker("k", "t")


@pytest.mark.parametrize(
    ("mode", "index_len", "tradable_len"), [("ltp", 8, 8), ("quote", 28, 44), ("full", 32, 184)]
)
def test_modes_decode(ticker: Any, mode: str, index_len: int, tradable_len: int) -> None:
    market = _market()
    msg = market.step(market.size, mode)
    packets = _split(msg)
    assert len(packets) == market.size
    for packet in packets:
        token = int.from_bytes(packet[:4], "big")
        expected = index_len if token & 0xFF == kite_wire.SEGMENT_INDICES else tradable_len
        assert len(packet) == expected
    ticks = ticker._parse_binary(msg)
    assert len(ticks) == market.size
    assert {t["instrument_token"] for t in ticks} == set(int(t) for t in market.tokens)
    assert {t["mode"] for t in ticks} == {mode}
    assert any(not t["tradable"] for t in ticks)
    for n in (1, 17, 200):
        ticks = ticker._parse_binary(market.step(n, mode))
        assert len(ticks) == n == len({t["instrument_token"] for t in ticks})


def test_invariants_over_many_steps(ticker: Any) -> None:
    market = _market(seed=3)
    rows = {r["instrument_token"]: r for r in kite_universe(TODAY)}
    derivative_segments = {2, 3, 6, 7, 12}
    last_volume: dict[int, int] = {}
    last_oi: dict[int, tuple[int, int]] = {}
    closes: dict[int, float] = {}
    last_ts = 0
    seen: set[int] = set()
    for _ in range(300):
        for tick in ticker._parse_binary(market.step(150, "full")):
            token = tick["instrument_token"]
            seen.add(token)
            seg = token & 0xFF
            div = kite_wire.price_divisor(token)
            ohlc = tick["ohlc"]
            ltp = tick["last_price"]
            assert 0 < ohlc["low"] <= ltp <= ohlc["high"]
            assert ohlc["low"] <= ohlc["open"] <= ohlc["high"]
            assert closes.setdefault(token, ohlc["close"]) == ohlc["close"] > 0
            for price in (ltp, *ohlc.values()):
                assert 0 < _raw(price, token) < 2**31
            ts = int(tick["exchange_timestamp"].timestamp())
            assert ts >= last_ts
            last_ts = ts
            if seg == kite_wire.SEGMENT_INDICES:
                assert tick["mode"] == "full" and "depth" not in tick
                continue
            tick_raw = market.tick(token)
            assert tick_raw == max(1, round(_float(rows[token]["tick_size"]) * div))
            assert _raw(ltp, token) % tick_raw == 0
            assert ohlc["low"] <= tick["average_traded_price"] <= ohlc["high"]
            volume = tick["volume_traded"]
            assert volume >= last_volume.get(token, 0) and volume > 0
            last_volume[token] = volume
            assert tick["last_traded_quantity"] > 0
            assert tick["last_traded_quantity"] % max(1, int(_float(rows[token]["lot_size"]))) == 0
            assert int(tick["last_trade_time"].timestamp()) <= ts
            bids, asks = tick["depth"]["buy"], tick["depth"]["sell"]
            assert len(bids) == len(asks) == 5
            assert bids[0]["price"] < asks[0]["price"]
            assert bids[0]["price"] <= ltp <= asks[0]["price"]
            # A bid below one tick is an empty level (all zero), only at the far end of the book.
            filled = [b for b in bids if b["price"] > 0]
            assert bids[: len(filled)] == filled
            assert all(b == {"quantity": 0, "price": 0, "orders": 0} for b in bids[len(filled):])
            assert all(a["price"] > b["price"] for a, b in itertools.pairwise(filled))
            assert all(a["price"] < b["price"] for a, b in itertools.pairwise(asks))
            for level in filled + asks:
                assert 0 < _raw(level["price"], token) < 2**31
                assert _raw(level["price"], token) % tick_raw == 0
                assert level["quantity"] > 0 and 0 < level["orders"] <= level["quantity"]
            assert tick["total_buy_quantity"] >= sum(b["quantity"] for b in bids)
            assert tick["total_sell_quantity"] >= sum(a["quantity"] for a in asks)
            if seg in derivative_segments:
                assert 0 < tick["oi_day_low"] <= tick["oi"] <= tick["oi_day_high"]
                low, high = last_oi.get(token, (tick["oi_day_low"], tick["oi_day_high"]))
                assert tick["oi_day_low"] <= low and tick["oi_day_high"] >= high
                last_oi[token] = (tick["oi_day_low"], tick["oi_day_high"])
            else:
                assert tick["oi"] == tick["oi_day_high"] == tick["oi_day_low"] == 0
    assert len(seen) == market.size


def _wire_packet(market: KiteMarket, token: int, mode: str) -> bytes:
    s = market.snapshot(token)
    if mode == "ltp":
        return kite_wire.ltp_packet(token, s["last_price"])
    if token & 0xFF == kite_wire.SEGMENT_INDICES:
        return kite_wire.index_packet(
            token,
            s["last_price"],
            s["high"],
            s["low"],
            s["open"],
            s["close"],
            s["change"],
            s["exchange_timestamp"] if mode == "full" else None,
        )
    quote = (
        token,
        s["last_price"],
        s["last_traded_quantity"],
        s["average_traded_price"],
        s["volume_traded"],
        s["total_buy_quantity"],
        s["total_sell_quantity"],
        s["open"],
        s["high"],
        s["low"],
        s["close"],
    )
    if mode == "quote":
        return kite_wire.quote_packet(*quote)
    return kite_wire.full_packet(
        *quote,
        s["last_trade_time"],
        s["oi"],
        s["oi_day_high"],
        s["oi_day_low"],
        s["exchange_timestamp"],
        s["bids"],
        s["asks"],
    )


@pytest.mark.parametrize("mode", ["ltp", "quote", "full"])
def test_packets_match_kite_wire(mode: str) -> None:
    market = _market(seed=11)
    for _ in range(20):
        market.step(100, "full")
    msg = market.step(market.size, mode)
    packets = _split(msg)
    expected = [_wire_packet(market, int.from_bytes(p[:4], "big"), mode) for p in packets]
    assert packets == expected
    assert msg == kite_wire.message(expected)


def test_golden_vectors_and_divisors() -> None:
    # The research note's golden vectors: INFY at 1500.25 and a CDS token at 83.1234.
    market = KiteMarket(
        np.array([408065, 315907], np.uint32), np.array([1500.25, 83.1234]), np.array([0.05, 0.0001])
    )
    assert market.divisor(408065) == 100 and market.divisor(315907) == 10_000_000
    assert market.tick(315907) == 1000
    for token in (256265, 260105, 265, 315907, 1536006, 128268, 115200263, 408065):
        m = KiteMarket(np.array([token], np.uint32), np.array([0.0]), np.array([0.0]))
        assert m.divisor(token) == kite_wire.price_divisor(token)
        assert m.tick(token) == round(0.05 * kite_wire.price_divisor(token))
        assert m.snapshot(token)["close"] == 100 * kite_wire.price_divisor(token)  # default price


def test_determinism() -> None:
    a, b, c = _market(seed=5), _market(seed=5), _market(seed=6)
    msgs_a = [a.step(120, mode) for mode in ("full", "quote", "ltp") * 10]
    msgs_b = [b.step(120, mode) for mode in ("full", "quote", "ltp") * 10]
    msgs_c = [c.step(120, mode) for mode in ("full", "quote", "ltp") * 10]
    assert msgs_a == msgs_b
    assert msgs_a != msgs_c
    assert _market(seed=5).messages(30, 120, "full") == _market(seed=5).messages(30, 120, "full")


def test_clock_and_now(ticker: Any) -> None:
    market = _market()
    assert market.clock == START
    tick = ticker._parse_binary(market.step(3, "full"))[0]
    assert int(tick["exchange_timestamp"].timestamp()) == START + 1
    tick = ticker._parse_binary(market.step(3, "full", now=START + 100))[0]
    assert int(tick["exchange_timestamp"].timestamp()) == START + 100
    market.step(3, "full", now=START)  # never goes back
    assert market.clock == START + 100


def test_step_limits() -> None:
    market = _market()
    assert market.step(0) == b"\x00\x00"
    with pytest.raises(ValueError):
        market.step(market.size + 1)
    with pytest.raises(ValueError):
        market.step(-1)
    with pytest.raises(ValueError):
        market.step(5, "snap")
    msgs = market.messages(4, 10, "quote")
    assert len(msgs) == 4 and all(len(_split(m)) == 10 for m in msgs)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        KiteMarket(np.array([1, 1], np.uint32), np.array([1.0, 2.0]), np.array([0.05, 0.05]))
    with pytest.raises(ValueError):
        KiteMarket(np.array([1, 2], np.uint32), np.array([1.0]), np.array([0.05, 0.05]))
    # 300 rupees at the CDS divisor (1e7) does not fit in a signed 32-bit raw price.
    with pytest.raises(ValueError):
        KiteMarket(np.array([1000 * 256 + 3], np.uint32), np.array([300.0]), np.array([0.0025]))
    with pytest.raises(ValueError):
        KiteMarket(np.array([408065], np.uint32), np.array([1.0]), np.array([0.05]), start_time=-1)
