"""KiteDecoder: every mode, segment rule, heartbeat and malformed frame."""

from __future__ import annotations

import types

import numpy as np
import pytest

from fastflow.errors import FrameError
from fastflow.instruments import Instruments
from fastflow.sim.wire import kite as kw

from .. import kite_frames as kf
from ..conftest import (
    BCD_FUT,
    CRUDE,
    INFY,
    NCO_FUT,
    NIFTY50,
    NIFTY_FUT,
    RELIANCE,
    TOKENS,
    USDINR,
)


def make(hp: types.ModuleType, instruments: Instruments) -> tuple[object, object]:
    state = hp.MarketState(instruments)
    return state, hp.KiteDecoder(state)


def test_golden_vectors(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    assert dec.feed(bytes.fromhex("0001000800063a0100024a09"), 7) == 1
    tick = state.tick(INFY)
    assert tick["last_price"] == 1500.25
    assert tick["mode"] == "ltp"
    assert tick["tradable"] is True
    assert tick["receive_time_ns"] == 7
    assert dec.feed(bytes.fromhex("000100080004d203318b9fd0")) == 1
    assert state.tick(USDINR)["last_price"] == 83.1234


@pytest.mark.parametrize(
    ("token", "divisor"),
    [(INFY, 100), (NIFTY_FUT, 100), (USDINR, 10_000_000), (BCD_FUT, 10_000), (NCO_FUT, 10_000), (CRUDE, 100)],
)
def test_segment_divisors(hp: types.ModuleType, instruments: Instruments, token: int, divisor: int) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kf.quote(token, 123_456_789)]))
    tick = state.tick(token)
    assert tick["last_price"] == 123_456_789 / divisor
    assert tick["ohlc"]["close"] == (123_456_789 - 50) / divisor
    assert state.array["price_divisor"][state.slot(token)] == divisor


def test_full_packet_fields(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    bids = [(100 + i, 150_000 - 5 * i, 1 + i) for i in range(5)]
    asks = [(200 + i, 150_050 + 5 * i, 65_535 - i) for i in range(5)]
    packet = kw.full_packet(
        INFY, 150_025, 7, 149_990, 4_000_000_000, 11, 12, 149_000, 151_000, 148_000, 149_500,
        1_763_700_001, 13, 14, 15, 1_763_700_002, bids, asks,
    )
    assert dec.feed(kw.message([packet]), 99) == 1
    t = state.tick("NSE:INFY")
    assert t["mode"] == "full"
    assert t["last_price"] == 1500.25
    assert t["last_traded_quantity"] == 7
    assert t["average_traded_price"] == 1499.9
    assert t["volume_traded"] == 4_000_000_000  # u32 above 2**31 stays unsigned
    assert (t["total_buy_quantity"], t["total_sell_quantity"]) == (11, 12)
    assert t["ohlc"] == {"open": 1490.0, "high": 1510.0, "low": 1480.0, "close": 1495.0}
    assert t["change"] == (1500.25 - 1495.0) * 100 / 1495.0
    assert t["last_trade_time"] == 1_763_700_001
    assert (t["oi"], t["oi_day_high"], t["oi_day_low"]) == (13, 14, 15)
    assert t["exchange_timestamp"] == 1_763_700_002
    assert t["depth"]["buy"][0] == {"quantity": 100, "price": 1500.0, "orders": 1}
    assert t["depth"]["sell"][4] == {"quantity": 204, "price": 1500.7, "orders": 65_531}
    assert len(t["depth"]["buy"]) == len(t["depth"]["sell"]) == 5
    assert t["seq"] == 1 and t["receive_time_ns"] == 99 and t["symbol"] == "NSE:INFY"


def test_index_layout_order_high_low_open_close(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kw.index_packet(NIFTY50, 2_400_000, 2_410_000, 2_390_000, 2_395_000, 2_380_000, -123)]))
    t = state.tick("NSE:NIFTY 50")
    assert t["mode"] == "quote" and t["tradable"] is False
    assert t["ohlc"] == {"open": 23950.0, "high": 24100.0, "low": 23900.0, "close": 23800.0}
    assert "exchange_timestamp" not in t and "volume_traded" not in t
    assert state.array["net_change"][state.slot(NIFTY50)] == -123
    dec.feed(kw.message([kf.index_full(NIFTY50)]))
    t = state.tick(NIFTY50)
    assert t["mode"] == "full" and t["exchange_timestamp"] == 1_763_700_200


