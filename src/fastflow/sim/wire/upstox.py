"""Encoder for Upstox Market Data Feed V3 frames: protobuf ``FeedResponse`` messages.

A small, pure-Python proto3 writer for the schema in ``tests/proto/MarketDataFeedV3.proto``
(package ``com.upstox.marketdatafeederv3udapi.rpc.proto``). It does not use the
``protobuf`` package. Builders take plain Python values and return the encoded
message as ``bytes``; a sub-message argument is the ``bytes`` of another
builder. For example, a live frame with one LTPC feed::

    frame = feed_response([("NSE_FO|45450", feed(ltpc=ltpc(101.5, 1732089600123, 75, 98.0)))])

Encoding rules (proto3, as the official serializers do):

* fields are written in field-number order;
* a scalar equal to its default (``0``, ``+0.0``, ``""``, ``False``) is omitted.
  Only ``+0.0`` is a default: ``-0.0`` (and NaN) are written;
* a sub-message is written whenever it is given (``bytes``, even empty) and
  omitted when ``None``; a repeated sub-message list given as ``[]`` is an empty
  container message (present), ``None`` leaves it out;
* ``int64`` and enum values are varints; negative ones take 10 bytes (two's complement);
* a map entry is a ``(key = 1, value = 2)`` message and always carries both, even
  an empty key or a zero value (as upb writes them). Entries are written
  in the order given.

Map order: the official upb runtime writes map entries in its hash-table order,
not in insertion order, so with two or more entries its ``SerializeToString()``
is only equal to this encoder's output up to entry order. Its
``SerializeToString(deterministic=True)`` sorts string keys bytewise ascending,
except that a key comes *after* the keys it is a proper prefix of ("ab" before
"a"); given entries in that order, the bytes are identical. Receivers must
accept any order (the official parsers do).

Units (see the broker-formats notes, section 2.2): prices are rupees as ``double``;
``ltt``, ``ts`` and ``current_ts`` are epoch milliseconds; ``oi``, ``tbq``, ``tsq``
are ``double``; quantities and volumes are ``int64``.

This module is cold code for the simulator, tests and benchmarks; the hot path
never uses it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

# --- enums --------------------------------------------------------------------------------------

# Type (FeedResponse.type). INITIAL_FEED is the proto3 default: it never appears on the wire.
INITIAL_FEED: Final = 0
LIVE_FEED: Final = 1
MARKET_INFO: Final = 2

# RequestMode (Feed.requestMode). LTPC is the default: it never appears on the wire.
LTPC: Final = 0
FULL_D5: Final = 1
OPTION_GREEKS: Final = 2
FULL_D30: Final = 3

#: Subscription mode string (the ``data.mode`` of a ``sub`` request) -> RequestMode.
#: Note that ``"full"`` is ``FULL_D5``.
REQUEST_MODES: Final[Mapping[str, int]] = {
    "ltpc": LTPC,
    "full": FULL_D5,
    "option_greeks": OPTION_GREEKS,
    "full_d30": FULL_D30,
}

# MarketStatus (MarketInfo.segmentStatus values).
PRE_OPEN_START: Final = 0
PRE_OPEN_END: Final = 1
NORMAL_OPEN: Final = 2
NORMAL_CLOSE: Final = 3
CLOSING_START: Final = 4
CLOSING_END: Final = 5

# --- low-level wire helpers ---------------------------------------------------------------------

# Wire types.
VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
I32: Final = 5

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_U64_MASK: Final = (1 << 64) - 1
_DOUBLE: Final = struct.Struct("<d")
_ZERO_DOUBLE: Final = bytes(8)  # +0.0; -0.0 has the sign bit set

_V = TypeVar("_V")

#: Map entries: a mapping, or (key, value) pairs in wire order.
Entries = Mapping[str, bytes] | Iterable[tuple[str, bytes]]
IntEntries = Mapping[str, int] | Iterable[tuple[str, int]]


def _int64(value: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError(f"{value} is out of the int64 range")
    return value


def varint(value: int) -> bytes:
    """Base-128 varint of an unsigned 64-bit value; a negative int64 is taken as two's complement."""
    if not _INT64_MIN <= value <= _U64_MASK:
        raise ValueError(f"{value} does not fit in 64 bits")
    value &= _U64_MASK
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    """The key of a field: ``varint(field << 3 | wire_type)``."""
    if field < 1 or not 0 <= wire_type <= 5:
        raise ValueError(f"bad field number {field} or wire type {wire_type}")
    return varint(field << 3 | wire_type)


def int64_field(field: int, value: int) -> bytes:
    """An ``int64`` (or enum) field; empty when ``value == 0``."""
    return tag(field, VARINT) + varint(_int64(value)) if value else b""


