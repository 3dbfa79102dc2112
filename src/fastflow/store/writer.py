"""The plant's write path: one pipelined Redis write per flush.

:class:`RedisWriter` is a flush consumer (``plant.add_consumer(writer.on_flush)``).
For each :class:`~fastflow.hotpath.TickBatch` it writes, in one ``write`` on
its own connection (docs/redis.md)::

    HSET    ff:{kite}:latest  sym_1 tick_1 ... sym_n tick_n      built in C (TickBatch.resp_hset)
    EXPIRE  ff:{kite}:latest  ttl                                  at most once a second
    XADD    ff:{kite}:ticks MAXLEN ~ N * t <msgpack array of the n ticks>   N: stream_maxlen, fewer for big flushes
    PUBLISH ff:{kite}:live  <the same array>                       SPUBLISH on a Redis >= 7 cluster

The msgpack array is ``batch.frame()``: the pre-encoded tick blobs behind an
array header, never re-encoded. Replies are parsed with hiredis; no Python
object is made per tick.

Backpressure: at most ``max_in_flight`` flushes wait for their replies (and
none while the socket's write buffer is over its high-water mark). A flush
that finds the writer full, or Redis away, is not queued: its stream entry
and live message are dropped and counted (``dropped``), and the latest state
is marked stale; as soon as there is room again the writer rewrites the whole
latest hash from the state (``MarketState.snapshot()``), so Redis converges to
the exact state. Decoding never blocks on Redis, and memory stays bounded.
The connection's set-up (master, meta) and the rewrites are not held to
``max_in_flight``: flushes arriving while Redis digests a 5 MB set-up are
written behind it, not dropped (each drop would cost one more rewrite).

Latency: when Redis has acknowledged every command of a flush's pipeline
(all its replies arrived, none an error), the writer observes the age of the
flush's ticks, ``now - batch.receive_time_ns`` weighted by the tick count, in
``tick_age`` (``fastflow_tick_age_seconds{stage="redis"}``). Dropped flushes
are not observed. :meth:`RedisWriter.metrics` renders its counters for the
plant's ``/metrics``.

Bounds: the stream keeps about ``maxlen`` entries, and fewer when flushes are
big: N is recomputed every 64 flushes so that N entries of the mean frame size
stay within ``max_bytes``. A Redis at its ``maxmemory`` (``noeviction``) answers
the writes with ``OOM``: the writer counts it (``oom``), reports ``full`` in its
health, trims the stream to half its length (``XTRIM`` is allowed when full)
and marks the latest hash stale, so it is rewritten whole once writes succeed
again. The plant keeps decoding meanwhile.

The day's rollover (:meth:`RedisWriter.roll_over`): the plant hands the writer the
new day's state between two flushes; on the same connection, behind the flushes
already written, the writer rewrites the instrument master (``DEL`` + ``HSET`` of
``instruments`` and ``ids``), deletes the latest entries of the instruments that
expired (``HDEL``) and records the day in meta. Instruments that go on keep their
last tick in the latest hash until their first tick of the new day; the tick
stream is left alone (it is bounded). A writer that is not connected does all of
it in its next connection's set-up.

Failures: a lost connection (Redis restart, failover) reconnects with capped
exponential backoff and full jitter; on every (re)connect the writer writes
the instrument master and meta and the full latest state, then resumes. On a
cluster the writer talks to the node that owns the partition's slot (every
key carries the partition's hash tag) and follows ``MOVED`` by reconnecting.

Cold code apart from :meth:`RedisWriter.on_flush`, which runs once per flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import msgpack

from fastflow.config import FlowSection, RedisSection
from fastflow.hotpath import MarketState, TickBatch
from fastflow.obs import metrics
from fastflow.obs.backoff import Backoff
from fastflow.obs.state import State
from fastflow.store.keys import Keys
from fastflow.store.resp import Endpoint, RedisSetupError, RespProtocol, bulk, command, partition_node

logger = logging.getLogger(__name__)

#: Flow events of dropped flushes kept for the next write, at most.
FLOW_BACKLOG = 10_000

class RedisWriter:
    """Writes every flush of ``state`` to Redis (see the module docstring)."""

    def __init__(
        self,
        state: MarketState,
        endpoint: Endpoint,
        keys: Keys,
        *,
        maxlen: int = RedisSection.stream_maxlen,
        max_bytes: int = RedisSection.stream_max_bytes,
        ttl: int = RedisSection.ttl,
        max_in_flight: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 5.0,
        backoff_reset_after: float = RedisSection.backoff_reset_after,
        connect_timeout: float = 5.0,
        source: str = "",
        rng: random.Random | None = None,
        flow_retention: float = FlowSection.retention,
        flow_max_bytes: int = FlowSection.stream_max_bytes,
    ) -> None:
        if maxlen < 1 or ttl < 1 or max_in_flight < 1 or max_bytes < 1:
            raise ValueError("maxlen, max_bytes, ttl and max_in_flight must be >= 1")
        self.state = state
        self.endpoint = endpoint
        self.keys = keys
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self.source = source  # in meta: "broker", "simulator" or "replay" (the gateway's market clock)
        self._meta: dict[str, str] = {}  # fields set_meta() keeps in the partition's meta
        self.entries = maxlen  # the stream's current bound: maxlen, or fewer so that it fits max_bytes
        self._frame_bytes = 0  # frame bytes since the bound was last computed
        self._frames = 0
        self.full = False  # Redis answered OOM (maxmemory, noeviction) to the last write
        self._trim_due = 0.0
        self._fits = maxlen  # the entries that fitted in Redis's memory (halved at each OOM)
        self._said_full = -1e9  # when the last "full" / "accepted again" line was logged
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.connect_timeout = connect_timeout
        self._backoff = Backoff(backoff_base, backoff_cap, rng, reset_after=backoff_reset_after)
        self._protocol: RespProtocol | None = None
        # Per write (a flush, a rewrite, the connection's set-up): [replies still
        # expected, the flush's receive_time_ns (0: not a flush, or a reply was an
        # error), its tick count]. One small list per flush, none per tick.
        #: Writes waiting for replies: [replies left, receive_time_ns, ticks, 1 for a flush].
        self._pending: deque[list[int]] = deque()
        #: Flushes among them (the set-up, meta and rewrites are not held to max_in_flight).
        self._flights = 0
        self._added = 0
        self.tick_age = metrics.tick_age("redis")
        self._stale = True  # the latest hash needs a full rewrite
        self._expire_due = 0.0
        self._stop = asyncio.Event()
        #: Set when the writes in flight may have settled (a flush acknowledged with
        #: nothing behind it, a connection made or lost): what drain() waits on.
        self._changed = asyncio.Event()
        # Options flow (TickBatch.flow): one stream entry per event, trimmed by time on
        # every XADD (MINID ~) and by bytes once a second (XTRIM MAXLEN ~), and one live
        # message per flush. Events of a dropped flush wait (up to FLOW_BACKLOG) and go
        # out with the next written one: flow is not state, a rewrite cannot restore it.
        if flow_retention <= 0 or flow_max_bytes < 1:
            raise ValueError("flow_retention must be > 0 and flow_max_bytes >= 1")
        self.flow_retention = flow_retention
        self.flow_max_bytes = flow_max_bytes
        self._flow_key = bulk(keys.flow.encode())
        self._flow_backlog: list[bytes] = []
        self._flow_bytes = 0  # event bytes and count since the byte bound was last computed
        self._flow_count = 0
        self._flow_mean = 1024.0
        self._flow_trim_due = 0.0
        self._latest = keys.latest.encode()
        self._xadd_head = self._xadd(maxlen)
        self._publish_head = b"*3\r\n" + bulk(b"PUBLISH") + bulk(keys.live.encode())
        self._flowlive_head = b"*3\r\n" + bulk(b"PUBLISH") + bulk(keys.flowlive.encode())
        self._expire = command("EXPIRE", keys.latest, ttl)
        self._master_cache: list[bytes] | None = None
        self._started_ns = 0  # meta's writer_started_ns: the first connect's time
        #: Symbols whose latest entries are deleted (the last rollover's expired
        #: instruments): written at the rollover and in every connection's set-up after it.
        self.expired: frozenset[str] = frozenset()
        self._expired_written = True
        self.state_name = State.IDLE
        self.last_error = ""
        self.counters = {
            "connects": 0, "reconnects": 0, "flushes": 0, "ticks": 0, "written": 0, "dropped": 0,
            "rewrites": 0, "errors": 0, "bytes": 0, "oom": 0, "flow_events": 0, "flow_dropped": 0,
        }

    def _xadd(self, entries: int) -> bytes:
        """``XADD key MAXLEN ~ entries * t``: everything but the frame's bulk string."""
        return b"*8\r\n" + b"".join(
            bulk(str(a).encode()) for a in ("XADD", self.keys.ticks, "MAXLEN", "~", entries, "*", "t"))

    def _bound(self, frame_bytes: int) -> None:
        """Every 64 flushes: the entries that fit ``max_bytes`` at the mean frame size
        (plus Redis's own per-entry overhead), at most ``maxlen``."""
        self._frame_bytes += frame_bytes
        self._frames += 1
        if self._frames < 64:
            return
        mean = self._frame_bytes / self._frames + 64
        entries = max(1, min(self.maxlen, self._fits, int(self.max_bytes / mean)))
        self._frame_bytes = self._frames = 0
        if entries != self.entries:
            self.entries = entries
            self._xadd_head = self._xadd(entries)

    # -- the hot side: once per flush ------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Flushes written and not yet answered."""
        return len(self._pending)

    def busy(self) -> bool:
        """True while :meth:`on_flush` would drop: not connected, the transport
        over its high-water mark, or ``max_in_flight`` flushes unanswered. A
        replay waits on this instead of losing flushes."""
        protocol = self._protocol
        return protocol is None or protocol.paused or self._flights >= self.max_in_flight

    def on_flush(self, batch: TickBatch) -> None:
        """Write ``batch`` now, or drop its stream entry and live message (counted)
        and mark the latest state stale when the writer is full or disconnected."""
        self.counters["flushes"] += 1
        self.counters["ticks"] += len(batch)
        protocol = self._protocol
        if protocol is None or protocol.paused or self._flights >= self.max_in_flight:
            self.counters["dropped"] += 1
            self._stale = True
            if batch.flow_count:
                self._hold_flow(batch.flow_events())
            return
        if self._stale:
            self._rewrite(protocol)
        self._write_batch(protocol, batch)

    def _write_batch(self, protocol: RespProtocol, batch: TickBatch) -> None:
        assert protocol.transport is not None
        frame = batch.frame()
        self._bound(len(frame))
        head = b"$%d\r\n" % len(frame)
        parts = [batch.resp_hset(self._latest), self._xadd_head, head, frame, b"\r\n",
                 self._publish_head, head, frame, b"\r\n"]
        replies = 3
        now = time.monotonic()
        if now >= self._expire_due:
            parts.append(self._expire)
            replies += 1
            self._expire_due = now + 1.0
        if batch.flow_count or self._flow_backlog:
            replies += self._flow_parts(parts, batch, now)
        protocol.transport.writelines(parts)
        self._pending.append([replies, batch.receive_time_ns, len(batch), 1])
        self._flights += 1
        self._added += 1
        self.counters["written"] += 1
        self.counters["bytes"] += sum(len(p) for p in parts)

    def _hold_flow(self, events: list[bytes]) -> None:
        """Keep a dropped flush's events for the next write (the oldest beyond FLOW_BACKLOG are lost, counted)."""
        self._flow_backlog += events
        over = len(self._flow_backlog) - FLOW_BACKLOG
        if over > 0:
            del self._flow_backlog[:over]
            self.counters["flow_dropped"] += over

    def _flow_parts(self, parts: list[bytes], batch: TickBatch, now: float) -> int:
        """The flush's flow commands (after any held back): one XADD per event, trimmed
        to the retention by MINID, one live message with them all; once a second an
        XTRIM to the byte bound. Returns the replies they make."""
        events = batch.flow_events()
        if self._flow_backlog:
            events, self._flow_backlog = self._flow_backlog + events, []
            frame = msgpack.Packer().pack_array_header(len(events)) + b"".join(events)
        else:
            frame = batch.flow
        cutoff = max(0, time.time_ns() // 1_000_000 - int(self.flow_retention * 1000))
        head = b"*8\r\n" + bulk(b"XADD") + self._flow_key + bulk(b"MINID") + bulk(b"~") + \
            bulk(b"%d-0" % cutoff) + bulk(b"*") + bulk(b"e")
        size = 0
        for event in events:
            parts += [head, b"$%d\r\n" % len(event), event, b"\r\n"]
            size += len(event)
        parts += [self._flowlive_head, b"$%d\r\n" % len(frame), frame, b"\r\n"]
        replies = len(events) + 1
        self.counters["flow_events"] += len(events)
        self._flow_bytes += size
        self._flow_count += len(events)
        if now >= self._flow_trim_due:
            self._flow_trim_due = now + 1.0
            if self._flow_count:
                self._flow_mean = self._flow_bytes / self._flow_count + 64  # Redis's own bytes per entry
                self._flow_bytes = self._flow_count = 0
            entries = max(1, int(self.flow_max_bytes / self._flow_mean))
            parts.append(command("XTRIM", self.keys.flow, "MAXLEN", "~", entries))
            replies += 1
        return replies

    def _rewrite(self, protocol: RespProtocol) -> None:
        """The whole latest state in one HSET (after a drop or a reconnect)."""
        assert protocol.transport is not None
        self._stale = False
        snapshot = self.state.snapshot()
        if len(snapshot):
            protocol.transport.writelines([snapshot.resp_hset(self._latest), self._expire])
            self._pending.append([2, 0, 0, 0])
            self.counters["rewrites"] += 1

    def _on_reply(self, reply: Any) -> None:
        pending = self._pending
        if isinstance(reply, hiredis.ReplyError):
            if pending:
                pending[0][1] = 0  # not written: not observed
            self.counters["errors"] += 1
            self.last_error = str(reply)
            if self.last_error.startswith("OOM"):
                self._out_of_memory()
            elif self.last_error.startswith(("MOVED", "ASK", "CLUSTERDOWN", "READONLY")):
                logger.warning("redis: %s: reconnecting to the slot's owner", self.last_error)
                if self._protocol is not None and self._protocol.transport is not None:
                    self._protocol.transport.abort()
            elif self.counters["errors"] == 1 or self.counters["errors"] % 1000 == 0:
                logger.error("redis: command failed (%d so far): %s", self.counters["errors"], reply)
        if not pending:  # a reply to the connection set-up
            return
        head = pending[0]
        head[0] -= 1
        if head[0] == 0:
            pending.popleft()
            self._flights -= head[3]
            if head[1]:  # a flush, acknowledged whole: its ticks' age at Redis
                self.tick_age.observe_ns(max(0, time.time_ns() - head[1]), head[2])
                if self.full:
                    self.full = False
                    if time.monotonic() - self._said_full >= 10.0:
                        self._said_full = time.monotonic()
                        logger.warning("redis: writes accepted again (the stream now holds at most %d entries)",
                                       self.entries)
            self._catch_up()

    def _out_of_memory(self) -> None:
        """Redis is at its maxmemory: count it, say so once, shrink the stream (at most
        once a second), and rewrite the latest hash whole once writes succeed."""
        self.counters["oom"] += 1
        self._stale = True
        now = time.monotonic()
        if not self.full:
            self.full = True
            if now - self._said_full >= 10.0:
                self._said_full = now
                logger.error("redis: full (maxmemory reached, policy noeviction): writes refused (%d so far); "
                             "trimming the tick stream and retrying (%s)", self.counters["oom"], self.last_error)
        protocol = self._protocol
        if now >= self._trim_due and protocol is not None and protocol.transport is not None:
            self._trim_due = now + 1.0
            # Half of what the stream can hold now: its MAXLEN, or the entries added since
            # connecting when fewer (halving a MAXLEN far above the length trims nothing).
            self.entries = self._fits = max(1, min(self.entries, self._added) // 2)
            self._xadd_head = self._xadd(self.entries)
            protocol.transport.write(command("XTRIM", self.keys.ticks, "MAXLEN", "~", self.entries))
            self._pending.append([1, 0, 0, 0])

    def set_meta(self, field: str, value: str) -> None:
        """Keep ``field`` = ``value`` in the partition's meta (now, and after every
        reconnect): e.g. the plant's ingest state, which the gateways read."""
        self._meta[field] = value
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.write(command("HSET", self.keys.meta, field, value))
            self._pending.append([1, 0, 0, 0])

    def roll_over(self, state: MarketState, expired: Iterable[str], meta: dict[str, str] | None = None) -> None:
        """Write the new day's ``state`` from the next flush on (the plant calls this
        between two flushes): its instrument master replaces the old one, the latest
        entries of ``expired`` symbols are deleted and ``meta`` fields are set (kept
        like :meth:`set_meta`'s), in that order on the writer's one connection, behind
        every flush already written; if not connected, in the next connection's set-up."""
        self.state = state
        self._master_cache = None
        gone = set(expired) | (set() if self._expired_written else set(self.expired))
        self.expired = frozenset(gone - {str(s) for s in state.instruments.symbol})  # re-listed: kept
        self._expired_written = False
        self._meta.update(meta or {})
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            self._write_master(protocol)
            if self._meta:
                protocol.transport.write(command("HSET", self.keys.meta, *_flatten(self._meta.items())))
                self._pending.append([1, 0, 0, 0])

    def _write_master(self, protocol: RespProtocol) -> None:
        assert protocol.transport is not None
        master = self._master()
        protocol.transport.writelines(master)
        self._pending.append([len(master), 0, 0, 0])
        self._expired_written = True

    def _catch_up(self) -> None:
        """Rewrite a stale latest state as soon as there is room (also when the feed is
        idle); called when a flush is answered and when the socket drains, so it also
        wakes whoever waits in :meth:`drain`, :meth:`acknowledged` or :meth:`writable`."""
        self._changed.set()
        protocol = self._protocol
        if self._stale and protocol is not None and not protocol.paused and self._flights < self.max_in_flight:
            self._rewrite(protocol)

    # -- connection ------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True when :meth:`on_flush` would write rather than drop."""
        protocol = self._protocol
        return protocol is not None and not protocol.paused and self._flights < self.max_in_flight

    def health(self) -> dict[str, Any]:
        return {"state": self.state_name, "in_flight": len(self._pending), "last_error": self.last_error,
                "full": self.full, "stream_entries": self.entries, **self.counters}

    def metrics(self) -> list[list[str]]:
        """The writer's counters and gauges as Prometheus sections
        (``fastflow_redis_*``); the ``tick_age`` histogram is rendered by the
        plant with its own stage, in one family."""
        n = self.counters
        return [
            metrics.gauge("redis_connected", "1 while the writer is connected to Redis",
                          1 if self.state_name == "connected" else 0),
            metrics.gauge("redis_in_flight", "Writes waiting for their replies", len(self._pending)),
            metrics.counter("redis_connects_total", "Connections made to Redis", n["connects"]),
            metrics.counter("redis_reconnects_total", "Connections lost or refused, then retried",
                            n["reconnects"]),
            metrics.counter("redis_flushes_total", "Flushes handed to the writer", n["flushes"]),
            metrics.counter("redis_ticks_total", "Ticks in the flushes handed to the writer", n["ticks"]),
            metrics.counter("redis_written_total", "Flushes written (HSET + XADD + PUBLISH)", n["written"]),
            metrics.counter("redis_dropped_total",
                            "Flushes whose stream entry and live message were dropped (writer full or "
                            "disconnected)", n["dropped"]),
            metrics.counter("redis_rewrites_total", "Full rewrites of the latest hash", n["rewrites"]),
            metrics.counter("redis_flow_events_total", "Options-flow events written to the flow stream",
                            n["flow_events"]),
            metrics.counter("redis_flow_dropped_total", "Options-flow events lost: more than the backlog "
                            "waited while the writer was full or disconnected", n["flow_dropped"]),
            metrics.counter("redis_errors_total", "Error replies from Redis", n["errors"]),
            metrics.counter("redis_oom_total", "Writes Redis refused at its maxmemory (OOM)", n["oom"]),
            metrics.gauge("redis_full", "1 while Redis refuses writes at its maxmemory", 1 if self.full else 0),
            metrics.gauge("redis_stream_entries", "The tick stream's current bound in entries", self.entries),
            metrics.counter("redis_bytes_total", "Bytes written to Redis", n["bytes"]),
        ]

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every write so far is acknowledged (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending or (self._stale and self._protocol is not None) or self._protocol is None:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"redis writer not drained: {self.health()}") from None

    async def writable(self) -> None:
        """Until :meth:`busy` is False (a replay waits here instead of dropping flushes)."""
        while self.busy() and not self._stop.is_set():
            self._changed.clear()
            await self._changed.wait()

    async def acknowledged(self) -> None:
        """Wait until no flush is in flight (the plant's shutdown; it bounds the wait)."""
        while self._pending and self._protocol is not None:
            self._changed.clear()
            await self._changed.wait()

    async def run(self) -> None:
        """Connect, keep connected, until :meth:`stop`."""
        while not self._stop.is_set():
            self.state_name = State.CONNECTING
            try:
                protocol = await self._connect()
            except (OSError, TimeoutError, ConnectionError, RedisSetupError) as exc:
                self.last_error = str(exc)
                logger.warning("redis: cannot connect (%s): retrying", exc)
            else:
                self._backoff.up(time.monotonic())
                self._fits = self.maxlen  # a new connection (maybe a new Redis): memory is learnt again
                self.state_name = State.CONNECTED
                stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
                waiting: set[asyncio.Future[Any]] = {protocol.lost, stop}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                self._protocol = None
                self._pending.clear()
                self._flights = 0
                self._stale = True
                self._changed.set()
                if protocol.transport is not None:
                    protocol.transport.close()
                if self._stop.is_set():
                    break
                logger.warning("redis: connection lost: reconnecting")
            self.state_name = State.BACKOFF
            self.counters["reconnects"] += 1
            delay = self._backoff.next_delay(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.state_name = State.STOPPED

    async def _connect(self) -> RespProtocol:
        ep = self.endpoint
        protocol, version, _ = await partition_node(
            ep, self._latest, lambda: RespProtocol(self._on_reply, self._catch_up), self.connect_timeout)
        publish = b"SPUBLISH" if ep.cluster and version >= (7, 0) else b"PUBLISH"
        self._publish_head = b"*3\r\n" + bulk(publish) + bulk(self.keys.live.encode())
        self._flowlive_head = b"*3\r\n" + bulk(publish) + bulk(self.keys.flowlive.encode())
        self._protocol = protocol
        self._pending.clear()
        self._flights = 0
        self._added = 0  # stream entries added on this connection
        self.counters["connects"] += 1
        self._write_master(protocol)
        assert protocol.transport is not None
        if self._meta:
            protocol.transport.write(command("HSET", self.keys.meta, *_flatten(self._meta.items())))
            self._pending.append([1, 0, 0, 0])
        self._stale = True
        self._rewrite(protocol)
        self._changed.set()
        return protocol

    def _master(self) -> list[bytes]:
        """The instrument master and meta, and the deletion of the last rollover's
        expired latest entries (written on every connect and at a rollover), in one
        ``MULTI``/``EXEC``: a reader never sees the master half replaced. One reply
        per command (``MULTI``'s OK, a QUEUED each, ``EXEC``'s array)."""
        if self._master_cache is not None:
            return self._master_cache
        if not self._started_ns:
            self._started_ns = time.time_ns()
        instruments = self.state.instruments
        symbols = [str(s) for s in instruments.symbol]
        ids = [str(k) for k in instruments.instrument_key]
        rows = _instrument_rows(instruments, symbols)
        # Other names of an instrument resolve like its broker id (Upstox derivatives'
        # Kite-style symbols: NFO:NIFTY26DECFUT -> NSE:NIFTY FUT 29 DEC 26).
        aliases = instruments.aliases() if hasattr(instruments, "aliases") else {}
        master = [
            command("MULTI"),
            command("DEL", self.keys.instruments, self.keys.ids),
            command("HSET", self.keys.instruments, *_flatten(zip(symbols, rows, strict=True))),
            command("HSET", self.keys.ids, *_flatten(zip(ids, symbols, strict=True)),
                    *_flatten((alias, symbols[slot]) for alias, slot in aliases.items())),
            command("HSET", self.keys.meta, "broker", self.state.broker, "instruments", len(symbols),
                    "partition", self.keys.partition, "writer_started_ns", self._started_ns,
                    "source", self.source or "broker"),
        ]
        if self.expired:
            master.append(command("HDEL", self.keys.latest, *sorted(self.expired)))
        master.append(command("EXEC"))
        self._master_cache = master
        return master



def _flatten(pairs: Iterable[tuple[Any, Any]]) -> list[Any]:
    return [item for pair in pairs for item in pair]


def _instrument_rows(instruments: Any, symbols: Sequence[str]) -> list[bytes]:
    """msgpack of each instrument's row (cold: once per connect, cached)."""
    rows = []
    for symbol in symbols:
        row = instruments.row(symbol)
        rows.append(msgpack.packb({k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                                   for k, v in row.items()}))
    return rows
