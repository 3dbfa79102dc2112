"""Tests for the Upstox instrument master loader (``Instruments.from_upstox``)
and the synthetic Upstox universe (``fastflow.sim.universe.upstox_universe``)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastflow.instruments import (
    UPSTOX_CSV_COLUMNS,
    UPSTOX_SEGMENT_IDS,
    InstrumentError,
    Instruments,
    upstox_price_divisor,
    upstox_segment_id,
)
from fastflow.sim.universe import isin_check_digit, kite_universe, upstox_universe, write_upstox_json

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def ist_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch milliseconds of a wall-clock time in IST."""
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=IST).timestamp()) * 1000


EOD = (23, 59, 59)  # Upstox's files give expiries as 23:59:59 IST of the expiry day

# Shaped like the objects in Upstox's complete.json (extra fields are ignored).
SAMPLE: list[dict[str, Any]] = [
    {
        "segment": "NSE_EQ",
        "name": "INFOSYS LIMITED",
        "exchange": "NSE",
        "isin": "INE009A01021",
        "instrument_type": "EQ",
        "instrument_key": "NSE_EQ|INE009A01021",
        "lot_size": 1,
        "freeze_quantity": 100000.0,
        "exchange_token": "1594",
        "tick_size": 5.0,
        "trading_symbol": "INFY",
        "short_name": "Infosys",
        "security_type": "NORMAL",
    },
    {
        "segment": "NSE_INDEX",
        "name": "Nifty 50",
        "exchange": "NSE",
        "instrument_type": "INDEX",
        "instrument_key": "NSE_INDEX|Nifty 50",
        "exchange_token": "26000",
        "trading_symbol": "NIFTY 50",
    },
    {
        "weekly": False,
        "segment": "NSE_FO",
        "name": "NIFTY",
        "exchange": "NSE",
        "expiry": ist_ms(2025, 12, 30, *EOD),
        "instrument_type": "CE",
        "underlying_symbol": "NIFTY",
        "instrument_key": "NSE_FO|45450",
        "lot_size": 75,
        "exchange_token": "45450",
        "underlying_key": "NSE_INDEX|Nifty 50",
        "tick_size": 5.0,
        "trading_symbol": "NIFTY 26000 CE 30 DEC 25",
        "strike_price": 26000.0,
        "last_price": 212.35,
    },
    {
        "weekly": False,
        "segment": "NCD_FO",
        "name": "GBPINR",
        "exchange": "NSE",
        "expiry": ist_ms(2025, 12, 29, *EOD),
        "instrument_type": "PE",
        "instrument_key": "NCD_FO|14277",
        "lot_size": 1,
        "exchange_token": "14277",
        "tick_size": 0.25,
        "trading_symbol": "GBPINR 118.25 PE 29 DEC 25",
        "strike_price": 118.25,
    },
    {
        "segment": "BSE_EQ",
        "name": "RELIANCE INDUSTRIES LTD",
        "exchange": "BSE",
        "instrument_type": "A",
        "instrument_key": "BSE_EQ|INE002A01018",
        "lot_size": 1,
        "exchange_token": "500325",
        "tick_size": 5.0,
        "trading_symbol": "RELIANCE",
    },
    {
        "segment": "BSE_FO",
        "name": "SENSEX",
        "exchange": "BSE",
        "expiry": ist_ms(2025, 12, 24, 15, 30),
        "instrument_type": "FUT",
        "instrument_key": "BSE_FO|1140321",
        "lot_size": 20,
        "exchange_token": 1140321,  # an int is accepted too
        "tick_size": 5.0,
        "trading_symbol": "SENSEX FUT 24 DEC 25",
        "strike_price": 0.0,
    },
    {
        "segment": "BCD_FO",
        "name": "EURINR",
        "exchange": "BSE",
        "expiry": ist_ms(2025, 12, 29, *EOD),
        "instrument_type": "FUT",
        "instrument_key": "BCD_FO|2001",
        "lot_size": 1,
        "exchange_token": "2001",
        "tick_size": 0.25,
        "trading_symbol": "EURINR FUT 29 DEC 25",
    },
    {
        "segment": "MCX_FO",
        "name": "CRUDE OIL",
        "exchange": "MCX",
        "expiry": ist_ms(2025, 12, 19, *EOD),
        "instrument_type": "FUT",
        "instrument_key": "MCX_FO|434855",
        "lot_size": 100,
        "exchange_token": "434855",
        "tick_size": 100.0,
        "trading_symbol": "CRUDEOIL FUT 19 DEC 25",
        "last_price": 5667.0,
    },
    {
        "segment": "BSE_INDEX",
        "name": "SENSEX",
        "exchange": "BSE",
        "instrument_type": "INDEX",
        "instrument_key": "BSE_INDEX|SENSEX",
        "exchange_token": "1",
        "trading_symbol": "SENSEX",
    },
    {
        "segment": "MCX_INDEX",
        "exchange": "MCX",
        "instrument_type": "INDEX",
        "instrument_key": "MCX_INDEX|MCXBULLDEX",
        "exchange_token": "MCXBULLDEX",  # not numeric -> 0
        "trading_symbol": "MCXBULLDEX",
    },
    {
        "segment": "NSE_COM",
        "exchange": "NSE",
        "expiry": None,
        "instrument_key": "NSE_COM|1234",
        "exchange_token": None,
        "trading_symbol": "CRUDEOIL FUT 19 DEC 25",
    },
    {
        "segment": "GLOBAL_INDEX",
        "exchange": "GLOBAL",
        "instrument_key": "GLOBAL_INDEX|S&P 500",
        "trading_symbol": "S&P 500",
    },
]

SAMPLE_KEYS = [record["instrument_key"] for record in SAMPLE]
SAMPLE_SYMBOLS = [
    "NSE:INFY",
    "NSE:NIFTY 50",
    "NSE:NIFTY 26000 CE 30 DEC 25",
    "NSE:GBPINR 118.25 PE 29 DEC 25",
    "BSE:RELIANCE",
    "BSE:SENSEX FUT 24 DEC 25",
    "BSE:EURINR FUT 29 DEC 25",
    "MCX:CRUDEOIL FUT 19 DEC 25",
    "BSE:SENSEX",
    "MCX:MCXBULLDEX",
    "NSE:CRUDEOIL FUT 19 DEC 25",
    "GLOBAL:S&P 500",
]
SAMPLE_SEGMENTS = [key.split("|")[0] for key in SAMPLE_KEYS]
SAMPLE_EXCHANGE_TOKENS = [1594, 26000, 45450, 14277, 500325, 1140321, 2001, 434855, 1, 0, 0, 0]
SAMPLE_SEGMENT_IDS = [1, 9, 2, 3, 4, 5, 6, 7, 9, 9, 10, 0]
SAMPLE_DIVISORS = [10_000, 10_000, 10_000, 10_000_000, 10_000, 10_000, 10_000_000] + [10_000] * 5
SAMPLE_TRADABLE = [True, False, True, True, True, True, True, True, False, False, True, False]
SAMPLE_EXPIRIES = [
    None,
    None,
    dt.date(2025, 12, 30),
    dt.date(2025, 12, 29),
    None,
    dt.date(2025, 12, 24),
    dt.date(2025, 12, 29),
    dt.date(2025, 12, 19),
    None,
    None,
    None,
    None,
]

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
    "instrument_key",
    "symbol",
    "segment_id",
    "price_divisor",
    "tradable",
]

