"""Options-flow detection in the hot path (docs/flow.md): hand-built snapshot
sequences for each kind and each non-event, run through the Kite decoder of
both implementations (compiled and reference); then the two checked against
each other on the simulated market and on random sequences (hypothesis),
with the fields of every event consistent."""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow import _hotpath as compiled
from fastflow import reference
from fastflow.analytics import flow
from fastflow.config import ConfigError, FlowSection, load_config
from fastflow.instruments import Instruments
from fastflow.instruments.symbols import INDEX_OF_UNDERLYING
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.sim.wire import kite as kw

IMPLEMENTATIONS = {"compiled": compiled, "reference": reference}
ROWS = kite_universe()
INSTRUMENTS = Instruments.from_kite_rows(ROWS)
#: A NIFTY call, its index and a stock future of the small universe.
OPTION = next(r for r in ROWS if r["name"] == "NIFTY" and r["instrument_type"] == "CE")
NIFTY = next(r for r in ROWS if r["tradingsymbol"] == "NIFTY 50")
FUTURE = next(r for r in ROWS if r["instrument_type"] == "FUT" and r["name"] == "NIFTY")
LOT = int(OPTION["lot_size"])
T0 = 1_790_000_000  # exchange time, epoch seconds
#: Quiet settings: each scenario turns on only what it tests.
QUIET = FlowSection(block_lots=100_000, repeat_hits=1_000, voi_min_lots=10**9, z_min_samples=10**6,
                     premium_floor=0.0, premium_floors=())


@dataclasses.dataclass
class Snap:
    """One full snapshot of a contract, prices in rupees."""

    ltp: float
    volume: int
    ts: int = T0
    atp: float = 0.0
    oi: int = 5_000_000
    bids: tuple[tuple[int, float], ...] = ((1300, 99.95), (1300, 99.90), (1300, 99.85), (1300, 99.80), (1300, 99.75))
    asks: tuple[tuple[int, float], ...] = ((1300, 100.0), (1300, 100.05), (1300, 100.10), (1300, 100.15),
                                           (1300, 100.20))

    def packet(self, token: int = int(OPTION["instrument_token"])) -> bytes:
        def paise(x: float) -> int:
            return round(x * 100)

        def side(levels: tuple[tuple[int, float], ...]) -> list[tuple[int, int, int]]:
            return [(q, paise(p), 1 if q else 0) for q, p in levels]

        return kw.full_packet(token, paise(self.ltp), 65, paise(self.atp or self.ltp), self.volume, 10_000, 10_000,
                              paise(90), paise(110), paise(85), paise(95), self.ts, self.oi, self.oi, self.oi,
                              self.ts, side(self.bids), side(self.asks))


def index_packet(level: float) -> bytes:
    paise = round(level * 100)
    return kw.index_packet(int(NIFTY["instrument_token"]), paise, paise, paise, paise, paise, 0, T0)


