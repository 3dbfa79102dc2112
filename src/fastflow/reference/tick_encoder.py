"""The tick of one instrument as a dict and as msgpack (the twin of
``ext/tick_encoder.pyx``).

Keys are kiteconnect's (plus Upstox's ``instrument_key``, ``greeks`` and
``iv``); each is present when its FF_HAVE_* bit is set, in this order:

    tradable, mode, instrument_token (Kite) | instrument_key (Upstox),
    last_price, last_traded_quantity, average_traded_price, volume_traded,
    total_buy_quantity, total_sell_quantity, ohlc, change, last_trade_time,
    oi, oi_day_high, oi_day_low, exchange_timestamp, depth, greeks, iv,
    symbol, seq, receive_time_ns

The encoded blob is simply ``msgpack.packb(tick_dict(...))``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from fastflow.reference.slot_state import (
    FF_HAVE_ATP,
    FF_HAVE_CHANGE,
    FF_HAVE_DEPTH,
    FF_HAVE_DEPTH_ORDERS,
    FF_HAVE_EXCH_TS,
    FF_HAVE_GREEKS,
    FF_HAVE_IV,
    FF_HAVE_LTP,
    FF_HAVE_LTQ,
    FF_HAVE_LTT,
    FF_HAVE_OHLC,
    FF_HAVE_OI,
    FF_HAVE_OI_RANGE,
    FF_HAVE_TOTALS,
    FF_HAVE_VOLUME,
    FF_MODE_FULL,
    FF_MODE_FULL_D30,
    FF_MODE_LTP,
    FF_MODE_LTPC,
    FF_MODE_OPTION_GREEKS,
    FF_MODE_QUOTE,
)

MODE_NAMES = {
    FF_MODE_LTP: "ltp",
    FF_MODE_QUOTE: "quote",
    FF_MODE_FULL: "full",
    FF_MODE_LTPC: "ltpc",
    FF_MODE_OPTION_GREEKS: "option_greeks",
    FF_MODE_FULL_D30: "full_d30",
}


def ms_to_s(ms: int) -> int:
    """Epoch seconds of an epoch-millisecond time (floor division, also before 1970)."""
    return ms // 1000


def tick_dict(s: np.void, symbol: str, key: str | None) -> dict[str, Any]:
    """The tick of the slot record ``s`` (a record of a slot_dtype() array).
    ``key`` is the Upstox instrument_key, or None for Kite (instrument_token)."""
    have = int(s["have"])
    divisor = float(int(s["price_divisor"]))
    has_ext = bool(s["has_ext"])

    def price(raw: Any) -> float:
        return float(int(raw)) / divisor

    def depth_side(side: str) -> list[dict[str, Any]]:
        out = []
        for i in range(int(s["depth_levels"])):
            level = s["depth"][i]
            entry = {"quantity": int(level[f"{side}_quantity"]), "price": price(level[f"{side}_price"])}
            if have & FF_HAVE_DEPTH_ORDERS:
                entry["orders"] = int(level[f"{side}_orders"])
            out.append(entry)
        return out

    d: dict[str, Any] = {
        "tradable": bool(s["tradable"]),
        "mode": MODE_NAMES.get(int(s["mode"])),
    }
    if key is None:
        d["instrument_token"] = int(s["token"])
    else:
        d["instrument_key"] = key
    if have & FF_HAVE_LTP:
        d["last_price"] = price(s["last_price"])
    if have & FF_HAVE_LTQ:
        d["last_traded_quantity"] = int(s["last_quantity"])
    if have & FF_HAVE_ATP:
        d["average_traded_price"] = price(s["average_price"])
    if have & FF_HAVE_VOLUME:
        d["volume_traded"] = int(s["volume"])
    if have & FF_HAVE_TOTALS:
        d["total_buy_quantity"] = int(s["total_buy_quantity"])
        d["total_sell_quantity"] = int(s["total_sell_quantity"])
    if have & FF_HAVE_OHLC:
        d["ohlc"] = {
            "open": price(s["open"]),
            "high": price(s["high"]),
            "low": price(s["low"]),
            "close": price(s["close"]),
        }
    if have & FF_HAVE_CHANGE:
        d["change"] = float(s["change"])
    if have & FF_HAVE_LTT:
        d["last_trade_time"] = ms_to_s(int(s["last_trade_time"]))
    if have & FF_HAVE_OI:
        d["oi"] = int(s["oi"])
    if have & FF_HAVE_OI_RANGE:
        d["oi_day_high"] = int(s["oi_day_high"])
        d["oi_day_low"] = int(s["oi_day_low"])
    if have & FF_HAVE_EXCH_TS:
        d["exchange_timestamp"] = ms_to_s(int(s["exchange_timestamp"]))
    if have & FF_HAVE_DEPTH:
        d["depth"] = {"buy": depth_side("bid"), "sell": depth_side("ask")}
    if has_ext:  # only an Upstox slot has the ext block
        if have & FF_HAVE_GREEKS:
            d["greeks"] = {name: float(s[name]) for name in ("delta", "theta", "gamma", "vega", "rho")}
        if have & FF_HAVE_IV:
            d["iv"] = float(s["iv"])
    d["symbol"] = symbol
    d["seq"] = int(s["seq"])
    d["receive_time_ns"] = int(s["recv_ns"])
    return d


def encode_tick(s: np.void, symbol: str, key: str | None) -> bytes:
    """The msgpack blob of the tick of ``s``."""
    blob: bytes = msgpack.packb(tick_dict(s, symbol, key))
    return blob