# A plain record used to build the error cases (record 3 of a 4-record file).
GOOD: dict[str, Any] = {
    "segment": "NSE_EQ",
    "name": "TATA CONSULTANCY SERV LT",
    "exchange": "NSE",
    "instrument_type": "EQ",
    "instrument_key": "NSE_EQ|INE467B01029",
    "lot_size": 1,
    "exchange_token": "11536",
    "tick_size": 5.0,
    "trading_symbol": "TCS",
    "strike_price": 0.0,
    "expiry": None,
    "last_price": 3150.0,
}

CSV_HEADER = ",".join(UPSTOX_CSV_COLUMNS)
CSV_ROWS = [
    "NSE_EQ|INE009A01021,1594,INFY,INFOSYS LIMITED,1560.5,,,0.05,1,EQUITY,,NSE_EQ",
    "NSE_INDEX|Nifty 50,26000,NIFTY,Nifty 50,26050.1,,,,,INDEX,,NSE_INDEX",
    "NSE_FO|45450,45450,NIFTY25DEC26000CE,NIFTY,212.35,2025-12-30,26000,0.05,75,OPTIDX,CE,NSE_FO",
    "NCD_FO|14277,14277,GBPINR25DEC118.25PE,GBPINR,0.1,2025-12-29,118.25,0.0025,1,OPTCUR,PE,NCD_FO",
    "BCD_FO|2001,2001,EURINR25DECFUT,EURINR,102.2,2025-12-29,,0.0025,1,FUTCUR,,BCD_FO",
    "MCX_FO|434855,434855,CRUDEOIL25DECFUT,CRUDE OIL,5667,2025-12-19,,1,100,FUTCOM,,MCX_FO",
    'BSE_EQ|INE002A01018,500325,RELIANCE,"RELIANCE INDUSTRIES LTD.",1540,,,0.05,1,EQUITY,,BSE_EQ',
]
CSV_TEXT = CSV_HEADER + "\n" + "\n".join(CSV_ROWS) + "\n"


