"""The broker-neutral instrument model: :class:`Instruments`.

One broker's instrument master held column-wise in read-only numpy arrays,
one entry per *slot* (the 0-based row index in file order), with dict
indexes for look-ups by token, instrument key or ``"EXCHANGE:SYMBOL"``
(:meth:`Instruments.slot`, :meth:`~Instruments.slots`, :meth:`~Instruments.row`,
...).  The keyword constructor validates the columns; the file formats are
read by the brokers' loaders (:mod:`fastflow.brokers.kite.master`,
:mod:`fastflow.brokers.upstox.master`), which the ``from_*`` classmethods
call.  This module imports nothing from :mod:`fastflow.brokers` at import
time: the broker facts (segment ids, price divisors) and the loaders are
imported when first used.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from fastflow.instruments.errors import InstrumentError, _Where
from fastflow.instruments.parse import (
    _EPOCH_ORDINAL,
    _MAX_INT64,
    _MAX_TOKEN,
    _NAT,
    _describe,
    _key_segment,
    _value_types,
)

__all__ = ["Instruments"]


def _int_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise InstrumentError(f"expected integers, got dtype {array.dtype}", column=column)
    if array.dtype.kind == "u" and array.dtype.itemsize >= 8 and int(array.max()) > _MAX_INT64:
        raise InstrumentError(f"value {int(array.max())} is too large", column=column)
    return np.array(array, dtype=np.int64)


def _float_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros(array.shape, dtype=np.float64)
    if array.dtype.kind not in "iuf":
        raise InstrumentError(f"expected numbers, got dtype {array.dtype}", column=column)
    return np.array(array, dtype=np.float64)


def _date_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.datetime64]:
    try:
        return np.array(values, dtype="datetime64[D]")
    except (TypeError, ValueError) as exc:
        raise InstrumentError(f"expected dates: {exc}", column=column) from None


def _str_column(values: npt.ArrayLike, column: str) -> npt.NDArray[np.object_]:
    array = np.array(values, dtype=object)
    items = array.ravel().tolist()
    if not _value_types(items) <= {str}:
        for item in items:
            if not isinstance(item, str):
                raise InstrumentError(f"expected strings, got {_describe(item)}", column=column)
    return array


def _object_array(values: Sequence[object]) -> npt.NDArray[np.object_]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _first_true(mask: npt.NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.flags.writeable = False


def _keyed(broker: str) -> bool:
    """Whether ``broker``'s instruments are identified by instrument_key strings (the
    broker registry's :attr:`~fastflow.brokers.BrokerSpec.keyed`)."""
    from fastflow import brokers

    return broker in brokers.NAMES and brokers.get(broker).keyed


def _default_broker() -> str:
    from fastflow import brokers

    return brokers.DEFAULT


def _keyed_names() -> str:
    from fastflow import brokers

    return " or ".join(repr(name) for name in brokers.names() if _keyed(name))


