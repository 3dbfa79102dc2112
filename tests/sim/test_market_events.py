"""Tests for the synthetic market's linked indices and injected events
(``fastflow.sim.market``): index levels follow their constituents, block
orders, sweeps and option-chain bursts show up in the decoded packets and in
the event log, and every book/price invariant still holds with events on."""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fastflow.hotpath import KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket, MarketEvent
from fastflow.sim.market import events as market_module
from fastflow.sim.universe import INDEX_CONSTITUENTS, NIFTY50, kite_universe
from fastflow.sim.wire import kite as kite_wire

from ..conftest import INFY, KITE_ROWS, RELIANCE, SBIN_BSE
from ..conftest import NIFTY50 as NIFTY50_TOKEN

TODAY = datetime.date(2026, 11, 21)
START = 1_795_000_000
NIFTY, BANKNIFTY, SENSEX = NIFTY50_TOKEN, 260105, 265
DERIVATIVE_SEGMENTS = (2, 3, 5, 6, 7, 8, 11, 12)

Row = dict[str, object]
IntArray = npt.NDArray[np.int64]


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return kite_universe(TODAY)


@pytest.fixture(scope="module")
def instruments(rows: list[Row]) -> Instruments:
    return Instruments.from_kite_rows(rows)


def _market(rows: list[Row], seed: int = 7, **kwargs: Any) -> KiteMarket:
    return KiteMarket.from_rows(rows, seed=seed, start_time=START, **kwargs)


def _by_token(rows: list[Row]) -> dict[int, Row]:
    return {int(str(r["instrument_token"])): r for r in rows}


def _token_of(rows: list[Row], symbol: str) -> int:
    return next(int(str(r["instrument_token"])) for r in rows if r["tradingsymbol"] == symbol)


def _state(market: KiteMarket) -> dict[str, IntArray]:
    """A copy of the whole market's raw state (``columns`` of every position)."""
    return market.columns(np.arange(market.size, dtype=np.int64))


class Tape:
    """Decodes a market's messages into a ``MarketState`` and yields, per
    message, the market positions it carried and the new events."""

    def __init__(self, market: KiteMarket, instruments: Instruments) -> None:
        self.market = market
        self.state = MarketState(instruments)
        self.decoder = KiteDecoder(self.state)
        self.seen = len(market.events)
        self.slots: npt.NDArray[np.int32] = np.zeros(0, np.int32)

    def feed(self, message: bytes) -> tuple[IntArray, list[MarketEvent]]:
        count = self.decoder.feed(message)
        self.slots = slots = self.state.flush().slots
        assert count == len(slots) == int.from_bytes(message[:2], "big")
        tokens = self.state.array["token"][slots]
        events = list(self.market.events)[self.seen :]
        self.seen = len(self.market.events)
        return self.market.positions(int(t) for t in tokens), events

    def row(self, token: int) -> Any:
        return self.state.array[self.state.slot(token)]


# ------------------------------------------------------------------------ universe data


def test_index_constituents_table() -> None:
    symbols = {symbol for symbol, _, _ in NIFTY50}
    assert set(INDEX_CONSTITUENTS) == {"NIFTY 50", "NIFTY BANK", "NIFTY FIN SERVICE", "SENSEX"}
    for table in INDEX_CONSTITUENTS.values():
        names = [symbol for symbol, _ in table]
        assert len(set(names)) == len(names) and set(names) <= symbols
        assert all(weight > 0 for _, weight in table)
        assert sum(weight for _, weight in table) == pytest.approx(1.0, abs=1e-12)
    assert {s for s, _ in INDEX_CONSTITUENTS["NIFTY 50"]} == symbols
    banks = {s for s, _ in INDEX_CONSTITUENTS["NIFTY BANK"]}
    assert {"HDFCBANK", "ICICIBANK", "SBIN", "KOTAKBANK", "AXISBANK"} <= banks
    assert len(INDEX_CONSTITUENTS["SENSEX"]) == 30


# ----------------------------------------------------------------------------- indices


def _expected_level(market: KiteMarket, index: int, weights: dict[int, float]) -> float:
    """``index_close * sum(w * ltp / close)`` from the market's current state, unrounded."""
    total = sum(weights.values())
    close = market.snapshot(index)["close"]
    level = 0.0
    for token, weight in weights.items():
        s = market.snapshot(token)
        level += weight / total * s["last_price"] / s["close"]
    return close * level


def _weights(rows: list[Row], index_symbol: str) -> dict[int, float]:
    return {_token_of(rows, symbol): weight for symbol, weight in INDEX_CONSTITUENTS[index_symbol]}