def write_json(tmp_path: Path, records: Any, name: str = "instruments.json", **dumps: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(json.dumps(records, **dumps).encode("utf-8"))
    return path


def write_bytes(tmp_path: Path, data: bytes, name: str = "instruments.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load_error(path: Path) -> InstrumentError:
    with pytest.raises(InstrumentError) as info:
        Instruments.from_upstox(path)
    return info.value


def assert_record(err: InstrumentError, path: Path | None, record: int, field: str | None) -> None:
    """The error points at JSON record ``record`` (1-based) and ``field``."""
    assert (err.line, err.column, err.unit) == (record, field, "record")
    message = str(err)
    where = f"record {record}: " if path is None else f"{path}: record {record}: "
    if field is not None:
        where += f"field {field!r}: "
    assert message.startswith(where), message
    assert message == where + err.reason
    if path is not None:
        assert err.path == str(path)
    else:
        assert err.path is None


def assert_line(err: InstrumentError, path: Path, line: int | None, column: str | None) -> None:
    """The error points at physical ``line`` of a CSV (or JSON text) file."""
    assert (err.line, err.column, err.unit) == (line, column, "line")
    assert err.path == str(path)
    if line is not None:
        assert str(err).startswith(f"{path}:{line}: ")
    if column is not None:
        assert f"column {column!r}: " in str(err)


@pytest.fixture
def sample(tmp_path: Path) -> Instruments:
    return Instruments.from_upstox(write_json(tmp_path, SAMPLE))


# ---------------------------------------------------------------------------
# loading


def check_sample(inst: Instruments) -> None:
    count = len(SAMPLE)
    assert inst.broker == "upstox"
    assert len(inst) == count
    assert repr(inst) == f"<Instruments broker='upstox' count={count}>"
    assert inst.instrument_key.dtype == object
    assert inst.instrument_key.tolist() == SAMPLE_KEYS
    assert inst.symbol.tolist() == SAMPLE_SYMBOLS
    assert inst.segment.tolist() == SAMPLE_SEGMENTS
    assert inst.exchange.tolist()[:5] == ["NSE", "NSE", "NSE", "NSE", "BSE"]
    assert inst.tradingsymbol[1] == "NIFTY 50"
    assert inst.exchange_token.dtype == np.int64
    assert inst.exchange_token.tolist() == SAMPLE_EXCHANGE_TOKENS
    assert inst.token.dtype == np.uint32
    assert inst.token.tolist() == SAMPLE_EXCHANGE_TOKENS
    assert inst.segment_id.dtype == np.uint8
    assert inst.segment_id.tolist() == SAMPLE_SEGMENT_IDS
    assert inst.price_divisor.dtype == np.int64
    assert inst.price_divisor.tolist() == SAMPLE_DIVISORS
    assert inst.tradable.dtype == np.bool_
    assert inst.tradable.tolist() == SAMPLE_TRADABLE
    assert inst.expiry.dtype == np.dtype("datetime64[D]")
    assert inst.expiry.tolist() == SAMPLE_EXPIRIES
    assert inst.strike.tolist()[:4] == [0.0, 0.0, 26000.0, 118.25]
    assert inst.tick_size.tolist()[:4] == [0.05, 0.0, 0.05, 0.0025]  # paise in the JSON, rupees in the column
    assert inst.lot_size.dtype == np.int64
    assert inst.lot_size.tolist() == [1, 0, 75, 1, 1, 20, 1, 100, 0, 0, 0, 0]
    assert inst.last_price.tolist() == [0.0, 0.0, 212.35, 0.0, 0.0, 0.0, 0.0, 5667.0, 0.0, 0.0, 0.0, 0.0]
    assert inst.name.tolist()[:3] == ["INFOSYS LIMITED", "Nifty 50", "NIFTY"]
    assert inst.name.tolist()[-1] == ""
    assert inst.instrument_type.tolist()[:3] == ["EQ", "INDEX", "CE"]
    assert inst.instrument_type.tolist()[-1] == ""
    for attribute in ARRAY_ATTRIBUTES:
        array = getattr(inst, attribute)
        assert isinstance(array, np.ndarray), attribute
        assert array.shape == (count,), attribute
        assert not array.flags.writeable, attribute


def test_load_json(sample: Instruments) -> None:
    check_sample(sample)


def test_load_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    data = gzip.compress(json.dumps(SAMPLE, indent=2).encode("utf-8"))
    check_sample(Instruments.from_upstox(write_bytes(tmp_path, data, "instruments.csv")))
    check_sample(Instruments.from_upstox(write_bytes(tmp_path, data, "complete.json.gz")))
    # and a plain file named .gz is read as plain JSON
    plain = write_bytes(tmp_path, json.dumps(SAMPLE).encode("utf-8"), "plain.json.gz")
    check_sample(Instruments.from_upstox(str(plain)))


def test_load_bom_whitespace_crlf_and_unicode(tmp_path: Path) -> None:
    text = (
        "\ufeff \r\n\t" + json.dumps(SAMPLE, indent=1, ensure_ascii=False).replace("\n", "\r\n") + "\r\n\r\n"
    )
    check_sample(Instruments.from_upstox(write_bytes(tmp_path, text.encode("utf-8"))))
    records = [dict(SAMPLE[0], name="INFOSYS \u20b9 LTD")]
    for ensure_ascii in (True, False):
        inst = Instruments.from_upstox(write_json(tmp_path, records, ensure_ascii=ensure_ascii))
        assert inst.name[0] == "INFOSYS \u20b9 LTD"


def test_from_upstox_rows(sample: Instruments) -> None:
    inst = Instruments.from_upstox_rows(iter(SAMPLE))
    check_sample(inst)
    for attribute in ARRAY_ATTRIBUTES:
        assert getattr(inst, attribute).tolist() == getattr(sample, attribute).tolist(), attribute


def test_strings_are_stripped_and_numbers_may_be_strings() -> None:
    record = dict(
        GOOD,
        instrument_key=" NSE_EQ|INE467B01029 ",
        segment=" NSE_EQ",
        exchange=" NSE ",
        trading_symbol=" TCS ",
        exchange_token=" 11536 ",
        strike_price="0",
        tick_size="5.0",
        lot_size="1",
        last_price=" 3150.5 ",
    )
    inst = Instruments.from_upstox_rows([record])
    assert inst.row("NSE:TCS") == {
        "instrument_token": 11536,
        "exchange_token": 11536,
        "tradingsymbol": "TCS",
        "name": "TATA CONSULTANCY SERV LT",
        "last_price": 3150.5,
        "expiry": None,
        "strike": 0.0,
        "tick_size": 0.05,  # 5 paise in the file
        "lot_size": 1,
        "instrument_type": "EQ",
        "segment": "NSE_EQ",
        "exchange": "NSE",
        "symbol": "NSE:TCS",
        "instrument_key": "NSE_EQ|INE467B01029",
    }


def test_segment_is_optional_and_comes_from_the_key() -> None:
    records = [dict(GOOD), dict(SAMPLE[3])]
    del records[0]["segment"]
    records[1]["segment"] = None
    inst = Instruments.from_upstox_rows(records)
    assert inst.segment.tolist() == ["NSE_EQ", "NCD_FO"]
    assert inst.price_divisor.tolist() == [10_000, 10_000_000]


def test_lot_size_accepts_integral_floats() -> None:
    inst = Instruments.from_upstox_rows([dict(GOOD, lot_size=75.0)])
    assert inst.lot_size.tolist() == [75]


@pytest.mark.parametrize(
    ("value", "token", "exchange_token"),
    [
        ("45450", 45450, 45450),
        (45450, 45450, 45450),
        (np.int64(7), 7, 7),
        ("4294967295", 4294967295, 4294967295),
        ("0" * 30 + "9223372036854775807", 0, 2**63 - 1),
        ("4294967296", 0, 4294967296),  # does not fit the uint32 token column
        ("ABC", 0, 0),
        ("", 0, 0),
        ("-5", 0, 0),
        ("1.5", 0, 0),
        ("\u0663", 0, 0),  # a non-ASCII digit is not numeric here
        (None, 0, 0),
    ],
)
def test_exchange_token_and_token(value: object, token: int, exchange_token: int) -> None:
    inst = Instruments.from_upstox_rows([dict(GOOD, exchange_token=value)])
    assert inst.token.tolist() == [token]
    assert inst.exchange_token.tolist() == [exchange_token]
    assert inst.token_of("NSE:TCS") == exchange_token
    absent = dict(GOOD)
    del absent["exchange_token"]
    assert Instruments.from_upstox_rows([absent]).exchange_token.tolist() == [0]


def test_segment_ids_and_divisors() -> None:
    assert dict(UPSTOX_SEGMENT_IDS) == {
        "NSE_EQ": 1,
        "NSE_FO": 2,
        "NCD_FO": 3,
        "BSE_EQ": 4,
        "BSE_FO": 5,
        "BCD_FO": 6,
        "MCX_FO": 7,
        "NSE_INDEX": 9,
        "BSE_INDEX": 9,
        "MCX_INDEX": 9,
        "NSE_COM": 10,
    }
    assert upstox_segment_id("GLOBAL_INDEX") == 0
    assert upstox_segment_id("nse_eq") == 0  # segment names are case-sensitive
    for segment in [*UPSTOX_SEGMENT_IDS, "GLOBAL_INDEX", "GLOBAL_INDICATOR"]:
        expected = 10_000_000 if segment in ("NCD_FO", "BCD_FO") else 10_000
        assert upstox_price_divisor(segment) == expected
    with pytest.raises(TypeError):
        UPSTOX_SEGMENT_IDS["X"] = 1  # type: ignore[index]


# ---------------------------------------------------------------------------
# expiry


@pytest.mark.parametrize(
    ("millis", "expected"),
    [
        (1706207399000, dt.date(2024, 1, 25)),  # 23:59:59 IST (Upstox's sample object)
        (ist_ms(2024, 1, 26), dt.date(2024, 1, 26)),  # IST midnight = 18:30 UTC the day before
        (ist_ms(2024, 1, 26) - 1, dt.date(2024, 1, 25)),
        (ist_ms(2026, 11, 24, 15, 30), dt.date(2026, 11, 24)),
        (1706207399000.0, dt.date(2024, 1, 25)),
        (float(ist_ms(2024, 1, 26)) - 0.5, dt.date(2024, 1, 25)),  # floored
        (0, dt.date(1970, 1, 1)),
        (-19_800_000, dt.date(1970, 1, 1)),
        (-19_800_001, dt.date(1969, 12, 31)),
        (ist_ms(9999, 12, 31, 23, 59, 59), dt.date(9999, 12, 31)),
    ],
)
def test_expiry_is_the_ist_date(millis: float, expected: dt.date) -> None:
    inst = Instruments.from_upstox_rows([dict(GOOD, expiry=millis)])
    assert inst.expiry[0] == np.datetime64(expected)
    assert inst.row("NSE_EQ|INE467B01029")["expiry"] == expected


def test_expiry_mixed_types_match_the_typed_path() -> None:
    # all ints (bulk conversion) and ints with one float (field by field) agree
    millis = [ist_ms(2025, 12, day, *EOD) for day in range(1, 29)]
    records = [
        dict(GOOD, instrument_key=f"NSE_EQ|X{day}", trading_symbol=f"X{day}", expiry=value)
        for day, value in enumerate(millis, start=1)
    ]
    fast = Instruments.from_upstox_rows(records)
    records[-1] = dict(records[-1], expiry=float(millis[-1]))
    slow = Instruments.from_upstox_rows(records)
    expected = [dt.date(2025, 12, day) for day in range(1, 29)]
    assert fast.expiry.tolist() == slow.expiry.tolist() == expected


# ---------------------------------------------------------------------------
# look-ups


def test_lookup_by_key_and_symbol(sample: Instruments) -> None:
    for slot, (key, symbol) in enumerate(zip(SAMPLE_KEYS, SAMPLE_SYMBOLS, strict=True)):
        assert sample.slot(key) == slot
        assert sample.slot(symbol) == slot
        assert key in sample and symbol in sample
        assert sample.key_of(symbol) == key
        assert sample.key_of(key) == key
        assert sample.symbol_of(key) == symbol
    assert sample.slots(SAMPLE_KEYS[::-1]).tolist() == list(range(len(SAMPLE)))[::-1]
    assert sample.slots(np.array(SAMPLE_SYMBOLS, dtype=object)).dtype == np.int32
    assert sample.slots(["NSE:INFY", "NSE_FO|45450"]).tolist() == [0, 2]
    assert sample.token_of("NSE_FO|45450") == 45450
    assert sample.token_of("MCX_INDEX|MCXBULLDEX") == 0


def test_int_keys_are_rejected_for_upstox(sample: Instruments) -> None:
    with pytest.raises(KeyError, match="looked up by instrument_key") as info:
        sample.slot(45450)
    assert "symbol" in str(info.value)
    with pytest.raises(KeyError, match="instrument_key"):
        sample.slot(np.int64(1594))
    with pytest.raises(KeyError, match="instrument_key"):
        sample.token_of(1594)
    with pytest.raises(KeyError, match="instrument_key"):
        sample.slots(["NSE:INFY", 1594])
    assert 45450 not in sample
    assert 0 not in sample
    with pytest.raises(TypeError):
        sample.slot(True)
    with pytest.raises(TypeError):
        sample.slot(1.5)  # type: ignore[arg-type]
    assert True not in sample
    assert None not in sample


def test_unknown_keys(sample: Instruments) -> None:
    with pytest.raises(KeyError, match=re.escape("unknown instrument_key 'NSE_EQ|INE000000000'")):
        sample.slot("NSE_EQ|INE000000000")
    with pytest.raises(KeyError, match="unknown instrument symbol 'NSE:TCS'") as info:
        sample.slot("NSE:TCS")
    assert "e.g." not in str(info.value)
    with pytest.raises(KeyError, match=re.escape("instrument_key 'SEGMENT|IDENTIFIER'")):
        sample.slot("INFY")
    assert "NSE_EQ|INE000000000" not in sample
    assert "INFY" not in sample
    # keys are exact: no case folding, no trimming
    assert "nse_eq|INE009A01021" not in sample
    assert " NSE_EQ|INE009A01021" not in sample


def test_symbol_with_bar_falls_back_to_symbol_lookup() -> None:
    records = [dict(GOOD, trading_symbol="A|B")]
    inst = Instruments.from_upstox_rows(records)
    assert inst.slot("NSE:A|B") == 0
    assert "NSE:A|B" in inst
    assert inst.key_of("NSE:A|B") == "NSE_EQ|INE467B01029"


def test_row(sample: Instruments) -> None:
    row = sample.row("NSE_FO|45450")
    assert row == {
        "instrument_token": 45450,
        "exchange_token": 45450,
        "tradingsymbol": "NIFTY 26000 CE 30 DEC 25",
        "name": "NIFTY",
        "last_price": 212.35,
        "expiry": dt.date(2025, 12, 30),
        "strike": 26000.0,
        "tick_size": 0.05,  # 5 paise in the file
        "lot_size": 75,
        "instrument_type": "CE",
        "segment": "NSE_FO",
        "exchange": "NSE",
        "symbol": "NSE:NIFTY 26000 CE 30 DEC 25",
        "instrument_key": "NSE_FO|45450",
    }
    assert list(row)[-2:] == ["symbol", "instrument_key"]
    assert sample.row("NSE:NIFTY 26000 CE 30 DEC 25") == row
    assert type(row["instrument_token"]) is int and type(row["expiry"]) is dt.date
    index_row = sample.row("NSE_INDEX|Nifty 50")
    assert index_row["expiry"] is None
    assert index_row["symbol"] == "NSE:NIFTY 50"


# ---------------------------------------------------------------------------
# CSV


def check_csv(inst: Instruments) -> None:
    assert inst.broker == "upstox"
    assert inst.instrument_key.tolist() == [row.split(",")[0] for row in CSV_ROWS]
    assert inst.segment.tolist() == ["NSE_EQ", "NSE_INDEX", "NSE_FO", "NCD_FO", "BCD_FO", "MCX_FO", "BSE_EQ"]
    # the CSV's exchange column holds the segment; symbols use the exchange
    assert inst.exchange.tolist() == ["NSE", "NSE", "NSE", "NSE", "BSE", "MCX", "BSE"]
    assert inst.symbol.tolist() == [
        "NSE:INFY",
        "NSE:NIFTY",
        "NSE:NIFTY25DEC26000CE",
        "NSE:GBPINR25DEC118.25PE",
        "BSE:EURINR25DECFUT",
        "MCX:CRUDEOIL25DECFUT",
        "BSE:RELIANCE",
    ]
    assert inst.expiry.tolist() == [
        None,
        None,
        dt.date(2025, 12, 30),
        dt.date(2025, 12, 29),
        dt.date(2025, 12, 29),
        dt.date(2025, 12, 19),
        None,
    ]
    assert inst.exchange_token.tolist() == [1594, 26000, 45450, 14277, 2001, 434855, 500325]
    assert inst.token.tolist() == inst.exchange_token.tolist()
    assert inst.segment_id.tolist() == [1, 9, 2, 3, 6, 7, 4]
    assert inst.price_divisor.tolist() == [10_000, 10_000, 10_000, 10_000_000, 10_000_000, 10_000, 10_000]
    assert inst.tradable.tolist() == [True, False, True, True, True, True, True]
    assert inst.strike.tolist() == [0.0, 0.0, 26000.0, 118.25, 0.0, 0.0, 0.0]
    assert inst.tick_size.tolist() == [0.05, 0.0, 0.05, 0.0025, 0.0025, 1.0, 0.05]
    assert inst.lot_size.tolist() == [1, 0, 75, 1, 1, 100, 1]
    assert inst.last_price.tolist() == [1560.5, 26050.1, 212.35, 0.1, 102.2, 5667.0, 1540.0]
    assert inst.name.tolist()[-1] == "RELIANCE INDUSTRIES LTD."
    assert inst.instrument_type.tolist()[:3] == ["EQUITY", "INDEX", "OPTIDX"]
    assert inst.slot("NSE_EQ|INE009A01021") == 0
    assert inst.key_of("BSE:RELIANCE") == "BSE_EQ|INE002A01018"


def test_load_csv(tmp_path: Path) -> None:
    check_csv(Instruments.from_upstox(write_bytes(tmp_path, CSV_TEXT.encode("utf-8"), "complete.csv")))


def test_load_csv_gzip_crlf_bom_reordered(tmp_path: Path) -> None:
    order = list(reversed(UPSTOX_CSV_COLUMNS))
    lines = [",".join(order)]
    for row in CSV_ROWS:
        fields = next(csv.reader([row]))
        by_name = dict(zip(UPSTOX_CSV_COLUMNS, fields, strict=True))
        lines.append(",".join(f'"{by_name[name]}"' for name in order))
    text = "\ufeff" + "\r\n".join(lines) + "\r\n\r\n"
    path = write_bytes(tmp_path, gzip.compress(text.encode("utf-8")), "complete.json")
    check_csv(Instruments.from_upstox(path))


def test_csv_exchange_already_an_exchange(tmp_path: Path) -> None:
    text = CSV_HEADER + "\nNSE_EQ|INE009A01021,1594,INFY,INFOSYS,0,,,0.05,1,EQ,,NSE\n"
    inst = Instruments.from_upstox(write_bytes(tmp_path, text.encode("utf-8"), "i.csv"))
    assert inst.symbol.tolist() == ["NSE:INFY"]


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        ("strike", "abc", "cannot parse 'abc' as a number"),
        ("instrument_key", "NSE_EQ", "exactly one '|'"),
        ("expiry", "30-12-2025", "cannot parse '30-12-2025' as a date"),
        ("lot_size", "7.5", "cannot parse '7.5' as an integer"),
        ("tick_size", "-0.05", "negative"),
        ("tradingsymbol", " ", "must not be empty"),
        ("exchange", "", "must not be empty"),
    ],
)
def test_csv_bad_values(tmp_path: Path, column: str, value: str, fragment: str) -> None:
    fields = CSV_ROWS[2].split(",")
    fields[UPSTOX_CSV_COLUMNS.index(column)] = value
    text = "\n".join([CSV_HEADER, CSV_ROWS[0], CSV_ROWS[1], ",".join(fields), CSV_ROWS[3]]) + "\n"
    path = write_bytes(tmp_path, text.encode("utf-8"), "i.csv")
    err = load_error(path)
    assert fragment in str(err)
    assert_line(err, path, 4, column)


