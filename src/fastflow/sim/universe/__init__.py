"""The synthetic instrument universe: one deterministic set of instruments, in
each broker's instrument-master format, in two sizes (:data:`SIZES`): ``small``
(about 400 rows, the tests' universe) and ``full`` (about 8,300 rows: NIFTY 50
stocks, five indices, index and stock futures and option chains; within Kite's
9,000 tokens per api_key, see :mod:`~fastflow.sim.universe.kite`).

* :mod:`~fastflow.sim.universe.kite`: :func:`kite_universe`, rows of Kite's instruments dump;
* :mod:`~fastflow.sim.universe.upstox`: :func:`upstox_universe`, the same instruments as
  Upstox records (minus NCO), and :func:`aligned_pairs`, both lists aligned;
* :mod:`~fastflow.sim.universe.files`: :func:`write_kite_csv`, :func:`write_upstox_json`;
* :mod:`~fastflow.sim.universe.constituents`: :data:`NIFTY50` and :data:`INDEX_CONSTITUENTS`,
  from which the market derives index levels, and :data:`UNDERLYING_INDEX`
  (``NIFTY`` -> ``NIFTY 50``: the index row an index derivative follows);
* :mod:`~fastflow.sim.universe.calendar` (expiries, Kite symbols) and
  :mod:`~fastflow.sim.universe.pricing` (day-one prices) are their helpers.

Everything depends only on ``today`` and the size, so equal arguments give equal
instruments. :func:`load` is the instrument master a command names: a file, or a
synthetic one (:data:`SOURCES`: ``synthetic`` is the small universe,
``synthetic-full`` the full one).

Subscription limits at the full size: one Kite api_key takes all of it (3 x 3000
tokens); one Upstox connection takes at most 2,000 keys in ``full`` mode (5,000
in ``ltpc``), so a plant subscribing ``--all`` on Upstox takes the first ones:
the indices, stocks, futures and the nearest index chains come first.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

from fastflow.brokers import get as broker_spec
from fastflow.brokers.kite import SPEC as KITE
from fastflow.brokers.upstox import SPEC as UPSTOX
from fastflow.instruments import Instruments
from fastflow.sim.universe.constituents import INDEX_CONSTITUENTS, NIFTY50, UNDERLYING_INDEX
from fastflow.sim.universe.files import COLUMNS, write_kite_csv, write_upstox_json
from fastflow.sim.universe.kite import SIZES, kite_universe
from fastflow.sim.universe.upstox import aligned_pairs, isin_check_digit, upstox_universe

#: Each broker's synthetic instrument rows (in its dump format): ``ROWS[broker](today, size)``.
ROWS: Mapping[str, Callable[..., list[dict[str, object]]]] = {KITE.name: kite_universe, UPSTOX.name: upstox_universe}

#: The names of the synthetic instrument masters :func:`load` takes -> their size.
SOURCES: Mapping[str, str] = {"": "small", "synthetic": "small", "synthetic-small": "small",
                              "synthetic-full": "full"}


def load(broker: str, source: str = "", today: datetime.date | None = None) -> Instruments:
    """The instrument master ``source`` names for ``broker``: a file in the broker's
    format, or a synthetic universe as ``fastflow sim`` serves it: ``""``,
    ``synthetic`` or ``synthetic-small`` (the small one, ``simulator.universe =
    "small"``), ``synthetic-full`` (the full one), of ``today`` (None: the
    simulator's default, :meth:`datetime.date.today`)."""
    spec = broker_spec(broker)
    size = SOURCES.get(source)
    if size is not None:
        return spec.instruments_from_rows(ROWS[spec.name](today, size))
    return spec.load_instruments(source)


__all__ = [
    "COLUMNS",
    "INDEX_CONSTITUENTS",
    "NIFTY50",
    "ROWS",
    "SIZES",
    "SOURCES",
    "UNDERLYING_INDEX",
    "aligned_pairs",
    "isin_check_digit",
    "kite_universe",
    "load",
    "upstox_universe",
    "write_kite_csv",
    "write_upstox_json",
]
