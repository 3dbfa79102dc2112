"""RESP over asyncio: the connection protocol, command encoding and cluster routing
shared by everything that talks to Redis without redis-py on a hot path (the
plant's :class:`~fastflow.store.writer.RedisWriter`, the gateway's
:class:`~fastflow.gateway.live.LiveSubscription`).

:class:`RespProtocol` hands every reply, parsed by hiredis, to a callback and
reports write-buffer pressure; :func:`open_node` connects to one node,
authenticates, selects the db and runs set-up commands; :func:`partition_node`
does that on the node that serves a key (the slot owner on a cluster, found
with ``CLUSTER SLOTS``) and reports the server's version. A refused set-up
raises :class:`RedisSetupError`. Cold code: per connection, never per tick.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import hiredis
from redis.crc import key_slot

from fastflow.errors import FastflowError

#: Bytes queued on the socket above which the writer counts as full.
WRITE_BUFFER_HIGH = 16 * 2**20


class Endpoint(Protocol):
    """Where Redis is (:class:`fastflow.store.target.RedisTarget`)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def unix_path(self) -> str | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def db(self) -> int: ...
    @property
    def cluster(self) -> bool: ...
    def ssl_context(self) -> ssl.SSLContext | None: ...


class RedisSetupError(FastflowError, ConnectionError):
    """Redis refused the connection set-up (AUTH, SELECT, CLUSTER SLOTS...)."""


def bulk(value: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def command(*args: bytes | str | int) -> bytes:
    """A RESP command (cold: per connection or per flush, never per tick)."""
    parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


class RespProtocol(asyncio.Protocol):
    """A RESP connection: every reply (parsed by hiredis) goes to ``on_reply``;
    ``on_resume`` runs when the transport's write buffer drains."""

    def __init__(self, on_reply: Callable[[Any], None], on_resume: Callable[[], None] | None = None,
                 write_high: int = WRITE_BUFFER_HIGH) -> None:
        self.on_reply = on_reply
        self.on_resume = on_resume
        self.write_high = write_high
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        # One flush of a few hundred full ticks is ~0.5 MB on the wire; the bound on
        # memory is max_in_flight flushes, the buffer limit only catches a stuck socket.
        self.transport.set_write_buffer_limits(high=self.write_high, low=self.write_high // 4)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is False:
                return
            self.on_reply(reply)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.on_resume is not None:
            self.on_resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


P = TypeVar("P", bound=RespProtocol)


async def open_node(endpoint: Endpoint, host: str, port: int, factory: Callable[[], P], timeout: float,
                    *commands: bytes) -> tuple[P, list[Any]]:
    """Connect to one Redis node (``host:port``, or the endpoint's unix socket),
    authenticate, select the db, and run ``commands`` (set-up, not pipelined
    writes); the protocol and the commands' replies. The protocol's own
    ``on_reply`` is restored before returning."""
    loop = asyncio.get_running_loop()
    context = endpoint.ssl_context() if endpoint.tls else None

    async def connect() -> P:
        if endpoint.unix_path and not endpoint.cluster:
            _, opened = await loop.create_unix_connection(factory, endpoint.unix_path)
        else:
            _, opened = await loop.create_connection(factory, host, port, ssl=context,
                                                     server_hostname=host if context is not None else None)
        return opened

    protocol = await asyncio.wait_for(connect(), timeout)
    setup: list[bytes] = []
    if endpoint.password:
        setup.append(command("AUTH", endpoint.username, endpoint.password) if endpoint.username
                     else command("AUTH", endpoint.password))
    if endpoint.db and not endpoint.cluster:
        setup.append(command("SELECT", endpoint.db))
    setup += commands
    replies: list[Any] = []
    collected = loop.create_future()
    own = protocol.on_reply

    def on_reply(reply: Any) -> None:
        replies.append(reply)
        if len(replies) == len(setup) and not collected.done():
            collected.set_result(None)

    protocol.on_reply = on_reply
    try:
        assert protocol.transport is not None
        protocol.transport.writelines(setup)
        await asyncio.wait_for(asyncio.shield(collected), timeout)
    except BaseException:
        if protocol.transport is not None:
            protocol.transport.abort()
        raise
    finally:
        protocol.on_reply = own
    errors = [r for r in replies if isinstance(r, hiredis.ReplyError)]
    if errors:
        assert protocol.transport is not None
        protocol.transport.abort()
        raise RedisSetupError(f"redis refused the set-up: {errors[0]}")
    return protocol, replies[len(setup) - len(commands):]


async def partition_node(endpoint: Endpoint, key: bytes, factory: Callable[[], P], timeout: float,
                         *commands: bytes) -> tuple[P, tuple[int, int], list[Any]]:
    """:func:`open_node` to the node that serves ``key`` (the slot owner on a
    cluster, found with CLUSTER SLOTS), running ``INFO server`` then
    ``commands``: the protocol, the server's (major, minor) version and the
    replies to ``commands``."""
    host, port = endpoint.host, endpoint.port
    if endpoint.cluster:
        probe, (slots,) = await open_node(endpoint, host, port, lambda: RespProtocol(lambda _: None), timeout,
                                          command("CLUSTER", "SLOTS"))
        assert probe.transport is not None
        probe.transport.close()
        host, port = _slot_owner(slots, key_slot(key), host)
    protocol, (info, *replies) = await open_node(endpoint, host, port, factory, timeout,
                                                 command("INFO", "server"), *commands)
    return protocol, _version(info), replies


def _version(info: bytes) -> tuple[int, int]:
    for line in info.decode(errors="replace").splitlines():
        if line.startswith("redis_version:"):
            major, minor, *_ = (line.split(":", 1)[1].strip() + ".0").split(".")
            return int(major), int(minor)
    return (0, 0)


def _slot_owner(slots: Any, slot: int, default_host: str) -> tuple[str, int]:
    """The (host, port) of the master serving ``slot`` from a CLUSTER SLOTS reply."""
    for entry in slots:
        start, end, master = entry[0], entry[1], entry[2]
        if start <= slot <= end:
            host = master[0].decode() if master[0] else default_host
            return host, int(master[1])
    raise RedisSetupError(f"no cluster node serves slot {slot}")