def test_key_sets_per_mode(hp: types.ModuleType, instruments: Instruments) -> None:
    extras = {"symbol", "seq", "receive_time_ns"}
    base = {"tradable", "mode", "instrument_token", "last_price"}
    quote_keys = base | {
        "last_traded_quantity", "average_traded_price", "volume_traded", "total_buy_quantity",
        "total_sell_quantity", "ohlc", "change",
    }
    full_keys = quote_keys | {"last_trade_time", "oi", "oi_day_high", "oi_day_low", "exchange_timestamp", "depth"}
    cases = [
        (kf.ltp(INFY), base),
        (kf.quote(INFY), quote_keys),
        (kf.full(INFY), full_keys),
        (kf.index_quote(NIFTY50), base | {"ohlc", "change"}),
        (kf.index_full(NIFTY50), base | {"ohlc", "change", "exchange_timestamp"}),
    ]
    for packet, keys in cases:
        state, dec = make(hp, instruments)
        token = int.from_bytes(packet[:4], "big")
        dec.feed(kw.message([packet]))
        assert set(state.tick(token)) == keys | extras


def test_tick_before_any_data(hp: types.ModuleType, instruments: Instruments) -> None:
    state, _ = make(hp, instruments)
    t = state.tick(RELIANCE)
    assert t == {
        "tradable": True, "mode": None, "instrument_token": RELIANCE,
        "symbol": "NSE:RELIANCE", "seq": 0, "receive_time_ns": 0,
    }


