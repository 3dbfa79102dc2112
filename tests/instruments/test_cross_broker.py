"""Derivative symbols across brokers: a Kite-style ``NFO:NIFTY26DECFUT`` names the same
contract on an Upstox instrument master (:func:`fastflow.instruments.symbols.kite_aliases`,
:meth:`Instruments.aliases`), the broker's own keys keep working, and an unknown symbol
is a clear error; also through the plant's subscriptions, the Redis ids hash and the
gateway's symbol look-up."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import hiredis
import msgpack
import pytest

from fastflow.brokers import get as broker_spec
from fastflow.gateway.core import FanoutCore
from fastflow.hotpath import MarketState
from fastflow.instruments import Instruments
from fastflow.instruments.symbols import future_symbol, kite_aliases, option_symbol
from fastflow.sim.universe import aligned_pairs, kite_universe, upstox_universe, write_upstox_json
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

TODAY = dt.date(2026, 12, 2)  # NIFTY DEC monthly: Tue 29 Dec 2026
#: Dates where the small universe lists weekly contracts in a month whose monthly
#: expiry it does not list (so only Upstox's weekly flag tells the names apart).
DATES = [TODAY, dt.date(2026, 11, 21), dt.date(2026, 12, 28), dt.date(2026, 3, 1), dt.date(2027, 3, 31)]
IST_CLOSE_MS = 10 * 3_600_000  # 15:30 IST


def _ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * 86_400_000 + IST_CLOSE_MS


@pytest.fixture(scope="module")
def upstox(tmp_path_factory: pytest.TempPathFactory) -> Instruments:
    """Today's full Upstox universe, loaded from its JSON file as a plant would."""
    path = tmp_path_factory.mktemp("upstox") / "complete.json.gz"
    write_upstox_json(upstox_universe(TODAY, "full"), path)
    return Instruments.from_upstox(path)


def test_the_issue_example_resolves_on_both_brokers(upstox: Instruments) -> None:
    kite = Instruments.from_kite_rows(kite_universe(TODAY, "full"))
    token = kite.token_of("NFO:NIFTY26DECFUT")
    slot = upstox.slot("NFO:NIFTY26DECFUT")
    assert upstox.symbol[slot] == "NSE:NIFTY FUT 29 DEC 26"
    assert upstox.instrument_key[slot] == f"NSE_FO|{token >> 8}"  # the same exchange token
    assert "NFO:NIFTY26DECFUT" in upstox
    # the broker's own names keep working, for the same slot
    assert upstox.slot("NSE:NIFTY FUT 29 DEC 26") == slot
    assert upstox.slot(str(upstox.instrument_key[slot])) == slot
    assert upstox.key_of("NFO:NIFTY26DECFUT") == upstox.instrument_key[slot]
    assert upstox.symbol_of("NFO:NIFTY26DECFUT") == "NSE:NIFTY FUT 29 DEC 26"  # the broker's symbol
    assert kite.symbol_of(token) == "NFO:NIFTY26DECFUT"
    # weekly and monthly options, stock derivatives
    for kite_symbol, upstox_symbol in (
        ("NFO:NIFTY26D0826050CE", "NSE:NIFTY 26050 CE 08 DEC 26"),
        ("NFO:NIFTY26DEC26050PE", "NSE:NIFTY 26050 PE 29 DEC 26"),
        ("NFO:BANKNIFTY27JAN59100CE", "NSE:BANKNIFTY 59100 CE 26 JAN 27"),
        ("NFO:FINNIFTY26DECFUT", "NSE:FINNIFTY FUT 29 DEC 26"),
        ("NFO:M&M26DEC3700CE", "NSE:M&M 3700 CE 29 DEC 26"),
        ("NFO:TATASTEEL26DEC172.5PE", "NSE:TATASTEEL 172.5 PE 29 DEC 26"),
        ("NFO:BAJAJ-AUTO27FEBFUT", "NSE:BAJAJ-AUTO FUT 23 FEB 27"),
        ("CDS:USDINR26DECFUT", "NSE:USDINR FUT 29 DEC 26"),
        ("BCD:EURINR26DECFUT", "BSE:EURINR FUT 29 DEC 26"),
    ):
        assert upstox.symbol_of(kite_symbol) == upstox_symbol, kite_symbol
        assert kite.key_of(kite_symbol) == str(kite.token_of(kite_symbol))