def bool_field(field: int, value: bool) -> bytes:
    """A ``bool`` field; empty when ``False``."""
    return tag(field, VARINT) + b"\x01" if value else b""


def double_field(field: int, value: float) -> bytes:
    """A ``double`` field (fixed64, little-endian); empty only for ``+0.0``."""
    raw = _DOUBLE.pack(value)
    return b"" if raw == _ZERO_DOUBLE else tag(field, I64) + raw


def length_delimited(field: int, payload: bytes) -> bytes:
    """A length-delimited field, always written (even when ``payload`` is empty)."""
    return tag(field, LEN) + varint(len(payload)) + payload


def string_field(field: int, value: str) -> bytes:
    """A ``string`` field (UTF-8); empty when ``value == ""``."""
    return length_delimited(field, value.encode()) if value else b""


def message_field(field: int, body: bytes | None) -> bytes:
    """A sub-message field: written when ``body`` is given (even ``b""``), omitted for ``None``."""
    return b"" if body is None else length_delimited(field, body)


def map_field(field: int, key: str, value_field: bytes) -> bytes:
    """One ``map<string, …>`` entry: key (field 1, always written) + ``value_field``.

    ``value_field`` is the encoded value field 2, e.g. ``length_delimited(2, msg)``
    or ``tag(2, VARINT) + varint(n)``.
    """
    return length_delimited(field, length_delimited(1, key.encode()) + value_field)


def _items(entries: Mapping[str, _V] | Iterable[tuple[str, _V]]) -> Iterable[tuple[str, _V]]:
    return entries.items() if isinstance(entries, Mapping) else entries


def _message_map(field: int, entries: Entries) -> bytes:
    return b"".join(map_field(field, k, length_delimited(2, v)) for k, v in _items(entries))


def _repeated(field: int, bodies: Iterable[bytes] | None) -> bytes | None:
    """A container message holding ``repeated <msg> = field``; ``None`` stays absent."""
    return None if bodies is None else b"".join(length_delimited(field, b) for b in bodies)


# --- messages -----------------------------------------------------------------------------------


def ltpc(ltp: float = 0.0, ltt: int = 0, ltq: int = 0, cp: float = 0.0, *, iep: float | None = None) -> bytes:
    """``LTPC``: last traded price, last trade time (epoch ms), last traded quantity, close price.

    ``iep`` is the ``google.protobuf.DoubleValue`` field 5: absent for ``None``;
    ``0.0`` gives an empty (but present) wrapper.
    """
    iep_body = None if iep is None else double_field(1, iep)
    return b"".join(
        (
            double_field(1, ltp),
            int64_field(2, ltt),
            int64_field(3, ltq),
            double_field(4, cp),
            message_field(5, iep_body),
        )
    )


def quote(bid_q: int = 0, bid_p: float = 0.0, ask_q: int = 0, ask_p: float = 0.0) -> bytes:
    """``Quote``: one depth level, both sides (V3 has no order counts)."""
    return int64_field(1, bid_q) + double_field(2, bid_p) + int64_field(3, ask_q) + double_field(4, ask_p)


def ohlc(
    interval: str = "",
    open: float = 0.0,
    high: float = 0.0,
    low: float = 0.0,
    close: float = 0.0,
    vol: int = 0,
    ts: int = 0,
) -> bytes:
    """``OHLC``: one candle; ``interval`` is e.g. ``"1d"`` or ``"I1"``, ``ts`` epoch ms."""
    return b"".join(
        (
            string_field(1, interval),
            double_field(2, open),
            double_field(3, high),
            double_field(4, low),
            double_field(5, close),
            int64_field(6, vol),
            int64_field(7, ts),
        )
    )


def greeks(
    delta: float = 0.0, theta: float = 0.0, gamma: float = 0.0, vega: float = 0.0, rho: float = 0.0
) -> bytes:
    """``OptionGreeks``."""
    return b"".join(double_field(i, v) for i, v in enumerate((delta, theta, gamma, vega, rho), start=1))


