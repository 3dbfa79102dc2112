"""The Python client of the gateway's WebSocket protocol (docs/protocol.md).

::

    from fastflow.client import connect

    async with connect("ws://127.0.0.1:8765/ws", symbols=["NSE:INFY", 408065]) as client:
        async for tick in client:           # tick maps (docs/state.md), snapshot ticks first
            print(tick["symbol"], tick["last_price"], tick["seq"])

    async for tick in connect("ws://127.0.0.1:8765/ws", symbols=["NSE:INFY"]):   # the same, shorter
        print(tick["symbol"], tick["last_price"])

``connect(url, symbols=(), *, api_key=None, token=None, encoding="msgpack", reconnect=True,
snapshot_on_gap=False, ...)`` returns a :class:`Client`, to use as ``async with connect(...) as
client``, ``client = await connect(...)`` (then ``await client.close()``), or directly as
``async for tick in connect(...)``: the first iteration connects. (A loop that stops early
leaves that client connected until ``await client.close()`` or the end of the event loop:
``async with`` closes it for you.) Entering it connects and subscribes ``symbols``; it returns
once the first connection is up, and raises :class:`AuthError` when the gateway refuses the
handshake (HTTP 401/403). The credential is an
``api_key`` or a ``token`` (``fastflow.gateway.auth.make_token``), sent as
``Authorization: Bearer ...``; without one the gateway decides (by default: loopback only).
``encoding`` picks the subprotocol: ``"msgpack"`` (``fastflow.msgpack.v1``, binary frames) or
``"json"`` (``fastflow.json.v1``, text frames).

**Ticks.** ``async for tick in client`` yields each tick map once, in arrival order: the
``snapshot`` that follows every subscription first, then the live ``ticks``. A ``Tick`` is a
plain ``dict[str, Any]`` with kiteconnect's keys plus ``symbol``, ``seq`` (the instrument's
sequence number) and ``receive_time_ns``. Every frame is decoded once; the iterator hands out
its ticks one by one. Iteration ends after :meth:`Client.close`; it raises the error that
ended the client otherwise (:class:`AuthError`, :class:`Unreachable`, or with
``reconnect=False`` :class:`ConnectionLost`), after the ticks received before it.

* ``client.last``: symbol -> latest tick received (also when the iterator is not read).
* ``client.gaps``: live ticks whose ``seq`` jumped (``seq > last + 1``): the gateway conflated
  updates for this client (each tick is the instrument's whole state, so ``last`` stays
  current). With ``snapshot_on_gap=True`` a gap makes the client ask for a ``snapshot``
  (at most one outstanding).
* **Duplicates** are not yielded: a live tick whose ``seq`` is not above the symbol's last
  one is dropped, unless its ``receive_time_ns`` is newer (a restarted plant counts ``seq``
  from 1 again; its ticks are accepted as the new baseline). **Snapshot ticks are
  authoritative**: they always replace ``last`` and reset the baseline (no gap is counted);
  one identical to the tick already delivered (same ``seq`` and ``receive_time_ns``) is not
  yielded again.
* A consumer that falls far behind does not stall the connection: past ``max_pending``
  buffered ticks the client keeps only the latest tick per symbol (counted in
  ``stats["conflated"]``), as the gateway does for a slow socket.
* ``client.stats``: ``frames``, ``ticks`` (received), ``snapshots``, ``gaps``,
  ``reconnects``, ``errors`` (server ``error`` replies nobody waited for, undecodable
  frames), ``duplicates``, ``conflated``.
* ``client.state``: ``"connecting"`` (before the first connection) -> ``"live"`` ->
  ``"reconnecting"`` (after a drop, while backing off and retrying) -> ``"live"`` ... ->
  ``"closed"``.
* ``client.hello`` (the server's ``hello`` map), ``client.watchlist`` (what is resubscribed
  after a reconnect), ``client.unknown`` (what the server could not resolve; logged as a
  warning only for the symbols given to ``connect``: ``subscribe`` returns them to its caller),
  ``client.close_code`` / ``client.close_reason`` of the last dropped connection.

**Requests.** ``await client.subscribe(symbols)`` (``EXCHANGE:TRADINGSYMBOL``, Kite tokens or
Upstox instrument keys) returns the ``subscribed`` reply (``symbols``: resolved, ``unknown``);
``await client.unsubscribe(symbols)`` the ``unsubscribed`` reply; ``await client.snapshot()``
(optionally ``symbols``) the snapshot's ticks; ``await client.ping()`` the round trip in
seconds. An ``error`` reply raises :class:`ServerError` (``code``, ``message``, ``op``) from
the call (a refused subscription leaves the watchlist as it was); no reply within
``request_timeout`` raises ``TimeoutError``; a connection lost while waiting raises
:class:`ConnectionLost`. While reconnecting, a request waits for the connection. A
subscription changes the watchlist at once, so it survives a reconnect even when its call
timed out or lost its connection. The client's own resubscription after a reconnect is
repeated (with a growing pause) while the gateway answers ``unavailable`` (it has not loaded
the instrument list yet) or ``rate_limited``. Replies carry no request id (only ``pong``
echoes one), so the client matches them to requests in order, as the gateway answers them.

**Reconnect** (``reconnect=True``): when a connection drops (not after :meth:`Client.close`,
and never after an HTTP 401/403: that raises :class:`AuthError`), the client reconnects with
capped exponential backoff and full jitter (the n-th retry waits ``uniform(0, min(backoff_cap,
backoff_base * 2**n))``), resubscribes its watchlist, and the fresh snapshot that follows
brings ``last`` current. ``max_retries`` consecutive failed attempts (default: no limit) end
the client with :class:`Unreachable`; this applies to the first connection too. A handshake
refused with HTTP 5xx, 408 or 429 (e.g. 503: the gateway is full) is retried; any other 4xx
(e.g. 404: a wrong path) ends the client with :class:`ClientError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, Final, Literal

import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from fastflow.errors import FastflowError
from fastflow.obs.backoff import Backoff
from fastflow.obs.state import State

__all__ = [
    "AuthError",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "ServerError",
    "Tick",
    "Unreachable",
    "connect",
]

logger = logging.getLogger(__name__)

Tick = dict[str, Any]
Symbol = str | int

MSGPACK: Final = "fastflow.msgpack.v1"
JSON: Final = "fastflow.json.v1"
_SUBPROTOCOLS: Final = {"msgpack": MSGPACK, "json": JSON}
_RETRYABLE: Final = ("unavailable", "rate_limited")  # error codes after which the client resubscribes


class ClientError(FastflowError):
    """Base of the client's errors."""


