"""The gateway's decisions, without sockets (in the manner of websockets' ``protocol.py``).

:class:`FanoutCore` holds the clients, their watchlists and the compiled
:class:`~fastflow.hotpath.FanOut`, and decides what each client is sent: the
fan-out of a published frame, conflation while a client is behind, its
catch-up when it drains, the snapshot on subscribe, the replies to control
messages and which clients to close. Events come in as method calls
(:meth:`~FanoutCore.connect`, :meth:`~FanoutCore.reset`, :meth:`~FanoutCore.apply`
and :meth:`~FanoutCore.send`, :meth:`~FanoutCore.drained`,
:meth:`~FanoutCore.control`, :meth:`~FanoutCore.lagging` with the time passed
in); bytes go out through each :class:`Client`'s ``write`` (the server binds
it to the socket's ``transport.write``, a test to a list). The core never
awaits, sleeps or reads a clock except to time its own work.

A client's ``paused`` flag is the server's report that its socket is over the
high-water mark: the core then leaves the client's changes marked in the
FanOut (which keeps the latest blob per instrument: conflation) and sends them
as one frame on :meth:`~FanoutCore.drained`; :meth:`~FanoutCore.lagging` names
the clients behind for longer than ``lag_limit`` (the server closes them with
1008).

JSON clients: a client frame is spliced in msgpack by the FanOut, then turned
into JSON; each tick's JSON is made once per pass and shared by every JSON
client of that pass (:class:`JsonFrames`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from fastflow.gateway import protocol as proto
from fastflow.gateway.flow import FlowTape, parse_filter
from fastflow.hotpath import FanOut, FrameError, ws_header
from fastflow.instruments import calendar
from fastflow.obs import metrics
from fastflow.obs.faults import Faults

logger = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"
_COMPACT = (",", ":")


class Client:
    """One connection as the core sees it. The server sets ``write`` (bytes of
    whole WebSocket frames to the socket), keeps ``paused`` (over the
    high-water mark) and overrides :meth:`is_open`."""

    __slots__ = ("behind_since", "binary", "cid", "closing", "name", "paused", "rate", "strikes", "symbols",
                 "write")

    def __init__(self, binary: bool, name: str, rate: proto.RateLimit,
                 write: Callable[[bytes], object]) -> None:
        self.cid = -1  # the FanOut's id, -1 until adopted
        self.binary = binary  # msgpack (binary frames) or JSON (text frames)
        self.name = name
        self.rate = rate
        self.write = write
        self.paused = False
        self.strikes = 0  # refused messages in a row
        self.symbols: set[str] = set()
        self.behind_since = 0.0
        self.closing = ""  # why the gateway is closing it ("lagging", "abuse"), or ""

    def is_open(self) -> bool:
        """Whether data frames may be written (the WebSocket is OPEN)."""
        return True


class JsonFrames:
    """msgpack client frames to JSON text, with each tick's JSON made once per
    pass (:meth:`new_pass`) and shared by every JSON client: a frame is walked
    without decoding its ticks, and only a tick not seen in this pass is converted."""

    def __init__(self) -> None:
        self._ticks: dict[bytes, bytes] = {}
        self.conversions = 0  # ticks converted (each at most once per pass)

    def new_pass(self) -> None:
        self._ticks.clear()

    def text(self, payload: bytes) -> bytes:
        """``payload`` (a msgpack map, e.g. ``{"type": "ticks", "ticks": [...]}``) as compact JSON."""
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(payload)
        parts = []
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            head = json.dumps(key).encode() + b":"
            if key == "ticks":
                items = []
                for _ in range(unpacker.read_array_header()):
                    start = unpacker.tell()
                    unpacker.skip()
                    blob = payload[start:unpacker.tell()]
                    text = self._ticks.get(blob)
                    if text is None:
                        text = self._ticks[blob] = json.dumps(msgpack.unpackb(blob, raw=False),
                                                              separators=_COMPACT).encode()
                        self.conversions += 1
                    items.append(text)
                parts.append(head + b"[" + b",".join(items) + b"]")
            else:
                parts.append(head + json.dumps(unpacker.unpack(), separators=_COMPACT).encode())
        return b"{" + b",".join(parts) + b"}"


class FanoutCore:
    """Clients, watchlists, fan-out, conflation, catch-up, control messages and the
    lag policy of one gateway (see the module docstring)."""

    def __init__(self, *, max_symbols: int = 1_000, max_strikes: int = 10, lag_limit: float = 10.0,
                 control_rate: float = 20.0, control_burst: int = 50) -> None:
        self.max_symbols = max_symbols
        self.max_strikes = max_strikes
        self.lag_limit = lag_limit
        self.control_rate = control_rate
        self.control_burst = control_burst
        self.fan: FanOut | None = None
        self.symbols: list[str] = []
        self.meta: dict[str, str] = {}
        self._slot: dict[str, int] = {}
        self._ids: dict[str, str] = {}
        self._clients: list[Client | None] = []
        self._pending: set[Client] = set()  # connected before the instrument list arrived
        self.json = JsonFrames()
        self.flow = FlowTape()
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.faults = Faults("gateway", logger)  # our failures on a client message or a frame, contained
        self.snapshot_seconds = metrics.Histogram(
            "gateway_snapshot_seconds", "Building and writing one snapshot reply")

    # -- clients ----------------------------------------------------------------------

    def rate_limit(self, now: float) -> proto.RateLimit:
        """A new client's control-message budget."""
        return proto.RateLimit(self.control_rate, self.control_burst, now)

    def connect(self, client: Client) -> None:
        """A client completed its handshake."""
        if self.fan is None:
            self._pending.add(client)
        else:
            self._adopt(client)
        self.counters["connections"] += 1

    def disconnect(self, client: Client) -> None:
        """A client is gone (or being closed): it gets nothing more."""
        self._pending.discard(client)
        self.flow.unsubscribe(client)
        if 0 <= client.cid < len(self._clients) and self._clients[client.cid] is client:
            self._clients[client.cid] = None
            if self.fan is not None:
                self.fan.remove_client(client.cid)
        client.cid = -1

    def closing(self, client: Client, why: str) -> bool:
        """Mark ``client`` as being closed for ``why`` (it gets nothing more); False
        when it already was."""
        if client.closing:
            return False
        client.closing = why
        self.disconnect(client)
        return True

    @property
    def clients(self) -> list[Client]:
        """The connected clients (adopted and pending)."""
        return [c for c in self._clients if c is not None] + list(self._pending)

    def _adopt(self, client: Client) -> None:
        """Give ``client`` a FanOut id and its watchlist (after a (re)load of instruments)."""
        assert self.fan is not None
        cid = self.fan.add_client()
        while len(self._clients) <= cid:
            self._clients.append(None)
        self._clients[cid] = client
        client.cid = cid
        slots = [self._slot[s] for s in client.symbols if s in self._slot]
        client.symbols = {self.symbols[i] for i in slots}
        if slots:
            self.fan.subscribe(cid, slots)

    # -- the feed -----------------------------------------------------------------------

    def reset(self, symbols: list[str], ids: dict[str, str], seed: bytes, meta: dict[str, str]) -> None:
        """A (re)connect to Redis: the instrument list, the broker ids and the seed
        frame (latest state). Clients keep their watchlists; on a new instrument
        list every client with a watchlist is sent its snapshot afresh."""
        self.meta = meta
        self._ids = ids
        if symbols != self.symbols or self.fan is None:
            old = self.clients
            self.fan = FanOut(_Names(symbols))
            self.symbols = symbols
            self._slot = {s: i for i, s in enumerate(symbols)}
            self._clients = []
            self._pending.clear()
            for client in old:
                self._adopt(client)
            self.counters["instrument_loads"] += 1
            if self.apply(seed) >= 0:
                self.send()
            for adopted in self._clients:
                if adopted is not None and adopted.symbols:
                    self.write(adopted, self.fan.snapshot(adopted.cid))
        elif self.apply(seed) >= 0:
            self.send()

    def apply(self, frame: bytes) -> int:
        """``frame`` into the FanOut: the ticks stored, or -1 (no instrument list yet,
        a malformed frame: counted and skipped)."""
        fan = self.fan
        if fan is None:
            return -1
        try:
            ticks: int = fan.feed(frame)
        except FrameError as exc:
            self.counters["frame_errors"] += 1
            logger.warning("gateway: a malformed frame from redis skipped: %s", exc)
            return -1
        except Exception as exc:
            self.faults.record("frame", exc)
            return -1
        return ticks

    def send(self, now: float | None = None) -> int:
        """One pass over the changed clients: each one's frame written, unless it is
        paused (its changes stay marked: conflated; ``behind_since`` is set to ``now``,
        default ``time.monotonic()``). Returns the client frames written."""
        fan = self.fan
        assert fan is not None
        clients = self._clients
        collect = fan.collect
        frames = texts = sent = skipped = 0
        self.json.new_pass()
        for cid in fan.changed_clients():
            client = clients[cid]
            if client is None or client.closing or not client.is_open():
                continue
            if client.paused:  # over the high-water mark: leave the changes marked (conflated)
                if not client.behind_since:
                    client.behind_since = time.monotonic() if now is None else now
                skipped += 1
                continue
            if client.binary:  # the hot path: one spliced buffer, WebSocket header included, one write
                frame = collect(cid, True)
                client.write(frame)
                frames += 1
                sent += len(frame)
            elif self.write(client, collect(cid)):
                texts += 1
        counters = self.counters
        counters["frames_out"] += frames
        counters["bytes_out"] += sent
        counters["conflations"] += skipped
        return frames + texts

    def write(self, client: Client, payload: bytes) -> bool:
        """One server message (msgpack) as one WebSocket frame, binary or JSON text;
        False when there was nothing to write, or the client is closing."""
        if client.closing or not payload or not client.is_open():
            return False
        if client.binary:
            client.write(ws_header(len(payload)) + payload)
        else:
            payload = self.json.text(payload)
            client.write(ws_header(len(payload), 0x1) + payload)
        self.counters["frames_out"] += 1
        self.counters["bytes_out"] += len(payload)
        return True

    # -- the feed's status: cold, on connect and on every change --------------------------

    def status(self, *, ready: bool, now: float, last_frame: float, stale_after: float) -> dict[str, Any]:
        """``{"type": "status", "feed", "market", "last_tick_age_s"}`` at ``now`` (epoch
        seconds): ``down`` without Redis or an instrument list, or while the plant's
        ingest (its ``ingest_state`` in meta) is not streaming at all; ``degraded``
        while some of its connections are down; ``stale`` when no frame
        came for ``stale_after`` seconds while the market is open (a simulated or
        replayed partition is always open; a closed market's silence is expected);
        else ``streaming``."""
        simulated = self.meta.get("source") in ("simulator", "replay")
        market = "open" if simulated else calendar.phase(now)
        age = now - last_frame if last_frame else None
        ingest = self.meta.get("ingest_state", "streaming")  # the plant's, kept in meta
        if not ready or ingest not in ("streaming", "degraded"):
            feed = "down"
        elif ingest == "degraded":
            feed = "degraded"
        elif market == "open" and (age is None or age > stale_after):
            feed = "stale"
        else:
            feed = "streaming"
        return {"type": "status", "feed": feed, "market": market,
                "last_tick_age_s": None if age is None else round(max(age, 0.0), 1)}

    def announce(self, message: dict[str, Any], clients: Iterable[Client] | None = None) -> int:
        """``message`` to ``clients`` (default: every connected one); how many got it."""
        payload: bytes = msgpack.packb(message)
        return sum(self.write(c, payload) for c in (self.clients if clients is None else clients))

    def drained(self, client: Client) -> None:
        """The client's socket drained below the low-water mark: send what piled up."""
        client.paused = False
        client.behind_since = 0.0
        if self.fan is not None and client.cid >= 0 and not client.closing:
            payload = self.fan.collect(client.cid)
            if payload:
                self.counters["catch_ups"] += 1
                self.json.new_pass()
                self.write(client, payload)

    def lagging(self, now: float) -> list[Client]:
        """The clients behind (paused) for longer than ``lag_limit`` at ``now``."""
        limit = self.lag_limit
        return [c for c in self._clients
                if c is not None and c.behind_since and c.paused and now - c.behind_since > limit]

    # -- control messages: cold, once per client message -------------------------------

    def control(self, client: Client, message: bytes | str, subprotocol: str,
                now: float) -> tuple[list[dict[str, Any] | bytes], bool]:
        """A client's control message: the replies in order (a dict is a control
        reply to encode, bytes a spliced snapshot frame for :meth:`write`), and
        whether the client has now been refused ``max_strikes`` times in a row
        (the server closes it with 1008)."""
        self.counters["control_messages"] += 1
        try:
            if not client.rate.allow(now):
                raise proto.ProtocolError(proto.RATE_LIMITED,
                                          f"more than {self.control_rate:g} control messages a second "
                                          f"(bursts of {self.control_burst})")
            request = proto.parse(message, subprotocol, self.max_symbols)
            replies = self._answer(client, request)
        except proto.ProtocolError as exc:
            client.strikes += 1
            self.errors[exc.code] += 1
            return [proto.error(exc.code, exc.message, exc.op)], client.strikes >= self.max_strikes
        except Exception as exc:  # a failure of ours, not the client's: answered, counted, no strike
            self.errors[proto.INTERNAL] += 1
            self.faults.record("control", exc)
            return [proto.error(proto.INTERNAL, "the gateway could not handle this message")], False
        client.strikes = 0
        return replies, False

    def _answer(self, client: Client, request: proto.Request) -> list[dict[str, Any] | bytes]:
        if request.op == "ping":
            return [{"type": "pong", "id": request.id}]
        if request.op in ("subscribe_flow", "unsubscribe_flow"):
            return self._answer_flow(client, request)
        fan = self.fan
        if fan is None or client.cid < 0:
            raise proto.ProtocolError(UNAVAILABLE, "no instrument list yet: waiting for the plant", request.op)
        resolved, unknown = self.resolve(request.symbols)
        if request.op == "subscribe":
            added = [s for s in resolved if s not in client.symbols]
            if len(client.symbols) + len(added) > self.max_symbols:
                raise proto.ProtocolError(
                    proto.TOO_MANY_SYMBOLS, f"the watchlist would hold {len(client.symbols) + len(added)} "
                    f"symbols; at most {self.max_symbols}", request.op)
            fan.subscribe(client.cid, [self._slot[s] for s in added])
            client.symbols.update(added)
            reply: dict[str, Any] = {"type": "subscribed", "symbols": resolved, "unknown": unknown}
            if request.id is not None:
                reply["id"] = request.id
            return [reply, self._snapshot(client, resolved)]
        if request.op == "unsubscribe":
            gone = [s for s in resolved if s in client.symbols]
            fan.unsubscribe(client.cid, [self._slot[s] for s in gone])
            client.symbols.difference_update(gone)
            done: dict[str, Any] = {"type": "unsubscribed", "symbols": resolved, "unknown": unknown}
            if request.id is not None:
                done["id"] = request.id
            return [done]
        # snapshot: the requested symbols, or the whole watchlist
        wanted = resolved if request.symbols else None
        replies: list[dict[str, Any] | bytes] = [self._snapshot(client, wanted)]
        if unknown:
            replies.append(proto.error(proto.BAD_SYMBOLS, f"unknown symbols: {', '.join(map(str, unknown))}",
                                       request.op))
        return replies

    def _answer_flow(self, client: Client, request: proto.Request) -> list[dict[str, Any] | bytes]:
        """subscribe_flow: the filter stated back, then the recent matching events;
        unsubscribe_flow: done. A client has one flow filter; a new one replaces it."""
        reply: dict[str, Any]
        if request.op == "unsubscribe_flow":
            self.flow.unsubscribe(client)
            reply = {"type": "flow_unsubscribed"}
            if request.id is not None:
                reply["id"] = request.id
            return [reply]
        wants_symbols = bool(request.fields.get("symbols"))
        if wants_symbols and self.fan is None:
            raise proto.ProtocolError(UNAVAILABLE, "no instrument list yet: waiting for the plant", request.op)
        flt = parse_filter(request.fields, self.resolve if wants_symbols else None)
        snapshot = self.flow.subscribe(client, flt)
        reply = {"type": "flow_subscribed", "filter": flt.as_dict()}
        if request.id is not None:
            reply["id"] = request.id
        self.counters["flow_subscriptions"] += 1
        return [reply, snapshot]

    def flow_frame(self, published: bytes) -> int:
        """One published flush of flow events: each subscribed client's matching
        events, one frame per client; a client over its high-water mark misses them
        (counted: flow is a tape, not state to conflate). Returns the frames written."""
        try:
            out = self.flow.publish(published)
        except ValueError as exc:
            self.counters["frame_errors"] += 1
            logger.warning("gateway: a malformed flow frame from redis skipped: %s", exc)
            return 0
        written = 0
        for client, payload in out:
            assert isinstance(client, Client)
            if client.paused:
                self.counters["flow_skipped"] += 1
            elif self.write(client, payload):
                written += 1
        self.counters["flow_frames_out"] += written
        return written

    def _snapshot(self, client: Client, symbols: list[str] | None) -> bytes:
        assert self.fan is not None
        start = time.perf_counter_ns()
        slots = None if symbols is None else [self._slot[s] for s in symbols]
        frame = self.fan.snapshot(client.cid, slots)
        self.counters["snapshots"] += 1
        self.snapshot_seconds.observe_ns(time.perf_counter_ns() - start)
        return frame

    def resolve(self, names: Iterable[str | int]) -> tuple[list[str], list[str | int]]:
        """Symbols (``EXCHANGE:TRADINGSYMBOL``, Kite tokens, Upstox keys) to the
        partition's symbols, de-duplicated in request order; and the unknown ones."""
        resolved: dict[str, None] = {}
        unknown: list[str | int] = []
        for name in names:
            key = str(name)
            symbol = key if key in self._slot else self._ids.get(key)
            if symbol is None or symbol not in self._slot:
                unknown.append(name)
            else:
                resolved[symbol] = None
        return list(resolved), unknown


class _Names:
    """The instrument list as FanOut takes it (an object with ``symbol``)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbol = symbols