def test_csv_structure_errors(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, ("\n".join(CSV_ROWS) + "\n").encode("utf-8"), "i.csv")
    err = load_error(path)
    assert "JSON array" in str(err) and "header row is missing" in str(err)
    assert_line(err, path, 1, None)

    path = write_bytes(tmp_path, (CSV_HEADER + "\n\n").encode("utf-8"), "i.csv")
    assert "no instruments" in str(load_error(path))

    kite_header = CSV_HEADER.replace("option_type", "segment")
    path = write_bytes(tmp_path, (kite_header + "\n" + CSV_ROWS[0] + "\n").encode("utf-8"), "i.csv")
    err = load_error(path)
    assert "unknown column(s) in header: 'segment'" in str(err)
    assert_line(err, path, 1, "segment")

    text = "\n".join([CSV_HEADER, CSV_ROWS[0], CSV_ROWS[2], CSV_ROWS[0].replace("INFY", "INFY2")]) + "\n"
    path = write_bytes(tmp_path, text.encode("utf-8"), "i.csv")
    err = load_error(path)
    assert "duplicate instrument_key 'NSE_EQ|INE009A01021' on lines 2 and 4" in str(err)
    assert_line(err, path, 4, "instrument_key")

    text = "\n".join([CSV_HEADER, CSV_ROWS[0], CSV_ROWS[0].replace("INE009A01021", "INE009A01039")]) + "\n"
    path = write_bytes(tmp_path, text.encode("utf-8"), "i.csv")
    err = load_error(path)
    assert "duplicate symbol 'NSE:INFY' on lines 2 and 3" in str(err)
    assert_line(err, path, 3, "tradingsymbol")


