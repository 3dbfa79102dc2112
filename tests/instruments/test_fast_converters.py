"""The fast (bulk) converters of the Upstox loader against their per-value twins.

A fast converter must return exactly what the per-value converter returns for
every value of the column (same values, same types), or raise ``_Fallback``;
it must fall back whenever a value is invalid (the slow path reports it), and
it must not fall back on ordinary Upstox data (or it would be useless).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastflow.brokers.kite import master as kite_master
from fastflow.brokers.upstox import master as upstox_master
from fastflow.instruments.errors import InstrumentError, _Where
from fastflow.instruments.parse import (
    _MAX_INT64,
    _ColumnError,
    _convert_columns,
    _convert_raw,
    _Fallback,
    _FieldError,
)
from fastflow.sim.universe import upstox_universe

FAST = upstox_master._FAST_CONVERTERS
CSV_FAST = upstox_master._CSV_FAST_CONVERTERS
SLOW = upstox_master._CONVERTERS
CSV_SLOW = upstox_master._CSV_CONVERTERS
DAY, IST = upstox_master._MS_PER_DAY, upstox_master._IST_OFFSET_MS
MIN_MS = upstox_master._MIN_EXPIRY_DAYS * DAY - IST  # the first millisecond of 0001-01-01 IST
MAX_MS = (upstox_master._MAX_EXPIRY_DAYS + 1) * DAY - IST - 1  # the last one of 9999-12-31 IST

#: Per column: values the fast twin must accept, and values it must refuse (fall back on).
FLOATS_OK: list[object] = [0, 1, -1, 0.0, -0.0, 2.5, -2.5, 1e308, -1e308, 5e-324, 2**63, None]
FLOATS_BAD: list[object] = [math.nan, math.inf, -math.inf, 10**400, True, "1.5", " ", np.float64(1.5), [1]]
COUNTS_OK: list[object] = [0, 1, 75, _MAX_INT64, None]
COUNTS_BAD: list[object] = [-1, _MAX_INT64 + 1, 75.0, 75.5, True, "75", np.int64(3), math.nan]
EPOCH_OK: list[object] = [0, -1, 1_706_745_599_000, MIN_MS, MAX_MS, None]
EPOCH_BAD: list[object] = [MIN_MS - 1, MAX_MS + 1, 1.7e12, math.nan, True, "1706745599000", np.int64(0)]
KEYS_OK: list[object] = ["NSE_EQ|INE009A01021", "NSE_INDEX|Nifty 50", " NSE_FO|45450 ", "A|B"]
KEYS_BAD: list[object] = ["", "   ", "NSE_EQ", "A||B", "A|B|C", "|B", "A|", "A |B", "A| B", None, 5, b"A|B"]
CASES: dict[str, tuple[list[object], list[object]]] = {
    "strike": (FLOATS_OK, FLOATS_BAD),
    "last_price": (FLOATS_OK, FLOATS_BAD),
    "tick_size": ([v for v in FLOATS_OK if v is None or float(v) >= 0], [*FLOATS_BAD, -1, -0.5, -1e308]),
    "lot_size": (COUNTS_OK, COUNTS_BAD),
    "expiry": (EPOCH_OK, EPOCH_BAD),
    "instrument_key": (KEYS_OK, KEYS_BAD),
}


def slow_column(convert: upstox_master.Converter, values: Sequence[object]) -> list[object] | None:
    """The per-value result for every value, or None if some value is invalid."""
    try:
        return [convert(value) for value in values]
    except _FieldError:
        return None


def check_twin(column: str, values: Sequence[object], *, csv: bool = False) -> bool:
    """Assert the twin agrees with the per-value converter; return whether it accepted ``values``."""
    fast, slow = (CSV_FAST, CSV_SLOW) if csv else (FAST, SLOW)
    expected = slow_column(slow[column], values)
    try:
        got = fast[column](values)
    except _Fallback:
        return False
    assert expected is not None, f"{column}: the fast twin accepted invalid input {values!r}"
    assert got == expected and [type(v) for v in got] == [type(v) for v in expected], (column, values)
    assert [math.copysign(1, v) for v in got if isinstance(v, float)] == [
        math.copysign(1, v) for v in expected if isinstance(v, float)
    ]  # -0.0 stays -0.0
    return True


def test_every_fast_twin_is_covered() -> None:
    assert set(FAST) == set(CASES) and set(CSV_FAST) <= set(CASES)
    assert set(FAST) <= set(SLOW) and set(CSV_FAST) <= set(CSV_SLOW)


@pytest.mark.parametrize("column", sorted(CASES))
def test_fast_twin_accepts_valid_and_edge_values(column: str) -> None:
    valid, _ = CASES[column]
    assert check_twin(column, valid)
    check_twin(column, [])  # loaders never pass empty columns; either answer is fine
    for value in valid:
        assert check_twin(column, [value])


@pytest.mark.parametrize("column", sorted(CASES))
def test_fast_twin_falls_back_on_each_unusual_value(column: str) -> None:
    valid, unusual = CASES[column]
    for value in unusual:
        for values in ([value], [*valid, value], [value, *valid]):
            assert not check_twin(column, values), (column, value)


@pytest.mark.parametrize("column", sorted(CSV_FAST))
def test_csv_fast_twins(column: str) -> None:
    valid, unusual = CASES[column]
    assert check_twin(column, valid, csv=True)
    for value in unusual:
        assert not check_twin(column, [*valid, value], csv=True)


def test_fast_twins_take_real_upstox_records() -> None:
    """On ordinary data every twin answers (no fallback): else it would only cost time."""
    records = upstox_universe()
    for column, field in upstox_master._JSON_FIELDS:
        if column in FAST:
            assert check_twin(column, [record.get(field) for record in records]), column


_json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=MIN_MS - 2, max_value=MIN_MS + 2),
    st.integers(min_value=MAX_MS - 2, max_value=MAX_MS + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*KEYS_OK, *KEYS_BAD, "75", "1.5", "", " 2 "]),
    st.text(alphabet="AB_| 09", max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(column=st.sampled_from(sorted(CASES)), values=st.lists(_json_values, max_size=6))
def test_fast_twin_matches_per_value_converter(column: str, values: list[object]) -> None:
    check_twin(column, values)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({c: _json_values for c in upstox_master._COLUMNS}), max_size=5))
def test_column_conversion_is_the_same_with_and_without_twins(rows: list[dict[str, object]]) -> None:
    """Results, or the earliest bad row and its reason, do not depend on the twins."""
    raw = {column: [row[column] for row in rows] for column in upstox_master._COLUMNS}

    def convert(fast: dict[str, upstox_master.FastConverter]) -> object:
        try:
            return _convert_raw(raw, upstox_master._COLUMNS, SLOW, fast)
        except _ColumnError as exc:
            return (exc.index, exc.column, exc.reason)

    assert convert(dict(FAST)) == convert({})


def test_convert_columns_reports_the_earliest_bad_row_through_where() -> None:
    raw = {"strike": [1.0, "x", 2.0], "lot_size": [1, 2, -3]}
    where = _Where("f.json", range(1, 4), "record", {"strike": "strike_price"})
    with pytest.raises(InstrumentError, match=r"^f\.json: record 2: field 'strike_price': cannot parse 'x'"):
        _convert_columns(raw, ["strike", "lot_size"], SLOW, where, FAST)


def test_the_model_does_not_import_the_brokers() -> None:
    """Layering: importing fastflow.instruments loads neither fastflow.brokers nor the hot path."""
    code = (
        "import sys, fastflow.instruments as m; "
        "assert not [n for n in sys.modules if n.startswith(('fastflow.brokers', 'fastflow.hotpath'))]; "
        "assert m.KITE_COLUMNS is sys.modules['fastflow.brokers.kite.master'].KITE_COLUMNS"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reexports_are_the_master_modules_names() -> None:
    import fastflow.instruments as instruments

    for name in ("KITE_COLUMNS", "INDICES_SEGMENT_ID", "kite_price_divisor"):
        assert getattr(instruments, name) is getattr(kite_master, name)
    for name in ("UPSTOX_CSV_COLUMNS", "UPSTOX_SEGMENT_IDS", "upstox_segment_id", "upstox_price_divisor"):
        assert getattr(instruments, name) is getattr(upstox_master, name)
    assert set(instruments.__all__) <= set(dir(instruments))
    with pytest.raises(AttributeError, match="no_such_name"):
        instruments.no_such_name  # noqa: B018


def test_master_module_functions(tmp_path) -> None:
    from fastflow.instruments import Instruments
    from fastflow.sim.universe import kite_universe, write_kite_csv, write_upstox_json

    kite_rows, upstox_rows = kite_universe(), upstox_universe()
    write_kite_csv(kite_rows, tmp_path / "kite.csv")
    write_upstox_json(upstox_rows, tmp_path / "upstox.json")
    for master, path, rows, broker in (
        (kite_master, tmp_path / "kite.csv", kite_rows, "kite"),
        (upstox_master, tmp_path / "upstox.json", upstox_rows, "upstox"),
    ):
        loaded, built = master.load(path), master.from_rows(rows)
        assert type(loaded) is Instruments and loaded.broker == built.broker == broker
        assert loaded.symbol.tolist() == built.symbol.tolist() and len(loaded) == len(rows)
    assert Instruments.from_kite_csv(tmp_path / "kite.csv").token.tolist() == kite_master.load(
        tmp_path / "kite.csv"
    ).token.tolist()
