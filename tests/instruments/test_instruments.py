"""Tests for fastflow.instruments (Kite instrument master loader)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow.instruments import KITE_COLUMNS, InstrumentError, Instruments

HEADER = ",".join(KITE_COLUMNS)

# token = exchange_token * 256 + segment_id
SAMPLE_ROWS = [
    "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE",
    "256265,1001,NIFTY 50,NIFTY 50,0.0,,0.0,0.0,0,EQ,INDICES,NSE",
    "5720322,22345,NIFTY15DECFUT,,78.0,2015-12-31,0.0,0.05,75,FUT,NFO-FUT,NFO",
    "5720578,22346,NIFTY159500CE,,23.0,2015-12-31,9500.0,0.05,75,CE,NFO-OPT,NFO",
    # CDS (segment 3): 1234 * 256 + 3
    "315907,1234,USDINR24JANFUT,USDINR,83.1,2024-01-29,0.0,0.0025,1,FUT,CDS-FUT,CDS",
    # BCD (segment 6): 5678 * 256 + 6
    "1453574,5678,EURINR24JAN90CE,EURINR,0.5,2024-01-29,90.0,0.0025,1,CE,BCD-OPT,BCD",
    # NCO (segment 12): 91 * 256 + 12
    "23308,91,GOLDM24FEBFUT,GOLDM,62000.0,2024-02-05,0.0,1.0,10,FUT,NCO-FUT,NCO",
    # MCX (segment 7): 4321 * 256 + 7, default divisor
    "1106183,4321,CRUDEOIL24JANFUT,CRUDEOIL,6100.0,2024-01-19,0.0,1.0,100,FUT,MCX-FUT,MCX",
]
SAMPLE_TEXT = HEADER + "\n" + "\n".join(SAMPLE_ROWS) + "\n"

SAMPLE_SYMBOLS = [
    "NSE:INFY",
    "NSE:NIFTY 50",
    "NFO:NIFTY15DECFUT",
    "NFO:NIFTY159500CE",
    "CDS:USDINR24JANFUT",
    "BCD:EURINR24JAN90CE",
    "NCO:GOLDM24FEBFUT",
    "MCX:CRUDEOIL24JANFUT",
]
SAMPLE_TOKENS = [408065, 256265, 5720322, 5720578, 315907, 1453574, 23308, 1106183]

ARRAY_ATTRIBUTES = [
    "token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
    "symbol",
    "segment_id",
    "price_divisor",
    "tradable",
]


def write_text(tmp_path: Path, text: str, name: str = "instruments.csv", newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def write_rows(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "instruments.csv") -> Path:
    return write_text(tmp_path, header + "\n" + "\n".join(rows) + "\n", name)


@pytest.fixture
def sample(tmp_path: Path) -> Instruments:
    return Instruments.from_kite_csv(write_text(tmp_path, SAMPLE_TEXT))


def load_error(path: Path) -> InstrumentError:
    with pytest.raises(InstrumentError) as info:
        Instruments.from_kite_csv(path)
    return info.value


def assert_located(err: InstrumentError, path: Path | None, line: int | None, column: str | None) -> None:
    message = str(err)
    assert err.line == line
    assert err.column == column
    if path is not None:
        assert err.path == str(path)
        assert message.startswith(str(path))
    if line is not None:
        if path is not None:
            assert f"{path}:{line}:" in message
        else:
            assert f"line {line}:" in message
    if column is not None:
        assert f"column {column!r}" in message


# ---------------------------------------------------------------------------
# loading


def check_sample(inst: Instruments) -> None:
    assert inst.broker == "kite"
    assert len(inst) == len(SAMPLE_ROWS)
    assert inst.token.dtype == np.uint32
    assert inst.token.tolist() == SAMPLE_TOKENS
    assert inst.exchange_token.dtype == np.int64
    assert inst.exchange_token.tolist() == [1594, 1001, 22345, 22346, 1234, 5678, 91, 4321]
    assert inst.tradingsymbol.dtype == object
    assert inst.tradingsymbol[1] == "NIFTY 50"
    assert inst.name.dtype == object
    assert inst.name.tolist()[:4] == ["INFOSYS", "NIFTY 50", "", ""]
    assert inst.last_price.dtype == np.float64
    assert inst.last_price[2] == 78.0
    assert inst.expiry.dtype == np.dtype("datetime64[D]")
    assert np.isnat(inst.expiry[0]) and np.isnat(inst.expiry[1])
    assert inst.expiry[2] == np.datetime64("2015-12-31")
    assert inst.strike.dtype == np.float64
    assert inst.strike[3] == 9500.0
    assert inst.tick_size.dtype == np.float64
    assert inst.tick_size[4] == 0.0025
    assert inst.lot_size.dtype == np.int64
    assert inst.lot_size.tolist() == [1, 0, 75, 75, 1, 1, 10, 100]
    assert inst.instrument_type.tolist()[:4] == ["EQ", "EQ", "FUT", "CE"]
    assert inst.segment.tolist()[:4] == ["NSE", "INDICES", "NFO-FUT", "NFO-OPT"]
    assert inst.exchange.tolist()[:4] == ["NSE", "NSE", "NFO", "NFO"]
    assert inst.symbol.dtype == object
    assert inst.symbol.tolist() == SAMPLE_SYMBOLS
    assert inst.segment_id.dtype == np.uint8
    assert inst.segment_id.tolist() == [1, 9, 2, 2, 3, 6, 12, 7]
    assert inst.price_divisor.dtype == np.int64
    assert inst.price_divisor.tolist() == [100, 100, 100, 100, 10_000_000, 10_000, 10_000, 100]
    assert inst.tradable.dtype == np.bool_
    assert inst.tradable.tolist() == [True, False, True, True, True, True, True, True]
    for attribute in ARRAY_ATTRIBUTES:
        array = getattr(inst, attribute)
        assert array.shape == (len(SAMPLE_ROWS),), attribute
    # the documented token layout holds for the sample
    assert ((inst.exchange_token * 256 + inst.segment_id) == inst.token).all()


def test_load_plain(tmp_path: Path) -> None:
    check_sample(Instruments.from_kite_csv(write_text(tmp_path, SAMPLE_TEXT)))


def test_load_accepts_str_path(tmp_path: Path) -> None:
    check_sample(Instruments.from_kite_csv(str(write_text(tmp_path, SAMPLE_TEXT))))


def test_load_gzip_detected_by_magic_not_extension(tmp_path: Path) -> None:
    compressed = gzip.compress(SAMPLE_TEXT.encode("utf-8"))
    for name in ("instruments.csv.gz", "instruments.csv", "instruments"):
        path = tmp_path / name
        path.write_bytes(compressed)
        check_sample(Instruments.from_kite_csv(path))


def test_plain_file_with_gz_extension(tmp_path: Path) -> None:
    check_sample(Instruments.from_kite_csv(write_text(tmp_path, SAMPLE_TEXT, name="instruments.csv.gz")))


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_TEXT.replace("\n", "\r\n").encode("utf-8"))
    check_sample(Instruments.from_kite_csv(path))


def test_bom_crlf_gzip(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + SAMPLE_TEXT.replace("\n", "\r\n").encode("utf-8")))
    check_sample(Instruments.from_kite_csv(path))


def test_blank_trailing_lines_and_no_final_newline(tmp_path: Path) -> None:
    check_sample(Instruments.from_kite_csv(write_text(tmp_path, SAMPLE_TEXT + "\n\n  \n\r\n")))
    check_sample(Instruments.from_kite_csv(write_text(tmp_path, SAMPLE_TEXT.rstrip("\n"))))


def test_reordered_header(tmp_path: Path) -> None:
    order = list(reversed(KITE_COLUMNS))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(order)
    for line in SAMPLE_ROWS:
        fields = dict(zip(KITE_COLUMNS, next(csv.reader([line])), strict=True))
        writer.writerow([fields[column] for column in order])
    check_sample(Instruments.from_kite_csv(write_text(tmp_path, out.getvalue())))


def test_quoted_fields(tmp_path: Path) -> None:
    rows = [
        '408065,1594,"INFY","INFOSYS, LTD ""A""",0.0,"",0.0,0.05,1,EQ,NSE,NSE',
        '256265,1001,"NIFTY 50","multi\nline name",0.0,,0.0,0.0,0,EQ,INDICES,NSE',
        "5720322,22345,NIFTY15DECFUT,,78.0,2015-12-31,0.0,0.05,75,FUT,NFO-FUT,NFO",
        "5720322,22345,X,,78.0,,0.0,0.05,75,FUT,NFO-FUT,NFO",
    ]
    path = write_rows(tmp_path, rows)
    # the multi-line quoted field shifts physical line numbers: the duplicate
    # token on the 4th data row is reported on physical line 6.
    err = load_error(path)
    assert_located(err, path, 6, "instrument_token")
    assert "lines 5 and 6" in str(err)
    inst = Instruments.from_kite_csv(write_rows(tmp_path, rows[:3]))
    assert inst.name.tolist() == ['INFOSYS, LTD "A"', "multi\nline name", ""]
    assert inst.symbol.tolist() == ["NSE:INFY", "NSE:NIFTY 50", "NFO:NIFTY15DECFUT"]