# ---------------------------------------------------------------------------
# errors: files


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write_bytes(tmp_path, content)
    err = load_error(path)
    assert "empty" in str(err)
    assert_line(err, path, None, None)
    assert str(err) == f"{path}: {err.reason}"


def test_empty_gzip(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, gzip.compress(b""), "complete.json.gz")
    assert "empty" in str(load_error(path))


@pytest.mark.parametrize("text", ["[]", " [ ]\n", "\ufeff[\n]"])
def test_empty_array(tmp_path: Path, text: str) -> None:
    path = write_bytes(tmp_path, text.encode("utf-8"))
    err = load_error(path)
    assert "no instruments" in str(err) and "empty" in str(err)
    assert_line(err, path, None, None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [('{"status": "success", "data": []}', "object"), ('\n  {"instrument_key": "NSE_EQ|X"}', "object")],
)
def test_not_a_json_array(tmp_path: Path, text: str, kind: str) -> None:
    path = write_bytes(tmp_path, text.encode("utf-8"))
    err = load_error(path)
    assert "not a JSON array" in str(err)
    assert f"JSON {kind}" in str(err)
    assert_line(err, path, None, None)


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        (
            '[\n{"instrument_key": "NSE_EQ|A", "exchange": "NSE"\n "trading_symbol": "A"}\n]',
            3,
            2,
            "delimiter",
        ),
        ('[\n  {"instrument_key": "NSE_EQ|A",}\n]', 2, 33, "property name"),
        ('[{"instrument_key": "NSE_EQ|A", "exchange": "NSE", "trading_symbol": "A"}', 1, 74, "delimiter"),
        ("[]\n\nnot json", 3, 1, "Extra data"),
        ('[\n\n  {"a": tru}]', 3, 9, "Expecting value"),
        ("\ufeff{bad", 1, 2, "property name"),
    ],
)
def test_invalid_json(tmp_path: Path, text: str, line: int, column: int, fragment: str) -> None:
    path = write_bytes(tmp_path, text.encode("utf-8"))
    err = load_error(path)
    assert str(err).startswith(f"{path}:{line}: invalid JSON: ")
    assert fragment in str(err)
    assert f"line {line} column {column}" in str(err)
    assert_line(err, path, line, None)


def test_invalid_json_too_deep(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b"[" * 200_000 + b"]" * 200_000)
    err = load_error(path)
    assert "invalid JSON" in str(err)


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
    data = gzip.compress(json.dumps(SAMPLE).encode("utf-8"))
    path = write_bytes(tmp_path, mangle(data), "complete.json.gz")
    err = load_error(path)
    assert "corrupt gzip data" in str(err)
    assert_line(err, path, None, None)


def test_invalid_utf8(tmp_path: Path) -> None:
    text = json.dumps(SAMPLE[:3], indent=1)
    data = text.encode("utf-8").replace(b"NIFTY 50", b"NIFTY \xff0")
    line = text[: text.index("NIFTY 50")].count("\n") + 1
    path = write_bytes(tmp_path, data)
    err = load_error(path)
    assert "UTF-8" in str(err)
    assert_line(err, path, line, None)
    path = write_bytes(tmp_path, gzip.compress(data), "complete.json.gz")
    assert_line(load_error(path), path, line, None)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Instruments.from_upstox(tmp_path / "nope.json")


def test_example_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [SAMPLE[0], SAMPLE[1], dict(GOOD, strike_price="abc"), SAMPLE[2]]
    write_json(tmp_path, records, "complete.json")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InstrumentError) as info:
        Instruments.from_upstox("complete.json")
    err = info.value
    assert str(err) == "complete.json: record 3: field 'strike_price': cannot parse 'abc' as a number"
    assert (err.path, err.line, err.column, err.unit) == ("complete.json", 3, "strike_price", "record")
    assert err.reason == "cannot parse 'abc' as a number"
    clone = pickle.loads(pickle.dumps(err))
    assert (str(clone), clone.unit, clone.line) == (str(err), "record", 3)


# ---------------------------------------------------------------------------
# errors: records


