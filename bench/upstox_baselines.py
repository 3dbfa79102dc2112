"""Baselines for the Upstox V3 decoder benchmark: the official protobuf path.

Follows the broker-formats notes, section 4.2 and Appendix A.2. ``pb`` is the
generated ``MarketDataFeedV3_pb2`` module (``tests.upstox_pb.load()``); with the
default upb backend these are the "upb" numbers of that table.

* :func:`build_frames`: ``count`` ``FeedResponse`` frames of ``n_feeds`` feeds,
  built with the official classes, plus the instrument keys they carry;
* :func:`upb_parse_and_read`: ``FromString`` and then read every scalar of every feed
  (what a consumer that extracts all fields must do at least);
* :func:`message_to_dict`: ``FromString`` + ``json_format.MessageToDict``, the
  upstox-python-sdk streamer's path.

The two decoders take one frame and return the number of feeds in it.
"""

from __future__ import annotations

import random
import types
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

CURRENT_TS = 1_732_089_600_123  # epoch ms
LTT = 1_732_089_600_000
OHLC_TS = (("1d", 1_732_041_000_000), ("I1", 1_732_089_540_000))


def instrument_keys(n_feeds: int) -> list[str]:
    return [f"NSE_FO|{40000 + i}" for i in range(n_feeds)]


def build_frames(
    pb: types.ModuleType,
    n_feeds: int = 100,
    depth: int = 5,
    mode: str = "full",
    count: int = 20,
    seed: int = 7,
) -> tuple[list[bytes], list[str]]:
    """``count`` serialized live frames of ``n_feeds`` feeds each, and their keys.

    ``mode="full"``: ``fullFeed.marketFF`` with LTPC, ``depth`` (5 or 30) bid/ask
    levels, greeks, a 1d and an I1 OHLC, atp/vtt/oi/iv/tbq/tsq and requestMode
    full_d5 / full_d30. ``mode="ltpc"``: ``Feed.ltpc`` only (requestMode ltpc, the
    default). Every frame carries the same keys with fresh values.
    """
    if mode not in ("full", "ltpc"):
        raise ValueError(f"mode must be 'full' or 'ltpc', not {mode!r}")
    if depth not in (5, 30):
        raise ValueError(f"depth must be 5 or 30, not {depth}")
    rnd = random.Random(seed)
    keys = instrument_keys(n_feeds)
    frames = []
    for f in range(count):
        fr = pb.FeedResponse()
        fr.type = pb.live_feed
        fr.currentTs = CURRENT_TS + f
        for i, key in enumerate(keys):
            feed = fr.feeds[key]
            ltp = 100 + rnd.random() * 1000
            if mode == "ltpc":
                lt = feed.ltpc
                lt.ltp, lt.ltt, lt.ltq, lt.cp = ltp, LTT + i, rnd.randint(1, 1000), ltp - 3.5
                continue
            m = feed.fullFeed.marketFF
            m.ltpc.ltp, m.ltpc.ltt, m.ltpc.ltq, m.ltpc.cp = ltp, LTT + i, rnd.randint(1, 1000), ltp - 3.5
            for lvl in range(depth):
                q = m.marketLevel.bidAskQuote.add()
                q.bidQ, q.bidP = rnd.randint(1, 5000), ltp - 0.05 * (lvl + 1)
                q.askQ, q.askP = rnd.randint(1, 5000), ltp + 0.05 * (lvl + 1)
            g = m.optionGreeks
            g.delta, g.theta, g.gamma, g.vega, g.rho = 0.51, -12.3, 0.0012, 8.7, 1.2
            for interval, ts in OHLC_TS:
                o = m.marketOHLC.ohlc.add()
                o.interval, o.open, o.high, o.low, o.close = interval, ltp - 10, ltp + 12, ltp - 15, ltp
                o.vol, o.ts = rnd.randint(1, 10**6), ts
            m.atp, m.vtt, m.oi, m.iv = ltp - 1.25, rnd.randint(1, 10**7), float(rnd.randint(1, 10**6)), 0.1432
            m.tbq, m.tsq = float(rnd.randint(1, 10**6)), float(rnd.randint(1, 10**6))
            feed.requestMode = pb.full_d30 if depth == 30 else pb.full_d5
        frames.append(fr.SerializeToString())
    return frames, keys


def _read_ltpc(lt: Any) -> None:
    _ = lt.ltp, lt.ltt, lt.ltq, lt.cp


def _read_ohlcs(market_ohlc: Any) -> None:
    for o in market_ohlc.ohlc:
        _ = o.interval, o.open, o.high, o.low, o.close, o.vol, o.ts


def _read_greeks(g: Any) -> None:
    _ = g.delta, g.theta, g.gamma, g.vega, g.rho


def upb_parse_and_read(pb: types.ModuleType) -> Callable[[bytes], int]:
    """``FromString`` + read every scalar of every feed; returns the number of feeds.

    Each scalar is materialised as a Python object and dropped: the cheapest
    faithful walk (nothing is stored), so it is a generous baseline.
    """
    from_string = pb.FeedResponse.FromString

    def parse_and_read(buf: bytes) -> int:
        fr = from_string(buf)
        _ = fr.type, fr.currentTs
        n = 0
        for key, feed in fr.feeds.items():
            n += 1
            _ = key, feed.requestMode
            kind = feed.WhichOneof("FeedUnion")
            if kind == "ltpc":
                _read_ltpc(feed.ltpc)
            elif kind == "fullFeed":
                full = feed.fullFeed
                if full.WhichOneof("FullFeedUnion") == "marketFF":
                    m = full.marketFF
                    _read_ltpc(m.ltpc)
                    for q in m.marketLevel.bidAskQuote:
                        _ = q.bidQ, q.bidP, q.askQ, q.askP
                    _read_greeks(m.optionGreeks)
                    _read_ohlcs(m.marketOHLC)
                    _ = m.atp, m.vtt, m.oi, m.iv, m.tbq, m.tsq
                else:
                    idx = full.indexFF
                    _read_ltpc(idx.ltpc)
                    _read_ohlcs(idx.marketOHLC)
            elif kind == "firstLevelWithGreeks":
                fl = feed.firstLevelWithGreeks
                _read_ltpc(fl.ltpc)
                d = fl.firstDepth
                _ = d.bidQ, d.bidP, d.askQ, d.askP
                _read_greeks(fl.optionGreeks)
                _ = fl.vtt, fl.oi, fl.iv
        return n

    return parse_and_read


def message_to_dict(pb: types.ModuleType) -> Callable[[bytes], int]:
    """``FromString`` + ``json_format.MessageToDict`` (the SDK streamer's path); returns the number of feeds."""
    from_string = pb.FeedResponse.FromString

    def to_dict(buf: bytes) -> int:
        return len(json_format.MessageToDict(from_string(buf)).get("feeds", {}))

    return to_dict