def test_surrounding_whitespace_is_stripped(tmp_path: Path) -> None:
    rows = [" 408065 , 1594 , INFY , INFOSYS , 0.0 , , 0.0 , 0.05 , 1 , EQ , NSE , NSE "]
    header = ", ".join(KITE_COLUMNS)
    inst = Instruments.from_kite_csv(write_rows(tmp_path, rows, header=header))
    assert inst.row(408065)["symbol"] == "NSE:INFY"
    assert inst.name[0] == "INFOSYS"
    assert np.isnat(inst.expiry[0])


# ---------------------------------------------------------------------------
# lookups


def test_slot_both_ways(sample: Instruments) -> None:
    for index, (token, symbol) in enumerate(zip(SAMPLE_TOKENS, SAMPLE_SYMBOLS, strict=True)):
        assert sample.slot(token) == index
        assert sample.slot(symbol) == index
        assert sample.slot(np.uint32(token)) == index
        assert sample.slot(np.int64(token)) == index
        assert isinstance(sample.slot(token), int)


def test_token_of_and_symbol_of(sample: Instruments) -> None:
    assert sample.token_of("NSE:INFY") == 408065
    assert sample.token_of(408065) == 408065
    assert type(sample.token_of("NSE:NIFTY 50")) is int
    assert sample.token_of("NSE:NIFTY 50") == 256265
    assert sample.symbol_of(256265) == "NSE:NIFTY 50"
    assert sample.symbol_of("NFO:NIFTY159500CE") == "NFO:NIFTY159500CE"
    assert type(sample.symbol_of(5720578)) is str


