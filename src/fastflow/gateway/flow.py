"""The gateway's options-flow tape, without sockets: each client's filter, the
recent events for a new subscriber's snapshot, and the frames a published
flush of events makes (docs/protocol.md, "Options flow").

Events arrive as the plant published them (``ff:{P}:flowlive``: a msgpack
array of event maps). Each event is read once, for the fields filters look at;
its bytes are spliced into the clients' frames unchanged. Clients with equal
filters share one frame, so the work per published flush is events x distinct
filters, not events x clients.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Hashable, Iterable
from typing import Any

import msgpack

from fastflow.gateway import protocol as proto
from fastflow.instruments.symbols import underlying_symbol

KINDS = ("sweep", "block", "repeated", "unusual")
SIDES = ("buy", "sell", "unknown")
SENTIMENTS = ("bullish", "bearish", "neutral")
#: Events kept for a new subscriber's snapshot.
RECENT = 500
#: Names and values one filter may list.
MAX_FILTER_ITEMS = 1_000

_TYPE_FLOW: bytes = msgpack.packb("type") + msgpack.packb("flow")
_EVENTS: bytes = msgpack.packb("events")
_SNAPSHOT: bytes = msgpack.packb("snapshot") + msgpack.packb(True)


@dataclasses.dataclass(frozen=True)
class FlowFilter:
    """What one client's tape shows: every listed condition holds (an empty set: any)."""

    underlyings: frozenset[str] = frozenset()
    symbols: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    sides: frozenset[str] = frozenset()
    sentiments: frozenset[str] = frozenset()
    min_score: float = 0.0
    min_premium: float = 0.0

    def matches(self, event: _Fields) -> bool:
        return ((not self.kinds or event.kind in self.kinds)
                and event.score >= self.min_score and event.premium >= self.min_premium
                and (not self.underlyings or event.underlying in self.underlyings)
                and (not self.symbols or event.symbol in self.symbols)
                and (not self.sides or event.side in self.sides)
                and (not self.sentiments or event.sentiment in self.sentiments))

    def as_dict(self) -> dict[str, Any]:
        """The filter as the ``flow_subscribed`` reply states it."""
        return {"underlyings": sorted(self.underlyings), "symbols": sorted(self.symbols),
                "kinds": sorted(self.kinds), "sides": sorted(self.sides), "sentiments": sorted(self.sentiments),
                "min_score": self.min_score, "min_premium": self.min_premium}


@dataclasses.dataclass(frozen=True)
class _Fields:
    """What filters read of one event."""

    id: int
    kind: str
    underlying: str
    symbol: str
    side: str
    sentiment: str
    score: float
    premium: float


def parse_filter(value: dict[str, Any], resolve: Any = None) -> FlowFilter:
    """A ``subscribe_flow`` message's filter; :class:`~fastflow.gateway.protocol.ProtocolError`
    (``bad_filter``) naming the field that is wrong. ``underlyings`` take an index's
    or a stock's name (``NIFTY``, ``RELIANCE``) or its symbol (``NSE:NIFTY 50``);
    ``symbols`` go through ``resolve`` (the gateway's symbol resolution: names,
    tokens, keys -> symbols), when given."""
    known = {"op", "id", "underlyings", "symbols", "kinds", "sides", "sentiments", "min_score", "min_premium"}
    extra = sorted(str(k) for k in value if k not in known)
    if extra:
        raise proto.ProtocolError(proto.BAD_FILTER, f"unknown filter field(s) {', '.join(extra)}; expected "
                                  f"{', '.join(sorted(known - {'op', 'id'}))}", "subscribe_flow")

    def names(field: str, allowed: Iterable[str] | None = None) -> frozenset[str]:
        items = value.get(field, [])
        if items is None:
            return frozenset()
        if (not isinstance(items, list) or len(items) > MAX_FILTER_ITEMS
                or not all(isinstance(i, (str, int)) and not isinstance(i, bool) and 0 < len(str(i)) <= 128
                           for i in items)):
            raise proto.ProtocolError(proto.BAD_FILTER, f"\"{field}\" must be a list of at most "
                                      f"{MAX_FILTER_ITEMS} strings", "subscribe_flow")
        out = frozenset(str(i).strip() if allowed is None else str(i).strip().lower() for i in items)
        if allowed is not None and not out <= set(allowed):
            raise proto.ProtocolError(proto.BAD_FILTER, f"\"{field}\" takes {', '.join(allowed)}; got "
                                      f"{', '.join(sorted(out - set(allowed)))}", "subscribe_flow")
        return out

    def number(field: str) -> float:
        x = value.get(field, 0)
        if x is None:
            return 0.0
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise proto.ProtocolError(proto.BAD_FILTER, f"\"{field}\" must be a number >= 0", "subscribe_flow")
        return float(x)

    underlyings = frozenset(u if ":" in u else underlying_symbol(u) for u in
                            (n.upper() if ":" not in n else n for n in names("underlyings")))
    symbols = names("symbols")
    if symbols and resolve is not None:
        resolved, unknown = resolve(sorted(symbols))
        if unknown:
            raise proto.ProtocolError(proto.BAD_FILTER, f"unknown symbols: {', '.join(map(str, unknown))}",
                                      "subscribe_flow")
        symbols = frozenset(resolved)
    return FlowFilter(underlyings=underlyings, symbols=symbols, kinds=names("kinds", KINDS),
                      sides=names("sides", SIDES), sentiments=names("sentiments", SENTIMENTS),
                      min_score=number("min_score"), min_premium=number("min_premium"))


