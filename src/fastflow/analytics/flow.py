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

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from fastflow.hotpath import MarketState
from fastflow.instruments import Instruments

#: Where an index's options lead: the derivative's ``name`` -> the index's symbol.
INDEX_UNDERLYINGS: Mapping[str, str] = {
    "NIFTY": "NSE:NIFTY 50",
    "BANKNIFTY": "NSE:NIFTY BANK",
    "FINNIFTY": "NSE:NIFTY FIN SERVICE",
    "MIDCPNIFTY": "NSE:NIFTY MID SELECT",
    "NIFTYNXT50": "NSE:NIFTY NEXT 50",
    "SENSEX": "BSE:SENSEX",
    "BANKEX": "BSE:BANKEX",
}
#: The exchange's close on expiry day, 15:30 IST, as UTC.
EXPIRY_CLOSE_UTC = dt.time(10, 0)
OPTION_TYPES = {"CE": 1, "PE": 2, "FUT": 3}
#: The score's parts, in the order of FlowSettings.weights and of an event's score_parts.
PART_NAMES = ("premium", "size_vs_oi", "aggressor", "sweep", "unusualness", "tenor", "moneyness")


@dataclasses.dataclass(frozen=True)
class FlowSettings:
    """The detector's thresholds and the score's weights (docs/flow.md, "Settings")."""

    #: A block: one interval's dV of at least this many lots ...
    block_lots: int = 20
    #: ... and at least this multiple of the contract's running mean dV (once it has a baseline).
    block_multiple: float = 8.0
    #: A sweep takes at least this many levels of the previous book.
    sweep_levels: int = 2
    #: Repeated hits: same-side aggressive prints, each within this many ms of the last ...
    repeat_window_ms: int = 2000
    #: ... reported when the chain has this many.
    repeat_hits: int = 3
    #: Unusual volume: an interval dV this many standard deviations over the running mean ...
    z_threshold: float = 4.0
    #: ... of an exponentially weighted baseline with this weight per print ...
    z_alpha: float = 0.05
    #: ... once it has seen this many prints.
    z_min_samples: int = 30
    #: Unusual volume/OI: the day's volume passes OI, with at least this many lots traded.
    voi_min_lots: int = 100
    #: Snapshots further apart than this (a reconnect, an outage) are not one interval.
    max_gap_ms: int = 5000
    #: ATM: the strike within this % of the underlying.
    atm_pct: float = 0.5
    #: Sweeps, blocks and repeated hits below this premium (₹) are not events ...
    premium_floor: float = 100_000.0
    #: ... or below this one for the underlying's name.
    premium_floors: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"NIFTY": 500_000.0, "BANKNIFTY": 500_000.0, "SENSEX": 500_000.0})
    #: The premium part of the score runs from 0 at premium_base to 1 at premium_full (log scale).
    premium_base: float = 100_000.0
    premium_full: float = 10_000_000.0
    #: The size part is 1 at this fraction of open interest.
    oi_full: float = 0.05
    #: The tenor part falls from 1 at expiry to 0 this many days before it.
    tenor_days: float = 30.0
    #: Score weights (points, summing to 100): premium, size vs OI, aggressor, sweep,
    #: unusualness, tenor, moneyness.
    weights: tuple[float, ...] = (25.0, 15.0, 15.0, 15.0, 15.0, 10.0, 5.0)

    def __post_init__(self) -> None:
        if len(self.weights) != 7 or any(not math.isfinite(w) or w < 0 for w in self.weights):
            raise ValueError("flow weights: 7 numbers >= 0 (premium, size_vs_oi, aggressor, sweep, unusualness, "
                             "tenor, moneyness)")
        if abs(sum(self.weights) - 100.0) > 1e-9:
            raise ValueError(f"flow weights must sum to 100 (the score is 0-100), not {sum(self.weights):g}")
        if self.sweep_levels < 2 or self.repeat_hits < 2:
            raise ValueError("flow sweep_levels and repeat_hits must be >= 2")
        if not 0 < self.z_alpha < 1:
            raise ValueError("flow z_alpha must be between 0 and 1")
        if not 0 < self.premium_base < self.premium_full:
            raise ValueError("flow premium_base must be > 0 and < premium_full")

    def params(self) -> dict[str, Any]:
        """The detector's parameters (what ``MarketState.enable_flow`` takes)."""
        return {"block_lots": self.block_lots, "block_multiple": self.block_multiple,
                "sweep_levels": self.sweep_levels, "repeat_window_ms": self.repeat_window_ms,
                "repeat_hits": self.repeat_hits, "z_threshold": self.z_threshold, "z_alpha": self.z_alpha,
                "z_min_samples": self.z_min_samples, "voi_min_lots": self.voi_min_lots,
                "max_gap_ms": self.max_gap_ms, "atm_pct": self.atm_pct, "premium_base": self.premium_base,
                "premium_full": self.premium_full, "oi_full": self.oi_full, "tenor_days": self.tenor_days,
                "weights": list(self.weights)}


def underlying_of(instruments: Instruments, slot: int) -> tuple[str, int]:
    """The symbol of the index or stock a derivative is on, and its slot (-1 when the
    master does not list it): ``NIFTY`` options -> ``NSE:NIFTY 50``, stock options ->
    the equity."""
    name = str(instruments.name[slot]).strip().upper()
    exchange = "BSE" if str(instruments.exchange[slot]).upper() in ("BFO", "BSE") else "NSE"
    symbol = INDEX_UNDERLYINGS.get(name, f"{exchange}:{name}")
    return symbol, (instruments.slot(symbol) if symbol in instruments else -1)


def columns(instruments: Instruments, settings: FlowSettings) -> tuple[dict[str, Any], list[tuple[Any, ...]],
                                                                     bytes, bytes]:
    """What the detector needs per slot of ``instruments`` (cold, once per master)."""
    statics: list[tuple[Any, ...]] = []
    idents: list[bytes] = []
    keyed = instruments.broker != "kite"
    floors = {name.upper(): float(v) for name, v in settings.premium_floors.items()}
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
                        floors.get(name, settings.premium_floor)))
        ident_key = "instrument_key" if keyed else "instrument_token"
        ident_value: Any = str(instruments.instrument_key[slot]) if keyed else int(instruments.token[slot])
        pairs = (("symbol", str(instruments.symbol[slot])), (ident_key, ident_value),
                 ("underlying", underlying or None), ("expiry", day),
                 ("strike", strike if option in (1, 2) else None), ("option_type", kind if option else None))
        idents.append(b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in pairs))
    offsets = np.zeros(len(idents) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in idents], out=offsets[1:])
    return settings.params(), statics, b"".join(idents), offsets.tobytes()


def enable(state: MarketState, settings: FlowSettings | None = None) -> None:
    """Switch options-flow detection on for ``state``: from its next update on, each
    flush carries its events in ``TickBatch.flow``. Event ids start at the current
    time in ns, so they keep increasing across restarts."""
    params, statics, ident, ident_off = columns(state.instruments, settings or FlowSettings())
    state.enable_flow(params, statics, ident, ident_off, time.time_ns())


def decode(frame: bytes) -> list[dict[str, Any]]:
    """A ``TickBatch.flow`` frame as a list of event dicts (cold: tests and tools)."""
    return [] if not frame else list(msgpack.unpackb(frame, raw=False))