def test_contains(sample: Instruments) -> None:
    assert 408065 in sample
    assert np.uint32(408065) in sample
    assert "NSE:INFY" in sample
    assert "NSE:NIFTY 50" in sample
    assert "INFY" not in sample
    assert "nse:infy" not in sample
    assert 1 not in sample
    assert True not in sample
    assert 408065.0 not in sample
    assert None not in sample


def test_unknown_keys(sample: Instruments) -> None:
    with pytest.raises(KeyError, match="123456"):
        sample.slot(123456)
    with pytest.raises(KeyError, match="NSE:TCS"):
        sample.slot("NSE:TCS")
    with pytest.raises(KeyError, match="EXCHANGE:TRADINGSYMBOL"):
        sample.slot("INFY")
    with pytest.raises(KeyError, match="NSE:TCS"):
        sample.token_of("NSE:TCS")
    with pytest.raises(KeyError, match="99"):
        sample.symbol_of(99)
    with pytest.raises(KeyError, match="99"):
        sample.row(99)


def test_bad_key_types(sample: Instruments) -> None:
    with pytest.raises(TypeError, match="bool"):
        sample.slot(True)
    with pytest.raises(TypeError, match="bool"):
        sample.slot(np.bool_(True))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="float"):
        sample.slot(408065.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sample.slot(b"NSE:INFY")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sample.slots([408065, False])


def test_slots(sample: Instruments) -> None:
    result = sample.slots([5720578, "NSE:INFY", 256265, "NCO:GOLDM24FEBFUT"])
    assert result.dtype == np.int32
    assert result.tolist() == [3, 0, 1, 6]
    assert sample.slots(np.array(SAMPLE_TOKENS[::-1], dtype=np.uint32)).tolist() == list(range(8))[::-1]
    assert sample.slots(iter(SAMPLE_SYMBOLS)).tolist() == list(range(8))
    empty = sample.slots([])
    assert empty.dtype == np.int32 and empty.shape == (0,)
    with pytest.raises(KeyError, match="NSE:TCS"):
        sample.slots(["NSE:INFY", "NSE:TCS", 42])
    with pytest.raises(TypeError):
        sample.slots("NSE:INFY")


def test_row(sample: Instruments) -> None:
    row = sample.row("NFO:NIFTY159500CE")
    assert row == {
        "instrument_token": 5720578,
        "exchange_token": 22346,
        "tradingsymbol": "NIFTY159500CE",
        "name": "",
        "last_price": 23.0,
        "expiry": dt.date(2015, 12, 31),
        "strike": 9500.0,
        "tick_size": 0.05,
        "lot_size": 75,
        "instrument_type": "CE",
        "segment": "NFO-OPT",
        "exchange": "NFO",
        "symbol": "NFO:NIFTY159500CE",
    }
    assert list(row) == [*KITE_COLUMNS, "symbol"]
    assert type(row["instrument_token"]) is int
    assert type(row["exchange_token"]) is int
    assert type(row["lot_size"]) is int
    assert type(row["last_price"]) is float
    assert type(row["expiry"]) is dt.date
    index_row = sample.row(256265)
    assert index_row["expiry"] is None
    assert index_row["tradingsymbol"] == "NIFTY 50"
    assert sample.row("NSE:INFY") == sample.row(408065)


def test_arrays_are_read_only(sample: Instruments) -> None:
    for attribute in ARRAY_ATTRIBUTES:
        array = getattr(sample, attribute)
        assert isinstance(array, np.ndarray), attribute
        assert not array.flags.writeable, attribute
        with pytest.raises(ValueError):
            array[0] = array[1]


def test_constructor_from_columns_and_length_check(sample: Instruments) -> None:
    columns: dict[str, Any] = {column: list(getattr(sample, column)) for column in KITE_COLUMNS[1:]}
    columns["instrument_token"] = sample.token
    rebuilt = Instruments(**columns)
    assert rebuilt.symbol.tolist() == SAMPLE_SYMBOLS
    assert rebuilt.token.tolist() == SAMPLE_TOKENS
    # the constructor copies: the source arrays stay independent
    assert rebuilt.token is not sample.token

    short = dict(columns, strike=columns["strike"][:-1])
    with pytest.raises(InstrumentError, match="length") as info:
        Instruments(**short)
    assert info.value.column == "strike"

    bad = dict(columns, instrument_token=[0, *SAMPLE_TOKENS[1:]])
    with pytest.raises(InstrumentError) as info:
        Instruments(**bad)
    assert info.value.line == 2 and info.value.column == "instrument_token"

    floats = dict(columns, lot_size=[1.5] * len(SAMPLE_TOKENS))
    with pytest.raises(InstrumentError) as info:
        Instruments(**floats)
    assert info.value.column == "lot_size"


def test_repr(sample: Instruments) -> None:
    assert "8" in repr(sample)


# ---------------------------------------------------------------------------
# errors


def test_example_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE",
        "256265,1001,NIFTY 50,NIFTY 50,0.0,,0.0,0.0,0,EQ,INDICES,NSE",
        "5720322,22345,NIFTY15DECFUT,,78.0,2015-12-31,0.0,0.05,75,FUT,NFO-FUT,NFO",
        "1,0,A,,0,,0,0,0,EQ,NSE,NSE",
        "2,0,B,,0,,0,0,0,EQ,NSE,NSE",
        "5720578,22346,NIFTY159500CE,,23.0,2015-12-31,abc,0.05,75,CE,NFO-OPT,NFO",
    ]
    write_rows(tmp_path, rows)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InstrumentError) as info:
        Instruments.from_kite_csv("instruments.csv")
    assert str(info.value) == "instruments.csv:7: column 'strike': cannot parse 'abc' as a number"
    assert (info.value.path, info.value.line, info.value.column) == ("instruments.csv", 7, "strike")
    assert info.value.reason == "cannot parse 'abc' as a number"
    assert isinstance(info.value, ValueError)


