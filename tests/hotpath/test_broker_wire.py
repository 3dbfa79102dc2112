"""One set of Kite wire constants: the compiled module's (``ext/broker_wire.pxi``)
and the reference's (``fastflow.reference.broker_wire``) agree, and so do the
users of them (the simulator's encoder, the instrument master's divisor)."""

from __future__ import annotations

import pytest

from fastflow.reference import broker_wire as reference

_hotpath = pytest.importorskip("fastflow._hotpath")


def test_the_compiled_and_reference_constants_agree() -> None:
    compiled = _hotpath.wire_constants()
    assert compiled == reference.wire_constants()
    assert len(compiled) == 12 and compiled["KITE_FULL_LEN"] == 184


def test_the_price_divisor_agrees_for_every_segment() -> None:
    for segment in range(256):
        token = (12345 << 8) | segment
        assert _hotpath.price_divisor(token) == reference.price_divisor(token), segment
    assert {reference.price_divisor(s) for s in range(256)} == {100, 10_000, 10_000_000}


def test_the_simulator_and_the_master_use_the_same_constants() -> None:
    from fastflow.instruments import kite_price_divisor
    from fastflow.sim.wire import kite as sim_wire

    assert (sim_wire.LTP_LEN, sim_wire.QUOTE_LEN, sim_wire.FULL_LEN) == (
        reference.KITE_LTP_LEN, reference.KITE_QUOTE_LEN, reference.KITE_FULL_LEN)
    assert (sim_wire.INDEX_QUOTE_LEN, sim_wire.INDEX_FULL_LEN) == (
        reference.KITE_INDEX_QUOTE_LEN, reference.KITE_INDEX_FULL_LEN)
    for segment in range(256):
        assert kite_price_divisor(segment) == reference.price_divisor(segment), segment
