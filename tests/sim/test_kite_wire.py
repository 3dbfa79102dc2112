"""The Kite encoder (``fastflow.sim.wire.kite``): its per-packet and per-block
entry points give the same bytes, extremes included, and its wire facts are
the ones of ``fastflow.reference.broker_wire``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from fastflow.reference import broker_wire
from fastflow.sim.wire import kite as kw

IntArray = npt.NDArray[np.int64]
U32 = (0, 1, 2**32 - 1)
I32 = (-(2**31), -1, 0, 1, 2**31 - 1)
U16 = (0, 1, 2**16 - 1)


def _column(rng: np.random.Generator, m: int, choices: tuple[int, ...]) -> IntArray:
    return np.array(rng.choice(choices, m), np.int64)


def _columns(rng: np.random.Generator, m: int, kinds: str) -> list[IntArray]:
    table = {"U": U32, "I": I32, "H": U16}
    return [_column(rng, m, table[kind]) for kind in kinds]


def test_wire_facts_come_from_the_reference() -> None:
    assert (kw.LTP_LEN, kw.QUOTE_LEN, kw.FULL_LEN, kw.INDEX_QUOTE_LEN, kw.INDEX_FULL_LEN) == (
        broker_wire.KITE_LTP_LEN,
        broker_wire.KITE_QUOTE_LEN,
        broker_wire.KITE_FULL_LEN,
        broker_wire.KITE_INDEX_QUOTE_LEN,
        broker_wire.KITE_INDEX_FULL_LEN,
    )
    assert kw.SEGMENT_INDICES is broker_wire.KITE_SEGMENT_INDICES
    assert kw.price_divisor is broker_wire.price_divisor


@pytest.mark.parametrize("m", [0, 1, 7, 300])
def test_blocks_equal_packets(m: int) -> None:
    rng = np.random.default_rng(m)
    token = _column(rng, m, U32)

    (ltp,) = _columns(rng, m, "I")
    packets = [kw.ltp_packet(int(t), int(p)) for t, p in zip(token, ltp, strict=True)]
    assert kw.header(m) + kw.ltp_block(token, ltp) == kw.message(packets)

    index = _columns(rng, m, "IIIIII")
    ts = _column(rng, m, U32)
    for full in (False, True):
        packets = [
            kw.index_packet(int(t), *map(int, row), exchange_timestamp=int(s) if full else None)
            for t, s, row in zip(token, ts, zip(*index, strict=True), strict=True)
        ]
        block = kw.index_block(token, *index, exchange_timestamp=ts if full else None)
        assert kw.header(m) + block == kw.message(packets)

    quote = _columns(rng, m, "IUIUUUIIII")
    packets = [kw.quote_packet(int(t), *map(int, row)) for t, row in zip(token, zip(*quote, strict=True), strict=True)]
    assert kw.header(m) + kw.quote_block(token, *quote) == kw.message(packets)

    ext = _columns(rng, m, "UUUUU")
    book = [np.array(rng.choice(choices, (m, 5)), np.int64) for choices in (U32, I32, U16, U32, I32, U16)]
    packets = []
    for r in range(m):
        bids = [(int(book[0][r, k]), int(book[1][r, k]), int(book[2][r, k])) for k in range(5)]
        asks = [(int(book[3][r, k]), int(book[4][r, k]), int(book[5][r, k])) for k in range(5)]
        row = [int(c[r]) for c in (*quote, *ext)]
        packets.append(kw.full_packet(int(token[r]), *row, bids, asks))
    assert kw.header(m) + kw.full_block(token, *quote, *ext, *book) == kw.message(packets)
