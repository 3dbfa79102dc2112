"""The synthetic instrument universe: one deterministic set of instruments, in
each broker's instrument-master format.

* :mod:`~fastflow.sim.universe.kite`: :func:`kite_universe`, rows of Kite's instruments dump;
* :mod:`~fastflow.sim.universe.upstox`: :func:`upstox_universe`, the same instruments as
  Upstox records (minus NCO);
* :mod:`~fastflow.sim.universe.files`: :func:`write_kite_csv`, :func:`write_upstox_json`;
* :mod:`~fastflow.sim.universe.constituents`: :data:`NIFTY50` and :data:`INDEX_CONSTITUENTS`,
  from which the market derives index levels;
* :mod:`~fastflow.sim.universe.calendar` (expiries, Kite symbols) and
  :mod:`~fastflow.sim.universe.pricing` (day-one prices) are their helpers.

Everything depends only on ``today``, so equal ``today`` gives equal instruments.
:func:`load` is the instrument master a command names: a file, or the synthetic one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastflow.brokers import get as broker_spec
from fastflow.brokers.kite import SPEC as KITE
from fastflow.brokers.upstox import SPEC as UPSTOX
from fastflow.instruments import Instruments
from fastflow.sim.universe.constituents import INDEX_CONSTITUENTS, NIFTY50
from fastflow.sim.universe.files import COLUMNS, write_kite_csv, write_upstox_json
from fastflow.sim.universe.kite import kite_universe
from fastflow.sim.universe.upstox import isin_check_digit, upstox_universe

#: Each broker's synthetic instrument rows (in its dump format).
ROWS: Mapping[str, Callable[[], list[dict[str, object]]]] = {KITE.name: kite_universe, UPSTOX.name: upstox_universe}


def load(broker: str, source: str = "") -> Instruments:
    """The instrument master ``source`` names for ``broker``: a file in the broker's
    format, or ``""``/``synthetic`` (the built-in universe, as ``fastflow sim`` serves it)."""
    spec = broker_spec(broker)
    if source in ("", "synthetic"):
        return spec.instruments_from_rows(ROWS[spec.name]())
    return spec.load_instruments(source)


__all__ = [
    "COLUMNS",
    "INDEX_CONSTITUENTS",
    "NIFTY50",
    "ROWS",
    "isin_check_digit",
    "kite_universe",
    "load",
    "upstox_universe",
    "write_kite_csv",
    "write_upstox_json",
]