def bad_records(**changes: Any) -> list[dict[str, Any]]:
    """Four records; the third is GOOD with ``changes`` applied (``...`` deletes a field)."""
    bad = dict(GOOD)
    for field, value in changes.items():
        if value is ...:
            del bad[field]
        else:
            bad[field] = value
    return [SAMPLE[0], SAMPLE[1], bad, SAMPLE[2]]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("instrument_key", 42, "expected a string, got int 42"),
        ("instrument_key", "", "must not be empty"),
        ("instrument_key", "NSE_EQ", "exactly one '|', found 0"),
        ("instrument_key", "NSE_EQ|A|B", "exactly one '|', found 2"),
        ("instrument_key", "|INE467B01029", "empty SEGMENT"),
        ("instrument_key", "NSE_EQ|", "empty IDENTIFIER"),
        ("instrument_key", "NSE_EQ| ", "empty IDENTIFIER"),
        ("instrument_key", "NSE_EQ |INE467B01029", "whitespace around '|'"),
        ("segment", "NSE_FO", "segment 'NSE_FO' does not match the SEGMENT part 'NSE_EQ'"),
        ("segment", "", "segment '' does not match"),
        ("segment", 1, "expected a string, got int 1"),
        ("exchange", "", "must not be empty"),
        ("exchange", ["NSE"], "expected a string, got list"),
        ("trading_symbol", "   ", "must not be empty"),
        ("trading_symbol", 42, "expected a string, got int 42"),
        ("name", 5, "expected a string, got int 5"),
        ("instrument_type", {"a": 1}, "expected a string, got dict"),
        ("exchange_token", -3, "-3 is negative"),
        ("exchange_token", True, "got bool True"),
        ("exchange_token", 1.5, "expected an integer, got float 1.5"),
        ("exchange_token", "9" * 20, "too large"),
        ("exchange_token", "9" * 5000, "9" * 30 + "... is too large"),
        ("exchange_token", "0" * 30 + "9223372036854775808", "too large"),
        ("exchange_token", 2**63, "too large"),
        ("expiry", "2025-12-30", "expected epoch milliseconds (a number) or null, got str '2025-12-30'"),
        ("expiry", True, "expected epoch milliseconds"),
        ("expiry", float("nan"), "not a finite number"),
        ("expiry", 10**20, "out of range"),
        ("expiry", -(10**20), "out of range"),
        ("strike_price", "abc", "cannot parse 'abc' as a number"),
        ("strike_price", float("inf"), "not a finite number"),
        ("strike_price", False, "got bool False"),
        ("strike_price", [1], "expected a number, got list"),
        ("tick_size", -5.0, "negative"),
        ("lot_size", 7.5, "7.5 is not an integer"),
        ("lot_size", -1, "-1 is negative"),
        ("lot_size", "x", "cannot parse 'x' as an integer"),
        ("lot_size", 2**63, "too large"),
        ("last_price", {"a": 1}, "expected a number, got dict"),
        ("last_price", 10**400, "too large to convert"),
    ],
)
def test_bad_values(tmp_path: Path, field: str, value: object, fragment: str) -> None:
    records = bad_records(**{field: value})
    with pytest.raises(InstrumentError) as info:
        Instruments.from_upstox_rows(records)
    err = info.value
    assert fragment in str(err), str(err)
    assert_record(err, None, 3, field)
    path = write_json(tmp_path, records)  # the same through a JSON file
    err = load_error(path)
    assert fragment in str(err), str(err)
    assert_record(err, path, 3, field)


@pytest.mark.parametrize("field", ["instrument_key", "exchange", "trading_symbol"])
def test_missing_and_null_required_fields(tmp_path: Path, field: str) -> None:
    path = write_json(tmp_path, bad_records(**{field: ...}))
    err = load_error(path)
    assert f"required field {field!r} is missing" in str(err)
    assert_record(err, path, 3, field)
    path = write_json(tmp_path, bad_records(**{field: None}))
    err = load_error(path)
    assert f"required field {field!r} is null" in str(err)
    assert_record(err, path, 3, field)


@pytest.mark.parametrize(
    ("element", "fragment"),
    [(5, "got int 5"), ("NSE_EQ|X", "got str 'NSE_EQ|X'"), ([1, 2], "got list"), (None, "got NoneType")],
)
def test_element_not_an_object(tmp_path: Path, element: object, fragment: str) -> None:
    path = write_json(tmp_path, [SAMPLE[0], element, SAMPLE[1]])
    err = load_error(path)
    assert "expected an object" in str(err) and fragment in str(err)
    assert_record(err, path, 2, None)


def test_long_element_is_shortened_in_the_message(tmp_path: Path) -> None:
    path = write_json(tmp_path, [SAMPLE[0], list(range(10_000))])
    err = load_error(path)
    assert len(str(err)) < len(str(path)) + 150
    assert "..." in str(err)


def test_earliest_bad_record_and_first_field_are_reported() -> None:
    records = [
        SAMPLE[0],
        dict(GOOD, lot_size=-1, instrument_key="NSE_EQ", strike_price="x"),
        dict(SAMPLE[1], exchange_token=-1),
    ]
    with pytest.raises(InstrumentError) as info:
        Instruments.from_upstox_rows(records)
    assert_record(info.value, None, 2, "instrument_key")
    records[1] = dict(GOOD, lot_size=-1, strike_price="x")
    with pytest.raises(InstrumentError) as info:
        Instruments.from_upstox_rows(records)
    assert_record(info.value, None, 2, "strike_price")


def test_duplicate_instrument_key(tmp_path: Path) -> None:
    dup = dict(SAMPLE[0], trading_symbol="INFY-OTHER")
    path = write_json(tmp_path, [*SAMPLE[:3], GOOD, dup])
    err = load_error(path)
    assert "duplicate instrument_key 'NSE_EQ|INE009A01021' on records 1 and 5" in str(err)
    assert_record(err, path, 5, "instrument_key")


def test_duplicate_symbol(tmp_path: Path) -> None:
    dup = dict(GOOD, trading_symbol="INFY")
    path = write_json(tmp_path, [SAMPLE[1], SAMPLE[0], SAMPLE[2], dup])
    err = load_error(path)
    assert "duplicate symbol 'NSE:INFY' on records 2 and 4" in str(err)
    assert_record(err, path, 4, "trading_symbol")
    # the same trading symbol on another exchange is a different symbol
    inst = Instruments.from_upstox_rows([SAMPLE[0], dict(GOOD, trading_symbol="INFY", exchange="BSE")])
    assert inst.slots(["NSE:INFY", "BSE:INFY"]).tolist() == [0, 1]


def test_from_upstox_rows_structure_errors() -> None:
    with pytest.raises(InstrumentError, match="no instruments") as info:
        Instruments.from_upstox_rows([])
    assert info.value.line is None
    with pytest.raises(InstrumentError, match="single mapping"):
        Instruments.from_upstox_rows(SAMPLE[0])  # type: ignore[arg-type]
    with pytest.raises(InstrumentError, match="expected an object") as info:
        Instruments.from_upstox_rows([SAMPLE[0], ["not", "a", "mapping"]])  # type: ignore[list-item]
    assert_record(info.value, None, 2, None)


# ---------------------------------------------------------------------------
# keyword constructor


def upstox_columns(inst: Instruments) -> dict[str, Any]:
    columns: dict[str, Any] = {
        name: list(getattr(inst, name))
        for name in (
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
            "instrument_key",
        )
    }
    columns["instrument_token"] = inst.token
    return columns