def run(hp: types.ModuleType, snaps: Iterable[Snap | bytes], flow_settings: FlowSection = QUIET,
        spot: float | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every event the snapshots make (one message, one flush each), and the counters."""
    state = hp.MarketState(INSTRUMENTS)
    detector, statics, ident, ident_off = flow.columns(INSTRUMENTS, flow_settings)
    state.enable_flow(detector, statics, ident, ident_off, 1)
    decoder = hp.KiteDecoder(state)
    if spot is not None:
        decoder.feed(kw.message([index_packet(spot)]), 1)
    events: list[dict[str, Any]] = []
    for i, snap in enumerate(snaps):
        packet = snap.packet() if isinstance(snap, Snap) else snap
        decoder.feed(kw.message([packet]), 1_000 + i)
        events += flow.decode(state.flush().flow)
    return events, state.flow_stats


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> types.ModuleType:
    return IMPLEMENTATIONS[request.param]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in events]


# -- each kind ------------------------------------------------------------------------------------


def test_a_buy_sweep_takes_three_ask_levels(impl: types.ModuleType) -> None:
    before = Snap(100.0, 10_000)
    # 4,000 units: the 1,300 at 100.00 and at 100.05 are gone, 1,400 of 100.10's taken.
    after = Snap(100.10, 14_000, bids=((500, 100.05), *Snap.bids[:4]),
                 asks=((1200, 100.10), (1300, 100.15), (1300, 100.20), (1300, 100.25), (1300, 100.30)))
    events, stats = run(impl, [before, after])
    [sweep] = events
    assert sweep["kind"] == "sweep" and sweep["levels"] == 3 and sweep["side"] == "buy"
    assert sweep["aggressor"] == "above_ask" and sweep["sentiment"] == "bullish"  # an ask-side call
    assert sweep["quantity"] == 4_000 and sweep["lots"] == 4_000 / LOT
    assert sweep["price"] == pytest.approx((1300 * 100.0 + 1300 * 100.05 + 1400 * 100.10) / 4000)
    assert sweep["premium"] == pytest.approx(sweep["price"] * 4_000)
    assert (sweep["bid"], sweep["ask"]) == (99.95, 100.0)  # the touch the order hit
    assert stats["sweep"] == 1 and stats["prints"] == 1


def test_a_sell_sweep_of_a_put_is_bullish_on_the_bid_side() -> None:
    put = next(r for r in ROWS if r["name"] == "NIFTY" and r["instrument_type"] == "PE")
    token = int(put["instrument_token"])
    before = Snap(100.0, 10_000)
    after = Snap(99.85, 14_000, bids=((1000, 99.85), (1300, 99.80), (1300, 99.75), (1300, 99.70), (1300, 99.65)))
    for hp in IMPLEMENTATIONS.values():
        events, _ = run(hp, [before.packet(token), after.packet(token)])
        [sweep] = events
        assert (sweep["kind"], sweep["side"], sweep["aggressor"], sweep["levels"]) == ("sweep", "sell", "below_bid", 3)
        assert sweep["option_type"] == "PE" and sweep["sentiment"] == "bullish"


def test_a_sweep_under_the_underlyings_premium_floor_is_not_an_event(impl: types.ModuleType) -> None:
    """About ₹4 lakh: over the default floor (₹1 lakh), under NIFTY's (₹5 lakh)."""
    after = Snap(100.10, 14_000, asks=((1200, 100.10), (1300, 100.15), (1300, 100.20), (1300, 100.25),
                                       (1300, 100.30)))
    floors = dataclasses.replace(QUIET, premium_floor=100_000.0, premium_floors=("NIFTY=500000",))
    assert run(impl, [Snap(100.0, 10_000), after], floors)[0] == []
    cheaper = dataclasses.replace(floors, premium_floors=("NIFTY=300000",))
    assert kinds(run(impl, [Snap(100.0, 10_000), after], cheaper)[0]) == ["sweep"]


def test_a_few_lots_walking_the_book_are_not_a_sweep(impl: types.ModuleType) -> None:
    """Two levels of 5 lots each taken by 11 lots: under flow.sweep_min_lots (20)."""
    thin = tuple((5 * LOT, p) for _, p in Snap.asks)
    after = Snap(100.05, 10_000 + 11 * LOT, asks=((4 * LOT, 100.05), *thin[2:], (5 * LOT, 100.25)))
    assert run(impl, [Snap(100.0, 10_000, asks=thin), after])[0] == []
    assert kinds(run(impl, [Snap(100.0, 10_000, asks=thin), after], dataclasses.replace(QUIET, sweep_min_lots=10))[0]) \
        == ["sweep"]


def test_a_large_sweep_is_a_sweep_and_not_also_a_block(impl: types.ModuleType) -> None:
    settings_ = dataclasses.replace(QUIET, block_lots=20)
    assert kinds(run(impl, [Snap(100.0, 10_000), SWEEP_AFTER], settings_)[0]) == ["sweep"]


def test_one_level_taken_is_not_a_sweep(impl: types.ModuleType) -> None:
    before = Snap(100.0, 10_000)
    after = Snap(100.0, 11_000, asks=((300, 100.0), *Snap.asks[1:]))  # part of the touch
    events, stats = run(impl, [before, after])
    assert events == [] and stats["prints"] == 1


def test_a_print_that_does_not_cover_the_levels_it_reached_is_not_a_sweep(impl: types.ModuleType) -> None:
    """LTP at the third ask but dV under the two levels below it: new orders, not one sweep."""
    before = Snap(100.0, 10_000)
    after = Snap(100.10, 12_000, asks=((1300, 100.10), *Snap.asks[3:], (1300, 100.25), (1300, 100.30)))
    events, _ = run(impl, [before, after])
    assert events == []


def test_a_block_is_large_in_lots_and_premium_wherever_it_prints(impl: types.ModuleType) -> None:
    settings_ = dataclasses.replace(QUIET, block_lots=50)
    qty = 60 * LOT
    wide = ((1300, 99.90), (1300, 99.85), (1300, 99.80), (1300, 99.75), (1300, 99.70))  # a two-tick spread
    before = Snap(100.0, 1_000, atp=99.0, bids=wide)
    mid = 99.95
    atp = (99.0 * 1_000 + mid * qty) / (1_000 + qty)
    after = Snap(99.90, 1_000 + qty, atp=atp, bids=wide)  # the VWAP is at the mid, the LTP at the bid
    events, _ = run(impl, [before, after], settings_)
    [block] = events
    assert block["kind"] == "block" and block["aggressor"] == "mid" and block["quantity"] == qty
    assert block["price"] == pytest.approx(mid, abs=0.01)  # from ATP x volume, not the LTP
    assert block["sentiment"] == "neutral"
    small, _ = run(impl, [before, Snap(99.90, 1_000 + 49 * LOT, bids=wide)], settings_)
    assert small == []


def test_the_print_price_is_the_ltp_when_atp_rounding_would_move_the_vwap_by_half_a_tick(
        impl: types.ModuleType) -> None:
    """ATP is rounded to a paisa: over a day's volume of 100,000 a 3,900-unit interval's
    VWAP is known to +- 26 paise, five ticks, so the LTP prices it."""
    qty = 60 * LOT
    atp = (99.0 * 100_000 + 99.975 * qty) / (100_000 + qty)
    settings_ = dataclasses.replace(QUIET, block_lots=50)
    [block] = run(impl, [Snap(100.0, 100_000, atp=99.0), Snap(99.95, 100_000 + qty, atp=atp)], settings_)[0]
    assert block["price"] == 99.95 and block["aggressor"] == "at_bid" and block["side"] == "sell"


def test_repeated_hits_chain_into_one_order_within_the_window(impl: types.ModuleType) -> None:
    settings_ = dataclasses.replace(QUIET, repeat_hits=3, repeat_window_ms=2000)
    snaps = [Snap(100.0, 10_000, ts=T0)]
    for i in range(1, 5):  # four at-ask prints a second apart
        snaps.append(Snap(100.0, 10_000 + 2_000 * i, ts=T0 + i))
    events, _ = run(impl, snaps, settings_)
    [repeated] = events  # reported once, at the third hit
    assert repeated["kind"] == "repeated" and repeated["hits"] == 3 and repeated["quantity"] == 6_000
    assert repeated["side"] == "buy" and repeated["premium"] == pytest.approx(600_000.0)
    slow = [Snap(100.0, 10_000, ts=T0)] + [Snap(100.0, 10_000 + 2_000 * i, ts=T0 + 3 * i) for i in range(1, 5)]
    assert run(impl, slow, settings_)[0] == []  # 3 s apart: every hit starts a new chain


def test_unusual_volume_is_said_once_per_crossing(impl: types.ModuleType) -> None:
    settings_ = dataclasses.replace(QUIET, z_min_samples=20, z_threshold=4.0)
    volume = 10_000
    snaps = [Snap(100.0, volume)]
    for i in range(40):  # a baseline of 100-300 units an interval
        volume += 100 + 100 * (i % 3)
        snaps.append(Snap(100.0, volume))
    for _ in range(2):  # two surges in a row: one crossing
        volume += 5_000
        snaps.append(Snap(100.0, volume))
    events, _ = run(impl, snaps, settings_)
    [unusual] = events
    assert unusual["kind"] == "unusual" and unusual["reason"] == "zscore" and unusual["zscore"] >= 4.0
    assert unusual["quantity"] == 5_000


def test_volume_past_open_interest_is_said_once(impl: types.ModuleType) -> None:
    settings_ = dataclasses.replace(QUIET, voi_min_lots=10)
    snaps = [Snap(100.0, 9_000, oi=10_000), Snap(100.0, 9_500, oi=10_000), Snap(100.0, 10_500, oi=10_000),
             Snap(100.0, 12_000, oi=10_000)]
    events, _ = run(impl, snaps, settings_)
    [unusual] = events
    assert unusual["reason"] == "volume_oi" and unusual["volume"] == 10_500 and unusual["oi"] == 10_000


# -- non-events -------------------------------------------------------------------------------------

SWEEP_AFTER = Snap(100.10, 14_000, asks=((1200, 100.10), (1300, 100.15), (1300, 100.20), (1300, 100.25),
                                         (1300, 100.30)))


def test_an_out_of_order_snapshot_is_skipped_and_the_newer_memory_kept(impl: types.ModuleType) -> None:
    old = dataclasses.replace(SWEEP_AFTER, ts=T0 - 5)
    events, stats = run(impl, [Snap(100.0, 10_000), old, SWEEP_AFTER])
    assert kinds(events) == ["sweep"] and stats["stale"] == 1  # judged against the 10,000 snapshot


@pytest.mark.parametrize("second", [
    Snap(100.0, 10_000),  # no volume traded
    Snap(100.10, 5_000),  # a volume reset
    dataclasses.replace(SWEEP_AFTER, ts=T0 + 60),  # a gap: a reconnect, not one interval
])
def test_no_event_without_one_interval_of_traded_volume(impl: types.ModuleType, second: Snap) -> None:
    events, stats = run(impl, [Snap(100.0, 10_000), second])
    assert events == [] and stats["prints"] == 0


def test_a_missing_book_never_makes_an_event(impl: types.ModuleType) -> None:
    empty = Snap(100.0, 10_000, bids=((0, 0.0),) * 5, asks=((0, 0.0),) * 5)
    events, stats = run(impl, [empty, SWEEP_AFTER])
    assert events == [] and stats["no_book"] >= 1
    quote = kw.quote_packet(int(OPTION["instrument_token"]), 10_010, 65, 10_010, 14_000, 1, 1, 1, 1, 1, 1)
    events, _ = run(impl, [Snap(100.0, 10_000), quote, SWEEP_AFTER])  # a quote has no book: memory forgotten
    assert events == []


def test_a_volume_reset_starts_the_contract_over(impl: types.ModuleType) -> None:
    events, stats = run(impl, [Snap(100.0, 10_000), Snap(100.0, 1_000), dataclasses.replace(SWEEP_AFTER, volume=5_000)])
    assert kinds(events) == ["sweep"] and stats["resets"] == 1


def test_indices_and_equities_are_not_judged(impl: types.ModuleType) -> None:
    infy = next(r for r in ROWS if r["tradingsymbol"] == "INFY")
    token = int(infy["instrument_token"])
    events, stats = run(impl, [Snap(100.0, 10_000).packet(token), SWEEP_AFTER.packet(token)])
    assert events == [] and stats["prints"] == 0


# -- enrichment and score ----------------------------------------------------------------------------


def test_the_event_is_enriched_from_the_instrument_master_and_the_underlying(impl: types.ModuleType) -> None:
    strike = float(OPTION["strike"])
    [event] = run(impl, [Snap(100.0, 10_000), SWEEP_AFTER], spot=strike * 1.002)[0]
    assert event["symbol"] == f"NFO:{OPTION['tradingsymbol']}"
    assert event["instrument_token"] == int(OPTION["instrument_token"])
    assert event["underlying"] == "NSE:NIFTY 50" and event["underlying_price"] == pytest.approx(strike * 1.002)
    assert event["expiry"] == str(OPTION["expiry"]) and event["strike"] == strike and event["option_type"] == "CE"
    assert event["moneyness"] == "ATM" and event["moneyness_pct"] == pytest.approx(-0.2, abs=0.01)
    assert event["exchange_timestamp"] == T0 and event["receive_time_ns"] == 1_001
    assert event["iv"] is None  # Kite sends none
    parts = event["score_parts"]
    assert list(parts) == list(flow.PART_NAMES)
    assert event["score"] == round(sum(parts.values())) and 0 <= event["score"] <= 100
    assert parts["aggressor"] == 15.0 and parts["sweep"] == pytest.approx(15.0 * 2 / 3)


def test_stock_options_lead_to_the_equity_and_futures_have_no_strike() -> None:
    full = kite_universe(size="full")
    stock = next(r for r in full if r["instrument_type"] == "CE" and r["exchange"] == "NFO"
                 and r["name"] not in INDEX_OF_UNDERLYING)
    master = Instruments.from_kite_rows(full)
    symbol, slot = flow.underlying_of(master, master.slot(f"NFO:{stock['tradingsymbol']}"))
    assert symbol == f"NSE:{stock['name']}" and master.symbol_of(master.token[slot]) == symbol
    token = int(FUTURE["instrument_token"])
    [event] = run(compiled, [Snap(100.0, 10_000).packet(token), SWEEP_AFTER.packet(token)])[0]
    assert event["option_type"] == "FUT" and event["strike"] is None and event["moneyness"] is None
    assert event["sentiment"] == "bullish"


def test_bad_settings_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match=r"FASTFLOW_FLOW_WEIGHT_TENOR: the flow score's weights .* sum to 100, not 110"):
        load_config(env={"FASTFLOW_FLOW_WEIGHT_TENOR": "20"})
    with pytest.raises(ConfigError, match="FASTFLOW_FLOW_PREMIUM_FLOORS: expected a list of NAME=rupees"):
        load_config(env={"FASTFLOW_FLOW_PREMIUM_FLOORS": "NIFTY=lots"})
    with pytest.raises(ConfigError, match="FASTFLOW_FLOW_SWEEP_LEVELS: expected an integer from 2 to 5"):
        load_config(env={"FASTFLOW_FLOW_SWEEP_LEVELS": "1"})
    with pytest.raises(ValueError, match="sum to 100"):
        flow.params(FlowSection(weight_tenor=20.0))


