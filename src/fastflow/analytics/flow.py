"""Options flow: the settings and the instrument-master columns the hot path's
detector runs on (docs/flow.md).

Detection itself is compiled (``ext/flow_detector.pyx``, with its reference twin
``fastflow.reference.flow_detector``): it runs inside the decoders on every
update of a derivative, and each flush carries its events, already encoded, in
``TickBatch.flow``. This module is cold: :func:`enable` builds, once per
instrument master, what the detector needs per slot (the contract's lot, tick,
strike, expiry, underlying and premium floor, and its identity fields as
pre-encoded msgpack) and switches detection on for a state.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import msgpack
import numpy as np

from fastflow.config import FlowSection
from fastflow.hotpath import MarketState
from fastflow.instruments import Instruments
from fastflow.instruments.symbols import underlying_symbol

#: The exchange's close on expiry day, 15:30 IST, as UTC.
EXPIRY_CLOSE_UTC = dt.time(10, 0)
OPTION_TYPES = {"CE": 1, "PE": 2, "FUT": 3}
#: The score's parts, in the order of FlowSection.weights and of an event's score_parts.
PART_NAMES = ("premium", "size_vs_oi", "aggressor", "sweep", "unusualness", "tenor", "moneyness")


def params(section: FlowSection) -> dict[str, Any]:
    """The detector's parameters from the ``[flow]`` section (what
    ``MarketState.enable_flow`` takes). ValueError for weights that do not sum to
    100 or levels/hits under 2 (the configuration refuses them earlier, by key)."""
    if abs(sum(section.weights) - 100.0) > 1e-9:
        raise ValueError(f"flow weights must sum to 100 (the score is 0-100), not {sum(section.weights):g}")
    if section.sweep_levels < 2 or section.repeat_hits < 2:
        raise ValueError("flow sweep_levels and repeat_hits must be >= 2")
    return {"block_lots": section.block_lots, "block_multiple": section.block_multiple,
            "sweep_levels": section.sweep_levels, "sweep_min_lots": section.sweep_min_lots,
            "repeat_window_ms": section.repeat_window_ms,
            "repeat_hits": section.repeat_hits, "z_threshold": section.z_threshold, "z_alpha": section.z_alpha,
            "z_min_samples": section.z_min_samples, "voi_min_lots": section.voi_min_lots,
            "max_gap_ms": section.max_gap_ms, "atm_pct": section.atm_pct, "premium_base": section.premium_base,
            "premium_full": section.premium_full, "oi_full": section.oi_full, "tenor_days": section.tenor_days,
            "weights": list(section.weights)}


def underlying_of(instruments: Instruments, slot: int) -> tuple[str, int]:
    """The symbol of the index or stock a derivative is on, and its slot (-1 when the
    master does not list it): ``NIFTY`` options -> ``NSE:NIFTY 50``, stock options ->
    the equity (:func:`fastflow.instruments.symbols.underlying_symbol`)."""
    symbol = underlying_symbol(str(instruments.name[slot]), str(instruments.exchange[slot]))
    return symbol, (instruments.slot(symbol) if symbol in instruments else -1)


def columns(instruments: Instruments, section: FlowSection) -> tuple[dict[str, Any], list[tuple[Any, ...]],
                                                                    bytes, bytes]:
    """What the detector needs per slot of ``instruments`` (cold, once per master)."""
    statics: list[tuple[Any, ...]] = []
    idents: list[bytes] = []
    keyed = instruments.broker != "kite"
    detector = params(section)
    floors = section.floors
    for slot in range(len(instruments)):
        kind = str(instruments.instrument_type[slot]).upper()
        option = OPTION_TYPES.get(kind, 0)
        enabled = option != 0 and bool(instruments.tradable[slot])
        underlying, under_slot = underlying_of(instruments, slot) if enabled else ("", -1)
        divisor = float(instruments.price_divisor[slot])
        expiry = instruments.expiry[slot]
        expiry_ms = 0
        day: str | None = None
        if not np.isnat(expiry):
            date = expiry.astype(dt.date)
            day = date.isoformat()
            expiry_ms = int(dt.datetime.combine(date, EXPIRY_CLOSE_UTC, dt.timezone.utc).timestamp() * 1000)
        strike = float(instruments.strike[slot])
        name = str(instruments.name[slot]).strip().upper()
        statics.append((enabled, option, under_slot, int(instruments.lot_size[slot]),
                        float(instruments.tick_size[slot]) * divisor, divisor, strike, expiry_ms,
                        floors.get(name, section.premium_floor)))
        ident_key = "instrument_key" if keyed else "instrument_token"
        ident_value: Any = str(instruments.instrument_key[slot]) if keyed else int(instruments.token[slot])
        pairs = (("symbol", str(instruments.symbol[slot])), (ident_key, ident_value),
                 ("underlying", underlying or None), ("expiry", day),
                 ("strike", strike if option in (1, 2) else None), ("option_type", kind if option else None))
        idents.append(b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in pairs))
    offsets = np.zeros(len(idents) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in idents], out=offsets[1:])
    return detector, statics, b"".join(idents), offsets.tobytes()


def enable(state: MarketState, section: FlowSection | None = None) -> None:
    """Switch options-flow detection on for ``state``: from its next update on, each
    flush carries its events in ``TickBatch.flow``. Event ids start at the current
    time in ns, so they keep increasing across restarts."""
    detector, statics, ident, ident_off = columns(state.instruments, section or FlowSection())
    state.enable_flow(detector, statics, ident, ident_off, time.time_ns())


def decode(frame: bytes) -> list[dict[str, Any]]:
    """A ``TickBatch.flow`` frame as a list of event dicts (cold: tests and tools)."""
    return [] if not frame else list(msgpack.unpackb(frame, raw=False))
