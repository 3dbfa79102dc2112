"""Reading what the plant writes (docs/redis.md, "Reading"): snapshots from the
``latest``, ``instruments`` and ``ids`` hashes, and the ``ticks`` stream
through consumer groups (with crash recovery) or plain tailing.

    store = TickStore(RedisTarget.parse(url).client(), Keys())
    store.watchlist(["NSE:INFY", "NSE:RELIANCE"])      # {symbol: tick dict or None}
    store.create_group("signals")
    for entry in store.read_group("signals", "worker-1", block_ms=1000):
        handle(entry.ticks)
        store.ack("signals", entry.id)

:class:`TickStore` is synchronous (redis-py ``Redis`` or ``RedisCluster``);
:class:`AsyncTickStore` is its ``redis.asyncio`` twin with the same methods as
coroutines. Both run the same command sequences (the ``_Ops`` generators
below), so they cannot drift apart.

**Bad payloads.** A stream entry whose ``t`` field is not a msgpack array of
maps, or a hash value that is not a msgpack map, raises
:class:`TickDecodeError` naming the key and the entry id (or hash field); the
entries read by that call stay pending in the group, so nothing is lost. With
``skip_bad=True`` such entries are left out instead, counted in
``bad_entries`` and their ids kept in ``bad_ids``; in a consumer group they are
also acknowledged, so a poison entry cannot come back forever.

**Trimmed entries.** The plant trims the stream (``MAXLEN ~``), so an entry can
be gone while still pending in a group. Redis 7 drops such ids from the group
when ``XAUTOCLAIM`` meets them; on Redis 6.2 :meth:`TickStore.claim_stale` and
``read_group(start="0")`` acknowledge them itself. Either way they are counted
in ``trimmed`` and never returned.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Awaitable, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack

from fastflow.errors import FastflowError
from fastflow.store.keys import Keys

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

T = TypeVar("T")
#: Where ``read_group`` starts by default: entries never delivered to the group.
NEW = ">"
_BAD_IDS = 100  # how many bad entry ids a store remembers


@dataclasses.dataclass(frozen=True)
class Entry:
    """One ``ticks`` stream entry: one plant flush."""

    id: str
    ticks: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Pending:
    """A consumer group's pending entries (delivered, not yet acknowledged)."""

    count: int
    first: str | None
    last: str | None
    consumers: dict[str, int]


class TickDecodeError(FastflowError, ValueError):
    """A payload that is not what the plant writes (see the module docstring)."""

    def __init__(self, key: str, entry_id: str, reason: str) -> None:
        super().__init__(f"{key} {entry_id}: {reason}")
        self.key = key
        self.entry_id = entry_id
        self.reason = reason


def decode_ticks(payload: bytes, *, key: str = "payload", entry_id: str = "?") -> list[dict[str, Any]]:
    """One flush's ticks from a msgpack array of maps (a ``ticks`` entry's ``t``
    field or a ``live`` message); :class:`TickDecodeError` if it is not one."""
    ticks = _unpack(payload, key, entry_id)
    if not isinstance(ticks, list) or not all(isinstance(tick, dict) for tick in ticks):
        raise TickDecodeError(key, entry_id, f"not a msgpack array of tick maps ({type(ticks).__name__})")
    return ticks


def decode_map(payload: bytes, *, key: str = "payload", entry_id: str = "?") -> dict[str, Any]:
    """A msgpack map (a ``latest`` tick or an ``instruments`` row)."""
    value = _unpack(payload, key, entry_id)
    if not isinstance(value, dict):
        raise TickDecodeError(key, entry_id, f"not a msgpack map ({type(value).__name__})")
    return value