# -- the two implementations agree --------------------------------------------------------------------


def both(messages: list[bytes], flow_settings: FlowSection, master: Instruments = INSTRUMENTS,
         decoder_name: str = "KiteDecoder") -> tuple[list[bytes], list[bytes]]:
    """Each message's flow frame from the compiled and the reference implementation."""
    out = []
    for hp in (compiled, reference):
        state = hp.MarketState(master)
        detector, statics, ident, ident_off = flow.columns(master, flow_settings)
        state.enable_flow(detector, statics, ident, ident_off, 7)
        decoder = getattr(hp, decoder_name)(state)
        frames = []
        for i, message in enumerate(messages):
            decoder.feed(message, 10_000 + i)
            frames.append(state.flush().flow)
        out.append(frames)
    return out[0], out[1]


def test_both_implementations_agree_on_the_simulated_market() -> None:
    market = KiteMarket.from_rows(ROWS, seed=11)
    messages = [market.step(400, "full") for _ in range(150)]
    loose = FlowSection(z_min_samples=5, voi_min_lots=1, premium_floor=0.0, premium_floors=(), sweep_min_lots=0)
    fast, slow = both(messages, loose)
    assert fast == slow
    events = [e for frame in fast for e in flow.decode(frame)]
    assert {e["kind"] for e in events} >= {"sweep", "repeated"}, {e["kind"] for e in events}
    for e in events:
        consistent(e)