@pytest.mark.parametrize("size", ["small", "full"])
@pytest.mark.parametrize("day", DATES, ids=str)
def test_every_kite_symbol_names_the_same_upstox_contract(size: str, day: dt.date) -> None:
    rows, records = aligned_pairs(day, size)
    with_flags = Instruments.from_upstox_rows(records)
    for slot, row in enumerate(rows):
        symbol = f"{row['exchange']}:{row['tradingsymbol']}"
        assert with_flags.slot(symbol) == slot, symbol  # derivatives by alias, the rest by symbol
    derivatives = sum(1 for row in rows if row["expiry"] is not None)
    assert len(with_flags.aliases()) == derivatives
    if size == "full":
        # Without Upstox's weekly flag the rule (the month's last expiry of the underlying
        # is the monthly) decides, and suffices for a master listing every monthly expiry.
        bare = Instruments.from_upstox_rows([{k: v for k, v in r.items() if k != "weekly"} for r in records])
        assert bare.aliases() == with_flags.aliases()


def test_the_rule_without_the_weekly_flag() -> None:
    # NIFTY: weeklies on 8 and 15 Dec, the monthly future on 29 Dec; a January weekly
    # whose month has no later NIFTY expiry in the master counts as the monthly.
    def record(key: int, symbol: str, kind: str, day: dt.date, strike: float = 0.0) -> dict[str, object]:
        return {"instrument_key": f"NSE_FO|{key}", "segment": "NSE_FO", "exchange": "NSE", "name": "NIFTY",
                "trading_symbol": symbol, "instrument_type": kind, "expiry": _ms(day), "strike_price": strike}

    inst = Instruments.from_upstox_rows([
        record(1, "NIFTY FUT 29 DEC 26", "FUT", dt.date(2026, 12, 29)),
        record(2, "NIFTY 26000 CE 08 DEC 26", "CE", dt.date(2026, 12, 8), 26000.0),
        record(3, "NIFTY 26000 CE 29 DEC 26", "CE", dt.date(2026, 12, 29), 26000.0),
        record(4, "NIFTY 26000 PE 05 JAN 27", "PE", dt.date(2027, 1, 5), 26000.0),
    ])
    assert inst.aliases() == {"NFO:NIFTY26DECFUT": 0, "NFO:NIFTY26D0826000CE": 1, "NFO:NIFTY26DEC26000CE": 2,
                              "NFO:NIFTY27JAN26000PE": 3}