def _unpack(payload: Any, key: str, entry_id: str) -> Any:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TickDecodeError(key, entry_id, f"payload is {type(payload).__name__}, not bytes "
                              "(is the client decode_responses=True? use bytes replies)")
    try:
        return msgpack.unpackb(payload, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise TickDecodeError(key, entry_id, f"not valid msgpack: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclasses.dataclass(frozen=True)
class _Call:
    """One redis-py method call, run by the sync or the async driver."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


#: An operation: yields a call (or a list of calls for one pipeline), receives
#: the reply (or the list of replies), returns the result.
_Op = Generator["_Call | list[_Call]", Any, T]


class _Ops:
    """The command sequences and reply decoding shared by both stores."""

    def __init__(self, client: Any, keys: Keys, *, skip_bad: bool, chunk: int) -> None:
        options = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
        if options.get("decode_responses"):
            raise ValueError("TickStore needs a client with decode_responses=False: tick payloads are msgpack bytes")
        if str(options.get("protocol") or 2) != "2":
            raise ValueError("TickStore needs a RESP2 client (redis-py's default protocol)")
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {chunk}")
        self.client = client
        self.keys = keys
        self.skip_bad = skip_bad
        self.chunk = chunk
        self._socket_timeout: float | None = options.get("socket_timeout")
        #: Bad payloads skipped (``skip_bad=True``) and the last ids of them.
        self.bad_entries = 0
        self.bad_ids: collections.deque[str] = collections.deque(maxlen=_BAD_IDS)
        #: Pending entries found trimmed from the stream and dropped from a group.
        self.trimmed = 0

    # -- decoding ------------------------------------------------------------

    def _bad(self, error: TickDecodeError) -> None:
        if not self.skip_bad:
            raise error
        self.bad_entries += 1
        self.bad_ids.append(error.entry_id)

    def _map(self, key: str, field: str, payload: bytes | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        try:
            return decode_map(payload, key=key, entry_id=field)
        except TickDecodeError as error:
            self._bad(error)
            return None

    def _entries(self, items: Iterable[Any]) -> tuple[list[Entry], list[str], list[str]]:
        """Decode ``(id, fields)`` pairs: (entries, ids of bad entries, ids of
        entries with no fields, i.e. deleted). A ``(None, None)`` pair (Redis 6.2
        XAUTOCLAIM of a deleted entry, id unknown) is left to the caller."""
        entries: list[Entry] = []
        bad: list[str] = []
        gone: list[str] = []
        for entry_id, fields in items:
            if entry_id is None:
                continue
            entry_id = _text(entry_id)
            if not fields:
                gone.append(entry_id)
                continue
            try:
                if b"t" not in fields:
                    raise TickDecodeError(self.keys.ticks, entry_id, "no 't' field")
                entries.append(Entry(entry_id, decode_ticks(fields[b"t"], key=self.keys.ticks, entry_id=entry_id)))
            except TickDecodeError as error:
                self._bad(error)
                bad.append(entry_id)
        return entries, bad, gone

    def _stream_items(self, reply: Any) -> list[Any]:
        """The ``(id, fields)`` pairs of an XREAD/XREADGROUP reply for our stream."""
        for stream, items in reply or ():
            if _text(stream) == self.keys.ticks:
                return list(items)
        return []

    def _block(self, block_ms: int | None) -> int | None:
        if block_ms is None:
            return None
        if block_ms < 0:
            raise ValueError(f"block_ms must be >= 0 (0 blocks forever), not {block_ms}")
        if self._socket_timeout is not None and (block_ms == 0 or block_ms >= self._socket_timeout * 1000):
            raise ValueError(f"block_ms={block_ms} needs a client socket_timeout longer than the block "
                             f"(it is {self._socket_timeout} s; RedisTarget option ?socket_timeout=)")
        return block_ms

    # -- snapshots -----------------------------------------------------------

    def _latest(self, symbol: str) -> _Op[dict[str, Any] | None]:
        payload = yield _Call("hget", (self.keys.latest, symbol))
        return self._map(self.keys.latest, symbol, payload)

    def _watchlist(self, symbols: Iterable[str]) -> _Op[dict[str, dict[str, Any] | None]]:
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        payloads = yield _Call("hmget", (self.keys.latest, wanted))
        return {symbol: self._map(self.keys.latest, symbol, payload) for symbol, payload in zip(wanted, payloads, strict=True)}

    def _everything(self, key: str) -> _Op[dict[str, dict[str, Any]]]:
        found: dict[str, dict[str, Any]] = {}
        cursor = 0
        while True:
            cursor, chunk = yield _Call("hscan", (key, cursor), {"count": self.chunk})
            for field, payload in chunk.items():
                symbol = _text(field)
                value = self._map(key, symbol, payload)
                if value is not None:
                    found[symbol] = value
            if int(cursor) == 0:
                return found

    def _instrument(self, symbol: str) -> _Op[dict[str, Any] | None]:
        payload = yield _Call("hget", (self.keys.instruments, symbol))
        return self._map(self.keys.instruments, symbol, payload)

    def _symbol_of(self, broker_id: str | int) -> _Op[str | None]:
        symbol = yield _Call("hget", (self.keys.ids, str(broker_id)))
        return None if symbol is None else _text(symbol)

    def _meta(self) -> _Op[dict[str, str]]:
        meta = yield _Call("hgetall", (self.keys.meta,))
        return {_text(k): _text(v) for k, v in meta.items()}

    # -- streams -------------------------------------------------------------

    def _create_group(self, group: str, start: str) -> _Op[bool]:
        import redis.exceptions

        try:
            yield _Call("xgroup_create", (self.keys.ticks, group), {"id": start, "mkstream": True})
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    def _read_group(self, group: str, consumer: str, count: int, block_ms: int | None,
                    start: str) -> _Op[list[Entry]]:
        block = self._block(block_ms) if start == NEW else None
        reply = yield _Call("xreadgroup", (group, consumer, {self.keys.ticks: start}),
                            {"count": count, "block": block})
        entries, bad, gone = self._entries(self._stream_items(reply))
        if gone:  # re-reading our own pending entries (start != ">"): some were trimmed
            self.trimmed += len(gone)
        if bad or gone:
            yield _Call("xack", (self.keys.ticks, group, *bad, *gone))
        return entries

    def _ack(self, group: str, ids: tuple[str, ...]) -> _Op[int]:
        if not ids:
            return 0
        acked = yield _Call("xack", (self.keys.ticks, group, *ids))
        return int(acked)

    def _claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int) -> _Op[list[Entry]]:
        if min_idle_ms < 0 or count < 1:
            raise ValueError(f"claim_stale needs min_idle_ms >= 0 and count >= 1, not {min_idle_ms}, {count}")
        claimed: list[Entry] = []
        cursor = "0-0"
        while len(claimed) < count:
            reply = yield _Call("xautoclaim", (self.keys.ticks, group, consumer, min_idle_ms, cursor),
                                {"count": count - len(claimed)})
            # Redis 7: [cursor, entries, deleted ids] (deleted ids already left the group);
            # Redis 6.2: [cursor, entries] with a nil entry, id unknown, for each deleted one.
            start, cursor = cursor, _text(reply[0])
            entries, bad, gone = self._entries(reply[1])
            self.trimmed += len(reply[2]) if len(reply) > 2 else 0
            claimed += entries
            to_ack = bad + gone
            if any(entry_id is None for entry_id, _ in reply[1]):
                to_ack += yield from self._trimmed_pending(group, consumer, start, cursor)
            if to_ack:
                yield _Call("xack", (self.keys.ticks, group, *to_ack))
            if cursor == "0-0":
                break
        return claimed

    def _trimmed_pending(self, group: str, consumer: str, start: str, end: str) -> _Op[list[str]]:
        """Redis 6.2: the ids ``consumer`` has pending in [start, end) that are
        no longer in the stream (XAUTOCLAIM just gave them to it as nil entries)."""
        upper = "+" if end == "0-0" else "(" + end
        candidates: list[str] = []
        while True:
            page = yield _Call("xpending_range", (self.keys.ticks, group, start, upper, 1000, consumer))
            candidates += [_text(row["message_id"]) for row in page]
            if len(page) < 1000:
                break
            start = "(" + candidates[-1]
        if not candidates:
            return []
        found = yield [_Call("xrange", (self.keys.ticks, entry_id, entry_id), {"count": 1}) for entry_id in candidates]
        gone = [entry_id for entry_id, rows in zip(candidates, found, strict=True) if not rows]
        self.trimmed += len(gone)
        return gone

    def _pending(self, group: str) -> _Op[Pending]:
        summary = yield _Call("xpending", (self.keys.ticks, group))
        return Pending(
            count=int(summary["pending"]),
            first=None if summary["min"] is None else _text(summary["min"]),
            last=None if summary["max"] is None else _text(summary["max"]),
            consumers={_text(c["name"]): int(c["pending"]) for c in summary["consumers"]},
        )

    def _tail(self, last_id: str, count: int, block_ms: int | None) -> _Op[list[Entry]]:
        if last_id == "$" and block_ms is None:
            raise ValueError("tail('$') without block_ms never returns anything: give block_ms, "
                             "or start from an id (last_id() is the newest one)")
        reply = yield _Call("xread", ({self.keys.ticks: last_id},), {"count": count, "block": self._block(block_ms)})
        entries, _, _ = self._entries(self._stream_items(reply))
        return entries

    def _last_id(self) -> _Op[str]:
        newest = yield _Call("xrevrange", (self.keys.ticks,), {"count": 1})
        return _text(newest[0][0]) if newest else "0-0"


class TickStore(_Ops):
    """Synchronous reads of one partition (see the module docstring).

    ``client``: a ``redis.Redis`` or ``redis.cluster.RedisCluster`` with
    ``decode_responses=False`` (what :meth:`RedisTarget.client` gives);
    ``skip_bad``: skip undecodable payloads instead of raising; ``chunk``: HSCAN
    batch size for :meth:`everything`.
    """

    def __init__(self, client: redis.Redis | redis.cluster.RedisCluster, keys: Keys | None = None, *,
                 skip_bad: bool = False, chunk: int = 1000) -> None:
        super().__init__(client, keys or Keys(), skip_bad=skip_bad, chunk=chunk)

    def _run(self, op: _Op[T]) -> T:
        try:
            request = next(op)
            while True:
                try:
                    reply = self._call(request)
                except Exception as exc:  # let the operation handle it (BUSYGROUP)
                    request = op.throw(exc)
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result

    def _call(self, request: _Call | list[_Call]) -> Any:
        if isinstance(request, _Call):
            return getattr(self.client, request.method)(*request.args, **request.kwargs)
        pipe = self.client.pipeline(transaction=False)
        for call in request:
            getattr(pipe, call.method)(*call.args, **call.kwargs)
        return pipe.execute()

    # snapshots

    def latest(self, symbol: str) -> dict[str, Any] | None:
        """The latest tick of ``symbol`` ("NSE:INFY"), or None."""
        return self._run(self._latest(symbol))

    def watchlist(self, symbols: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """The latest tick of each symbol (None where there is none), in one HMGET."""
        return self._run(self._watchlist(symbols))

    def everything(self) -> dict[str, dict[str, Any]]:
        """Every instrument's latest tick (HSCAN in chunks: never blocks the server)."""
        return self._run(self._everything(self.keys.latest))

    def instruments(self) -> dict[str, dict[str, Any]]:
        """The whole instrument master, symbol -> row (HSCAN in chunks)."""
        return self._run(self._everything(self.keys.instruments))

    def instrument(self, symbol: str) -> dict[str, Any] | None:
        """The instrument row of ``symbol``, or None."""
        return self._run(self._instrument(symbol))

    def symbol_of(self, broker_id: str | int) -> str | None:
        """The symbol of a broker id (Kite token, Upstox instrument_key), or None."""
        return self._run(self._symbol_of(broker_id))

    def meta(self) -> dict[str, str]:
        """The partition's ``meta`` hash."""
        return self._run(self._meta())

    # streams

    def create_group(self, group: str, start: str = "$") -> bool:
        """Create consumer group ``group`` reading from ``start`` ("$": only new
        entries; "0": the whole stream), creating the stream if needed. False if
        it already exists (its position is left alone)."""
        return self._run(self._create_group(group, start))

    def read_group(self, group: str, consumer: str, count: int = 100, block_ms: int | None = None,
                   start: str = NEW) -> list[Entry]:
        """Up to ``count`` entries for ``consumer``: new ones (``start=">"``,
        waiting up to ``block_ms`` for one), or with ``start="0"`` (or an id) the
        ones already delivered to it and not acknowledged: a restarted consumer
        reads its own backlog that way first."""
        return self._run(self._read_group(group, consumer, count, block_ms, start))

    def ack(self, group: str, *ids: str) -> int:
        """Acknowledge entries; returns how many were pending."""
        return self._run(self._ack(group, ids))

    def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int = 100) -> list[Entry]:
        """Take over up to ``count`` entries that other consumers (crashed ones)
        have held for at least ``min_idle_ms`` without acknowledging (XAUTOCLAIM)."""
        return self._run(self._claim_stale(group, consumer, min_idle_ms, count))

    def pending(self, group: str) -> Pending:
        """How many entries the group has delivered but not seen acknowledged, and by whom."""
        return self._run(self._pending(group))

    def tail(self, last_id: str = "$", count: int = 100, block_ms: int | None = None) -> list[Entry]:
        """Up to ``count`` entries after ``last_id`` (XREAD, no group); with "$",
        only entries added while blocking. Pass the last entry's id to the next call."""
        return self._run(self._tail(last_id, count, block_ms))

    def last_id(self) -> str:
        """The newest entry's id ("0-0" for an empty stream): a position for :meth:`tail`."""
        return self._run(self._last_id())


class AsyncTickStore(_Ops):
    """The ``redis.asyncio`` twin of :class:`TickStore`: same arguments, same
    methods, as coroutines."""

    def __init__(self, client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster, keys: Keys | None = None,
                 *, skip_bad: bool = False, chunk: int = 1000) -> None:
        super().__init__(client, keys or Keys(), skip_bad=skip_bad, chunk=chunk)

    async def _run(self, op: _Op[T]) -> T:
        try:
            request = next(op)
            while True:
                try:
                    reply = await self._call(request)
                except Exception as exc:
                    request = op.throw(exc)
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def _call(self, request: _Call | list[_Call]) -> Any:
        if isinstance(request, _Call):
            reply: Awaitable[Any] = getattr(self.client, request.method)(*request.args, **request.kwargs)
            return await reply
        pipe = self.client.pipeline(transaction=False)
        for call in request:
            getattr(pipe, call.method)(*call.args, **call.kwargs)
        return await pipe.execute()

    async def latest(self, symbol: str) -> dict[str, Any] | None:
        return await self._run(self._latest(symbol))

    async def watchlist(self, symbols: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        return await self._run(self._watchlist(symbols))

    async def everything(self) -> dict[str, dict[str, Any]]:
        return await self._run(self._everything(self.keys.latest))

    async def instruments(self) -> dict[str, dict[str, Any]]:
        return await self._run(self._everything(self.keys.instruments))

    async def instrument(self, symbol: str) -> dict[str, Any] | None:
        return await self._run(self._instrument(symbol))

    async def symbol_of(self, broker_id: str | int) -> str | None:
        return await self._run(self._symbol_of(broker_id))

    async def meta(self) -> dict[str, str]:
        return await self._run(self._meta())

    async def create_group(self, group: str, start: str = "$") -> bool:
        return await self._run(self._create_group(group, start))

    async def read_group(self, group: str, consumer: str, count: int = 100, block_ms: int | None = None,
                         start: str = NEW) -> list[Entry]:
        return await self._run(self._read_group(group, consumer, count, block_ms, start))

    async def ack(self, group: str, *ids: str) -> int:
        return await self._run(self._ack(group, ids))

    async def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int = 100) -> list[Entry]:
        return await self._run(self._claim_stale(group, consumer, min_idle_ms, count))

    async def pending(self, group: str) -> Pending:
        return await self._run(self._pending(group))

    async def tail(self, last_id: str = "$", count: int = 100, block_ms: int | None = None) -> list[Entry]:
        return await self._run(self._tail(last_id, count, block_ms))

    async def last_id(self) -> str:
        return await self._run(self._last_id())