def consistent(e: dict[str, Any]) -> None:
    """What every event must satisfy, whatever the input."""
    assert e["kind"] in ("sweep", "block", "repeated", "unusual")
    assert e["quantity"] > 0 and e["price"] > 0 and math.isfinite(e["premium"])
    assert e["premium"] == pytest.approx(e["price"] * e["quantity"], rel=1e-9)
    assert 0 <= e["score"] <= 100 and e["score"] == round(sum(e["score_parts"].values()))
    buy_side = e["aggressor"] in ("above_ask", "at_ask")
    sell_side = e["aggressor"] in ("at_bid", "below_bid")
    assert not buy_side or e["side"] == "buy"
    assert not sell_side or e["side"] == "sell"
    assert (e["kind"] == "sweep") == (e["levels"] >= 2) or e["kind"] != "sweep"
    assert e["bid"] < e["ask"] or e["bid"] == e["ask"]
    assert e["reason"] is None or e["kind"] == "unusual"


LEVEL = st.tuples(st.integers(0, 5_000), st.integers(1, 40))


@st.composite
def sequences(draw: st.DrawFn) -> list[bytes]:
    token = int(OPTION["instrument_token"])
    volume, ts, atp = draw(st.integers(0, 10**6)), T0, draw(st.integers(0, 20_000))
    out = []
    for _ in range(draw(st.integers(1, 25))):
        ts += draw(st.integers(-2, 8))
        volume = max(0, volume + draw(st.integers(-500, 20_000)))
        atp = max(0, atp + draw(st.integers(-50, 50)))
        mid = draw(st.integers(200, 20_000))
        bids = [(q, max(0, mid - 5 * (i + 1) * step)) for i, (q, step) in enumerate(draw(st.lists(LEVEL, min_size=5,
                                                                                                 max_size=5)))]
        asks = [(q, mid + 5 * i * step) for i, (q, step) in enumerate(draw(st.lists(LEVEL, min_size=5, max_size=5)))]
        ltp = mid + 5 * draw(st.integers(-30, 30))
        packet = kw.full_packet(token, ltp, 65, atp, volume, 1, 1, 1, 1, 1, 1, ts, draw(st.integers(0, 10**6)), 0, 0,
                                ts, [(q, p, 1) for q, p in bids], [(q, p, 1) for q, p in asks])
        out.append(kw.message([packet]))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences())