def _assert_level(market: KiteMarket, rows: list[Row], index: int, symbol: str, level: int) -> None:
    expected = _expected_level(market, index, _weights(rows, symbol))
    tick = market.tick(index)
    assert level % tick == 0
    assert abs(level - expected) <= tick / 2 + 1e-6 * expected


INDEX_SYMBOLS = ((NIFTY, "NIFTY 50"), (BANKNIFTY, "NIFTY BANK"), (SENSEX, "SENSEX"))


def test_index_opens_from_constituents(rows: list[Row]) -> None:
    market = _market(rows)
    for index, symbol in INDEX_SYMBOLS:
        s = market.snapshot(index)
        assert s["open"] == s["last_price"] == s["high"] == s["low"]
        _assert_level(market, rows, index, symbol, s["open"])
        assert s["close"] == round(float(str(_by_token(rows)[index]["last_price"])) * 100)


def test_index_follows_constituents_stepped_or_not(rows: list[Row], instruments: Instruments) -> None:
    market = _market(rows, seed=1)
    tape = Tape(market, instruments)
    bank = list(_weights(rows, "NIFTY BANK"))
    for _ in range(30):
        # Constituents move without the index: it keeps its last published level.
        before = market.snapshot(BANKNIFTY)
        closes = [market.snapshot(t)["last_price"] for t in bank]
        for _ in range(5):
            tape.feed(market.step_tokens(bank, "full"))
        assert [market.snapshot(t)["last_price"] for t in bank] != closes
        assert market.snapshot(BANKNIFTY) == before
        # Stepped alone, the index reflects the constituents' current prices.
        tape.feed(market.step_tokens([BANKNIFTY], "full"))
        level = int(tape.row(BANKNIFTY)["last_price"])
        assert level == market.snapshot(BANKNIFTY)["last_price"]
        _assert_level(market, rows, BANKNIFTY, "NIFTY BANK", level)
        # Stepped together with its constituents: their new prices count.
        tape.feed(market.step_tokens([*bank, BANKNIFTY], "full"))
        _assert_level(market, rows, BANKNIFTY, "NIFTY BANK", int(tape.row(BANKNIFTY)["last_price"]))
        # Stepping the index again while its constituents stand still changes nothing.
        level = int(tape.row(BANKNIFTY)["last_price"])
        tape.feed(market.step_tokens([BANKNIFTY, INFY], "full"))
        assert int(tape.row(BANKNIFTY)["last_price"]) == level == market.snapshot(BANKNIFTY)["last_price"]


def test_index_level_in_random_steps(rows: list[Row], instruments: Instruments) -> None:
    market = _market(rows, seed=2)
    tape = Tape(market, instruments)
    checked: Counter[int] = Counter()
    first_open = {index: market.snapshot(index)["open"] for index, _ in INDEX_SYMBOLS}
    for _ in range(300):
        positions, _ = tape.feed(market.step(120, "full"))
        stepped = {int(market.tokens[p]) for p in positions}
        for index, symbol in INDEX_SYMBOLS:
            if index in stepped:
                row = tape.row(index)
                _assert_level(market, rows, index, symbol, int(row["last_price"]))
                assert row["low"] <= row["last_price"] <= row["high"] and row["low"] <= row["open"] <= row["high"]
                assert row["open"] == first_open[index]
                checked[index] += 1
    assert min(checked.values()) > 30


def test_bare_constructor_indices_keyword() -> None:
    tokens = np.array([NIFTY50_TOKEN, INFY, RELIANCE, BANKNIFTY], np.uint32)
    prices = np.array([20_000.0, 1500.0, 3000.0, 25_000.0])
    ticks = np.array([0.0, 0.05, 0.05, 0.0])
    links = {NIFTY50_TOKEN: {INFY: 3.0, RELIANCE: 1.0}}  # normalised: 0.75 / 0.25
    market = KiteMarket(tokens, prices, ticks, seed=4, start_time=START, indices=links)
    for _ in range(200):
        market.step(4, "full")
        s = market.snapshot(NIFTY50_TOKEN)
        infy, rel = market.snapshot(INFY), market.snapshot(RELIANCE)
        expected = 2_000_000 * (0.75 * infy["last_price"] / infy["close"] + 0.25 * rel["last_price"] / rel["close"])
        assert abs(s["last_price"] - expected) <= 2.5 + 1e-6 * expected and s["last_price"] % 5 == 0
    # Without a link, an index random-walks on its own even when its "constituents" stand still.
    unlinked = KiteMarket(tokens, prices, ticks, seed=4, start_time=START, events=False)
    levels = {unlinked.snapshot(NIFTY50_TOKEN)["last_price"]}
    for _ in range(20):
        unlinked.step_tokens([NIFTY50_TOKEN])
        levels.add(unlinked.snapshot(NIFTY50_TOKEN)["last_price"])
    assert len(levels) > 1
    # A linked index whose constituents stand still does not move.
    linked = KiteMarket(tokens, prices, ticks, seed=4, start_time=START, indices=links, events=False)
    level = linked.snapshot(NIFTY50_TOKEN)["last_price"]
    for _ in range(20):
        linked.step_tokens([NIFTY50_TOKEN, BANKNIFTY])
        assert linked.snapshot(NIFTY50_TOKEN)["last_price"] == level