def test_error_is_picklable() -> None:
    err = InstrumentError("bad", "x.csv", 3, "strike")
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == str(err) == "x.csv:3: column 'strike': bad"
    assert (clone.path, clone.line, clone.column, clone.reason) == ("x.csv", 3, "strike", "bad")


@pytest.mark.parametrize("content", [b"", b"   \n\n \r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "instruments.csv"
    path.write_bytes(content)
    err = load_error(path)
    assert "empty" in str(err)
    assert_located(err, path, None, None)


def test_empty_gzip(tmp_path: Path) -> None:
    path = tmp_path / "instruments.csv.gz"
    path.write_bytes(gzip.compress(b""))
    assert "empty" in str(load_error(path))


def test_missing_header(tmp_path: Path) -> None:
    path = write_text(tmp_path, "\n".join(SAMPLE_ROWS) + "\n")
    err = load_error(path)
    message = str(err)
    assert "header" in message and "missing" in message
    for column in KITE_COLUMNS:
        assert column in message
    assert_located(err, path, 1, None)


def test_unknown_extra_column(tmp_path: Path) -> None:
    header = HEADER + ",oi,bogus"
    path = write_rows(tmp_path, [row + ",0,0" for row in SAMPLE_ROWS], header=header)
    err = load_error(path)
    assert "'oi'" in str(err) and "'bogus'" in str(err) and "unknown" in str(err)
    assert_located(err, path, 1, "oi")


def test_missing_column(tmp_path: Path) -> None:
    header = HEADER.replace(",strike", "")
    path = write_rows(tmp_path, ["408065,1594,INFY,INFOSYS,0.0,,0.05,1,EQ,NSE,NSE"], header=header)
    err = load_error(path)
    assert "missing" in str(err)
    assert_located(err, path, 1, "strike")


def test_duplicate_column(tmp_path: Path) -> None:
    header = HEADER.replace("strike", "name")
    path = write_rows(tmp_path, SAMPLE_ROWS, header=header)
    err = load_error(path)
    assert "more than once" in str(err)
    assert_located(err, path, 1, "name")


@pytest.mark.parametrize("trailer", ["", "\n", "\n\n  \n"])
def test_header_only(tmp_path: Path, trailer: str) -> None:
    path = write_text(tmp_path, HEADER + trailer)
    err = load_error(path)
    assert "no instruments" in str(err)
    assert err.path == str(path)


@pytest.mark.parametrize(
    ("bad_row", "count"),
    [
        ("408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE", 11),
        ("408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE,", 13),
        ("408065", 1),
    ],
)
def test_wrong_field_count(tmp_path: Path, bad_row: str, count: int) -> None:
    path = write_rows(tmp_path, [SAMPLE_ROWS[0], SAMPLE_ROWS[1], bad_row, SAMPLE_ROWS[2]])
    err = load_error(path)
    assert f"expected 12, got {count}" in str(err)
    assert_located(err, path, 4, None)


def test_blank_line_between_rows(tmp_path: Path) -> None:
    path = write_rows(tmp_path, [SAMPLE_ROWS[0], "", SAMPLE_ROWS[1]])
    err = load_error(path)
    assert "blank line" in str(err)
    assert_located(err, path, 3, None)


def test_malformed_quoting(tmp_path: Path) -> None:
    path = write_rows(tmp_path, [SAMPLE_ROWS[0], '256265,1001,"NIFTY" 50,,0,,0,0,0,EQ,INDICES,NSE'])
    err = load_error(path)
    assert "malformed CSV" in str(err)
    assert_located(err, path, 3, None)


GOOD = "408065,1594,INFY,INFOSYS,0.0,,0.0,0.05,1,EQ,NSE,NSE"


def replace_field(column: str, value: str, row: str = GOOD) -> str:
    fields = row.split(",")
    fields[KITE_COLUMNS.index(column)] = value
    return ",".join(fields)


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("instrument_token", "abc", "cannot parse 'abc' as an integer"),
        ("instrument_token", "1.5", "cannot parse '1.5' as an integer"),
        ("instrument_token", "", "empty value"),
        ("instrument_token", "1_000", "cannot parse '1_000'"),
        ("instrument_token", "0", "must not be 0"),
        ("instrument_token", "-5", "negative"),
        ("instrument_token", "4294967296", "32 bits"),
        ("exchange_token", "x1", "cannot parse 'x1' as an integer"),
        ("exchange_token", "-1", "negative"),
        ("lot_size", "7.5", "cannot parse '7.5' as an integer"),
        ("lot_size", "-1", "negative"),
        ("lot_size", "99999999999999999999", "too large"),
        ("last_price", "1;2", "cannot parse '1;2' as a number"),
        ("last_price", "nan", "not a finite number"),
        ("strike", "abc", "cannot parse 'abc' as a number"),
        ("strike", "inf", "not a finite number"),
        ("strike", "", "empty value"),
        ("tick_size", "-0.05", "negative"),
        ("expiry", "2015-13-01", "cannot parse '2015-13-01' as a date"),
        ("expiry", "2015-02-30", "cannot parse '2015-02-30' as a date"),
        ("expiry", "31-12-2015", "cannot parse '31-12-2015' as a date"),
        ("expiry", "20151231", "cannot parse '20151231' as a date"),
        ("tradingsymbol", "", "must not be empty"),
        ("tradingsymbol", "   ", "must not be empty"),
        ("exchange", "", "must not be empty"),
    ],
)
def test_bad_values(tmp_path: Path, column: str, value: str, fragment: str) -> None:
    rows = [SAMPLE_ROWS[1], SAMPLE_ROWS[2], replace_field(column, value), SAMPLE_ROWS[3]]
    path = write_rows(tmp_path, rows)
    err = load_error(path)
    assert fragment in str(err)
    assert_located(err, path, 4, column)


