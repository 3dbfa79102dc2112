"""FlowDetector (the twin of ``ext/flow_detector.pyx``): options flow inferred
from snapshot deltas, one update at a time, written for reading.

Arithmetic follows the C code step by step (doubles where it uses doubles, in
the same order), so both emit the same events, byte for byte; the
differential tests check it. docs/flow.md states the rules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from fastflow.reference.slot_state import FF_HAVE_DEPTH, FF_HAVE_IV, FF_HAVE_VOLUME

FLOW_LEVELS = 5
FLOW_KINDS = (None, "sweep", "block", "repeated", "unusual")
FLOW_SIDES = ("unknown", "buy", "sell")
FLOW_BUCKETS = ("unknown", "above_ask", "at_ask", "mid", "at_bid", "below_bid")
FLOW_REASONS = (None, "volume_oi", "zscore")
FLOW_PART_NAMES = ("premium", "size_vs_oi", "aggressor", "sweep", "unusualness", "tenor", "moneyness")

SWEEP, BLOCK, REPEATED, UNUSUAL = 1, 2, 3, 4
UNKNOWN, BUY, SELL = 0, 1, 2
ABOVE_ASK, AT_ASK, MID, AT_BID, BELOW_BID = 1, 2, 3, 4, 5
VOLUME_OI, ZSCORE = 1, 2
CE, PE, FUT = 1, 2, 3


def _clamp01(x: float) -> float:
    if not x > 0.0:
        return 0.0
    return 1.0 if x > 1.0 else x


def _llround(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


@dataclasses.dataclass
class _Memory:
    ts: int = 0
    volume: int = 0
    atp: int = 0
    ltp: int = 0
    oi: int = 0
    bid_p: list[int] = dataclasses.field(default_factory=lambda: [0] * FLOW_LEVELS)
    bid_q: list[int] = dataclasses.field(default_factory=lambda: [0] * FLOW_LEVELS)
    ask_p: list[int] = dataclasses.field(default_factory=lambda: [0] * FLOW_LEVELS)
    ask_q: list[int] = dataclasses.field(default_factory=lambda: [0] * FLOW_LEVELS)
    levels: int = 0
    valid: bool = False
    z_armed: bool = True
    voi_fired: bool = False
    chain_side: int = 0
    chain_reported: bool = False
    samples: int = 0
    ew_mean: float = 0.0
    ew_var: float = 0.0
    chain_last: int = 0
    chain_qty: int = 0
    chain_hits: int = 0
    chain_premium: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Static:
    enabled: bool
    option_type: int
    underlying: int
    lot: int
    tick: float
    divisor: float
    strike: float
    expiry_ms: int
    floor: float


class FlowDetector:
    """The options-flow detector of one reference MarketState."""

    def __init__(self, n: int, params: dict[str, Any], statics: list[Sequence[Any]], ident: bytes,
                 ident_off: bytes, keyed: bool, first_id: int) -> None:
        if len(statics) != n or len(ident_off) != (n + 1) * 8:
            raise ValueError("flow detector columns have different lengths")
        self.n = n
        self.info = [_Static(bool(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]), float(r[5]), float(r[6]),
                             int(r[7]), float(r[8])) for r in statics]
        self.p = dict(params)
        self.p["weights"] = [float(w) for w in params["weights"]]
        self.mem = [_Memory() for _ in range(n)]
        offsets = np.frombuffer(ident_off, dtype=np.int64)
        self.ident = [ident[int(offsets[i]):int(offsets[i + 1])] for i in range(n)]
        self.next_id = first_id
        self.events: list[dict[str, Any]] = []
        self.counts = [0] * 5
        self.counters = {"prints": 0, "stale": 0, "resets": 0, "gaps": 0, "no_book": 0}

    def reset(self) -> None:
        self.mem = [_Memory() for _ in range(self.n)]
        self.events = []

    # -- per update ------------------------------------------------------------------------

    def update(self, slot: int, s: Any) -> None:
        """``s``: the slot's record (a numpy structured scalar), after the update."""
        st = self.info[slot]
        if not st.enabled:
            return
        m = self.mem[slot]
        have = int(s["have"])
        if not have & FF_HAVE_DEPTH or int(s["depth_levels"]) == 0 or not have & FF_HAVE_VOLUME:
            m.valid = False
            self.counters["no_book"] += 1
            return
        ts = int(s["exchange_timestamp"])
        if m.valid:
            if ts < m.ts:
                self.counters["stale"] += 1
                return
            dv = int(s["volume"]) - m.volume
            if dv < 0:
                self.counters["resets"] += 1
                m.samples = 0
                m.voi_fired = False
                m.chain_hits = 0
            elif ts - m.ts > self.p["max_gap_ms"]:
                self.counters["gaps"] += 1
            elif dv > 0:
                if m.bid_p[0] > 0 and m.ask_p[0] > 0:
                    self.counters["prints"] += 1
                    self._print(slot, s, st, m, dv)
                else:
                    self.counters["no_book"] += 1
        self._remember(m, s)

    @staticmethod
    def _remember(m: _Memory, s: Any) -> None:
        n = min(int(s["depth_levels"]), FLOW_LEVELS)
        m.ts = int(s["exchange_timestamp"])
        m.volume = int(s["volume"])
        m.atp = int(s["average_price"])
        m.ltp = int(s["last_price"])
        m.oi = int(s["oi"])
        m.levels = n
        depth = s["depth"]
        for i in range(FLOW_LEVELS):
            if i < n:
                m.bid_p[i] = int(depth[i]["bid_price"])
                m.bid_q[i] = int(depth[i]["bid_quantity"])
                m.ask_p[i] = int(depth[i]["ask_price"])
                m.ask_q[i] = int(depth[i]["ask_quantity"])
            else:
                m.bid_p[i] = m.bid_q[i] = m.ask_p[i] = m.ask_q[i] = 0
        m.valid = True

    def _print(self, slot: int, s: Any, st: _Static, m: _Memory, dv: int) -> None:
        p = self.p
        ltp, volume, atp = int(s["last_price"]), int(s["volume"]), int(s["average_price"])
        ts = int(s["exchange_timestamp"])
        price = float(ltp)
        half = st.tick / 2.0
        ask, bid = float(m.ask_p[0]), float(m.bid_p[0])
        if atp > 0 and m.atp > 0:
            vwap = (float(atp) * float(volume) - float(m.atp) * float(m.volume)) / float(dv)
            err = 0.5 * (float(volume) + float(m.volume)) / float(dv)
            if vwap > 0 and err <= half:
                price = vwap
        levels, swept = self._sweep(s, m, dv) if dv >= p["sweep_min_lots"] * st.lot else (0, 0.0)
        if levels:
            price = swept
            bucket = ABOVE_ASK if ltp > m.ask_p[0] else BELOW_BID
        elif price > ask + half:
            bucket = ABOVE_ASK
        elif price > ask - half:
            bucket = AT_ASK
        elif price < bid - half:
            bucket = BELOW_BID
        elif price < bid + half:
            bucket = AT_BID
        else:
            bucket = MID
        if bucket in (ABOVE_ASK, AT_ASK):
            side = BUY
        elif bucket in (AT_BID, BELOW_BID):
            side = SELL
        elif price > (ask + bid) / 2.0:
            side = BUY
        elif price < (ask + bid) / 2.0:
            side = SELL
        elif ltp > m.ltp:
            side = BUY
        elif ltp < m.ltp:
            side = SELL
        elif m.ask_q[0] > m.bid_q[0]:
            side = BUY
        elif m.ask_q[0] < m.bid_q[0]:
            side = SELL
        else:
            side = UNKNOWN
        rupees = price / st.divisor
        premium = rupees * float(dv)
        z = 0.0
        baseline = m.samples >= p["z_min_samples"]
        if baseline and m.ew_var > 0:
            z = (float(dv) - m.ew_mean) / math.sqrt(m.ew_var)
        common = (slot, s, st, m, side, bucket, levels)
        if levels and premium >= st.floor:
            self._event(SWEEP, *common, rupees, dv, premium, z)
        if (not levels and dv >= p["block_lots"] * st.lot and premium >= st.floor
                and (not baseline or float(dv) >= p["block_multiple"] * m.ew_mean)):
            self._event(BLOCK, *common, rupees, dv, premium, z)
        if bucket != MID:
            if m.chain_hits > 0 and m.chain_side == side and ts - m.chain_last <= p["repeat_window_ms"]:
                m.chain_hits += 1
                m.chain_qty += dv
                m.chain_premium += premium
            else:
                m.chain_side = side
                m.chain_hits = 1
                m.chain_qty = dv
                m.chain_premium = premium
                m.chain_reported = False
            m.chain_last = ts
            if m.chain_hits >= p["repeat_hits"] and not m.chain_reported and m.chain_premium >= st.floor:
                m.chain_reported = True
                event = self._event(REPEATED, *common, m.chain_premium / float(m.chain_qty), m.chain_qty,
                                    m.chain_premium, z)
                event["hits"] = m.chain_hits
        if baseline:
            if z >= p["z_threshold"] and m.z_armed:
                m.z_armed = False
                self._event(UNUSUAL, *common, rupees, dv, premium, z)["reason"] = "zscore"
            elif z < p["z_threshold"] / 2.0:
                m.z_armed = True
        oi = int(s["oi"])
        if not m.voi_fired and oi > 0 and volume > oi and volume >= p["voi_min_lots"] * st.lot:
            m.voi_fired = True
            self._event(UNUSUAL, *common, rupees, dv, premium, z)["reason"] = "volume_oi"
        if m.samples == 0:
            m.ew_mean = float(dv)
            m.ew_var = 0.0
        else:
            d = float(dv) - m.ew_mean
            m.ew_mean += p["z_alpha"] * d
            m.ew_var = (1.0 - p["z_alpha"]) * (m.ew_var + p["z_alpha"] * d * d)
        m.samples += 1

    def _sweep(self, s: Any, m: _Memory, dv: int) -> tuple[int, float]:
        """(levels taken, the VWAP of walking dV through them), (0, 0.0) when not a sweep."""
        ltp = int(s["last_price"])
        depth = s["depth"]
        if ltp > m.ask_p[0]:
            prices, quantities, touch = m.ask_p, m.ask_q, int(depth[0]["ask_price"])
            reached = [px > 0 and px <= ltp for px in prices[:m.levels]]
            upward = True
        elif ltp < m.bid_p[0]:
            prices, quantities, touch = m.bid_p, m.bid_q, int(depth[0]["bid_price"])
            reached = [px > 0 and px >= ltp for px in prices[:m.levels]]
            upward = False
        else:
            return 0, 0.0
        k = 0
        while k < len(reached) and reached[k]:
            k += 1
        if k < self.p["sweep_levels"]:
            return 0, 0.0
        consumed = sum(quantities[:k - 1])
        level = prices[k - 2]  # the new touch is beyond every level fully taken
        gone = touch == 0 or (touch > level if upward else touch < level)
        if dv <= consumed or not gone:
            return 0, 0.0
        left, turnover = dv, 0.0
        for i in range(k):
            take = left if i == k - 1 or quantities[i] > left else quantities[i]
            turnover += float(take) * float(prices[i])
            left -= take
        return k, turnover / float(dv)

    def _event(self, kind: int, slot: int, s: Any, st: _Static, m: _Memory, side: int, bucket: int, levels: int,
               price: float, quantity: int, premium: float, z: float) -> dict[str, Any]:
        underlying_price = math.nan
        if st.underlying >= 0:
            u = self._array[st.underlying]
            if int(u["last_price"]) > 0:
                underlying_price = float(int(u["last_price"])) / float(int(u["price_divisor"]))
        iv = math.nan
        if "iv" in s.dtype.names and int(s["have"]) & FF_HAVE_IV:
            iv = float(s["iv"])
        event = {"id": self.next_id, "kind": kind, "slot": slot, "side": side, "bucket": bucket, "reason": None,
                 "levels": levels, "hits": 0, "quantity": quantity, "oi": int(s["oi"]), "volume": int(s["volume"]),
                 "ts": int(s["exchange_timestamp"]), "recv_ns": int(s["recv_ns"]), "price": price,
                 "premium": premium, "bid": float(m.bid_p[0]) / st.divisor, "ask": float(m.ask_p[0]) / st.divisor,
                 "underlying_price": underlying_price, "iv": iv, "zscore": z}
        self.next_id += 1
        self.counts[kind] += 1
        self._score(event, st)
        self.events.append(event)
        return event

    def _dte(self, event: dict[str, Any], st: _Static) -> float:
        if st.expiry_ms <= 0 or event["ts"] <= 0:
            return math.nan
        return float(st.expiry_ms - event["ts"]) / 86400000.0

    @staticmethod
    def _pct(event: dict[str, Any], st: _Static) -> float:
        if st.option_type in (FUT, 0) or math.isnan(event["underlying_price"]):
            return math.nan
        spot: float = event["underlying_price"]
        return (st.strike / spot - 1.0) * 100.0

    def _score(self, e: dict[str, Any], st: _Static) -> None:
        p = self.p
        dte = self._dte(e, st)
        parts = [0.0] * 7
        parts[0] = (_clamp01(math.log10(e["premium"] / p["premium_base"])
                             / math.log10(p["premium_full"] / p["premium_base"])) if e["premium"] > 0 else 0.0)
        parts[1] = _clamp01(float(e["quantity"]) / float(e["oi"]) / p["oi_full"]) if e["oi"] > 0 else 0.0
        bucket = e["bucket"]
        if bucket in (ABOVE_ASK, BELOW_BID):
            parts[2] = 1.0
        elif bucket in (AT_ASK, AT_BID):
            parts[2] = 0.75
        elif bucket == MID and e["side"] != UNKNOWN:
            parts[2] = 0.25
        parts[3] = _clamp01((float(e["levels"]) - 1.0) / 3.0) if e["levels"] >= 2 else 0.0
        parts[4] = _clamp01(e["zscore"] / (2.0 * p["z_threshold"]))
        if e["oi"] > 0 and _clamp01(float(e["volume"]) / float(e["oi"]) / 2.0) > parts[4]:
            parts[4] = _clamp01(float(e["volume"]) / float(e["oi"]) / 2.0)
        parts[5] = _clamp01(1.0 - dte / p["tenor_days"]) if not math.isnan(dte) else 0.0
        pct = self._pct(e, st)
        parts[6] = _clamp01(1.0 - abs(pct) / 10.0) if not math.isnan(pct) else 0.0
        total = 0.0
        for i in range(7):
            parts[i] *= p["weights"][i]
            total += parts[i]
        e["parts"] = parts
        e["score"] = _llround(total)

    # -- per flush -------------------------------------------------------------------------

    def take(self) -> tuple[bytes, bytes, int]:
        """(one msgpack array of the events, their n + 1 int64 offsets in it, count)."""
        if not self.events:
            return b"", b"", 0
        out = [msgpack.Packer().pack_array_header(len(self.events))]
        offsets = [len(out[0])]
        for e in self.events:
            out.append(self._encode(e))
            offsets.append(offsets[-1] + len(out[-1]))
        count = len(self.events)
        self.events = []
        return b"".join(out), np.array(offsets, dtype=np.int64).tobytes(), count

    def _encode(self, e: dict[str, Any]) -> bytes:
        st = self.info[e["slot"]]
        pct, dte = self._pct(e, st), self._dte(e, st)

        def num(value: float) -> float | None:
            return None if math.isnan(value) else value

        option = st.option_type
        if e["bucket"] == MID or e["side"] == UNKNOWN:
            sentiment = "neutral"
        elif option == PE:
            sentiment = "bearish" if e["side"] == BUY else "bullish"
        else:
            sentiment = "bullish" if e["side"] == BUY else "bearish"
        if math.isnan(pct):
            moneyness = None
        elif abs(pct) <= self.p["atm_pct"]:
            moneyness = "ATM"
        elif option == CE:
            moneyness = "ITM" if pct < 0 else "OTM"
        else:
            moneyness = "ITM" if pct > 0 else "OTM"
        head = _map_header(32) + _pack("id") + _pack(e["id"]) + _pack("kind") + _pack(FLOW_KINDS[e["kind"]])
        rest = {
            "side": FLOW_SIDES[e["side"]], "aggressor": FLOW_BUCKETS[e["bucket"]], "sentiment": sentiment,
            "price": float(e["price"]), "quantity": e["quantity"],
            "lots": float(e["quantity"]) / float(st.lot) if st.lot > 0 else 0.0, "premium": float(e["premium"]),
            "levels": e["levels"], "bid": e["bid"], "ask": e["ask"], "underlying_price": num(e["underlying_price"]),
            "moneyness": moneyness, "moneyness_pct": num(pct), "days_to_expiry": num(dte), "oi": e["oi"],
            "volume": e["volume"], "iv": num(e["iv"]), "hits": e["hits"], "reason": e["reason"],
            "zscore": float(e["zscore"]), "exchange_timestamp": e["ts"] // 1000, "receive_time_ns": e["recv_ns"],
            "score": e["score"],
            "score_parts": dict(zip(FLOW_PART_NAMES, (float(x) for x in e["parts"]), strict=True)),
        }
        body = b"".join(_pack(k) + _pack(v) for k, v in rest.items())
        ident: bytes = self.ident[e["slot"]]
        return head + ident + body

    def stats(self) -> dict[str, int]:
        return {"sweep": self.counts[SWEEP], "block": self.counts[BLOCK], "repeated": self.counts[REPEATED],
                "unusual": self.counts[UNUSUAL], **self.counters, "pending": len(self.events)}

    #: The state's slot array, for the underlying's price (set by MarketState.enable_flow).
    _array: Any = None


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _map_header(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 16 else b"\xde" + n.to_bytes(2, "big")