class AuthError(ClientError):
    """The gateway refused the handshake: HTTP 401 (credential) or 403 (origin)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ServerError(ClientError):
    """An ``error`` reply to a request: ``code`` (``too_many_symbols``, ...), ``message``, ``op``."""

    def __init__(self, code: str, message: str, op: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.op = op


class ConnectionLost(ClientError, ConnectionError):
    """The connection dropped (``code``/``reason`` of its close, when there was one)."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class Unreachable(ClientError, ConnectionError):
    """``max_retries`` consecutive connection attempts failed."""


class ClientClosed(ClientError):
    """The client was closed."""


class _Request:
    __slots__ = ("extra", "future", "id", "op", "symbols")

    def __init__(self, op: str, ident: int, symbols: Sequence[Symbol] | None,
                 future: asyncio.Future[Any] | None, extra: dict[str, Any] | None = None) -> None:
        self.op = op
        self.id = ident
        self.symbols = symbols
        self.future = future  # None: the client's own request (resubscribe, gap snapshot)
        self.extra = extra  # more fields of the message (subscribe_flow's filter)


def _canonical(symbol: Symbol) -> bool:
    """An ``EXCHANGE:TRADINGSYMBOL`` (what the server resolves everything else to)."""
    return isinstance(symbol, str) and ":" in symbol and "|" not in symbol