def test_constructor_upstox(sample: Instruments) -> None:
    columns = upstox_columns(sample)
    rebuilt = Instruments(**columns, broker="upstox")
    for attribute in ARRAY_ATTRIBUTES:
        assert getattr(rebuilt, attribute).tolist() == getattr(sample, attribute).tolist(), attribute

    without_key = {name: value for name, value in columns.items() if name != "instrument_key"}
    with pytest.raises(InstrumentError, match="needs the instrument_key") as info:
        Instruments(**without_key, broker="upstox")
    assert info.value.column == "instrument_key"

    bad = dict(columns, instrument_key=["NSE_EQ", *SAMPLE_KEYS[1:]])
    with pytest.raises(InstrumentError, match=re.escape("'SEGMENT|IDENTIFIER'")) as info:
        Instruments(**bad, broker="upstox")
    assert (info.value.line, info.value.column) == (2, "instrument_key")

    mismatch = dict(columns, segment=["NSE_FO", *SAMPLE_SEGMENTS[1:]])
    with pytest.raises(InstrumentError, match="does not match") as info:
        Instruments(**mismatch, broker="upstox")
    assert (info.value.line, info.value.column) == (2, "segment")

    negative = dict(columns, instrument_token=[-1, *SAMPLE_EXCHANGE_TOKENS[1:]])
    with pytest.raises(InstrumentError, match="out of range") as info:
        Instruments(**negative, broker="upstox")
    assert info.value.column == "instrument_token"

    short = dict(columns, instrument_key=SAMPLE_KEYS[:-1])
    with pytest.raises(InstrumentError, match="lengths differ") as info:
        Instruments(**short, broker="upstox")
    assert info.value.column == "instrument_key"

    dup = dict(
        columns,
        instrument_key=[SAMPLE_KEYS[1], *SAMPLE_KEYS[1:]],
        segment=["NSE_INDEX", *SAMPLE_SEGMENTS[1:]],
    )
    with pytest.raises(
        InstrumentError, match=re.escape("duplicate instrument_key 'NSE_INDEX|Nifty 50' on lines 2 and 3")
    ):
        Instruments(**dup, broker="upstox")


# ---------------------------------------------------------------------------
# property: random records written as JSON load back as expected


_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs", "Zs", "Cc"], exclude_characters="|"),
    min_size=1,
    max_size=10,
)
_segments = st.sampled_from([*UPSTOX_SEGMENT_IDS, "GLOBAL_INDEX", "GLOBAL_INDICATOR", "NSE_X"])
_number = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