class Instruments:
    """Column-wise, read-only view of one broker's instrument master.

    Each column is a 1-D numpy array with one entry per slot; the slot of an
    instrument is its 0-based row index in file order.  Build instances with
    :meth:`from_kite_csv`, :meth:`from_kite_rows`, :meth:`from_upstox` or
    :meth:`from_upstox_rows`; the keyword constructor takes the twelve Kite
    columns as array-likes (plus optional ``path`` and per-slot ``lines`` used
    in error messages) and validates them.

    ``broker`` is ``"kite"`` or ``"upstox"``; it decides the meaning of the
    derived columns and how instruments are looked up:

    * Kite: ``token`` is the unique ``instrument_token`` and the low byte of
      it is ``segment_id``, which decides ``price_divisor``
      (:func:`~fastflow.brokers.kite.master.kite_price_divisor`);
      ``instrument_key`` is ``str(instrument_token)``.
      Look-ups take an int token or a ``"EXCHANGE:TRADINGSYMBOL"`` str.
    * Upstox: ``instrument_key`` (``"NSE_FO|45450"``) is the unique id;
      ``token`` is the numeric exchange token (0 when it is not numeric or
      does not fit 32 bits), neither unique nor used for look-ups;
      ``segment_id`` comes from
      :data:`~fastflow.brokers.upstox.master.UPSTOX_SEGMENT_IDS`,
      ``price_divisor`` from
      :func:`~fastflow.brokers.upstox.master.upstox_price_divisor` and
      segments ending in ``_INDEX`` are not tradable.  Look-ups take an instrument key (a str containing
      ``|``), a ``"EXCHANGE:TRADING_SYMBOL"`` str, or for a derivative its Kite-style
      symbol (``NFO:NIFTY26DECFUT`` for ``NSE:NIFTY FUT 29 DEC 26``, :meth:`aliases`),
      so one symbol names one contract on both brokers.
    """

    broker: str
    token: npt.NDArray[np.uint32]
    exchange_token: npt.NDArray[np.int64]
    tradingsymbol: npt.NDArray[np.object_]
    name: npt.NDArray[np.object_]
    last_price: npt.NDArray[np.float64]
    expiry: npt.NDArray[np.datetime64]
    strike: npt.NDArray[np.float64]
    tick_size: npt.NDArray[np.float64]
    lot_size: npt.NDArray[np.int64]
    instrument_type: npt.NDArray[np.object_]
    segment: npt.NDArray[np.object_]
    exchange: npt.NDArray[np.object_]
    instrument_key: npt.NDArray[np.object_]
    symbol: npt.NDArray[np.object_]
    segment_id: npt.NDArray[np.uint8]
    price_divisor: npt.NDArray[np.int64]
    tradable: npt.NDArray[np.bool_]

    def __init__(
        self,
        *,
        instrument_token: npt.ArrayLike,
        exchange_token: npt.ArrayLike,
        tradingsymbol: npt.ArrayLike,
        name: npt.ArrayLike,
        last_price: npt.ArrayLike,
        expiry: npt.ArrayLike,
        strike: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        lot_size: npt.ArrayLike,
        instrument_type: npt.ArrayLike,
        segment: npt.ArrayLike,
        exchange: npt.ArrayLike,
        broker: str | None = None,
        path: str | None = None,
        lines: Sequence[int] | None = None,
        instrument_key: npt.ArrayLike | None = None,
    ) -> None:
        """Validate and store the columns (``broker`` None: the registry's default, Kite).

        For ``broker="upstox"`` also pass ``instrument_key`` (``SEGMENT|ID``
        strings; ``segment`` must equal each key's SEGMENT part) and give the
        numeric exchange token or 0 as ``instrument_token``.  For any other
        broker the Kite rules apply and ``instrument_key`` must be omitted.
        ``lines`` default to ``2, 3, ...`` (as if a header preceded row 0).
        """
        count = int(np.size(instrument_token))
        line_of: Sequence[int] = lines if lines is not None else range(2, count + 2)
        self._init(
            instrument_token=instrument_token,
            exchange_token=exchange_token,
            tradingsymbol=tradingsymbol,
            name=name,
            last_price=last_price,
            expiry=expiry,
            strike=strike,
            tick_size=tick_size,
            lot_size=lot_size,
            instrument_type=instrument_type,
            segment=segment,
            exchange=exchange,
            instrument_key=instrument_key,
            broker=_default_broker() if broker is None else broker,
            where=_Where(path, line_of),
            check_lines=lines is not None,
        )

    def _init(
        self,
        *,
        instrument_token: npt.ArrayLike,
        exchange_token: npt.ArrayLike,
        tradingsymbol: npt.ArrayLike,
        name: npt.ArrayLike,
        last_price: npt.ArrayLike,
        expiry: npt.ArrayLike,
        strike: npt.ArrayLike,
        tick_size: npt.ArrayLike,
        lot_size: npt.ArrayLike,
        instrument_type: npt.ArrayLike,
        segment: npt.ArrayLike,
        exchange: npt.ArrayLike,
        instrument_key: npt.ArrayLike | None,
        broker: str,
        where: _Where,
        check_lines: bool = False,
        weekly: Sequence[bool | None] | None = None,
    ) -> None:
        path = where.path
        keyed = _keyed(broker)
        token64 = _int_column(instrument_token, "instrument_token")
        self.broker = broker
        self._keyed = keyed
        #: Per slot: the master's own "weekly" flag of an option, if it states one (Upstox JSON).
        self._weekly: Sequence[bool | None] | None = weekly
        self._aliases: dict[str, int] | None = None
        self.exchange_token = _int_column(exchange_token, "exchange_token")
        self.tradingsymbol = _str_column(tradingsymbol, "tradingsymbol")
        self.name = _str_column(name, "name")
        self.last_price = _float_column(last_price, "last_price")
        self.expiry = _date_column(expiry, "expiry")
        self.strike = _float_column(strike, "strike")
        self.tick_size = _float_column(tick_size, "tick_size")
        self.lot_size = _int_column(lot_size, "lot_size")
        self.instrument_type = _str_column(instrument_type, "instrument_type")
        self.segment = _str_column(segment, "segment")
        self.exchange = _str_column(exchange, "exchange")

        columns: dict[str, npt.NDArray[np.generic]] = {
            "instrument_token": token64,
            "exchange_token": self.exchange_token,
            "tradingsymbol": self.tradingsymbol,
            "name": self.name,
            "last_price": self.last_price,
            "expiry": self.expiry,
            "strike": self.strike,
            "tick_size": self.tick_size,
            "lot_size": self.lot_size,
            "instrument_type": self.instrument_type,
            "segment": self.segment,
            "exchange": self.exchange,
        }
        keys: npt.NDArray[np.object_] | None = None
        if keyed:
            if instrument_key is None:
                raise InstrumentError(
                    f"broker {broker!r} needs the instrument_key column", path, column="instrument_key"
                )
            keys = _str_column(instrument_key, "instrument_key")
            columns["instrument_key"] = keys
        elif instrument_key is not None:
            raise InstrumentError(
                f"instrument_key is only given for broker {_keyed_names()}; for broker {broker!r} it is "
                "str(instrument_token)",
                path,
                column="instrument_key",
            )
        count = len(token64) if token64.ndim == 1 else -1
        for column, array in columns.items():
            if array.ndim != 1:
                raise InstrumentError(f"expected a 1-D column, got shape {array.shape}", path, column=column)
            if len(array) != count:
                raise InstrumentError(
                    f"column lengths differ: 'instrument_token' has {count} entries, {column!r} has {len(array)}",
                    path,
                    column=column,
                )
        if check_lines and len(where.lines) != count:
            raise InstrumentError(f"got {len(where.lines)} line numbers for {count} instruments", path)

        self._check_values(token64, where, keys)
        self.token = token64.astype(np.uint32)

        symbols: list[str] = [
            f"{exchange_name}:{symbol_name}"
            for exchange_name, symbol_name in zip(
                self.exchange.tolist(), self.tradingsymbol.tolist(), strict=True
            )
        ]
        self.symbol = _object_array(symbols)
        self._by_token: dict[int, int] = {}
        self._by_key: dict[str, int] = {}
        if keys is None:
            from fastflow.brokers.kite import master as kite_master

            self.segment_id, self.price_divisor, self.tradable = kite_master.segment_columns(self.token)
            tokens: list[int] = self.token.tolist()
            self.instrument_key = _object_array([str(token) for token in tokens])
            self._by_token = dict(zip(tokens, range(count), strict=True))
            if len(self._by_token) != count:
                first, second = _first_duplicate(tokens)
                raise where.error(
                    f"duplicate instrument_token {tokens[second]} on {where.pair(first, second)}",
                    second,
                    "instrument_token",
                )
        else:
            from fastflow.brokers.upstox import master as upstox_master

            self.segment_id, self.price_divisor, self.tradable = upstox_master.segment_columns(
                self.segment.tolist()
            )
            key_list: list[str] = keys.tolist()
            self.instrument_key = keys
            self._by_key = dict(zip(key_list, range(count), strict=True))
            if len(self._by_key) != count:
                first, second = _first_duplicate(key_list)
                raise where.error(
                    f"duplicate instrument_key {key_list[second]!r} on {where.pair(first, second)}",
                    second,
                    "instrument_key",
                )
        self._by_symbol: dict[str, int] = dict(zip(symbols, range(count), strict=True))
        if len(self._by_symbol) != count:
            first, second = _first_duplicate(symbols)
            raise where.error(
                f"duplicate symbol {symbols[second]!r} on {where.pair(first, second)}",
                second,
                "tradingsymbol",
            )

        for array in (
            self.token,
            self.exchange_token,
            self.tradingsymbol,
            self.name,
            self.last_price,
            self.expiry,
            self.strike,
            self.tick_size,
            self.lot_size,
            self.instrument_type,
            self.segment,
            self.exchange,
            self.instrument_key,
            self.symbol,
            self.segment_id,
            self.price_divisor,
            self.tradable,
        ):
            _readonly(array)

    def _check_values(
        self, token: npt.NDArray[np.int64], where: _Where, keys: npt.NDArray[np.object_] | None
    ) -> None:
        """Value checks for the keyword constructor (the loaders check per field first)."""
        checks: list[tuple[str, npt.NDArray[np.bool_], str]] = []
        if keys is None:
            checks += [
                ("instrument_token", token == 0, "instrument_token must not be 0"),
                (
                    "instrument_token",
                    (token < 0) | (token > _MAX_TOKEN),
                    "instrument_token out of range 1..0xFFFFFFFF",
                ),
            ]
        else:
            checks.append(
                (
                    "instrument_token",
                    (token < 0) | (token > _MAX_TOKEN),
                    "instrument_token (the exchange token or 0) out of range 0..0xFFFFFFFF",
                )
            )
        checks += [
            ("exchange_token", self.exchange_token < 0, "must not be negative"),
            ("lot_size", self.lot_size < 0, "must not be negative"),
            ("tick_size", ~(self.tick_size >= 0), "must be a non-negative number"),
        ]
        for column, floats in (
            ("last_price", self.last_price),
            ("strike", self.strike),
            ("tick_size", self.tick_size),
        ):
            checks.append((column, ~np.isfinite(floats), "must be a finite number"))
        for column, strings in (("tradingsymbol", self.tradingsymbol), ("exchange", self.exchange)):
            texts = strings.tolist()
            empty = np.zeros(len(texts), dtype=np.bool_)
            if "" in texts:
                empty[texts.index("")] = True
            checks.append((column, empty, "must not be empty"))
        if keys is not None:
            key_segments = [_key_segment(key) for key in keys.tolist()]
            bad_key = np.array([segment is None for segment in key_segments], dtype=np.bool_)
            checks.append(("instrument_key", bad_key, "must be 'SEGMENT|IDENTIFIER' with exactly one '|'"))
            mismatch = np.array(
                [
                    key_segment not in (None, segment)
                    for key_segment, segment in zip(key_segments, self.segment.tolist(), strict=True)
                ],
                dtype=np.bool_,
            )
            checks.append(("segment", mismatch, "does not match the SEGMENT part of the instrument_key"))
        worst: tuple[int, int, str, str] | None = None
        for order, (column, mask, reason) in enumerate(checks):
            index = _first_true(mask.reshape(-1))
            if index is not None and (worst is None or (index, order) < worst[:2]):
                worst = (index, order, column, reason)
        if worst is not None:
            index, _, column, reason = worst
            raise where.error(reason, index, column)


    # ------------------------------------------------------------------
    # loaders (the formats are the brokers'; see their master modules)

    @classmethod
    def from_kite_csv(cls, path: str | os.PathLike[str]) -> Instruments:
        """Load a Kite instruments dump, plain or gzipped.

        Compression is detected from the gzip magic bytes (``1f 8b``), not from
        the file name.  Accepts a UTF-8 BOM, ``\\n`` or ``\\r\\n`` line endings
        and blank trailing lines; the header may list the twelve columns in any
        order.  Raises :class:`InstrumentError` for malformed content (a
        missing file raises the usual :class:`OSError`).
        See :func:`fastflow.brokers.kite.master.load`.
        """
        from fastflow.brokers.kite import master

        return master.load(path, cls)

    @classmethod
    def from_kite_rows(cls, rows: Iterable[Mapping[str, object]]) -> Instruments:
        """Build from row mappings keyed by the twelve Kite column names.

        Values may be strings (as from :class:`csv.DictReader`) or already
        typed, as returned by ``kiteconnect.KiteConnect.instruments()``:
        ``int`` tokens, ``float`` prices, ``datetime.date`` or ``None``/``''``
        expiry.  Validation matches :meth:`from_kite_csv`; the line reported
        for row ``i`` (0-based) is ``i + 2``, as if a header preceded it.
        See :func:`fastflow.brokers.kite.master.from_rows`.
        """
        from fastflow.brokers.kite import master

        return master.from_rows(rows, cls)

    @classmethod
    def from_upstox(cls, path: str | os.PathLike[str]) -> Instruments:
        """Load an Upstox instruments file: JSON, gzipped JSON or the older CSV.

        Compression is detected from the gzip magic bytes, not from the name.
        After an optional UTF-8 BOM and whitespace, a file starting with
        ``[`` is read as a JSON array of instrument objects (see
        :meth:`from_upstox_rows` for the fields; one starting with ``{`` is
        rejected as not an array); anything else as the
        deprecated CSV with the columns of :data:`UPSTOX_CSV_COLUMNS` in any
        order (``expiry`` ``YYYY-MM-DD`` or empty, empty numbers read as 0,
        the segment taken from the key, ``option_type`` ignored; the CSV's
        ``exchange`` column holds the segment, e.g. ``NSE_EQ``, which is
        reduced to the exchange: ``NSE``, with ``NCD_FO`` -> ``NSE`` and
        ``BCD_FO`` -> ``BSE`` as in the JSON files).

        Error locations (:class:`InstrumentError`): for JSON records,
        ``line`` is the record's 0-based index in the array + 1 and
        ``unit`` is ``"record"`` (the message says ``record N``), and
        ``column`` is the JSON field name (e.g. ``'strike_price'``); a JSON
        syntax error reports the physical line in ``line`` and names line and
        column in the message.  For CSV, ``line`` is the physical line (the
        header is line 1) and ``column`` the CSV column, as for Kite.  A
        missing file raises the usual :class:`OSError`.
        See :func:`fastflow.brokers.upstox.master.load`.
        """
        from fastflow.brokers.upstox import master

        return master.load(path, cls)

    @classmethod
    def from_upstox_rows(cls, rows: Iterable[Mapping[str, object]]) -> Instruments:
        """Build from Upstox instrument objects, e.g. the decoded JSON file.

        Fields read (all others are ignored):

        * required, not null: ``instrument_key`` (``SEGMENT|IDENTIFIER``,
          exactly one ``|``, both parts non-empty), ``exchange`` and
          ``trading_symbol`` (strings);
        * ``segment``: optional; when present it must equal the key's
          SEGMENT part, which is used as the segment either way;
        * ``exchange_token``: a string or an int; a non-numeric string,
          null or absence give 0;
        * ``expiry``: epoch milliseconds, converted to the date in IST
          (UTC+05:30); null or absent -> NaT;
        * ``strike_price``, ``tick_size`` (>= 0), ``last_price``: numbers,
          default 0.0; ``lot_size``: a non-negative integer (an integral
          float such as ``75.0`` is accepted), default 0; ``name`` and
          ``instrument_type``: strings, default ``""``.  ``tick_size`` is
          given in paise in Upstox's JSON files and stored in rupees (/ 100),
          like Kite's, so the column means the same for both brokers; the old
          CSV already states rupees;
        * ``weekly``: optional; a boolean decides whether an option's
          Kite-style alias takes the weekly or the monthly name (any other
          value counts as absent: the last-expiry-of-the-month rule decides).

        ``symbol`` is ``"EXCHANGE:TRADING_SYMBOL"``.  The ``line`` of an
        :class:`InstrumentError` is the record's index + 1 with ``unit ==
        "record"``, and ``column`` the JSON field name.
        See :func:`fastflow.brokers.upstox.master.from_rows`.
        """
        from fastflow.brokers.upstox import master

        return master.from_rows(rows, cls)

    # ------------------------------------------------------------------
    # lookups

    def __len__(self) -> int:
        return len(self.token)

    def __repr__(self) -> str:
        return f"<Instruments broker={self.broker!r} count={len(self)}>"

    @property
    def _upstox(self) -> bool:
        """Identified by instrument_key strings (Upstox), not int tokens (Kite)."""
        return self._keyed

    def aliases(self) -> Mapping[str, int]:
        """Other names of instruments -> slot: on Upstox, each derivative's Kite-style
        ``EXCHANGE:TRADINGSYMBOL`` (``NFO:NIFTY26DECFUT`` for ``NSE:NIFTY FUT 29 DEC 26``;
        :func:`fastflow.instruments.symbols.kite_aliases`); none on Kite, whose symbols
        are the canonical ones.  Built on first use; :meth:`slot` and ``in`` accept them."""
        if self._aliases is None:
            self._aliases = self._build_aliases()
        return self._aliases

    def _build_aliases(self) -> dict[str, int]:
        if not self._upstox:
            return {}
        from fastflow.instruments.symbols import kite_aliases

        days = self.expiry.view(np.int64).tolist()
        return kite_aliases(
            segment=self.segment.tolist(),
            tradingsymbol=self.tradingsymbol.tolist(),
            name=self.name.tolist(),
            expiry=[None if day == _NAT else _dt.date.fromordinal(day + _EPOCH_ORDINAL) for day in days],
            strike=self.strike.tolist(),
            instrument_type=self.instrument_type.tolist(),
            weekly=self._weekly,
            taken=self._by_symbol,
        )

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            if self._upstox and "|" in key and key in self._by_key:
                return True
            return key in self._by_symbol or (self._upstox and key in self.aliases())
        if isinstance(key, (bool, np.bool_)):
            return False
        if isinstance(key, (int, np.integer)):
            return int(key) in self._by_token
        return False

    def slot(self, key: int | str) -> int:
        """Slot of an instrument.

        Kite: ``key`` is the int token or ``"EXCHANGE:TRADINGSYMBOL"``.
        Upstox: a str containing ``|`` is an instrument_key (if no instrument
        has that key it is tried as a symbol), any other str a symbol or a
        derivative's Kite-style alias (``NFO:NIFTY26DECFUT``, :meth:`aliases`);
        an int raises :class:`KeyError`, since Upstox exchange tokens are not
        unique.  Raises :class:`KeyError` for unknown keys and
        :class:`TypeError` for other key types (including ``bool``).
        """
        if isinstance(key, str):
            if self._upstox and "|" in key:
                found = self._by_key.get(key)
                if found is None:
                    found = self._by_symbol.get(key)
                if found is None:
                    raise KeyError(f"unknown instrument_key {key!r}")
                return found
            found = self._by_symbol.get(key)
            if found is None and self._upstox:
                found = self.aliases().get(key)
            if found is None:
                if ":" in key:
                    hint = ""
                elif self._upstox:
                    hint = (
                        " (Upstox instruments are looked up by instrument_key 'SEGMENT|IDENTIFIER', "
                        "e.g. 'NSE_EQ|INE009A01021', or by symbol 'EXCHANGE:TRADING_SYMBOL', e.g. 'NSE:INFY')"
                    )
                else:
                    hint = " (symbols are 'EXCHANGE:TRADINGSYMBOL', e.g. 'NSE:INFY')"
                raise KeyError(f"unknown instrument symbol {key!r}{hint}")
            return found
        if isinstance(key, (bool, np.bool_)):
            raise TypeError("instrument key must be an int token or a str symbol, not bool")
        if isinstance(key, (int, np.integer)):
            token = int(key)
            if self._upstox:
                raise KeyError(
                    f"Upstox instruments are looked up by instrument_key (e.g. 'NSE_FO|45450') or symbol "
                    f"(e.g. 'NSE:INFY'), not by an int token ({token}): exchange tokens are not unique"
                )
            found = self._by_token.get(token)
            if found is None:
                raise KeyError(f"unknown instrument token {token}")
            return found
        raise TypeError(f"instrument key must be an int token or a str symbol, not {type(key).__name__}")

    def slots(self, keys: Iterable[int | str]) -> npt.NDArray[np.int32]:
        """Slots for many keys, as an int32 array; KeyError on the first unknown key."""
        if isinstance(keys, (str, bytes)):
            raise TypeError("slots() takes an iterable of keys, not a single str")
        if isinstance(keys, np.ndarray):
            keys = keys.tolist()
        slot = self.slot
        return np.array([slot(key) for key in keys], dtype=np.int32)

    def token_of(self, key: int | str) -> int:
        """instrument_token of a symbol or token (Kite); the exchange_token (Upstox)."""
        index = self.slot(key)
        if self._upstox:
            return int(self.exchange_token[index])
        return int(self.token[index])

    def symbol_of(self, key: int | str) -> str:
        """``"EXCHANGE:TRADINGSYMBOL"`` of a token or symbol (Upstox: of an instrument_key or symbol)."""
        return str(self.symbol[self.slot(key)])

    def key_of(self, key: int | str) -> str:
        """``instrument_key`` of an instrument (Upstox: ``"NSE_EQ|INE009A01021"``; Kite: ``str(token)``)."""
        return str(self.instrument_key[self.slot(key)])

    def row(self, key: int | str) -> dict[str, object]:
        """The twelve Kite columns plus ``symbol`` for one instrument, as Python scalars.

        ``expiry`` is a :class:`datetime.date` or ``None``.  Upstox rows also
        hold ``instrument_key`` (last); their ``instrument_token`` is the
        ``token`` column (the numeric exchange token or 0).
        """
        index = self.slot(key)
        days = int(self.expiry.view(np.int64)[index])
        expiry = None if days == _NAT else _dt.date.fromordinal(days + _EPOCH_ORDINAL)
        row: dict[str, object] = {
            "instrument_token": int(self.token[index]),
            "exchange_token": int(self.exchange_token[index]),
            "tradingsymbol": str(self.tradingsymbol[index]),
            "name": str(self.name[index]),
            "last_price": float(self.last_price[index]),
            "expiry": expiry,
            "strike": float(self.strike[index]),
            "tick_size": float(self.tick_size[index]),
            "lot_size": int(self.lot_size[index]),
            "instrument_type": str(self.instrument_type[index]),
            "segment": str(self.segment[index]),
            "exchange": str(self.exchange[index]),
            "symbol": str(self.symbol[index]),
        }
        if self._upstox:
            row["instrument_key"] = str(self.instrument_key[index])
        return row


def _first_duplicate(values: Sequence[object]) -> tuple[int, int]:
    """Indexes of the first value seen twice (first and second occurrence)."""
    seen: dict[object, int] = {}
    for index, value in enumerate(values):
        first = seen.setdefault(value, index)
        if first != index:
            return first, index
    raise AssertionError("no duplicate found")  # pragma: no cover