class Client:
    """A gateway client (see the module docstring). Make it with :func:`connect`."""

    def __init__(
        self,
        url: str,
        symbols: Iterable[Symbol] = (),
        *,
        api_key: str | None = None,
        token: str | None = None,
        encoding: Literal["msgpack", "json"] = "msgpack",
        reconnect: bool = True,
        snapshot_on_gap: bool = False,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        max_retries: int | None = None,
        open_timeout: float = 10.0,
        request_timeout: float = 10.0,
        max_pending: int = 100_000,
        rng: random.Random | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        if encoding not in _SUBPROTOCOLS:
            raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
        if not backoff_base > 0 or backoff_cap < backoff_base:
            raise ValueError("backoff_base must be > 0 and backoff_cap >= backoff_base")
        if max_retries is not None and max_retries < 0:
            raise ValueError("max_retries must be >= 0 (or None: no limit)")
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.url = url
        self.encoding = encoding
        self.reconnect = reconnect
        self.snapshot_on_gap = snapshot_on_gap
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retries = max_retries
        self.open_timeout = open_timeout
        self.request_timeout = request_timeout
        self.max_pending = max_pending
        credential = api_key or token
        self._headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._backoff = Backoff(backoff_base, backoff_cap, rng)

        self.state: str = "connecting"
        self.last: dict[str, Tick] = {}
        self.hello: dict[str, Any] | None = None
        #: The gateway's latest ``status`` message (feed, market, last_tick_age_s), or None.
        self.status: dict[str, Any] | None = None
        self.unknown: list[Any] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.stats: dict[str, int] = {
            "frames": 0, "ticks": 0, "snapshots": 0, "gaps": 0, "reconnects": 0, "errors": 0,
            "duplicates": 0, "conflated": 0, "flow_events": 0, "flow_duplicates": 0, "flow_dropped": 0,
        }
        self._watch: dict[Symbol, None] = dict.fromkeys(symbols)
        self._ws: ClientConnection | None = None
        self._live = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._requests: collections.deque[_Request] = collections.deque()
        self._next_id = 0
        self._companions = 0  # snapshots still due after `subscribed` replies
        self._gap_snapshot = False  # a snapshot asked for after a gap is outstanding
        self._healthy = False  # the current connection got a reply (resets the backoff)
        self._pending: collections.deque[list[Tick]] = collections.deque()
        self._pending_ticks = 0
        self._conflate_at = max_pending
        self._batch: list[Tick] = []
        self._index = 0
        self._task: asyncio.Task[None] | None = None
        self._connections = 0  # handshakes completed
        self._answered: _Request | None = None  # the snapshot request the previous message answered
        self._resubscribes = 0  # refused resubscriptions in a row (gateway not ready)
        self._retry: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._flow_filter: dict[str, Any] | None = None  # resubscribed after a reconnect
        self._flow_pending: collections.deque[dict[str, Any]] = collections.deque()
        self._flow_wakeup = asyncio.Event()
        self._flow_last_id = -1

    # -- lifecycle -----------------------------------------------------------------

    @property
    def gaps(self) -> int:
        return self.stats["gaps"]

    @property
    def watchlist(self) -> list[Symbol]:
        """What the client subscribes on every (re)connection."""
        return list(self._watch)

    async def start(self) -> Client:
        """Connect (retrying as configured) and subscribe; return once the first
        connection is up. Raises what ends the client before that."""
        if self._task is None:
            if self._closing:
                raise ClientClosed("the client is closed")
            self._task = asyncio.create_task(self._run(), name=f"fastflow.client {self.url}")
        await self._wait_live()
        return self

    async def close(self) -> None:
        """Close the connection and stop; the iterator ends. Idempotent."""
        self._closing = True
        self._live.set()  # wake requests waiting for a connection (they see _closing)
        self._wakeup.set()
        self._flow_wakeup.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._retry is not None:
            self._retry.cancel()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_requests(ClientClosed("the client is closed"))
        self.state = State.CLOSED

    async def __aenter__(self) -> Client:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Client]:
        return self.__aenter__().__await__()

    # -- ticks ---------------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Tick:
        if self._task is None and not self._closing:
            # `async for tick in connect(...)` without `async with`: the first step connects
            # (and raises what ends the client before its first connection)
            await self.start()
        while True:
            if self._closing:
                raise StopAsyncIteration
            index = self._index
            if index < len(self._batch):
                self._index = index + 1
                return self._batch[index]
            if self._pending:
                self._batch = self._pending.popleft()
                self._pending_ticks -= len(self._batch)
                self._index = 0
                continue
            if self._failure is not None:
                raise self._failure
            self._wakeup.clear()
            await self._wakeup.wait()

    # -- requests ------------------------------------------------------------------

    async def subscribe(self, symbols: Iterable[Symbol]) -> dict[str, Any]:
        """Add ``symbols`` to the watchlist; the server's ``subscribed`` reply
        (``symbols``: resolved ``EXCHANGE:TRADINGSYMBOL``s, ``unknown``)."""
        wanted = list(symbols)
        added = [symbol for symbol in wanted if symbol not in self._watch]
        self._watch.update(dict.fromkeys(added))
        try:
            reply: dict[str, Any] = await self._request("subscribe", wanted)
        except ServerError:
            for symbol in added:  # refused: not on the watchlist either
                self._watch.pop(symbol, None)
            raise
        return reply

    async def unsubscribe(self, symbols: Iterable[Symbol]) -> dict[str, Any]:
        """Remove ``symbols`` from the watchlist; the ``unsubscribed`` reply."""
        wanted = list(symbols)
        removed = [symbol for symbol in wanted if symbol in self._watch]
        for symbol in removed:
            self._watch.pop(symbol)
        try:
            reply: dict[str, Any] = await self._request("unsubscribe", wanted)
        except ServerError:
            self._watch.update(dict.fromkeys(removed))  # refused: still subscribed
            raise
        return reply

    async def snapshot(self, symbols: Iterable[Symbol] | None = None) -> list[Tick]:
        """A fresh snapshot of the watchlist (or of ``symbols``): its ticks. Ticks that
        changed since they were last delivered also come out of the iterator."""
        reply: dict[str, Any] = await self._request("snapshot", None if symbols is None else list(symbols))
        ticks: list[Tick] = reply.get("ticks", [])
        return ticks

    async def ping(self) -> float:
        """The round trip of a protocol ``ping`` in seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self._request("ping", None)
        return loop.time() - start

    async def subscribe_flow(self, **flow_filter: Any) -> dict[str, Any]:
        """Subscribe the options-flow tape with ``flow_filter`` (``underlyings``,
        ``symbols``, ``kinds``, ``sides``, ``sentiments``, ``min_score``,
        ``min_premium``: docs/protocol.md); the ``flow_subscribed`` reply. The
        filter is sent again after a reconnect. Events come out of :meth:`flow`."""
        reply: dict[str, Any] = await self._request("subscribe_flow", None, dict(flow_filter))
        self._flow_filter = dict(flow_filter)
        return reply

    async def unsubscribe_flow(self) -> dict[str, Any]:
        """Stop the options-flow tape."""
        self._flow_filter = None
        reply: dict[str, Any] = await self._request("unsubscribe_flow", None)
        return reply

    async def flow(self, **flow_filter: Any) -> AsyncIterator[dict[str, Any]]:
        """The options-flow events matching ``flow_filter`` (see :meth:`subscribe_flow`),
        the recent ones first, each once (by ``id``, also across reconnects)::

            async for event in client.flow(underlyings=["NIFTY"], min_score=60):
                print(event["kind"], event["symbol"], event["premium"], event["score"])
        """
        if self._task is None and not self._closing:
            await self.start()
        await self.subscribe_flow(**flow_filter)
        while True:
            if self._flow_pending:
                yield self._flow_pending.popleft()
                continue
            if self._closing:
                return
            if self._failure is not None:
                raise self._failure
            self._flow_wakeup.clear()
            await self._flow_wakeup.wait()

    def _on_flow(self, message: dict[str, Any]) -> None:
        fresh = 0
        for event in message.get("events", ()):
            ident = event.get("id") if isinstance(event, dict) else None
            if not isinstance(ident, int) or ident <= self._flow_last_id:
                self.stats["flow_duplicates"] += 1
                continue
            self._flow_last_id = ident
            self._flow_pending.append(event)
            fresh += 1
        over = len(self._flow_pending) - self.max_pending
        if over > 0:  # a consumer far behind: the oldest events go (counted)
            for _ in range(over):
                self._flow_pending.popleft()
            self.stats["flow_dropped"] += over
        self.stats["flow_events"] += fresh
        self._flow_wakeup.set()

    async def _wait_live(self) -> None:
        while True:
            if self._failure is not None:
                raise self._failure
            if self._closing:
                raise ClientClosed("the client is closed")
            if self._live.is_set() and self._ws is not None:
                return
            await self._live.wait()

    async def _request(self, op: str, symbols: list[Symbol] | None, extra: dict[str, Any] | None = None) -> Any:
        async def send_and_wait() -> Any:
            await self._wait_live()
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            ws = self._ws
            assert ws is not None
            request = self._send_request(op, symbols, future, extra)
            try:
                await ws.send(self._encode(request, ws))
            except ConnectionClosed as exc:
                self._forget(request)
                raise ConnectionLost(f"connection lost while sending {op}", exc.rcvd.code if exc.rcvd else None,
                                     exc.rcvd.reason if exc.rcvd else "") from None
            # A request that times out stays queued: its late reply must not answer a later one.
            return await future

        return await asyncio.wait_for(send_and_wait(), self.request_timeout)

    def _send_request(self, op: str, symbols: Sequence[Symbol] | None,
                      future: asyncio.Future[Any] | None, extra: dict[str, Any] | None = None) -> _Request:
        self._next_id += 1
        request = _Request(op, self._next_id, symbols, future, extra)
        self._requests.append(request)
        return request

    def _forget(self, request: _Request) -> None:
        with contextlib.suppress(ValueError):
            self._requests.remove(request)

    def _encode(self, request: _Request, ws: ClientConnection) -> bytes | str:
        message: dict[str, Any] = {**(request.extra or {}), "op": request.op, "id": request.id}
        if request.symbols is not None:
            message["symbols"] = list(request.symbols)
        if ws.subprotocol == JSON:
            return json.dumps(message, separators=(",", ":"))
        packed: bytes = msgpack.packb(message)
        return packed

    async def _send_own(self, ws: ClientConnection, op: str, symbols: Sequence[Symbol] | None = None,
                        extra: dict[str, Any] | None = None) -> None:
        """A request of the client itself (no caller waits for its reply)."""
        request = self._send_request(op, symbols, None, extra)
        try:
            await ws.send(self._encode(request, ws))
        except BaseException:
            self._forget(request)
            raise

    def _fail_requests(self, error: BaseException) -> None:
        requests, self._requests = self._requests, collections.deque()
        for request in requests:
            if request.future is not None and not request.future.done():
                request.future.set_exception(error)
        self._companions = 0
        self._gap_snapshot = False
        self._answered = None

    def _reply_to(self, op: str, ident: Any = None) -> _Request | None:
        """The oldest request still waiting for a reply to ``op`` (or the one with ``id``)."""
        for request in self._requests:
            if request.op == op and (ident is None or request.id == ident):
                self._requests.remove(request)
                return request
        return None

    # -- the connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0  # consecutive attempts that did not reach a healthy connection
        try:
            while not self._closing:
                error = await self._connect_once()
                if self._closing:
                    break
                if self._connections:
                    self.state = State.RECONNECTING
                if self._healthy:
                    failures = 0
                    self._backoff.reset()
                else:
                    failures += 1
                if not self.reconnect:
                    if self._healthy:
                        raise ConnectionLost(f"{self.url}: {error}", self.close_code, self.close_reason)
                    raise Unreachable(f"{self.url}: {error}")
                if self.max_retries is not None and failures > self.max_retries:
                    raise Unreachable(f"{self.url}: {failures} connection attempt(s) failed; last: {error}")
                delay = self._backoff.next_delay()
                if not failures:  # the retry after a healthy connection waits at most base, and starts the count
                    self._backoff.reset()
                logger.warning("fastflow.client: %s; reconnecting in %.2f s", error, delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            self._fail_requests(exc)
            self.state = State.CLOSED
            self._live.set()
            self._wakeup.set()
            self._flow_wakeup.set()
            if isinstance(exc, Exception):
                return
            raise

    async def _connect_once(self) -> ConnectionLost:
        """One connection, from the handshake until it drops; what ended it.
        Raises :class:`AuthError` or :class:`ClientError` for what must not be retried."""
        self._healthy = False
        try:
            ws = await ws_connect(
                self.url, subprotocols=[Subprotocol(_SUBPROTOCOLS[self.encoding])], additional_headers=self._headers,
                compression=None, max_size=None, open_timeout=self.open_timeout,
                user_agent_header="fastflow-client",
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
            detail = f"HTTP {status}" + (f": {body}" if body else "")
            if status in (401, 403):
                raise AuthError(status, f"the gateway at {self.url} refused the handshake ({detail})") from None
            if status < 500 and status not in (408, 429):
                raise ClientError(f"the gateway at {self.url} refused the handshake ({detail})") from None
            return ConnectionLost(f"handshake refused ({detail})")
        except InvalidURI as exc:
            raise ClientError(f"not a WebSocket URL: {exc}") from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            return ConnectionLost(f"cannot connect to {self.url}: {exc or type(exc).__name__}")

        self._ws = ws
        if self._connections:
            self.stats["reconnects"] += 1
        self._connections += 1
        try:
            if self._watch:
                await self._send_own(ws, "subscribe", list(self._watch))
            if self._flow_filter is not None:
                await self._send_own(ws, "subscribe_flow", None, self._flow_filter)
            self.state = State.LIVE
            self._live.set()
            await self._read(ws)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._live.clear()
            await ws.close()
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        lost = ConnectionLost(f"connection closed (code {self.close_code}"
                              + (f": {self.close_reason})" if self.close_reason else ")"),
                              self.close_code, self.close_reason)
        self._fail_requests(lost)
        return lost

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            data = await ws.recv()
            self.stats["frames"] += 1
            try:
                message = msgpack.unpackb(data, raw=False) if isinstance(data, bytes) else json.loads(data)
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
                self.stats["errors"] += 1
                logger.warning("fastflow.client: undecodable frame (%s)", exc)
                continue
            if not isinstance(message, dict):
                self.stats["errors"] += 1
                logger.warning("fastflow.client: a frame that is not a map: %.200r", message)
                continue
            kind = message.get("type")
            if kind == "ticks":
                if self._on_ticks(message.get("ticks", ())) and self.snapshot_on_gap and not self._gap_snapshot:
                    self._gap_snapshot = True
                    await self._send_own(ws, "snapshot")
                continue
            if kind == "status":  # the feed's state: on connect and on every change
                self.status = message
                continue
            if kind == "flow":
                self._on_flow(message)
                continue
            self._healthy = True
            answered, self._answered = self._answered, None
            if kind == "snapshot":
                self._on_snapshot(message)
            elif kind == "subscribed" or kind == "unsubscribed":
                self._on_subscription(kind, message)
            elif kind in ("flow_subscribed", "flow_unsubscribed"):
                request = self._reply_to("subscribe_flow" if kind == "flow_subscribed" else "unsubscribe_flow")
                if request is not None and request.future is not None and not request.future.done():
                    request.future.set_result(message)
            elif kind == "pong":
                request = self._reply_to("ping", message.get("id"))
                if request is not None and request.future is not None and not request.future.done():
                    request.future.set_result(message)
            elif kind == "error":
                self._on_error(ws, message, answered)
            elif kind == "hello":
                self.hello = message
            else:
                logger.debug("fastflow.client: ignoring a %r message", kind)

    # -- messages --------------------------------------------------------------------

    def _on_ticks(self, ticks: Iterable[Tick]) -> bool:
        """Take a live ``ticks`` frame; True if some instrument's seq jumped."""
        last = self.last
        accepted: list[Tick] = []
        gaps = duplicates = count = 0
        for tick in ticks:
            count += 1
            try:
                symbol = tick["symbol"]
                previous = last.get(symbol)
                if previous is not None:
                    seq = tick["seq"]
                    before = previous["seq"]
                    if seq <= before:
                        if tick.get("receive_time_ns", 0) <= previous.get("receive_time_ns", 0):
                            duplicates += 1
                            continue
                        # a newer state with a lower seq: the plant restarted; the new baseline
                    elif seq > before + 1:
                        gaps += 1
            except (KeyError, TypeError):
                self.stats["errors"] += 1
                continue
            last[symbol] = tick
            accepted.append(tick)
        stats = self.stats
        stats["ticks"] += count
        stats["gaps"] += gaps
        stats["duplicates"] += duplicates
        if accepted:
            self._deliver(accepted)
        return gaps > 0

    def _on_snapshot(self, message: dict[str, Any]) -> None:
        ticks: list[Tick] = message.get("ticks", [])
        self.stats["snapshots"] += 1
        self.stats["ticks"] += len(ticks)
        last = self.last
        accepted: list[Tick] = []
        for tick in ticks:
            try:
                symbol = tick["symbol"]
                previous = last.get(symbol)
                last[symbol] = tick
                if (previous is not None and previous["seq"] == tick["seq"]
                        and previous.get("receive_time_ns") == tick.get("receive_time_ns")):
                    self.stats["duplicates"] += 1
                    continue
            except (KeyError, TypeError):
                self.stats["errors"] += 1
                continue
            accepted.append(tick)
        if accepted:
            self._deliver(accepted)
        if self._companions:
            self._companions -= 1  # the snapshot that follows a `subscribed`
            return
        self._gap_snapshot = False
        request = self._reply_to("snapshot")
        if request is not None:
            if request.symbols:
                self._answered = request  # a `bad_symbols` error for its unknown symbols may follow
            if request.future is not None and not request.future.done():
                request.future.set_result(message)

    def _on_subscription(self, kind: str, message: dict[str, Any]) -> None:
        op = "subscribe" if kind == "subscribed" else "unsubscribe"
        request = self._reply_to(op)
        resolved = [s for s in message.get("symbols", ()) if isinstance(s, str)]
        if kind == "subscribed":
            self._companions += 1
            self._resubscribes = 0
            unknown = list(message.get("unknown", ()))
            if request is not None and request.symbols is not None:
                # tokens and instrument keys become their EXCHANGE:TRADINGSYMBOL; unknowns go
                for symbol in request.symbols:
                    if not _canonical(symbol) or symbol in unknown or str(symbol) in unknown:
                        self._watch.pop(symbol, None)
            for symbol in resolved:
                self._watch[symbol] = None
            self.unknown = unknown
            if unknown and (request is None or request.future is None):  # a caller reads its own reply
                logger.warning("fastflow.client: unknown symbols: %s", ", ".join(map(str, unknown)))
        else:
            if request is not None and request.symbols is not None:
                for symbol in request.symbols:
                    self._watch.pop(symbol, None)
            for symbol in resolved:
                self._watch.pop(symbol, None)
                self.last.pop(symbol, None)
        if request is not None and request.future is not None and not request.future.done():
            request.future.set_result(message)

    def _on_error(self, ws: ClientConnection, message: dict[str, Any], answered: _Request | None) -> None:
        code = str(message.get("code", "error"))
        text = str(message.get("message", ""))
        op = message.get("op")
        if answered is not None and op == "snapshot" and code == "bad_symbols":
            # the server answers a snapshot of some unknown symbols with the snapshot of the
            # known ones, then this error: it belongs to the request already answered
            self.stats["errors"] += 1
            logger.warning("fastflow.client: snapshot: %s", text)
            return
        request = self._reply_to(op, message.get("id")) if isinstance(op, str) else None
        if request is None or request.future is None:
            self.stats["errors"] += 1
            logger.warning("fastflow.client: server error %s: %s", code, text)
            if request is not None and request.op == "snapshot":
                self._gap_snapshot = False
            if request is not None and request.op == "subscribe" and code in _RETRYABLE:
                self._resubscribe_later(ws)  # e.g. a gateway still loading its instruments
            return
        if not request.future.done():
            request.future.set_exception(ServerError(code, text, op if isinstance(op, str) else None))

    def _resubscribe_later(self, ws: ClientConnection) -> None:
        """Send the watchlist's subscription again after a pause (on the same connection)."""
        self._resubscribes += 1
        delay = min(2.0, 0.05 * 2 ** min(self._resubscribes, 6))

        async def again() -> None:
            await asyncio.sleep(delay)
            if self._ws is ws and self._watch and not self._closing:
                with contextlib.suppress(ConnectionClosed):
                    await self._send_own(ws, "subscribe", list(self._watch))

        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.create_task(again())

    def _deliver(self, ticks: list[Tick]) -> None:
        self._pending.append(ticks)
        self._pending_ticks += len(ticks)
        if self._pending_ticks > self._conflate_at:
            self._conflate()
        self._wakeup.set()

    def _conflate(self) -> None:
        """Keep only the latest pending tick of each symbol (a consumer far behind)."""
        merged: dict[Any, Tick] = {}
        for batch in self._pending:
            for tick in batch:
                merged[tick.get("symbol")] = tick
        self.stats["conflated"] += self._pending_ticks - len(merged)
        self._pending = collections.deque([list(merged.values())])
        self._pending_ticks = len(merged)
        self._conflate_at = max(self.max_pending, 2 * len(merged))


def connect(
    url: str,
    symbols: Iterable[Symbol] = (),
    *,
    api_key: str | None = None,
    token: str | None = None,
    encoding: Literal["msgpack", "json"] = "msgpack",
    reconnect: bool = True,
    snapshot_on_gap: bool = False,
    **options: Any,
) -> Client:
    """A :class:`Client` for ``url``: ``async with connect(...) as client`` or
    ``client = await connect(...)``. ``options``: ``backoff_base``, ``backoff_cap``,
    ``max_retries``, ``open_timeout``, ``request_timeout``, ``max_pending``, ``rng``."""
    return Client(url, symbols, api_key=api_key, token=token, encoding=encoding, reconnect=reconnect,
                  snapshot_on_gap=snapshot_on_gap, **options)
