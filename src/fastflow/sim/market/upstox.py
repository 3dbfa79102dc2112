"""The simulated market as Upstox Market Data Feed V3 frames.

:class:`UpstoxMarket` drives the same random-walk model as the Kite simulator
(:class:`~fastflow.sim.market.model.KiteMarket`, over the Kite universe's rows) and
encodes the instruments it moves as protobuf ``FeedResponse`` frames with
:mod:`fastflow.sim.wire.upstox`, keyed by Upstox ``instrument_key``\\ s from
:func:`~fastflow.sim.universe.upstox_universe` (the same instruments, in the
same order, minus the NCO contracts Upstox does not list).

Per subscription mode (broker-formats §2.2; ``Feed.requestMode`` echoes it):

* ``ltpc``: ``Feed.ltpc`` = last price, last trade time (ms), last quantity, close;
* ``full``: tradables get ``marketFF`` with 5 depth levels, a ``1d`` and an
  ``I1`` (current 1-minute) candle, atp, vtt, oi, tbq, tsq, and for options
  greeks and iv; indices get ``indexFF`` (LTPC and the two candles);
* ``full_d30``: as ``full`` with 30 depth levels (levels 6-30 continue the
  5-level book outwards on the tick grid, so the book still never crosses);
* ``option_greeks``: ``firstLevelWithGreeks`` = LTPC, the best bid/ask,
  greeks, vtt, oi, iv.

Greeks and iv are plausible, not priced: Black-Scholes at the underlying's
current level (the index for NIFTY/BANKNIFTY/SENSEX options, the nearest future
otherwise) with a smile ``iv = 13% + 0.8 * ln(K/S)**2``.

Cold code for the simulator: Python per feed, numpy for the model.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from fastflow.brokers.upstox.constants import MODES
from fastflow.sim.market.model import KiteMarket
from fastflow.sim.universe import UNDERLYING_INDEX, kite_universe, upstox_universe
from fastflow.sim.universe.pricing import norm_cdf, norm_pdf
from fastflow.sim.wire import upstox as wire

IntArray = npt.NDArray[np.int64]


_INDEX_UNDERLYING: Final = UNDERLYING_INDEX


def upstox_pairs(today: datetime.date | None = None) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The Kite rows and the Upstox records of the synthetic universe, aligned
    (the i-th record is the i-th row's instrument)."""
    rows = [r for r in kite_universe(today) if r["exchange"] != "NCO"]
    records = upstox_universe(today)
    if len(rows) != len(records) or any(
        str(r["exchange_token"]) != str(u["exchange_token"]) for r, u in zip(rows, records, strict=True)
    ):  # pragma: no cover - a universe construction bug
        raise AssertionError("the Kite and Upstox universes are not aligned")
    return rows, records