def market_full_feed(
    ltpc: bytes | None = None,
    levels: Iterable[bytes] | None = None,
    greeks: bytes | None = None,
    ohlcs: Iterable[bytes] | None = None,
    atp: float = 0.0,
    vtt: int = 0,
    oi: float = 0.0,
    iv: float = 0.0,
    tbq: float = 0.0,
    tsq: float = 0.0,
    *,
    iep: float = 0.0,
    rp: float = 0.0,
    ieq: int = 0,
    iiq_total: int = 0,
    iiq_m: int = 0,
    cas_eligible: bool = False,
) -> bytes:
    """``MarketFullFeed`` (full / full_d30 mode for tradables).

    ``levels`` are :func:`quote` messages (5 for full_d5, 30 for full_d30),
    wrapped in ``MarketLevel.bidAskQuote``; ``ohlcs`` are :func:`ohlc` messages
    wrapped in ``MarketOHLC.ohlc``. The keyword-only fields are the newer
    auction fields (iep = 11 … casEligible = 16).
    """
    return b"".join(
        (
            message_field(1, ltpc),
            message_field(2, _repeated(1, levels)),
            message_field(3, greeks),
            message_field(4, _repeated(1, ohlcs)),
            double_field(5, atp),
            int64_field(6, vtt),
            double_field(7, oi),
            double_field(8, iv),
            double_field(9, tbq),
            double_field(10, tsq),
            double_field(11, iep),
            double_field(12, rp),
            int64_field(13, ieq),
            int64_field(14, iiq_total),
            int64_field(15, iiq_m),
            bool_field(16, cas_eligible),
        )
    )


def index_full_feed(ltpc: bytes | None = None, ohlcs: Iterable[bytes] | None = None) -> bytes:
    """``IndexFullFeed`` (full mode for indices): LTPC + ``MarketOHLC``."""
    return message_field(1, ltpc) + message_field(2, _repeated(1, ohlcs))


def first_level_with_greeks(
    ltpc: bytes | None = None,
    first_depth: bytes | None = None,
    greeks: bytes | None = None,
    vtt: int = 0,
    oi: float = 0.0,
    iv: float = 0.0,
) -> bytes:
    """``FirstLevelWithGreeks`` (option_greeks mode): LTPC, best bid/ask :func:`quote`, greeks."""
    return b"".join(
        (
            message_field(1, ltpc),
            message_field(2, first_depth),
            message_field(3, greeks),
            int64_field(4, vtt),
            double_field(5, oi),
            double_field(6, iv),
        )
    )


def feed(
    *,
    ltpc: bytes | None = None,
    full_market: bytes | None = None,
    full_index: bytes | None = None,
    first_level: bytes | None = None,
    request_mode: int | None = None,
) -> bytes:
    """``Feed`` with exactly one payload of the ``FeedUnion`` oneof.

    ``full_market`` (a :func:`market_full_feed`) and ``full_index`` (an
    :func:`index_full_feed`) go into ``fullFeed`` (field 2) as ``marketFF`` /
    ``indexFF``. ``request_mode`` echoes the subscription mode; ``None`` and
    ``LTPC`` (0, the default) are both absent on the wire.
    """
    given = [p for p in (ltpc, full_market, full_index, first_level) if p is not None]
    if len(given) != 1:
        raise ValueError(f"a Feed carries exactly one payload, got {len(given)}")
    full = None
    if full_market is not None:
        full = length_delimited(1, full_market)
    elif full_index is not None:
        full = length_delimited(2, full_index)
    return b"".join(
        (
            message_field(1, ltpc),
            message_field(2, full),
            message_field(3, first_level),
            int64_field(4, request_mode or 0),
        )
    )


def status_info(status: str = "", updated_time: int = 0) -> bytes:
    """``StatusInfo`` (values of ``MarketInfo.casMarketStatus`` / ``preOpenSessionStatus``)."""
    return string_field(1, status) + int64_field(2, updated_time)


def market_info(
    segment_status: IntEntries = (),
    *,
    cas_market_status: Entries = (),
    pre_open_session_status: Entries = (),
) -> bytes:
    """``MarketInfo``: ``segment_status`` maps a segment (``"NSE_EQ"``) to a MarketStatus.

    The two keyword maps take :func:`status_info` messages. Entries are written in the given order.
    """
    segments = b"".join(
        map_field(1, k, tag(2, VARINT) + varint(_int64(v))) for k, v in _items(segment_status)
    )
    return segments + _message_map(2, cas_market_status) + _message_map(3, pre_open_session_status)


def feed_response(
    feeds: Entries = (),
    type: int = LIVE_FEED,
    current_ts: int = 0,
    market_info: bytes | None = None,
) -> bytes:
    """``FeedResponse``: one WebSocket frame.

    ``feeds`` maps instrument keys (``"NSE_FO|45450"``) to :func:`feed` messages,
    as a mapping or a sequence of pairs, written in that order. ``type`` is
    ``INITIAL_FEED`` (absent on the wire), ``LIVE_FEED`` or ``MARKET_INFO``;
    ``current_ts`` is epoch ms; ``market_info`` is a :func:`market_info` message.
    """
    return b"".join(
        (
            int64_field(1, type),
            _message_map(2, feeds),
            int64_field(3, current_ts),
            message_field(4, market_info),
        )
    )