def test_from_rows_links_partial_universe() -> None:
    # conftest's universe: NIFTY 50 with INFY, RELIANCE (NSE) and SBIN (BSE only);
    # NIFTY BANK with SBIN only; the weights are renormalised over what is present.
    market = KiteMarket.from_rows(KITE_ROWS, seed=3, start_time=START)
    nifty = dict(INDEX_CONSTITUENTS["NIFTY 50"])
    weights = {INFY: nifty["INFY"], RELIANCE: nifty["RELIANCE"], SBIN_BSE: nifty["SBIN"]}
    for _ in range(100):
        market.step(market.size, "full")
        for index, links in ((NIFTY50_TOKEN, weights), (BANKNIFTY, {SBIN_BSE: 1.0})):
            level = market.snapshot(index)["last_price"]
            expected = _expected_level(market, index, links)
            assert abs(level - expected) <= market.tick(index) / 2 + 1e-6 * expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"indices": {999: {INFY: 1.0}}}, "not in the universe"),
        ({"indices": {INFY: {RELIANCE: 1.0}}}, "not an index"),
        ({"indices": {NIFTY50_TOKEN: {}}}, "no constituents"),
        ({"indices": {NIFTY50_TOKEN: {12345: 1.0}}}, "not in the universe"),
        ({"indices": {NIFTY50_TOKEN: {BANKNIFTY: 1.0}}}, "is an index"),
        ({"indices": {NIFTY50_TOKEN: {INFY: 0.0}}}, "positive"),
        ({"indices": {NIFTY50_TOKEN: {INFY: float("nan")}}}, "positive"),
        ({"chains": [[INFY, NIFTY50_TOKEN]]}, "tradable"),
        ({"chains": [[INFY, RELIANCE], [RELIANCE, SBIN_BSE]]}, "at most one chain"),
        ({"chains": [[INFY, INFY]]}, "at most one chain"),
        ({"chains": [[777]]}, "not in the universe"),
    ],
)
def test_constructor_link_validation(kwargs: dict[str, Any], match: str) -> None:
    tokens = np.array([NIFTY50_TOKEN, BANKNIFTY, INFY, RELIANCE, SBIN_BSE], np.uint32)
    with pytest.raises(ValueError, match=match):
        KiteMarket(tokens, np.full(5, 100.0), np.zeros(5), **kwargs)


# ------------------------------------------------------------------------------ events