@st.composite
def _records(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Upstox records in mixed representations, and the row() each should give."""
    count = draw(st.integers(1, 12))
    identifiers = draw(st.lists(_text, min_size=count, max_size=count, unique=True))
    symbols = draw(st.lists(_text, min_size=count, max_size=count, unique=True))
    records: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for identifier, symbol in zip(identifiers, symbols, strict=True):
        segment = draw(_segments)
        key = f"{segment}|{identifier}"
        record: dict[str, Any] = {"instrument_key": key, "exchange": "NSE", "trading_symbol": symbol}
        if draw(st.booleans()):
            record["segment"] = segment
        token = draw(st.one_of(st.none(), st.integers(0, 2**40)))
        token_form = draw(st.sampled_from(["int", "str", "junk", "absent"]))
        exchange_token = 0
        if token_form == "absent" or token is None:
            if token_form != "absent":
                record["exchange_token"] = None
        elif token_form == "int":
            record["exchange_token"] = token
            exchange_token = token
        elif token_form == "str":
            record["exchange_token"] = str(token)
            exchange_token = token
        else:
            record["exchange_token"] = f"T{token}"
        millis = draw(st.one_of(st.none(), st.integers(-(10**12), 4 * 10**12)))
        expiry = None
        if millis is not None:
            as_float = draw(st.booleans())
            record["expiry"] = float(millis) if as_float else millis
            instant = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=millis)
            expiry = instant.astimezone(IST).date()
        elif draw(st.booleans()):
            record["expiry"] = None
        values: dict[str, Any] = {}
        for field, strategy in (
            ("strike_price", _number),
            ("tick_size", st.floats(min_value=0, max_value=1e6)),
            ("last_price", _number),
            ("lot_size", st.integers(0, 10**9)),
        ):
            value = draw(st.one_of(st.none(), strategy))
            if value is not None:
                if field == "lot_size" and draw(st.booleans()):
                    record[field] = float(value)
                else:
                    record[field] = value
            values[field] = (0 if field == "lot_size" else 0.0) if value is None else value
        name = draw(st.one_of(st.none(), _text))
        if name is not None:
            record["name"] = name
        record["extra"] = draw(st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)))
        expected.append(
            {
                "instrument_token": exchange_token if exchange_token <= 0xFFFFFFFF else 0,
                "exchange_token": exchange_token,
                "tradingsymbol": symbol,
                "name": name or "",
                "last_price": float(values["last_price"]),
                "expiry": expiry,
                "strike": float(values["strike_price"]),
                "tick_size": float(values["tick_size"]) / 100.0,  # paise -> rupees
                "lot_size": int(values["lot_size"]),
                "instrument_type": "",
                "segment": segment,
                "exchange": "NSE",
                "symbol": f"NSE:{symbol}",
                "instrument_key": key,
            }
        )
        records.append(record)
    return records, expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_records(), gzipped=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_property_json_round_trip(
    tmp_path: Path, data: tuple[list[dict[str, Any]], list[dict[str, Any]]], gzipped: bool, indent: int | None
) -> None:
    records, expected = data
    raw = json.dumps(records, indent=indent).encode("utf-8")
    path = write_bytes(tmp_path, gzip.compress(raw) if gzipped else raw, "prop.json")
    inst = Instruments.from_upstox(path)
    assert len(inst) == len(records)
    for slot, row in enumerate(expected):
        assert inst.row(row["instrument_key"]) == row
        assert inst.slot(row["symbol"]) == slot
        assert inst.segment_id[slot] == UPSTOX_SEGMENT_IDS.get(row["segment"], 0)
        assert inst.tradable[slot] == (not row["segment"].endswith("_INDEX"))
        assert inst.price_divisor[slot] == upstox_price_divisor(row["segment"])
    again = Instruments.from_upstox_rows(records)
    assert again.symbol.tolist() == inst.symbol.tolist()
    assert again.expiry.tolist() == inst.expiry.tolist()


# ---------------------------------------------------------------------------
# a large file


def test_large_file(tmp_path: Path) -> None:
    count = 60_000
    records = []
    for index in range(count):
        if index % 3 == 0:
            records.append(
                dict(
                    GOOD,
                    instrument_key=f"NSE_EQ|INE{index:08d}X",
                    trading_symbol=f"S{index}",
                    exchange_token=str(index),
                )
            )
        else:
            records.append(
                dict(
                    SAMPLE[2],
                    instrument_key=f"NSE_FO|{index}",
                    exchange_token=str(index),
                    trading_symbol=f"NIFTY {index} CE 30 DEC 25",
                    strike_price=float(index),
                )
            )
    path = write_bytes(tmp_path, gzip.compress(json.dumps(records).encode("utf-8"), 1), "complete.json.gz")
    inst = Instruments.from_upstox(path)
    assert len(inst) == count
    assert inst.slots([r["instrument_key"] for r in records]).tolist() == list(range(count))
    assert inst.exchange_token.tolist() == list(range(count))
    assert Counter(inst.segment_id.tolist()) == {1: count // 3, 2: count - count // 3}
    assert inst.row("NSE_FO|59999")["expiry"] == dt.date(2025, 12, 30)


# ---------------------------------------------------------------------------
# the synthetic Upstox universe

TODAY = dt.date(2026, 11, 21)  # a Saturday; next Tuesdays: 24 Nov (monthly), 1 Dec (weekly)


@pytest.fixture(scope="module")
def universe() -> list[dict[str, object]]:
    return upstox_universe(TODAY)


def _isin_ok(isin: str) -> bool:
    return bool(re.fullmatch(r"IN[A-Z0-9]{9}[0-9]", isin)) and isin_check_digit(isin[:11]) == isin[11]


def test_isin_check_digit() -> None:
    assert isin_check_digit("INE009A0102") == "1"
    assert isin_check_digit("INE002A0101") == "8"
    assert isin_check_digit("US037833100") == "5"  # Apple
    with pytest.raises(ValueError):
        isin_check_digit("INE009A010")
    with pytest.raises(ValueError):
        isin_check_digit("ine009a0102")


def test_universe_round_trip(universe: list[dict[str, object]], tmp_path: Path) -> None:
    for name in ("complete.json", "complete.json.gz"):
        path = tmp_path / name
        write_upstox_json(universe, path)
        inst = Instruments.from_upstox(path)
        assert inst.broker == "upstox"
        assert len(inst) == len(universe)
        keys = inst.instrument_key.tolist()
        assert len(set(keys)) == len(keys)
        assert keys == [r["instrument_key"] for r in universe]
        assert inst.symbol_of("NSE_EQ|INE009A01021") == "NSE:INFY"
        assert inst.key_of("NSE:RELIANCE") == "NSE_EQ|INE002A01018"
        assert inst.symbol_of("NSE_INDEX|Nifty 50") == "NSE:NIFTY 50"
        assert inst.symbol_of("NSE_INDEX|Nifty Bank") == "NSE:NIFTY BANK"
        assert inst.symbol_of("BSE_INDEX|SENSEX") == "BSE:SENSEX"
        assert sorted(inst.symbol[~inst.tradable].tolist()) == [
            "BSE:SENSEX",
            "NSE:NIFTY 50",
            "NSE:NIFTY BANK",
        ]
        assert set(inst.exchange.tolist()) == {"NSE", "BSE", "MCX"}
        for slot, segment in enumerate(inst.segment.tolist()):
            assert inst.segment_id[slot] == UPSTOX_SEGMENT_IDS[segment]
            assert inst.price_divisor[slot] == (10_000_000 if segment in ("NCD_FO", "BCD_FO") else 10_000)
        assert "NSE:NIFTY FUT 24 NOV 26" in inst
        assert "NSE:NIFTY 26000 CE 01 DEC 26" in inst
        assert "NSE:BANKNIFTY 59100 PE 29 DEC 26" in inst


def test_universe_matches_kite_universe(universe: list[dict[str, object]], tmp_path: Path) -> None:
    kite = [row for row in kite_universe(TODAY) if row["exchange"] != "NCO"]
    assert len(kite) == len(universe) == len(kite_universe(TODAY)) - 2
    segment_of = {"NSE": "NSE_EQ", "NFO": "NSE_FO", "CDS": "NCD_FO", "BCD": "BCD_FO", "MCX": "MCX_FO"}
    path = tmp_path / "complete.json"
    write_upstox_json(universe, path)
    inst = Instruments.from_upstox(path)
    for slot, (row, record) in enumerate(zip(kite, universe, strict=True)):
        assert record["exchange_token"] == str(row["exchange_token"])
        assert record["last_price"] == row["last_price"]
        assert record.get("lot_size") == (None if row["segment"] == "INDICES" else row["lot_size"])
        if row["segment"] == "INDICES":
            assert record["trading_symbol"] == row["tradingsymbol"]
            assert str(record["segment"]).endswith("_INDEX")
            continue
        assert record["segment"] == segment_of[str(row["exchange"])]
        assert record["tick_size"] == pytest.approx(100 * float(row["tick_size"]))  # type: ignore[arg-type]
        assert inst.expiry.tolist()[slot] == row["expiry"]
        if row["expiry"] is not None:
            millis = record["expiry"]
            assert isinstance(millis, int)
            assert (millis - 10 * 3_600_000) % 86_400_000 == 0  # 15:30 IST = 10:00 UTC
            assert dt.datetime.fromtimestamp(millis / 1000, IST).time() == dt.time(15, 30)
            assert record["instrument_key"] == f"{record['segment']}|{row['exchange_token']}"
            assert record["strike_price"] == row["strike"]
    counts = Counter(str(record["segment"]) for record in universe)
    assert counts["NSE_EQ"] == 50 and counts["NSE_INDEX"] == 2 and counts["BSE_INDEX"] == 1
    assert counts["BCD_FO"] == 2 and counts["MCX_FO"] == 3 and counts["NCD_FO"] > 4


def test_universe_equities_have_isins(universe: list[dict[str, object]]) -> None:
    equities = [r for r in universe if r["segment"] == "NSE_EQ"]
    isins = [str(r["isin"]) for r in equities]
    assert len(set(isins)) == 50
    assert all(_isin_ok(isin) for isin in isins), isins
    assert all(r["instrument_key"] == f"NSE_EQ|{r['isin']}" for r in equities)
    by_symbol = {r["trading_symbol"]: r["isin"] for r in equities}
    assert by_symbol["INFY"] == "INE009A01021"
    assert by_symbol["RELIANCE"] == "INE002A01018"


def test_universe_weekly_flags(universe: list[dict[str, object]]) -> None:
    options = [r for r in universe if r["instrument_type"] in ("CE", "PE")]
    weekly = {str(r["trading_symbol"]).split()[-3] for r in options if r["weekly"]}
    assert weekly == {"01"}  # the NIFTY series expiring Tuesday 1 Dec 2026
    assert all(str(r["name"]) == "NIFTY" for r in options if r["weekly"])


def test_universe_is_deterministic_and_bytes_reproducible(
    universe: list[dict[str, object]], tmp_path: Path
) -> None:
    assert upstox_universe(TODAY) == universe
    for name in ("a.json", "b.json", "a.json.gz", "b.json.gz"):
        write_upstox_json(upstox_universe(TODAY), tmp_path / name)
    plain = (tmp_path / "a.json").read_bytes()
    packed = (tmp_path / "a.json.gz").read_bytes()
    assert plain == (tmp_path / "b.json").read_bytes()
    assert packed == (tmp_path / "b.json.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b" and packed[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(packed) == plain
    lines = plain.decode("utf-8").split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    assert len(lines) == len(universe) + 3  # one record per line
    assert json.loads(plain) == universe


def test_write_upstox_json_edge_cases(tmp_path: Path) -> None:
    write_upstox_json([], tmp_path / "empty.json")
    assert (tmp_path / "empty.json").read_bytes() == b"[]\n"
    assert "no instruments" in str(load_error(tmp_path / "empty.json"))
    with pytest.raises(ValueError):
        write_upstox_json([dict(GOOD, last_price=float("nan"))], tmp_path / "nan.json")
    with pytest.raises(TypeError):
        write_upstox_json([dict(GOOD, expiry=dt.date(2025, 1, 1))], tmp_path / "date.json")
    write_upstox_json(iter([dict(GOOD, name="\u20b9 CO")]), tmp_path / "u.json")
    assert "\u20b9".encode() in (tmp_path / "u.json").read_bytes()
    assert Instruments.from_upstox(tmp_path / "u.json").name.tolist() == ["\u20b9 CO"]
