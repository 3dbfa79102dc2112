"""The gateway's feed: one partition's live channel in Redis, and the state to
start from.

:class:`LiveSubscription` keeps one pub/sub connection to the node that
serves the partition (SSUBSCRIBE on a Redis >= 7 cluster, SUBSCRIBE
otherwise) and hands every published frame to the gateway as it is parsed,
with no queue in between. On every (re)connect it first subscribes, then
reads the instrument list and the latest hash, and gives the gateway one seed
frame: the latest hash merged with whatever was published while it was being
read (a published tick replaces the hash's entry when its ``seq`` is not
older). So a Redis restart or a dropped connection costs the clients no state:
they get every instrument that changed meanwhile, at its latest value.

While the partition has no instrument list (no plant has connected yet), it
waits and polls. A half-open connection is caught by PINGs on the subscribed
connection: no reply within ``3 * ping_interval`` reconnects. Reconnects use
capped exponential backoff with full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any, Protocol

import msgpack

from fastflow.config import RedisSection
from fastflow.gateway.flow import RECENT as FLOW_RECENT
from fastflow.obs.backoff import Backoff
from fastflow.obs.faults import Faults
from fastflow.store.keys import Keys
from fastflow.store.resp import RedisSetupError, RespProtocol, command, partition_node
from fastflow.store.target import RedisTarget

logger = logging.getLogger(__name__)

_MESSAGES = (b"message", b"smessage")
_SUBSCRIBED = (b"subscribe", b"ssubscribe")


class Sink(Protocol):
    """What the subscription feeds (the gateway)."""

    def reset(self, symbols: list[str], ids: dict[str, str], seed: bytes, meta: dict[str, str]) -> None: ...

    def frame(self, frame: bytes) -> None: ...

    def update_meta(self, meta: dict[str, str]) -> None: ...

    def seed_flow(self, events: list[bytes]) -> None: ...

    def flow(self, frame: bytes) -> None: ...


class LiveSubscription:
    """Keeps the gateway fed from ``keys.live`` (see the module docstring)."""

    def __init__(self, target: RedisTarget, keys: Keys, sink: Sink, *, ping_interval: float = 5.0,
                 poll_interval: float = 0.25, backoff_base: float = 0.05, backoff_cap: float = 5.0,
                 backoff_reset_after: float = RedisSection.backoff_reset_after, connect_timeout: float = 5.0,
                 meta_interval: float = 1.0, rng: random.Random | None = None) -> None:
        self.target = target
        self.keys = keys
        self.sink = sink
        self.ping_interval = ping_interval
        self.poll_interval = poll_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.connect_timeout = connect_timeout
        self.meta_interval = meta_interval
        self._backoff = Backoff(backoff_base, backoff_cap, rng, reset_after=backoff_reset_after)
        self._stop = asyncio.Event()
        self._buffer: list[bytes] | None = []  # frames published while seeding; None once live
        self._subscribed: asyncio.Future[None] | None = None
        self._last_data = 0.0
        self._reload = ""  # why the session was ended to load the master again
        self._flow_channel = keys.flowlive.encode()
        self.state = "idle"
        self.faults = Faults("redis pub/sub", logger)
        self.last_error = ""
        self.counters = {"connects": 0, "reconnects": 0, "frames": 0, "bytes": 0, "seeds": 0, "errors": 0,
                         "flow_frames": 0}

    @property
    def live(self) -> bool:
        return self.state == "live"

    def stop(self) -> None:
        self._stop.set()

    # -- replies: once per published frame ------------------------------------------

    def _on_reply(self, reply: Any) -> None:
        self._last_data = time.monotonic()
        if type(reply) is list and len(reply) == 3 and reply[0] in _MESSAGES and reply[1] == self._flow_channel:
            self.counters["flow_frames"] += 1
            try:
                self.sink.flow(reply[2])  # flow is a tape: even while seeding, nothing to merge
            except Exception as exc:
                self.faults.record("flow frame", exc)
        elif type(reply) is list and len(reply) == 3 and reply[0] in _MESSAGES:
            frame = reply[2]
            self.counters["frames"] += 1
            self.counters["bytes"] += len(frame)
            if self._buffer is None:
                try:
                    self.sink.frame(frame)
                except Exception as exc:  # the gateway's failure on one frame: the subscription goes on
                    self.faults.record("frame", exc)
            else:
                self._buffer.append(frame)
        elif type(reply) is list and reply and reply[0] in _SUBSCRIBED:
            if self._subscribed is not None and not self._subscribed.done():
                self._subscribed.set_result(None)
        elif isinstance(reply, Exception):
            self.counters["errors"] += 1
            self.last_error = str(reply)
            logger.warning("redis pub/sub: %s", reply)

    # -- the connection -------------------------------------------------------------

    async def run(self) -> None:
        """Stay subscribed until :meth:`stop`."""
        while not self._stop.is_set():
            self.state = "connecting"
            try:
                await self._session()
            except (OSError, TimeoutError, ConnectionError, RedisSetupError, _Lost) as exc:
                error = str(exc) or type(exc).__name__
                # Said once per outage (and when the reason changes), not on every retry.
                repeated = error == self.last_error and self.state != "live"
                self.last_error = error
                (logger.debug if repeated else logger.warning)("redis pub/sub: %s: reconnecting", error)
            except Exception as exc:  # a bug must not end the subscription for good: log it, retry
                self.counters["errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("redis pub/sub: unexpected error: reconnecting")
            if self._stop.is_set():
                break
            self.state = "backoff"
            self.counters["reconnects"] += 1
            delay = self._backoff.next_delay(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.state = "stopped"

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._buffer = []
        self._subscribed = loop.create_future()
        protocol, version, _ = await partition_node(
            self.target, self.keys.live.encode(), lambda: RespProtocol(self._on_reply), self.connect_timeout)
        client = self.target.async_client()
        try:
            self.counters["connects"] += 1
            assert protocol.transport is not None
            verb = "SSUBSCRIBE" if self.target.cluster and version >= (7, 0) else "SUBSCRIBE"
            protocol.transport.write(command(verb, self.keys.live, self.keys.flowlive))  # one slot: one tag
            await self._until(protocol, asyncio.wait_for(asyncio.shield(self._subscribed), self.connect_timeout))
            while True:
                symbols, ids, latest, meta, flow = await self._until(protocol, self._load(client))
                if symbols:
                    break
                self.state = "waiting_for_plant"
                self._buffer = []  # the latest hash will cover them
                await self._until(protocol, asyncio.sleep(self.poll_interval))
            assert self._buffer is not None
            seed = merge_seed(latest, self._buffer)
            self._buffer = None
            self.counters["seeds"] += 1
            self.state = "live"  # first: the sink may report itself ready from reset()
            self._backoff.up(time.monotonic())
            self.sink.reset(symbols, ids, seed, meta)
            self.sink.seed_flow(flow)
            poller = asyncio.create_task(self._poll_meta(client, meta, protocol))
            try:
                await self._watch(protocol)
            finally:
                poller.cancel()
        finally:
            self._buffer = []
            if protocol.transport is not None:
                protocol.transport.close()
            await client.aclose()

    async def _until(self, protocol: RespProtocol, work: Any) -> Any:
        """``await work`` unless the connection is lost or the subscription stopped first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, protocol.lost, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise _Lost("stopped" if self._stop.is_set() else "connection lost")
        return task.result()

    async def _load(self, client: Any) -> tuple[list[str], dict[str, str], dict[bytes, bytes], dict[str, str],
                                                 list[bytes]]:
        keys = self.keys
        names = await client.hkeys(keys.instruments)
        if not names:
            return [], {}, {}, {}, []
        ids = await client.hgetall(keys.ids)
        latest = await client.hgetall(keys.latest)
        meta = await client.hgetall(keys.meta)
        recent = await client.xrevrange(keys.flow, count=FLOW_RECENT)  # the flow tape's snapshot source
        flow = [fields[b"e"] for _, fields in reversed(recent) if b"e" in fields]
        return (sorted(n.decode() for n in names), {k.decode(): v.decode() for k, v in ids.items()},
                latest, {k.decode(): v.decode(errors="replace") for k, v in meta.items()}, flow)

    async def _poll_meta(self, client: Any, meta: dict[str, str], protocol: RespProtocol) -> None:
        """The partition's meta again every ``meta_interval`` seconds (the plant keeps
        its ingest state there); a change goes to the sink. A new ``rolled_over_ns``
        (the plant swapped in the day's instrument master) ends the session, so the
        next one loads the new master and seeds from the new latest hash."""
        while True:
            await asyncio.sleep(self.meta_interval)
            try:
                raw = await client.hgetall(self.keys.meta)
            except (OSError, ConnectionError, TimeoutError):
                continue  # the watch notices a lost connection
            fresh = {_text(k): _text(v) for k, v in raw.items()}
            if fresh.get("rolled_over_ns", "") != meta.get("rolled_over_ns", "") and fresh.get("rolled_over_ns"):
                self._reload = f"the plant rolled over to the instrument master of {fresh.get('day', 'a new day')}"
                if protocol.transport is not None:
                    protocol.transport.abort()
                return
            if fresh != meta:
                meta = fresh
                self.sink.update_meta(fresh)

    async def _watch(self, protocol: RespProtocol) -> None:
        """Until the connection is lost or stopped: PING when quiet, give up on silence."""
        assert protocol.transport is not None
        self._last_data = time.monotonic()
        ping = command("PING")
        while not self._stop.is_set():
            stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({protocol.lost, stop}, timeout=self.ping_interval,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if protocol.lost.done():
                reason, self._reload = self._reload or "connection lost", ""
                raise _Lost(reason)
            quiet = time.monotonic() - self._last_data
            if quiet > 3 * self.ping_interval:
                protocol.transport.abort()
                raise _Lost(f"no reply from redis for {quiet:.1f} s")
            if quiet >= self.ping_interval:
                protocol.transport.write(ping)


class _Lost(Exception):
    pass


def merge_seed(latest: dict[bytes, bytes], published: list[bytes]) -> bytes:
    """One msgpack array of tick maps: the latest hash, updated with the ticks
    of ``published`` frames (in order) whose ``seq`` is not older than the
    hash's entry. Cold: once per (re)connect; unreadable frames are skipped."""
    seqs: dict[bytes, int] = {}
    for frame in published:
        try:
            ticks = msgpack.unpackb(frame, raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            continue
        if not isinstance(ticks, list):
            continue
        for tick in ticks:
            if not isinstance(tick, dict) or not isinstance(tick.get("symbol"), str):
                continue
            symbol = tick["symbol"].encode()
            seq = tick.get("seq", 0)
            if symbol in latest and symbol not in seqs:
                seqs[symbol] = _seq(latest[symbol])
            if seq >= seqs.get(symbol, -1):
                latest[symbol] = msgpack.packb(tick)
                seqs[symbol] = seq
    array: bytes = msgpack.Packer().pack_array_header(len(latest))
    return array + b"".join(latest.values())


def _seq(blob: bytes) -> int:
    try:
        tick = msgpack.unpackb(blob, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return -1
    seq = tick.get("seq", -1) if isinstance(tick, dict) else -1
    return seq if isinstance(seq, int) else -1



def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