def _check_invariants(market: KiteMarket, tape: Tape, positions: IntArray, volume: IntArray) -> None:
    """Every invariant of the module docstring, on the decoded raw state of the
    message's ``positions`` (``volume``: the last decoded volume per position)."""
    cols = market.columns(positions)
    rows = tape.state.array[tape.slots]
    assert np.array_equal(rows["token"], market.tokens[positions])
    ltp, low, high = rows["last_price"], rows["low"], rows["high"]
    tick = np.array([market.tick(int(t)) for t in rows["token"]], np.int64)
    assert np.array_equal(ltp, cols["last_price"]) and np.array_equal(rows["open"], cols["open"])
    assert np.all(low > 0) and np.all(high < 2**31)
    assert np.all(low <= rows["open"]) and np.all(rows["open"] <= high)
    assert np.all(low <= ltp) and np.all(ltp <= high)
    lowest, highest = market.band(positions)
    assert np.all(lowest <= low) and np.all(high <= highest)  # the band
    assert np.all(ltp % tick == 0)

    tradable = cols["is_index"] == 0
    rows, cols, tick = rows[tradable], {k: v[tradable] for k, v in cols.items()}, tick[tradable, None]
    lot = cols["lot"][:, None]
    depth = rows["depth"]
    bids, asks = depth["bid_price"], depth["ask_price"]
    # A bid below one tick is an empty level (all zero), only ever at the far end of the book.
    filled = bids > 0
    assert np.all(np.diff(filled.astype(np.int8), axis=1) <= 0)
    assert np.all(depth["bid_quantity"][~filled] == 0) and np.all(depth["bid_orders"][~filled] == 0)
    assert np.all(asks[:, -1] < 2**31)
    assert np.all(bids[:, 0] <= rows["last_price"]) and np.all(rows["last_price"] <= asks[:, 0])
    assert np.all(bids[:, 0] < asks[:, 0])
    assert np.all((np.diff(bids, axis=1) < 0) | ~filled[:, 1:]) and np.all(np.diff(asks, axis=1) > 0)
    assert np.all(bids % tick == 0) and np.all(asks % tick == 0)
    for side, present in (("bid", filled), ("ask", np.ones_like(filled))):
        qty, orders = depth[f"{side}_quantity"][present], depth[f"{side}_orders"][present]
        assert np.all(qty > 0) and np.all(qty % np.broadcast_to(lot, present.shape)[present] == 0)
        assert np.all(orders >= 1) and np.all(orders <= qty)
    assert np.all(rows["total_buy_quantity"] >= depth["bid_quantity"].sum(axis=1))
    assert np.all(rows["total_sell_quantity"] >= depth["ask_quantity"].sum(axis=1))
    assert np.all(rows["low"] <= rows["average_price"]) and np.all(rows["average_price"] <= rows["high"])
    stepped = positions[tradable]
    assert np.all(rows["volume"] >= volume[stepped]) and np.all(rows["volume"] > 0)
    volume[stepped] = rows["volume"]
    assert np.all(rows["last_quantity"] > 0) and np.all(rows["last_quantity"] % lot[:, 0] == 0)
    derivative = np.isin(rows["token"] & 0xFF, DERIVATIVE_SEGMENTS)
    oi, oi_low, oi_high = rows["oi"], rows["oi_day_low"], rows["oi_day_high"]
    assert np.all(oi_low[derivative] > 0)
    assert np.all(oi_low[derivative] <= oi[derivative]) and np.all(oi[derivative] <= oi_high[derivative])
    assert np.all(oi[~derivative] == 0) and np.all(oi_low[~derivative] == 0) and np.all(oi_high[~derivative] == 0)


def _check_event(
    event: MarketEvent,
    market: KiteMarket,
    tape: Tape,
    before: dict[str, IntArray],
    positions: IntArray,
    by_token: dict[int, Row],
) -> None:
    """An event is visible in the decoded packets exactly as logged."""
    assert event.time == market.clock
    assert event.side in ("buy", "sell")
    assert len(event.tokens) == len(event.quantities) == len(event.prices)
    stepped = {int(t) for t in market.tokens[positions]}
    assert set(event.tokens) <= stepped  # every event instrument is in the message
    for token, qty, price in zip(event.tokens, event.quantities, event.prices, strict=True):
        p = int(market.positions([token])[0])
        row = tape.row(token)
        lot = int(before["lot"][p])
        assert token & 0xFF != kite_wire.SEGMENT_INDICES
        assert int(row["last_quantity"]) == qty
        assert int(row["last_price"]) == price
        assert int(row["volume"]) == before["volume_traded"][p] + qty
        assert int(row["exchange_timestamp"]) == int(row["last_trade_time"]) == event.time * 1000  # epoch ms
        bid0, ask0 = int(before["bid_px"][p, 0]), int(before["ask_px"][p, 0])
        if event.kind == "sweep":
            k = event.levels
            assert 2 <= k <= 5
            side = "ask" if event.side == "buy" else "bid"
            assert price == before[f"{side}_px"][p, k - 1]
            assert qty == before[f"{side}_qty"][p, :k].sum()
        else:
            assert event.levels == 0
            # At the touch of the book before the step, unless that lies outside the band.
            touch = ask0 if event.side == "buy" else bid0
            assert bid0 <= price <= ask0
            close = int(before["close"][p])
            assert price == touch or touch > 1.2 * close - market.tick(token) or touch < 0.8 * close + market.tick(token)
        if event.kind == "block":
            assert 500 * lot <= qty <= 5000 * lot
        elif event.kind == "burst":
            assert 40 * lot <= qty <= 400 * lot
    if event.kind == "burst":
        assert len(event.tokens) >= 5 and len(set(event.tokens)) == len(event.tokens)
        chains = {(by_token[t]["name"], by_token[t]["expiry"]) for t in event.tokens}
        kinds = {by_token[t]["instrument_type"] for t in event.tokens}
        assert len(chains) == 1 and kinds <= {"CE", "PE"}
    else:
        assert len(event.tokens) == 1