def frame(blobs: list[bytes], snapshot: bool = False) -> bytes:
    """``{"type": "flow", "events": [...]}`` (plus ``"snapshot": true``) with the
    event maps spliced in, not re-encoded."""
    head = bytes([0x83 if snapshot else 0x82]) + _TYPE_FLOW + (_SNAPSHOT if snapshot else b"") + _EVENTS
    array: bytes = msgpack.Packer().pack_array_header(len(blobs))
    return head + array + b"".join(blobs)



def split(published: bytes) -> list[tuple[_Fields, bytes]]:
    """A published msgpack array of event maps: each event's fields and its bytes.
    ValueError for a frame that is not an array of event maps."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(published)
    out = []
    try:
        for _ in range(unpacker.read_array_header()):
            start = unpacker.tell()
            event = unpacker.unpack()
            out.append((_fields(event), published[start:unpacker.tell()]))
    except (msgpack.OutOfData, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError,
            KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a flow frame: {type(exc).__name__}: {exc}") from None
    return out


def _fields(event: Any) -> _Fields:
    if not isinstance(event, dict):
        raise TypeError("an event is a map")
    return _Fields(id=int(event["id"]), kind=str(event["kind"]), underlying=str(event.get("underlying") or ""),
                   symbol=str(event["symbol"]), side=str(event.get("side", "unknown")),
                   sentiment=str(event.get("sentiment", "neutral")), score=float(event.get("score", 0)),
                   premium=float(event.get("premium", 0.0)))


class FlowTape:
    """Subscribed clients and their filters, and the recent events (see the module docstring)."""

    def __init__(self, recent: int = RECENT) -> None:
        self.recent: collections.deque[tuple[_Fields, bytes]] = collections.deque(maxlen=recent)
        self.filters: dict[Hashable, FlowFilter] = {}
        self.last_id = -1
        self.counters: collections.Counter[str] = collections.Counter()

    def subscribe(self, client: Hashable, flt: FlowFilter) -> bytes:
        """``client`` now sees ``flt``'s events; returns its snapshot frame (the recent matching events)."""
        self.filters[client] = flt
        return frame([blob for fields, blob in self.recent if flt.matches(fields)], snapshot=True)

    def unsubscribe(self, client: Hashable) -> bool:
        return self.filters.pop(client, None) is not None

    def seed(self, blobs: Iterable[bytes]) -> None:
        """The stream's recent events, oldest first (a (re)connect): the snapshot's source."""
        for blob in blobs:
            try:
                self._keep(_fields(msgpack.unpackb(blob, raw=False)), blob)
            except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
                self.counters["frame_errors"] += 1

    def _keep(self, fields: _Fields, blob: bytes) -> bool:
        if fields.id <= self.last_id:
            self.counters["duplicates"] += 1  # seen already (read from the stream and published meanwhile)
            return False
        self.last_id = fields.id
        self.recent.append((fields, blob))
        return True

    def publish(self, published: bytes) -> list[tuple[Hashable, bytes]]:
        """One published frame: (client, frame) for every subscribed client with a
        matching event. ValueError for a malformed frame (nothing kept)."""
        events = [(f, b) for f, b in split(published) if self._keep(f, b)]
        self.counters["events_in"] += len(events)
        if not events or not self.filters:
            return []
        by_filter: dict[FlowFilter, list[Hashable]] = {}
        for client, flt in self.filters.items():
            by_filter.setdefault(flt, []).append(client)
        out: list[tuple[Hashable, bytes]] = []
        for flt, clients in by_filter.items():
            blobs = [blob for fields, blob in events if flt.matches(fields)]
            if blobs:
                payload = frame(blobs)
                out += [(client, payload) for client in clients]
                self.counters["events_out"] += len(blobs) * len(clients)
        return out