def test_earliest_bad_line_is_reported(tmp_path: Path) -> None:
    rows = [
        SAMPLE_ROWS[1],
        replace_field("strike", "abc", SAMPLE_ROWS[2]),
        replace_field("instrument_token", "zz", SAMPLE_ROWS[3]),
        replace_field("lot_size", "q", GOOD),
    ]
    path = write_rows(tmp_path, rows)
    assert_located(load_error(path), path, 3, "strike")


def test_duplicate_token(tmp_path: Path) -> None:
    dup = "408065,1,OTHER,,0,,0,0.05,1,EQ,NSE,NSE"
    path = write_rows(tmp_path, [GOOD, SAMPLE_ROWS[1], SAMPLE_ROWS[2], dup])
    err = load_error(path)
    assert "duplicate instrument_token 408065" in str(err)
    assert "lines 2 and 5" in str(err)
    assert_located(err, path, 5, "instrument_token")


def test_duplicate_symbol(tmp_path: Path) -> None:
    dup = "999937,3906,INFY,INFOSYS AGAIN,0,,0,0.05,1,EQ,NSE,NSE"
    path = write_rows(tmp_path, [SAMPLE_ROWS[1], GOOD, SAMPLE_ROWS[2], dup])
    err = load_error(path)
    assert "duplicate symbol 'NSE:INFY'" in str(err)
    assert "lines 3 and 5" in str(err)
    assert_located(err, path, 5, "tradingsymbol")
    # the same tradingsymbol on another exchange is fine
    other = "999938,3906,INFY,INFOSYS,0,,0,0.05,1,EQ,BSE,BSE"
    inst = Instruments.from_kite_csv(write_rows(tmp_path, [GOOD, other]))
    assert inst.slots(["NSE:INFY", "BSE:INFY"]).tolist() == [0, 1]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data[: len(data) // 2],  # truncated stream
        lambda data: data[:10] + b"\x00garbage!" * 4 + data[40:],  # corrupt deflate data
        lambda data: data[:-8] + b"\xde\xad\xbe\xef" + data[-4:],  # bad CRC
        lambda data: b"\x1f\x8b",  # magic only
    ],
)
def test_corrupt_gzip(tmp_path: Path, mangle: Any) -> None:
    path = tmp_path / "instruments.csv.gz"
    path.write_bytes(mangle(gzip.compress(SAMPLE_TEXT.encode("utf-8"))))
    err = load_error(path)
    assert "gzip" in str(err)
    assert err.path == str(path)


