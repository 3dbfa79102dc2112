"""The broker registry (``fastflow.brokers``): one spec per broker gives its modes,
limits, decoder, ingest and instrument-master loader, so nothing above it branches
on a broker's name."""

from __future__ import annotations

import pytest

from fastflow import brokers
from fastflow.hotpath import MarketState
from fastflow.instruments import Instruments
from fastflow.sim.universe import kite_universe

KITE, UPSTOX = brokers.get("kite"), brokers.get("upstox")
INFY, NIFTY50 = 408065, 256265


def test_every_registered_broker_has_a_complete_spec(tmp_path) -> None:
    from fastflow.sim.universe import ROWS, write_kite_csv, write_upstox_json

    assert brokers.names() == ("kite", "upstox") and brokers.DEFAULT == "kite"
    writers = {"kite": write_kite_csv, "upstox": write_upstox_json}
    for name in brokers.names():
        spec = brokers.get(name)
        assert spec.name == name and spec.modes and spec.default_url.startswith(("wss://", "https://"))
        rows = ROWS[name]()
        from_rows = spec.instruments_from_rows(rows)
        path = tmp_path / f"master.{spec.instruments_suffix}"
        writers[name](rows, str(path))
        assert len(spec.load_instruments(str(path))) == len(from_rows) > 0
        assert from_rows.broker == name
        decoder = spec.decoder(MarketState(from_rows))
        assert decoder.state.broker == name
        assert all(spec.subscription_limit(mode) > 0 for mode in spec.modes)


def test_the_broker_switch_builds_each_ingest_in_one_place() -> None:
    from fastflow.brokers.upstox.session import UpstoxIngest
    from fastflow.hotpath import KiteDecoder, UpstoxDecoder
    from fastflow.sim.universe import upstox_universe

    state = MarketState(Instruments.from_kite_rows(kite_universe()))
    upstox_state = MarketState(Instruments.from_upstox_rows(upstox_universe()))
    ingest = UPSTOX.ingest(UpstoxDecoder(upstox_state), {"NSE_EQ|INE009A01021": "full"},
                           access_token="t")
    assert isinstance(ingest, UpstoxIngest)
    with pytest.raises(TypeError, match="UpstoxDecoder"):
        brokers.get("upstox").ingest(KiteDecoder(state), {})
    with pytest.raises(ValueError, match="unknown broker"):
        brokers.get("zerodha").ingest(KiteDecoder(state), {})


def test_upstox_subscriptions_are_instrument_keys_within_the_mode_cap() -> None:
    from fastflow.sim.universe import upstox_universe

    instruments = Instruments.from_upstox_rows(upstox_universe())
    small, note = UPSTOX.subscriptions(instruments, ["NSE:INFY", "NSE_INDEX|Nifty 50"], "full")
    assert small == {"NSE_EQ|INE009A01021": "full", "NSE_INDEX|Nifty 50": "full"} and note == ""
    everything, note = UPSTOX.subscriptions(instruments, None, "ltpc")
    assert len(everything) == len(instruments) and note == ""
    capped, note = UPSTOX.subscriptions(instruments, None, "full", limit=10)
    assert len(capped) == 10 and "first 10" in note


def test_all_takes_at_most_one_api_keys_worth() -> None:
    rows = [dict(row) for row in kite_universe()]
    base = len(rows)
    for i in range(9_100 - base):  # pad the master past 9000 instruments
        rows.append({**rows[1 + i % 50], "instrument_token": ((900_000 + i) << 8) | 1,
                     "exchange_token": 900_000 + i, "tradingsymbol": f"PAD{i}"})
    instruments = Instruments.from_kite_rows(rows)
    subscriptions, note = KITE.subscriptions(instruments, None, "ltp")
    assert len(subscriptions) == 9000 and list(subscriptions)[:3] == [int(t) for t in instruments.token[:3]]
    assert "9,100 instruments" in note and "first 9,000" in note
    small, note = KITE.subscriptions(instruments, ["NSE:INFY", str(NIFTY50)], "full")
    assert small == {INFY: "full", NIFTY50: "full"} and note == ""
    with pytest.raises(KeyError, match="NSE:NOSUCH"):
        KITE.subscriptions(instruments, ["NSE:NOSUCH"], "full")
