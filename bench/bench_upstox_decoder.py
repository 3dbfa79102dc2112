"""Upstox V3 decode + state update: fastflow (compiled and reference) against
the official classes in the same run: upb ``FromString`` plus reading every
field, and the SDK's ``FromString`` + ``MessageToDict`` path.

The workload is 20 ``FeedResponse`` frames of 100 feeds each (broker-formats.md
Appendix A.2): full (5 levels, greeks, 1d and I1 OHLC, all scalars), full_d30
and ltpc. One benchmark call decodes all 2,000 feeds."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest

from bench.upstox_baselines import build_frames, message_to_dict, upb_parse_and_read
from fastflow import _hotpath as compiled
from fastflow import reference
from tests.upstox_pb import load

N_FEEDS = 100
N_FRAMES = 20
FEEDS = N_FEEDS * N_FRAMES

WORKLOADS = {"full": (5, "full"), "full_d30": (30, "full"), "ltpc": (5, "ltpc")}


class _Instruments(types.SimpleNamespace):
    def slot(self, key: str) -> int:
        return list(self.instrument_key).index(key)


def _instruments(keys: list[str]) -> _Instruments:
    n = len(keys)
    return _Instruments(
        broker="upstox", token=np.zeros(n, np.uint32), price_divisor=np.full(n, 10_000, np.int64),
        symbol=np.array([f"NFO:{k}" for k in keys], object), segment_id=np.full(n, 2, np.uint8),
        tradable=np.ones(n, bool), instrument_key=np.array(keys, object),
    )


@pytest.fixture(scope="module")
def pb() -> types.ModuleType:
    return load()


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("impl", ["fastflow", "fastflow-reference", "upb parse+read", "MessageToDict (SDK)"])
def bench_upstox_decode(record: Any, pb: types.ModuleType, workload: str, impl: str) -> None:
    depth, mode = WORKLOADS[workload]
    frames, keys = build_frames(pb, n_feeds=N_FEEDS, depth=depth, mode=mode, count=N_FRAMES)
    if impl.startswith("fastflow"):
        module = compiled if impl == "fastflow" else reference
        state = module.MarketState(_instruments(keys))
        decode = module.UpstoxDecoder(state).feed
    elif impl == "upb parse+read":
        decode = upb_parse_and_read(pb)
    else:
        decode = message_to_dict(pb)
    assert decode(frames[0]) == N_FEEDS

    def run() -> None:
        for frame in frames:
            decode(frame)

    record("upstox decode", f"{workload} ({N_FEEDS} feeds/frame)", impl, FEEDS, "feeds", run,
           baseline="upb parse+read")