def test_non_utf8(tmp_path: Path) -> None:
    text = SAMPLE_TEXT.replace("NIFTY15DECFUT", "NIFTY15D\udcffCFUT")
    path = tmp_path / "instruments.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    err = load_error(path)
    assert "UTF-8" in str(err)
    assert_located(err, path, 4, None)
    # the same with CRLF line endings and inside a gzip stream
    path.write_bytes(gzip.compress(text.replace("\n", "\r\n").encode("utf-8", "surrogateescape")))
    assert_located(load_error(path), path, 4, None)


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Instruments.from_kite_csv(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------
# large dump


def generate_dump(count: int) -> str:
    lines = [HEADER]
    segments = [(1, "NSE", "NSE", "EQ"), (2, "NFO", "NFO-OPT", "CE"), (3, "CDS", "CDS-FUT", "FUT")]
    segments += [(9, "NSE", "INDICES", "EQ"), (12, "NCO", "NCO-FUT", "FUT"), (6, "BCD", "BCD-OPT", "PE")]
    for index in range(count):
        segment_id, exchange, segment, kind = segments[index % len(segments)]
        exchange_token = 1000 + index
        token = exchange_token * 256 + segment_id
        expiry = "" if kind == "EQ" else f"2024-{index % 12 + 1:02d}-{index % 28 + 1:02d}"
        name = f"NAME {index}" if index % 3 else ""
        lines.append(
            f"{token},{exchange_token},SYM{index} X,{name},{index * 0.05:.2f},{expiry},"
            f"{index % 500 * 50}.0,0.05,{index % 100},{kind},{segment},{exchange}"
        )
    return "\n".join(lines) + "\n"


def test_large_dump_loads_and_round_trips(tmp_path: Path) -> None:
    count = 100_000
    text = generate_dump(count)
    plain = write_text(tmp_path, text)
    packed = tmp_path / "instruments.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=1))

    for source in (plain, packed):
        inst = Instruments.from_kite_csv(source)
        assert len(inst) == count

    tokens = inst.token.tolist()
    symbols = inst.symbol.tolist()
    assert len(set(tokens)) == count
    assert all(inst.slot(token) == slot for slot, token in enumerate(tokens))
    assert all(inst.slot(symbol) == slot for slot, symbol in enumerate(symbols))
    assert inst.slots(inst.token).tolist() == list(range(count))
    assert inst.slots(symbols[::-1]).tolist() == list(range(count))[::-1]
    assert inst.token_of(symbols[54321]) == tokens[54321]
    assert inst.symbol_of(tokens[54322]) == "NCO:SYM54322 X" == symbols[54322]
    assert (inst.exchange_token * 256 + inst.segment_id == inst.token).all()
    assert int(inst.tradable.sum()) == count - count // 6 - (1 if count % 6 > 3 else 0)
    assert set(inst.price_divisor.tolist()) == {100, 10_000, 10_000_000}
    assert inst.row(tokens[7])["expiry"] == dt.date(2024, 8, 8)


# ---------------------------------------------------------------------------
# from_kite_rows


def kiteconnect_rows(text: str = SAMPLE_TEXT) -> list[dict[str, Any]]:
    """Rows shaped like kiteconnect's KiteConnect.instruments() output."""
    records: list[dict[str, Any]] = []
    for row in csv.DictReader(io.StringIO(text)):
        record: dict[str, Any] = dict(row)
        record["instrument_token"] = int(row["instrument_token"])
        record["last_price"] = float(row["last_price"])
        record["strike"] = float(row["strike"])
        record["tick_size"] = float(row["tick_size"])
        record["lot_size"] = int(row["lot_size"])
        if len(row["expiry"]) == 10:
            record["expiry"] = dt.date.fromisoformat(row["expiry"])
        records.append(record)
    return records


def test_from_kite_rows_typed() -> None:
    rows = kiteconnect_rows()
    assert isinstance(rows[0]["exchange_token"], str)  # kiteconnect leaves it as str
    assert rows[0]["expiry"] == "" and isinstance(rows[2]["expiry"], dt.date)
    rows[1]["expiry"] = None
    rows[2]["name"] = None
    rows[3]["exchange_token"] = np.int64(22346)
    rows[3]["expiry"] = dt.datetime(2015, 12, 31, 15, 30)
    rows[3]["strike"] = np.float64(9500.0)
    inst = Instruments.from_kite_rows(iter(rows))
    check_sample(inst)
    assert inst.row(5720578)["expiry"] == dt.date(2015, 12, 31)


def test_from_kite_rows_strings() -> None:
    check_sample(Instruments.from_kite_rows(csv.DictReader(io.StringIO(SAMPLE_TEXT))))


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("instrument_token", True, "got bool"),
        ("instrument_token", 5.0, "expected an integer"),
        ("instrument_token", 0, "must not be 0"),
        ("instrument_token", 2**32, "32 bits"),
        ("strike", "abc", "cannot parse 'abc' as a number"),
        ("strike", None, "expected a number"),
        ("last_price", float("nan"), "not a finite number"),
        ("last_price", 10**400, "too large"),
        ("lot_size", 2**63, "too large"),
        ("lot_size", np.int64(-1), "negative"),
        ("expiry", 20151231, "expected a date"),
        ("expiry", "2015/12/31", "as a date"),
        ("tradingsymbol", None, "must not be empty"),
        ("tradingsymbol", 42, "expected a string"),
        ("exchange", "", "must not be empty"),
    ],
)
def test_from_kite_rows_bad_values(column: str, value: object, fragment: str) -> None:
    rows = kiteconnect_rows()
    rows[2][column] = value
    with pytest.raises(InstrumentError) as info:
        Instruments.from_kite_rows(rows)
    assert fragment in str(info.value)
    assert_located(info.value, None, 4, column)
    assert info.value.path is None


