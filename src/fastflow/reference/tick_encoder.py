"""The tick of one instrument as a dict and as msgpack (the twin of
``ext/tick_encoder.pyx``).

Keys and values are those of kiteconnect's tick dicts, in the same order; the
encoded blob is simply ``msgpack.packb(tick_dict(...))``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from fastflow.reference.slot_state import (
    FF_DEPTH,
    FF_HAVE_DEPTH,
    FF_HAVE_EXCH_TS,
    FF_HAVE_LTP,
    FF_HAVE_OHLC,
    FF_HAVE_OI,
    FF_HAVE_TRADE,
    FF_MODE_FULL,
    FF_MODE_LTP,
    FF_MODE_QUOTE,
)

MODE_NAMES = {FF_MODE_LTP: "ltp", FF_MODE_QUOTE: "quote", FF_MODE_FULL: "full"}


def tick_dict(s: np.void, symbol: str) -> dict[str, Any]:
    """The tick of the slot record ``s`` (a record of a slot_dtype() array)."""
    have = int(s["have"])
    divisor = float(int(s["price_divisor"]))

    def price(raw: Any) -> float:
        return float(int(raw)) / divisor

    def depth_side(prefix: str) -> list[dict[str, Any]]:
        quantity, prices, orders = s[f"{prefix}_quantity"], s[f"{prefix}_price"], s[f"{prefix}_orders"]
        return [
            {"quantity": int(quantity[i]), "price": price(prices[i]), "orders": int(orders[i])}
            for i in range(FF_DEPTH)
        ]

    d: dict[str, Any] = {
        "tradable": bool(s["tradable"]),
        "mode": MODE_NAMES.get(int(s["mode"])),
        "instrument_token": int(s["token"]),
    }
    if have & FF_HAVE_LTP:
        d["last_price"] = price(s["last_price"])
    if have & FF_HAVE_TRADE:
        d["last_traded_quantity"] = int(s["last_quantity"])
        d["average_traded_price"] = price(s["average_price"])
        d["volume_traded"] = int(s["volume"])
        d["total_buy_quantity"] = int(s["total_buy_quantity"])
        d["total_sell_quantity"] = int(s["total_sell_quantity"])
    if have & FF_HAVE_OHLC:
        d["ohlc"] = {
            "open": price(s["open"]),
            "high": price(s["high"]),
            "low": price(s["low"]),
            "close": price(s["close"]),
        }
        d["change"] = float(s["change"])
    if have & FF_HAVE_OI:
        d["last_trade_time"] = int(s["last_trade_time"])
        d["oi"] = int(s["oi"])
        d["oi_day_high"] = int(s["oi_day_high"])
        d["oi_day_low"] = int(s["oi_day_low"])
    if have & FF_HAVE_EXCH_TS:
        d["exchange_timestamp"] = int(s["exchange_timestamp"])
    if have & FF_HAVE_DEPTH:
        d["depth"] = {"buy": depth_side("bid"), "sell": depth_side("ask")}
    d["symbol"] = symbol
    d["seq"] = int(s["seq"])
    d["receive_time_ns"] = int(s["recv_ns"])
    return d


def encode_tick(s: np.void, symbol: str) -> bytes:
    """The msgpack blob of the tick of ``s``."""
    blob: bytes = msgpack.packb(tick_dict(s, symbol))
    return blob