def test_real_upstox_records() -> None:
    """Shaped like Upstox's NSE.json: a company ``name``, the weekly flag, extra fields,
    a fractional strike; the alias takes the underlying from the trading symbol."""
    common = {"segment": "NSE_FO", "exchange": "NSE", "lot_size": 5500, "tick_size": 1.0, "freeze_quantity": 1.0,
              "underlying_type": "EQUITY", "underlying_key": "NSE_EQ|INE081A01020", "qty_multiplier": 1.0}
    records = [
        {**common, "name": "TATA STEEL LIMITED", "weekly": False, "instrument_key": "NSE_FO|71001",
         "exchange_token": "71001", "trading_symbol": "TATASTEEL 172.5 CE 29 DEC 26", "instrument_type": "CE",
         "expiry": _ms(dt.date(2026, 12, 29)) + 29_999, "strike_price": 172.5, "underlying_symbol": "TATASTEEL"},
        {**common, "name": "NIFTY", "weekly": True, "instrument_key": "NSE_FO|71002", "exchange_token": "71002",
         "trading_symbol": "NIFTY 26000 PE 29 DEC 26", "instrument_type": "PE", "expiry": _ms(dt.date(2026, 12, 29)),
         "strike_price": 26000.0},  # the flag wins over the rule (here: a weekly on the month's last day)
        {**common, "name": "NIFTY", "weekly": "yes", "instrument_key": "NSE_FO|71003", "exchange_token": "71003",
         "trading_symbol": "NIFTY 26000 CE 08 DEC 26", "instrument_type": "CE", "expiry": _ms(dt.date(2026, 12, 8)),
         "strike_price": 26000.0},  # not a boolean: the rule (a later expiry exists in December)
    ]
    inst = Instruments.from_upstox_rows(records)
    assert inst.slot("NFO:TATASTEEL26DEC172.5CE") == 0
    assert inst.slot("NFO:NIFTY26D2926000PE") == 1
    assert inst.slot("NFO:NIFTY26D0826000CE") == 2
    assert "NFO:TATA STEEL LIMITED26DEC172.5CE" not in inst


def test_the_old_upstox_csv(tmp_path: Path) -> None:
    path = tmp_path / "complete.csv"
    path.write_text(
        "instrument_key,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
        "instrument_type,option_type,exchange\n"
        "NSE_FO|35001,35001,NIFTY FUT 29 DEC 26,NIFTY,26100.0,2026-12-29,0,0.1,65,FUTIDX,,NSE_FO\n"
        "NSE_FO|35002,35002,NIFTY 26000 CE 29 DEC 26,NIFTY,210.0,2026-12-29,26000,0.05,65,OPTIDX,CE,NSE_FO\n"
        "NSE_EQ|INE009A01021,1594,INFY,INFOSYS,1560.0,,0,0.1,1,EQUITY,,NSE_EQ\n"
    )
    inst = Instruments.from_upstox(path)
    assert inst.slot("NFO:NIFTY26DECFUT") == 0 and inst.slot("NFO:NIFTY26DEC26000CE") == 1
    assert inst.slot("NSE:INFY") == 2 and len(inst.aliases()) == 2


def test_unknown_symbols_are_clear_errors(upstox: Instruments) -> None:
    # The issue's placeholder: NIFTY's November contract has expired by 2 December.
    with pytest.raises(KeyError, match="unknown instrument symbol 'NFO:NIFTY26NOVFUT'"):
        upstox.slot("NFO:NIFTY26NOVFUT")
    assert "NFO:NIFTY26NOVFUT" not in upstox
    with pytest.raises(KeyError, match="unknown instrument symbol 'NFO:NIFTY26DEC26075CE'"):
        upstox.slot("NFO:NIFTY26DEC26075CE")  # not on the strike grid
    with pytest.raises(KeyError, match=re.escape("unknown instrument_key 'NSE_FO|1'")):
        upstox.slot("NSE_FO|1")
    with pytest.raises(KeyError, match="unknown instrument symbol 'nfo:nifty26decfut'"):
        upstox.slot("nfo:nifty26decfut")  # exact, as every look-up here
    spec = broker_spec("upstox")
    with pytest.raises(KeyError, match="NFO:NIFTY26NOVFUT"):
        spec.subscriptions(upstox, ["NFO:NIFTY26DECFUT", "NFO:NIFTY26NOVFUT"], "full")


def test_the_plant_subscribes_by_either_name(upstox: Instruments) -> None:
    spec = broker_spec("upstox")
    subscriptions, note = spec.subscriptions(upstox, ["NFO:NIFTY26DECFUT", "NSE:NIFTY FUT 29 DEC 26",
                                                      "NSE:INFY"], "full")
    key = upstox.key_of("NSE:NIFTY FUT 29 DEC 26")
    assert subscriptions == {key: "full", "NSE_EQ|INE009A01021": "full"} and note == ""
    kite = Instruments.from_kite_rows(kite_universe(TODAY, "full"))
    tokens, _ = broker_spec("kite").subscriptions(kite, ["NFO:NIFTY26DECFUT", str(kite.token_of("NSE:INFY"))], "full")
    assert tokens == {kite.token_of("NFO:NIFTY26DECFUT"): "full", 408065: "full"}