def test_from_kite_rows_structure_errors() -> None:
    rows = kiteconnect_rows()
    with pytest.raises(InstrumentError, match="no instruments"):
        Instruments.from_kite_rows([])

    missing = [dict(row) for row in rows]
    del missing[1]["strike"]
    with pytest.raises(InstrumentError, match="missing") as info:
        Instruments.from_kite_rows(missing)
    assert_located(info.value, None, 3, "strike")

    extra = [dict(row) for row in rows]
    extra[4]["oi"] = 0
    with pytest.raises(InstrumentError, match="unknown") as info:
        Instruments.from_kite_rows(extra)
    assert_located(info.value, None, 6, "oi")

    with pytest.raises(InstrumentError, match="mapping") as info:
        Instruments.from_kite_rows([rows[0], list(rows[1].values())])  # type: ignore[list-item]
    assert_located(info.value, None, 3, None)

    dup = [*rows, dict(rows[0], tradingsymbol="OTHER")]
    with pytest.raises(InstrumentError, match="lines 2 and 10") as info:
        Instruments.from_kite_rows(dup)
    assert_located(info.value, None, 10, "instrument_token")

    dup_symbol = [*rows, dict(rows[0], instrument_token=7777)]
    with pytest.raises(InstrumentError, match="'NSE:INFY' on lines 2 and 10") as info:
        Instruments.from_kite_rows(dup_symbol)
    assert_located(info.value, None, 10, "tradingsymbol")


# ---------------------------------------------------------------------------
# property: write with csv.writer, load, read back


_field_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=12,
).filter(lambda text: text == text.strip() and bool(text))
_finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)