class UpstoxMarket:
    """A seeded market over the Upstox universe that emits ``FeedResponse`` frames."""

    def __init__(
        self,
        rows: Sequence[Mapping[str, object]],
        records: Sequence[Mapping[str, object]],
        seed: int = 0,
        start_time: int | None = None,
    ) -> None:
        if len(rows) != len(records):
            raise ValueError("rows and records must describe the same instruments, in the same order")
        self.kite = KiteMarket.from_rows(rows, seed=seed, start_time=start_time)
        self._rng = np.random.default_rng(seed + 1)
        self.keys: list[str] = [str(r["instrument_key"]) for r in records]
        self._position = {key: i for i, key in enumerate(self.keys)}
        if len(self._position) != len(self.keys):
            raise ValueError("instrument keys must be unique")
        n = len(self.keys)
        self._tick = np.array([self.kite.tick(int(t)) for t in self.kite.tokens], np.int64)
        # Options: strike, expiry (epoch s) and the position of the underlying.
        self._kind = [str(r.get("instrument_type", "")) for r in rows]
        self._strike = np.array([float(r.get("strike") or 0.0) for r in rows])  # type: ignore[arg-type]
        by_symbol = {str(r["tradingsymbol"]): i for i, r in enumerate(rows) if r["segment"] in ("INDICES", "NSE")}
        futures: dict[str, tuple[object, int]] = {}
        for i, r in enumerate(rows):
            if r["instrument_type"] == "FUT":
                name = str(r["name"])
                if name not in futures or str(r["expiry"]) < str(futures[name][0]):
                    futures[name] = (r["expiry"], i)
        self._underlying = np.full(n, -1, np.int64)
        self._expiry_s = np.zeros(n, np.int64)
        for i, r in enumerate(rows):
            if self._kind[i] not in ("CE", "PE"):
                continue
            name = str(r["name"])
            under = by_symbol.get(_INDEX_UNDERLYING.get(name, name))
            if under is None and name in futures:
                under = futures[name][1]
            self._underlying[i] = -1 if under is None else under
            expiry = r["expiry"]
            if isinstance(expiry, datetime.date):
                close = datetime.datetime.combine(expiry, datetime.time(10, 0), tzinfo=datetime.timezone.utc)  # 15:30 IST
                self._expiry_s[i] = int(close.timestamp())
        # The current 1-minute candle per instrument.
        self._bar_minute = np.full(n, -1, np.int64)
        self._bar_open = np.zeros(n, np.int64)
        self._bar_high = np.zeros(n, np.int64)
        self._bar_low = np.zeros(n, np.int64)
        self._bar_volume0 = np.zeros(n, np.int64)
        self._all = np.arange(n, dtype=np.int64)
        self._roll_bars(self._all, self.kite.columns(self._all)["volume_traded"])

    @classmethod
    def from_universe(cls, today: datetime.date | None = None, seed: int = 0,
                      start_time: int | None = None) -> UpstoxMarket:
        """A market over :func:`upstox_pairs` (the synthetic universe)."""
        rows, records = upstox_pairs(today)
        return cls(rows, records, seed=seed, start_time=start_time)

    # -- inspection -----------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def clock(self) -> int:
        """The simulated exchange clock (epoch seconds)."""
        return self.kite.clock

    @property
    def time(self) -> float:
        """The market time (epoch seconds, with fractions) of the latest step."""
        return self.kite.time

    def update_rates(self) -> npt.NDArray[np.float64]:
        """Each position's natural update rate (``KiteMarket.update_rates``)."""
        return self.kite.update_rates()

    def positions(self, keys: Iterable[str]) -> IntArray:
        """Row positions of distinct ``keys`` (``KeyError`` for an unknown key)."""
        idx = np.fromiter((self._position[k] for k in keys), dtype=np.int64)
        if np.unique(idx).size != idx.size:
            raise ValueError("instrument keys must be distinct")
        return idx

    def __contains__(self, key: object) -> bool:
        return key in self._position

    # -- frames ---------------------------------------------------------------------

    def live(self, subscriptions: Mapping[str, str], now: float | None = None, current_ts: int | None = None) -> bytes:
        """Advance the instruments of ``subscriptions`` (key -> mode) and return
        one ``live_feed`` frame with a feed per key in its mode."""
        idx = self.positions(subscriptions)
        self.advance(idx, now)
        return self._frame(idx, list(subscriptions.values()), wire.LIVE_FEED, current_ts)

    def advance(self, idx: IntArray, now: float | None = None) -> None:
        """Advance positions ``idx`` to market time ``now`` (as ``KiteMarket.advance``)
        and their current 1-minute candles with them."""
        before = self.kite.columns(idx)["volume_traded"]
        self.kite.advance(idx, now)
        self._roll_bars(idx, before)

    def live_frame(self, idx: IntArray, modes: Sequence[str], current_ts: int | None = None) -> bytes:
        """The current state of positions ``idx`` (``modes`` per row) as one
        ``live_feed`` frame (nothing moves: :meth:`advance` moved them)."""
        return self._frame(idx, modes, wire.LIVE_FEED, current_ts)

    def snapshot(self, subscriptions: Mapping[str, str], current_ts: int | None = None) -> bytes:
        """The current state of ``subscriptions`` as one ``initial_feed`` frame (nothing moves)."""
        idx = self.positions(subscriptions)
        return self._frame(idx, list(subscriptions.values()), wire.INITIAL_FEED, current_ts)

    def market_info(self, status: Mapping[str, int], current_ts: int | None = None) -> bytes:
        """A ``market_info`` frame: segment -> MarketStatus (``upstox_wire.NORMAL_OPEN`` ...)."""
        return wire.feed_response(type=wire.MARKET_INFO, current_ts=self._ts(current_ts),
                                  market_info=wire.market_info(status))

    def segments(self) -> list[str]:
        """Every segment of the universe (``NSE_EQ``, ``NSE_FO``, ``NSE_INDEX`` ...)."""
        return sorted({key.partition("|")[0] for key in self.keys})

    def _ts(self, current_ts: int | None) -> int:
        return self.kite.clock * 1000 if current_ts is None else current_ts

    def _roll_bars(self, idx: IntArray, volume_before: IntArray) -> None:
        """Start a new 1-minute candle where the clock entered a new minute; extend the others."""
        ltp = self.kite.columns(idx)["last_price"]
        minute = self.kite.clock // 60
        fresh = self._bar_minute[idx] != minute
        start = idx[fresh]
        self._bar_minute[start] = minute
        self._bar_open[start] = ltp[fresh]
        self._bar_high[start] = ltp[fresh]
        self._bar_low[start] = ltp[fresh]
        self._bar_volume0[start] = volume_before[fresh]
        self._bar_high[idx] = np.maximum(self._bar_high[idx], ltp)
        self._bar_low[idx] = np.minimum(self._bar_low[idx], ltp)

    def _frame(self, idx: IntArray, modes: Sequence[str], kind: int, current_ts: int | None) -> bytes:
        bad = set(modes) - set(MODES)
        if bad:
            raise ValueError(f"unknown mode(s) {sorted(bad)}; expected one of {MODES}")
        columns = self.kite.columns(idx)
        book = ("bid_px", "bid_qty", "ask_px", "ask_qty")
        scalars: dict[str, list[int]] = {k: v.tolist() for k, v in columns.items() if k not in book and v.ndim == 1}
        depth: dict[str, list[list[int]]] = {k: columns[k].tolist() for k in book}
        under = self._underlying[idx]
        spots: dict[int, float] = {}
        if np.any(under >= 0):
            used = np.unique(under[under >= 0])
            underlying = self.kite.columns(used)
            spots = dict(zip(used.tolist(), (underlying["last_price"] / underlying["divisor"]).tolist(),
                             strict=True))
        outer = self._outer_levels(idx, columns) if "full_d30" in modes else None
        feeds = []
        for j, (i, mode) in enumerate(zip(idx.tolist(), modes, strict=True)):
            row = {name: values[j] for name, values in scalars.items()}
            levels = {name: values[j] for name, values in depth.items()}
            extra = None if outer is None else tuple(side[j] for side in outer)
            feeds.append((self.keys[i], self._feed(i, mode, row, levels, extra, spots.get(int(under[j])))))
        return wire.feed_response(feeds, type=kind, current_ts=self._ts(current_ts))

    def _feed(self, i: int, mode: str, row: dict[str, int], book: dict[str, list[int]],
              outer: tuple[list[int], ...] | None, spot: float | None) -> bytes:
        div = float(row["divisor"])
        is_index = bool(row["is_index"])
        ltpc = wire.ltpc(row["last_price"] / div, row["last_trade_time"] * 1000,
                         0 if is_index else row["last_traded_quantity"], row["close"] / div)
        request_mode = wire.REQUEST_MODES[mode]
        if mode == "ltpc":
            return wire.feed(ltpc=ltpc, request_mode=request_mode)
        candles = self._candles(i, row, div)
        if is_index:
            return wire.feed(full_index=wire.index_full_feed(ltpc, candles), request_mode=request_mode)
        greeks, iv = (None, 0.0) if spot is None else self._greeks(i, spot)
        bid_px, bid_q, ask_px, ask_q = book["bid_px"], book["bid_qty"], book["ask_px"], book["ask_qty"]
        if mode == "option_greeks":
            first = wire.quote(bid_q[0], bid_px[0] / div, ask_q[0], ask_px[0] / div)
            return wire.feed(first_level=wire.first_level_with_greeks(
                ltpc, first, greeks, row["volume_traded"], float(row["oi"]), iv), request_mode=request_mode)
        levels = [wire.quote(bid_q[k], bid_px[k] / div, ask_q[k], ask_px[k] / div) for k in range(5)]
        if mode == "full_d30":
            assert outer is not None
            bp, bq, ap, aq = outer
            levels += [wire.quote(bq[k], bp[k] / div, aq[k], ap[k] / div) for k in range(len(bp))]
        market = wire.market_full_feed(
            ltpc, levels, greeks, candles, atp=row["average_traded_price"] / div, vtt=row["volume_traded"],
            oi=float(row["oi"]), iv=iv, tbq=float(row["total_buy_quantity"]), tsq=float(row["total_sell_quantity"]),
        )
        return wire.feed(full_market=market, request_mode=request_mode)

    def _candles(self, i: int, row: dict[str, int], div: float) -> list[bytes]:
        clock = self.kite.clock
        day_ms = (clock - (clock + 19_800) % 86_400) * 1000  # midnight IST
        volume = row["volume_traded"]
        ltp = row["last_price"] / div
        daily = wire.ohlc("1d", row["open"] / div, row["high"] / div, row["low"] / div, ltp, volume, day_ms)
        minute = wire.ohlc("I1", int(self._bar_open[i]) / div, int(self._bar_high[i]) / div,
                           int(self._bar_low[i]) / div, ltp, volume - int(self._bar_volume0[i]),
                           int(self._bar_minute[i]) * 60_000)
        return [daily, minute]

    def _greeks(self, i: int, spot: float) -> tuple[bytes, float]:
        strike = float(self._strike[i])
        years = max(int(self._expiry_s[i]) - self.kite.clock, 3600) / (365.0 * 86_400)
        iv = 0.13 + 0.8 * math.log(strike / spot) ** 2
        root = iv * math.sqrt(years)
        d1 = (math.log(spot / strike) + 0.5 * iv * iv * years) / root
        d2 = d1 - root
        pdf = norm_pdf(d1)
        call = self._kind[i] == "CE"
        delta = norm_cdf(d1) if call else norm_cdf(d1) - 1.0
        gamma = pdf / (spot * root)
        vega = spot * pdf * math.sqrt(years) / 100.0
        theta = -spot * pdf * iv / (2.0 * math.sqrt(years)) / 365.0
        rho = (strike * years * (norm_cdf(d2) if call else -norm_cdf(-d2))) / 100.0
        values = wire.greeks(round(delta, 4), round(theta, 4), round(gamma, 6), round(vega, 4), round(rho, 4))
        return values, round(iv * 100.0, 2)

    def _outer_levels(self, idx: IntArray, columns: Mapping[str, IntArray]) -> tuple[list[list[int]], ...]:
        """Levels 6-30 of both sides, per instrument: each 1-2 ticks further
        out than the one before, positive quantities (a bid that would reach
        zero is an empty level)."""
        m = idx.size
        tick = self._tick[idx][:, None]
        unit = np.maximum(columns["lot"], 1)[:, None, None]
        gaps = np.cumsum(self._rng.integers(1, 3, (m, 2, 25)), axis=2)
        bids = np.maximum(columns["bid_px"][:, 4:5] - gaps[:, 0] * tick, 0)
        asks = columns["ask_px"][:, 4:5] + gaps[:, 1] * tick
        quantities = unit * self._rng.integers(1, 80, (m, 2, 25))
        bid_q = np.where(bids > 0, quantities[:, 0], 0)
        return bids.tolist(), bid_q.tolist(), asks.tolist(), quantities[:, 1].tolist()