def test_many_packets_one_message_and_repeats(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    packets = [kf.full(INFY, 100), kf.ltp(INFY, 200), kf.quote(RELIANCE), kf.index_full(NIFTY50), kf.ltp(INFY, 300)]
    assert dec.feed(kw.message(packets)) == 5
    t = state.tick(INFY)
    assert t["last_price"] == 3.0 and t["seq"] == 3 and t["mode"] == "ltp"
    # Fields the ltp packet does not carry keep their last values.
    assert "depth" in t and t["ohlc"]["close"] == 0.5
    assert t["change"] == (3.0 - 0.5) * 100 / 0.5


def test_heartbeat_and_empty_batch(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    assert dec.feed(kw.HEARTBEAT) == 0
    assert dec.feed(b"\xff") == 0
    assert dec.feed(b"\x00\x00") == 0  # a message announcing zero packets
    s = dec.stats()
    assert s["heartbeats"] == 2 and s["frames"] == 1 and s["packets"] == 0
    assert state.dirty_count == 0


def test_unknown_token_is_counted_and_skipped(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    unknown = (999_999 << 8) | 1
    msg = kw.message([kf.ltp(INFY, 111), kf.full(unknown), kf.ltp(RELIANCE, 222), kf.ltp(unknown + 256)])
    assert dec.feed(msg) == 2
    assert dec.stats()["unknown_tokens"] == 2
    assert state.tick(INFY)["last_price"] == 1.11
    assert state.tick(RELIANCE)["last_price"] == 2.22


def test_unknown_packet_length_is_counted_and_skipped(hp: types.ModuleType, instruments: Instruments) -> None:
    """Framing intact, mode unknown (say Kite adds a packet type): the packet
    is skipped and counted, the rest of the message applies (as kiteconnect)."""
    state, dec = make(hp, instruments)
    future = INFY.to_bytes(4, "big") + b"\x00" * 8
    msg = kw.message([kf.ltp(INFY, 111), future, b"", kf.ltp(RELIANCE, 222)])
    assert dec.feed(msg) == 2
    assert dec.stats()["unknown_packets"] == 2
    assert state.tick(INFY)["last_price"] == 1.11 and state.tick(INFY)["seq"] == 1
    assert state.tick(RELIANCE)["last_price"] == 2.22


def test_negative_prices_are_signed(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    dec.feed(kw.message([kw.ltp_packet(CRUDE, -3_775)]))
    assert state.tick(CRUDE)["last_price"] == -37.75


@pytest.mark.parametrize(
    ("frame", "reason", "offset"),
    [
        (b"", "empty message", 0),
        (b"\x00\x01", "truncated: packet 0 of 1 has no length header", 2),
        (b"\x00\x01\x00", "truncated: packet 0 of 1 has no length header", 2),
        (b"\x00\x01\x00\x08" + b"\x00" * 7, "truncated: packet 0 declares 8 bytes but only 7 remain", 2),
        (b"\x00\x02\x00\x0c" + b"\x00" * 12, "truncated: packet 1 of 2 has no length header", 16),
        (b"\x00\x00\x00", "trailing bytes: 0 packets end at byte 2 of a 3-byte message", 2),
        (kw.message([kf.ltp(INFY)]) + b"\x00", "trailing bytes: 1 packets end at byte 12 of a 13-byte message", 12),
        (b"\xff\xff" + kw.message([kf.ltp(INFY)])[2:], "truncated: packet 1 of 65535 has no length header", 12),
    ],
)
def test_malformed_frames(
    hp: types.ModuleType, instruments: Instruments, frame: bytes, reason: str, offset: int
) -> None:
    state, dec = make(hp, instruments)
    with pytest.raises(FrameError) as info:
        dec.feed(frame)
    assert info.value.reason.startswith(reason)
    assert info.value.offset == offset
    assert f"at byte offset {offset}" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert dec.stats()["frame_errors"] == 1
    assert state.dirty_count == 0


def test_malformed_frame_applies_nothing(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    good = kw.message([kf.full(INFY), kf.ltp(RELIANCE)])
    before = state.array.tobytes()
    with pytest.raises(FrameError):
        dec.feed(good + b"\x00")
    assert state.array.tobytes() == before
    assert state.dirty_count == 0


def test_every_split_of_a_message_is_rejected(hp: types.ModuleType, instruments: Instruments) -> None:
    """A WebSocket message arrives whole: any proper prefix of a valid message
    is truncated and must raise FrameError without touching the state (except
    the 1-byte prefix, which is indistinguishable from a heartbeat)."""
    state, dec = make(hp, instruments)
    msg = kw.message([kf.full(INFY), kf.index_quote(NIFTY50), kf.ltp(RELIANCE)])
    for cut in range(len(msg)):
        if cut == 1:
            assert dec.feed(msg[:cut]) == 0
            continue
        with pytest.raises(FrameError):
            dec.feed(msg[:cut])
    assert state.dirty_count == 0
    assert dec.feed(msg) == 3


def test_buffer_types(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    msg = kw.message([kf.full(INFY), kf.ltp(RELIANCE)])
    assert dec.feed(bytearray(msg)) == 2
    assert dec.feed(memoryview(msg)) == 2
    assert dec.feed(np.frombuffer(msg, dtype=np.uint8)) == 2
    padded = b"xx" + msg
    assert dec.feed(memoryview(padded)[2:]) == 2
    with pytest.raises(TypeError):
        dec.feed("not bytes")
    assert state.tick(INFY)["seq"] == 4


def test_receive_time_defaults_to_now(hp: types.ModuleType, instruments: Instruments) -> None:
    import time

    state, dec = make(hp, instruments)
    before = time.time_ns()
    dec.feed(kw.message([kf.ltp(INFY)]))
    after = time.time_ns()
    assert before <= state.tick(INFY)["receive_time_ns"] <= after


def test_stats_counts(hp: types.ModuleType, instruments: Instruments) -> None:
    _, dec = make(hp, instruments)
    msg = kw.message([kf.ltp(t) for t in TOKENS])
    dec.feed(msg)
    dec.feed(kw.HEARTBEAT)
    with pytest.raises(FrameError):
        dec.feed(b"")
    assert dec.stats() == {
        "frames": 1,
        "packets": len(TOKENS),
        "heartbeats": 1,
        "unknown_tokens": 0,
        "unknown_packets": 0,
        "frame_errors": 1,
        "bytes": len(msg) + 1,
    }


def test_receive_time_must_be_integer_nanoseconds(hp: types.ModuleType, instruments: Instruments) -> None:
    state, dec = make(hp, instruments)
    msg = kw.message([kf.ltp(INFY)])
    for bad in (1.7, 1_763_700_000.5, "5", None):
        with pytest.raises(TypeError, match="recv_ns must be an int"):
            dec.feed(msg, bad)
    assert state.dirty_count == 0
    assert dec.feed(msg, np.int64(42)) == 1
    assert state.tick(INFY)["receive_time_ns"] == 42
    with pytest.raises(OverflowError):
        dec.feed(msg, 2**63)


def test_symbol_slot_out_of_range_is_refused(hp: types.ModuleType) -> None:
    """MarketState never trusts a slot from the instruments object blindly."""
    weird = types.SimpleNamespace(
        token=np.array([INFY, RELIANCE], np.uint32),
        price_divisor=np.array([100, 100], np.int64),
        symbol=np.array(["NSE:INFY", "NSE:RELIANCE"], object),
        slot=lambda key: -1 if key == "NSE:INFY" else 7,
    )
    state = hp.MarketState(weird)
    for key in ("NSE:INFY", "NSE:RELIANCE"):
        with pytest.raises(IndexError):
            state.encode(key)
        with pytest.raises(IndexError):
            state.tick(key)