@st.composite
def _instrument_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    tokens = draw(st.lists(st.integers(1, 0xFFFFFFFF), min_size=1, max_size=20, unique=True))
    symbols = draw(st.lists(_field_text, min_size=len(tokens), max_size=len(tokens), unique=True))
    rows = []
    for token, symbol in zip(tokens, symbols, strict=True):
        rows.append(
            {
                "instrument_token": token,
                "exchange_token": token >> 8,
                "tradingsymbol": symbol,
                "name": draw(st.one_of(st.just(""), _field_text)),
                "last_price": draw(_finite),
                "expiry": draw(st.one_of(st.none(), st.dates(dt.date(1971, 1, 1), dt.date(2200, 1, 1)))),
                "strike": draw(_finite),
                "tick_size": draw(st.floats(min_value=0, max_value=1e6)),
                "lot_size": draw(st.integers(0, 10**9)),
                "instrument_type": draw(st.sampled_from(["EQ", "FUT", "CE", "PE"])),
                "segment": draw(st.sampled_from(["NSE", "NFO-OPT", "INDICES"])),
                "exchange": "NSE",
            }
        )
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=_instrument_rows(),
    crlf=st.booleans(),
    gzipped=st.booleans(),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
)
def test_property_round_trip(
    tmp_path: Path, rows: list[dict[str, Any]], crlf: bool, gzipped: bool, quoting: Any
) -> None:
    out = io.StringIO()
    # QUOTE_MINIMAL only quotes a lone "\r" when it is part of the line terminator
    terminator = "\r\n" if crlf or quoting == csv.QUOTE_MINIMAL else "\n"
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    writer.writerow(KITE_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in KITE_COLUMNS])
    data = out.getvalue().encode("utf-8")
    path = tmp_path / "prop.csv"
    path.write_bytes(gzip.compress(data) if gzipped else data)
    inst = Instruments.from_kite_csv(path)
    assert len(inst) == len(rows)
    for slot, row in enumerate(rows):
        expected = dict(row, symbol=f"NSE:{row['tradingsymbol']}")
        assert inst.row(row["instrument_token"]) == expected
        assert inst.slot(expected["symbol"]) == slot
        assert int(inst.segment_id[slot]) == row["instrument_token"] & 0xFF
    assert Instruments.from_kite_rows(rows).symbol.tolist() == inst.symbol.tolist()


# ---------------------------------------------------------------------------
# instrument_key column and key_of (shared with the Upstox loader)


def test_kite_instrument_key_column(sample: Instruments) -> None:
    assert sample.instrument_key.dtype == object
    assert sample.instrument_key.tolist() == [str(token) for token in SAMPLE_TOKENS]
    assert all(type(key) is str for key in sample.instrument_key.tolist())
    assert not sample.instrument_key.flags.writeable
    assert sample.key_of("NSE:INFY") == "408065"
    assert sample.key_of(256265) == "256265"
    # Kite look-ups are unchanged: a str is always a symbol, even with a '|'
    with pytest.raises(KeyError, match="unknown instrument symbol"):
        sample.slot("NSE_EQ|INE009A01021")
    assert "NSE_EQ|INE009A01021" not in sample
    assert "instrument_key" not in sample.row("NSE:INFY")


def test_kite_symbol_with_bar_is_a_symbol(tmp_path: Path) -> None:
    inst = Instruments.from_kite_csv(write_rows(tmp_path, [GOOD, "1281,5,A|B,,0,,0,0.05,1,EQ,NSE,NSE"]))
    assert inst.slot("NSE:A|B") == 1
    assert "NSE:A|B" in inst


def test_constructor_instrument_key_only_for_upstox(sample: Instruments) -> None:
    columns: dict[str, Any] = {column: list(getattr(sample, column)) for column in KITE_COLUMNS[1:]}
    columns["instrument_token"] = sample.token
    with pytest.raises(InstrumentError, match="only given for broker 'upstox'") as info:
        Instruments(**columns, instrument_key=[str(token) for token in SAMPLE_TOKENS])
    assert info.value.column == "instrument_key"


def test_error_unit_defaults_to_line_and_pickles() -> None:
    err = InstrumentError("bad", "x.csv", 3, "strike")
    assert err.unit == "line"
    record = InstrumentError("bad", "x.json", 3, "strike_price", "record")
    assert str(record) == "x.json: record 3: field 'strike_price': bad"
    clone = pickle.loads(pickle.dumps(record))
    assert (clone.unit, clone.line, clone.column, str(clone)) == ("record", 3, "strike_price", str(record))
    assert str(InstrumentError("bad", None, 2, None, "record")) == "record 2: bad"
    with pytest.raises(ValueError, match="unit"):
        InstrumentError("bad", unit="page")