def _run(market: KiteMarket, tape: Tape, steps: int, n: int, by_token: dict[int, Row]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    last_volume = np.zeros(market.size, np.int64)
    for _ in range(steps):
        before = _state(market)
        positions, events = tape.feed(market.step(n, "full"))
        assert len(positions) == n
        _check_invariants(market, tape, positions, last_volume)
        for event in events:
            _check_event(event, market, tape, before, positions, by_token)
            kinds[event.kind] += 1
    return kinds


def test_events_with_default_probabilities(rows: list[Row], instruments: Instruments) -> None:
    market = _market(rows, seed=5)
    steps = 1500
    kinds = _run(market, Tape(market, instruments), steps, 100, _by_token(rows))
    assert set(kinds) == {"block", "sweep", "burst"}
    # Rare enough that the market still looks normal.
    assert kinds["block"] < 0.05 * steps and kinds["sweep"] < 0.06 * steps and kinds["burst"] < 0.03 * steps
    assert len(market.events) == sum(kinds.values())
    assert market.events.maxlen == market_module.EVENT_LOG_SIZE


@pytest.fixture
def eventful(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step draws every event kind."""
    for name in ("BLOCK_PROBABILITY", "SWEEP_PROBABILITY", "BURST_PROBABILITY"):
        monkeypatch.setattr(market_module, name, 1.0)


@pytest.mark.usefixtures("eventful")
@pytest.mark.parametrize("n", [404, 150, 12, 5])
def test_every_step_eventful(rows: list[Row], instruments: Instruments, n: int) -> None:
    market = _market(rows, seed=n)
    kinds = _run(market, Tape(market, instruments), 200, n, _by_token(rows))
    assert kinds["burst"] == 200
    if n >= 150:  # a burst has at most 20 legs, so tradable candidates are always left
        assert kinds["block"] == 200
        assert kinds["sweep"] > 150  # skipped only when fewer than 2 levels are inside the band
    if n == 5:  # the burst fills the whole message
        assert kinds["block"] == kinds["sweep"] == 0
    for event in market.events:
        if event.kind == "sweep":
            assert event.levels >= 2


@pytest.mark.usefixtures("eventful")
def test_burst_needs_three_chosen_legs(rows: list[Row], instruments: Instruments) -> None:
    market = _market(rows, seed=9)
    tape = Tape(market, instruments)
    by_token = _by_token(rows)
    options = [t for t, r in by_token.items() if r["instrument_type"] in ("CE", "PE")]
    expiries = sorted({str(by_token[t]["expiry"]) for t in options if by_token[t]["name"] == "NIFTY"})
    chain = [t for t in options if by_token[t]["name"] == "NIFTY" and str(by_token[t]["expiry"]) == expiries[0]]
    other = [t for t in options if by_token[t]["name"] == "BANKNIFTY"]
    last_volume = np.zeros(market.size, np.int64)
    # Two legs of each of two chains: no burst (blocks and sweeps still happen).
    for _ in range(50):
        tokens = [*chain[:2], *other[:2], INFY, NIFTY]
        before = _state(market)
        positions, events = tape.feed(market.step_tokens(tokens, "full"))
        _check_invariants(market, tape, positions, last_volume)
        assert {e.kind for e in events} <= {"block", "sweep"} and any(e.kind == "block" for e in events)
        for event in events:
            _check_event(event, market, tape, before, positions, by_token)
            assert set(event.tokens) <= set(tokens)
    # Three or more chosen legs of one chain: a burst among exactly those positions.
    for legs in (3, 4, 8, 30):
        tokens = [*chain[:legs], *other[:2], RELIANCE]
        before = _state(market)
        positions, events = tape.feed(market.step_tokens(tokens, "full"))
        _check_invariants(market, tape, positions, last_volume)
        (burst,) = [e for e in events if e.kind == "burst"]
        assert set(burst.tokens) <= set(chain[:legs])
        assert min(legs, 5) <= len(burst.tokens) <= min(legs, 20)
        for token, qty in zip(burst.tokens, burst.quantities, strict=True):
            assert int(tape.row(token)["last_quantity"]) == qty
            p = int(market.positions([token])[0])
            assert int(tape.row(token)["volume"]) == before["volume_traded"][p] + qty


@pytest.mark.usefixtures("eventful")
def test_advance_and_columns_reflect_events(rows: list[Row]) -> None:
    market = _market(rows, seed=12)
    by_token = _by_token(rows)
    chain = [t for t, r in by_token.items() if r["name"] == "BANKNIFTY" and r["instrument_type"] in ("CE", "PE")]
    idx = market.positions([*chain[:10], INFY, RELIANCE, SENSEX])
    for _ in range(20):
        before = market.columns(idx)
        seen = len(market.events)
        market.advance(idx)
        cols = market.columns(idx)
        events = list(market.events)[seen:]
        assert {"block", "burst"} <= {e.kind for e in events}
        for event in events:
            for token, qty, price in zip(event.tokens, event.quantities, event.prices, strict=True):
                j = [int(t) for t in market.tokens[idx]].index(token)
                assert cols["last_traded_quantity"][j] == qty and cols["last_price"][j] == price
                assert cols["volume_traded"][j] == before["volume_traded"][j] + qty
        assert np.all(cols["bid_px"][:, 0] <= cols["last_price"]) and np.all(cols["last_price"] <= cols["ask_px"][:, 0])
        assert np.all(cols["bid_px"][:, 0] < cols["ask_px"][:, 0])


def _burst_only_market(n_chain: int, seed: int) -> tuple[KiteMarket, list[int]]:
    tokens = np.arange(1, n_chain + 4, dtype=np.uint32) * 256 + 2
    chain = [int(t) for t in tokens[:n_chain]]
    market = KiteMarket(
        tokens, np.full(tokens.size, 250.0), np.full(tokens.size, 0.05), seed=seed, start_time=START,
        lot_size=np.full(tokens.size, 50), chains=[chain],
    )
    return market, chain


@pytest.mark.usefixtures("eventful")
def test_bare_constructor_chains_keyword() -> None:
    market, chain = _burst_only_market(12, seed=3)
    for _ in range(50):
        msg = market.step(8, "full")
        burst = [e for e in list(market.events)[-3:] if e.kind == "burst" and e.time == market.clock]
        assert len(burst) == 1 and 5 <= len(burst[0].tokens) <= 8
        assert set(burst[0].tokens) <= set(chain)
        packets = {int.from_bytes(msg[4 + i * 186 : 8 + i * 186], "big") for i in range(8)}
        assert set(burst[0].tokens) <= packets
    # No chains: no bursts.
    plain = KiteMarket(np.array([258, 514, 770, 1026], np.uint32), np.full(4, 250.0), np.full(4, 0.05), seed=1)
    for _ in range(50):
        plain.step(4)
    assert {e.kind for e in plain.events} == {"block", "sweep"}


def test_events_off(rows: list[Row], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BLOCK_PROBABILITY", "SWEEP_PROBABILITY", "BURST_PROBABILITY"):
        monkeypatch.setattr(market_module, name, 1.0)
    market = _market(rows, events=False)
    for _ in range(100):
        market.step(150, "full")
        market.step_tokens([int(t) for t in market.tokens[:60]], "full")
        market.advance(np.arange(50, 120, dtype=np.int64))
    assert len(market.events) == 0
    cols = market.columns(np.arange(market.size, dtype=np.int64))
    ltq, lots = cols["last_traded_quantity"], cols["lot"]
    tradable = lots > 0
    # The pre-open auction prints up to 499 lots, later trades 1..19 lots: never a block.
    assert np.all(ltq[tradable] <= 499 * lots[tradable])


def _events_of(market: KiteMarket) -> list[MarketEvent]:
    return list(market.events)


def _session(rows: list[Row], seed: int) -> Iterator[bytes]:
    market = _market(rows, seed=seed)
    tokens = [int(t) for t in market.tokens]
    for i in range(400):
        yield market.step(100 + i % 50, ("full", "quote", "ltp")[i % 3])
        yield market.step_tokens(tokens[i % 300 : i % 300 + 40], "full")
    yield repr(_events_of(market)).encode()


def test_determinism(rows: list[Row]) -> None:
    a, b, c = list(_session(rows, 21)), list(_session(rows, 21)), list(_session(rows, 22))
    assert a == b
    assert a != c
    assert b"burst" in a[-1] and b"sweep" in a[-1] and b"block" in a[-1]


def test_market_event_is_frozen() -> None:
    event = MarketEvent("block", START, (INFY,), (500,), (150_000,), "buy")
    assert event.levels == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.time = 0  # type: ignore[misc]