def test_kite_has_no_aliases_and_aliases_never_shadow() -> None:
    kite = Instruments.from_kite_rows(kite_universe(TODAY))
    assert kite.aliases() == {}
    with pytest.raises(KeyError, match="unknown instrument symbol 'NSE:NIFTY FUT 29 DEC 26'"):
        kite.slot("NSE:NIFTY FUT 29 DEC 26")
    day = dt.date(2026, 12, 29)
    columns = {
        "segment": ["NSE_FO", "NSE_FO", "NSE_FO", "MCX_FO"],
        "tradingsymbol": ["NIFTY FUT 29 DEC 26", "NIFTY FUT 29 DEC 26 ", "X FUT 29 DEC 26", "GOLD FUT 29 DEC 26"],
        "name": ["NIFTY", "NIFTY", "X", "GOLD"],
        "expiry": [day, day, day, day],
        "strike": [0.0, 0.0, 0.0, 0.0],
        "instrument_type": ["FUT", "FUT", "FUT", "FUT"],
    }
    # two contracts claiming one alias: neither gets it; an alias equal to a symbol: left out
    aliases = kite_aliases(**columns, taken={"NFO:X26DECFUT": 7})  # type: ignore[arg-type]
    assert aliases == {"MCX:GOLD26DECFUT": 3}


def test_the_naming_rule() -> None:
    day = dt.date(2026, 10, 6)
    assert future_symbol("NIFTY", day) == "NIFTY26OCTFUT"
    assert option_symbol("NIFTY", day, 25000.0, "CE", monthly=False) == "NIFTY26O0625000CE"
    assert option_symbol("NIFTY", day, 25000.0, "PE", monthly=True) == "NIFTY26OCT25000PE"
    assert option_symbol("WIPRO", day, 247.5, "CE", monthly=True) == "WIPRO26OCT247.5CE"


def test_the_store_and_the_gateway_resolve_aliases(upstox: Instruments) -> None:
    """The plant's writer publishes the aliases in the ids hash; a gateway resolves
    ``NFO:NIFTY26DECFUT`` (``fastflow tail``, the dashboard) to the Upstox symbol."""
    writer = RedisWriter(MarketState(upstox), RedisTarget.parse("redis://127.0.0.1:1"), Keys("upstox"))
    reader = hiredis.Reader()
    for command in writer._master():
        reader.feed(command)
    commands = []
    while (reply := reader.gets()) is not False:
        commands.append([part.decode(errors="replace") for part in reply])  # the rows are msgpack
    (ids_command,) = [c for c in commands if c[:2] == ["HSET", Keys("upstox").ids]]
    ids = dict(zip(ids_command[2::2], ids_command[3::2], strict=True))
    assert len(ids) == len(upstox) + len(upstox.aliases())
    assert ids["NFO:NIFTY26DECFUT"] == "NSE:NIFTY FUT 29 DEC 26"
    assert ids[upstox.key_of("NFO:NIFTY26DECFUT")] == "NSE:NIFTY FUT 29 DEC 26"
    core = FanoutCore()
    core.reset([str(s) for s in upstox.symbol], ids, msgpack.packb([]), {"broker": "upstox"})
    resolved, unknown = core.resolve(["NFO:NIFTY26DECFUT", "NSE:NIFTY FUT 29 DEC 26",
                                      upstox.key_of("NSE:INFY"), "NFO:NIFTY26NOVFUT"])
    assert resolved == ["NSE:NIFTY FUT 29 DEC 26", "NSE:INFY"]
    assert unknown == ["NFO:NIFTY26NOVFUT"]
