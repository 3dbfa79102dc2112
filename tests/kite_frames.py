"""Builders of valid Kite packets with plausible values, for tests."""

from __future__ import annotations

import random

from fastflow.sim.wire import kite as kw


def full(token: int, ltp: int = 150025, rnd: random.Random | None = None) -> bytes:
    r = rnd or random.Random(token)
    bids = [(r.randint(1, 5000), ltp - 5 * (i + 1), r.randint(1, 60)) for i in range(5)]
    asks = [(r.randint(1, 5000), ltp + 5 * (i + 1), r.randint(1, 60)) for i in range(5)]
    return kw.full_packet(
        token, ltp, r.randint(1, 500), ltp - 7, r.randint(1, 10**7), r.randint(1, 10**6),
        r.randint(1, 10**6), ltp - 100, ltp + 200, ltp - 300, ltp - 50,
        1_763_700_000 + r.randint(0, 100), r.randint(0, 10**6), r.randint(0, 10**6),
        r.randint(0, 10**6), 1_763_700_100, bids, asks,
    )


def quote(token: int, ltp: int = 150025, rnd: random.Random | None = None) -> bytes:
    return full(token, ltp, rnd)[: kw.QUOTE_LEN]


def ltp(token: int, ltp: int = 150025) -> bytes:
    return kw.ltp_packet(token, ltp)


def index_quote(token: int, ltp: int = 2_400_000) -> bytes:
    return kw.index_packet(token, ltp, ltp + 10_000, ltp - 10_000, ltp - 5_000, ltp - 20_000, 20_000)


def index_full(token: int, ltp: int = 2_400_000) -> bytes:
    return kw.index_packet(
        token, ltp, ltp + 10_000, ltp - 10_000, ltp - 5_000, ltp - 20_000, 20_000, 1_763_700_200
    )