def test_random_sequences_agree_and_every_event_is_consistent(messages: list[bytes]) -> None:
    loose = FlowSection(block_lots=1, block_multiple=1.0, z_min_samples=3, voi_min_lots=1, premium_floor=0.0,
                        premium_floors=(), repeat_hits=2, sweep_min_lots=0)
    fast, slow = both(messages, loose)
    assert fast == slow
    for frame in fast:
        for e in flow.decode(frame):
            consistent(e)


def test_upstox_full_feeds_make_the_same_events_in_both_implementations() -> None:
    """The Upstox decoder runs the same detector (five of its levels, its own iv)."""
    from fastflow.sim.market.upstox import UpstoxMarket, upstox_pairs

    records = upstox_pairs()[1]
    master = Instruments.from_upstox_rows(records)
    market = UpstoxMarket.from_universe(seed=4)
    keys = [str(r["instrument_key"]) for r in records][:1500]
    subscriptions = dict.fromkeys(keys, "full")
    frames = [market.live(subscriptions, now=market.time + 1.0) for _ in range(60)]
    loose = FlowSection(z_min_samples=5, voi_min_lots=1, premium_floor=0.0, premium_floors=(), sweep_min_lots=0)
    fast, slow = both(frames, loose, master, "UpstoxDecoder")
    assert fast == slow
    events = [e for frame in fast for e in flow.decode(frame)]
    assert events and {e["kind"] for e in events} >= {"repeated"}
    assert all("instrument_key" in e and "instrument_token" not in e for e in events)
    for e in events:
        consistent(e)
