"""What every broker connection shares: the reconnect loop, the liveness
watchdog, the circuit breaker, and the hand-off of each message to the hot path.

:class:`FeedSession` is the base of :class:`~fastflow.brokers.kite.session.KiteSession`
and :class:`~fastflow.brokers.upstox.session.UpstoxSession`. A subclass says how
to open a connection (:meth:`FeedSession._open`), how to subscribe
(:meth:`FeedSession._subscribe`) and what its text frames mean; the base does
the rest (docs/ingest.md):

* **each binary message** goes whole into ``decoder.feed(message, recv_ns)``,
  stamped with ``time.time_ns()`` on arrival, then one ``state.flush()`` hands
  a :class:`~fastflow.hotpath.TickBatch` to ``on_flush``. One Python call per
  message, never per packet;
* **liveness watchdog**: any frame resets it, data, heartbeat or WebSocket
  ping alike (the connection class stamps every frame it parses). ``watchdog``
  seconds without one means a dead (half-open) socket: it is aborted and the
  session reconnects. When :meth:`FeedSession._quiet_market` says the market
  is closed, silence is expected, so the watchdog first probes with a ping
  and gives up only if no pong comes within ``watchdog`` more seconds;
* **reconnect** with capped exponential backoff and full jitter: the n-th
  retry waits ``uniform(0, min(backoff_cap, backoff_base * 2**n))``; a
  connection that streamed for ``backoff_reset_after`` seconds starts n again
  from 0 (one that drops sooner keeps it growing);
* **resubscribe** everything after each reconnect (brokers keep no
  subscriptions across connections);
* **change of subscriptions** on a running session (the day's rollover):
  :meth:`FeedSession.resubscribe` swaps in a new decoder and subscription set
  at once, between two messages; a streaming connection is sent the difference
  (unsubscribe what left, subscribe what is new or changed mode), any other
  connection subscribes the new set whole when it opens;
* **circuit breaker**: ``auth_failures_to_open`` authentication failures in a
  row (HTTP 401/403, an expired daily token) stop the session in state
  ``auth_failed`` instead of hammering the broker;
* **cannot connect vs connection lost**: an attempt that fails before the
  WebSocket is open (refused, DNS, timeout, an HTTP answer other than the
  upgrade) is *cannot connect* (``connect_failures``); a connection that was
  open and then dropped (or went silent) is *connection lost* (``disconnects``).
  Both are logged as such and shown in :meth:`FeedSession.health` (``failure``,
  ``last_error``, ``down_for_s``);
* **not a feed**: before the session has ever streamed, an answer that can only
  mean the URL is not the broker's feed (an HTTP status other than 101 that is
  not 401/403, 408, 429 or 5xx, e.g. a web page's 200 or a 404; an Upstox
  authorize answer without a feed URL) stops it in state ``gave_up`` at once:
  retrying would not help. After it has streamed, the same answer is retried
  like any outage;
* **give up**: with ``give_up_after`` > 0, that many seconds without a
  streaming connection (since :meth:`run` began, or since the last one was
  lost) stop the session in state ``gave_up`` with the reason in ``gave_up``
  (``fastflow plant`` and ``fastflow record`` then exit 1 with it). 0: never;
* **malformed frames** are counted and the last one kept for diagnosis; the
  connection carries on;
* **nothing the broker sends ends the process**: a text frame handler, the
  decoder, the recorder or a flush consumer that raises is contained
  (:class:`~fastflow.obs.faults.Faults`: counted by reason, logged sparingly)
  and the next message is handled; an unexpected error of the connection itself
  (``connection``) reconnects with backoff;
* TLS: ``wss://`` and ``https://`` use Python's default SSL context, which
  verifies certificates. Nothing here turns verification off.

States: ``idle`` -> ``connecting`` -> ``subscribing`` -> ``streaming`` ->
(``backoff`` -> ``connecting`` ...) -> ``stopped`` | ``auth_failed`` | ``gave_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.frames import Frame, Opcode

from fastflow.errors import FastflowError, FrameError
from fastflow.hotpath import KiteDecoder, TickBatch, UpstoxDecoder
from fastflow.obs.backoff import Backoff
from fastflow.obs.faults import Faults
from fastflow.obs.state import State

logger = logging.getLogger(__name__)

#: Largest WebSocket message accepted (an Upstox snapshot of 2000 full_d30 keys is ~3 MB).
MAX_MESSAGE = 2**24

Decoder = KiteDecoder | UpstoxDecoder


class AuthFailed(FastflowError):
    """The broker refused the credentials (HTTP ``status``): counts towards the breaker."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"HTTP {status}" + (f": {detail}" if detail else ""))
        self.status = status


class Refused(FastflowError, OSError):
    """The broker's address answered, but not as its feed: HTTP ``status`` (None: an
    answer that is not the broker's protocol at all, e.g. no feed URL in it)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """A status that says "not now" (408, 429, 5xx) rather than "not here"."""
        return self.status is not None and (self.status >= 500 or self.status in (408, 429))


#: ``health()["failure"]``: why the session is not streaming.
CANNOT_CONNECT = "cannot_connect"
CONNECTION_LOST = "connection_lost"


class LivenessConnection(ClientConnection):
    """A client connection that stamps the arrival of every frame, control
    frames included, so that server pings count as signs of life."""

    last_activity = 0.0  # time.monotonic() of the last frame (or of the handshake)
    pings = 0

    def process_event(self, event: Any) -> None:
        self.last_activity = time.monotonic()
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1
        super().process_event(event)


def open_websocket(url: str, open_timeout: float, **options: Any) -> AbstractAsyncContextManager[LivenessConnection]:
    """A client connection with the settings every session uses: no client
    pings (the watchdog decides liveness), no compression (the feeds are
    binary and compressing them costs more than it saves on loopback or a LAN),
    large messages, a short close handshake."""
    manager: AbstractAsyncContextManager[LivenessConnection] = connect(  # type: ignore[assignment]
        url, create_connection=LivenessConnection, open_timeout=open_timeout, ping_interval=None,
        compression=None, max_size=MAX_MESSAGE, close_timeout=1.0, **options,
    )
    return manager


class FeedSession:
    """One broker connection that survives failures (see the module docstring)."""

    broker = "broker"
    #: {broker id: mode}; replaced whole by :meth:`resubscribe`, never changed in place.
    subscriptions: dict[Any, str]

    def __init__(
        self,
        decoder: Decoder,
        *,
        watchdog: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        backoff_reset_after: float = 5.0,
        auth_failures_to_open: int = 3,
        open_timeout: float = 10.0,
        give_up_after: float = 0.0,
        on_flush: Callable[[TickBatch], None] | None = None,
        on_frame: Callable[[int, bytes], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if (watchdog <= 0 or backoff_base <= 0 or backoff_cap < backoff_base or backoff_reset_after < 0
                or auth_failures_to_open < 1 or not give_up_after >= 0):
            raise ValueError("watchdog and backoff_base must be > 0, backoff_cap >= backoff_base, "
                             "backoff_reset_after >= 0, auth_failures_to_open >= 1, give_up_after >= 0")
        self.decoder = decoder
        self.watchdog = watchdog
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_failures_to_open = auth_failures_to_open
        self.open_timeout = open_timeout
        self.give_up_after = give_up_after
        self.on_flush = on_flush
        self.on_frame = on_frame  # (receive time ns, raw binary message): recording
        self._backoff = Backoff(backoff_base, backoff_cap, rng, reset_after=backoff_reset_after)
        self._stop = asyncio.Event()
        self._timed_out = False
        self.state = State.IDLE
        self.faults = Faults(self.broker, logger)
        self.last_frame_error: FrameError | None = None
        self.last_bad_frame: bytes = b""
        self.last_server_error = ""
        self.last_frame_ns = 0
        #: Why the session is not streaming (CANNOT_CONNECT, CONNECTION_LOST), and the last error (one line).
        self.failure: str | None = None
        self.last_error = ""
        #: Why the session gave up (state ``gave_up``), one line; "" otherwise.
        self.gave_up = ""
        #: A connection of this session has streamed (at least once).
        self.streamed = False
        self._opened = False  # the current attempt's WebSocket is open
        self._auth_failures = 0  # in a row
        self._down_since: float | None = None  # monotonic: no streaming connection since then
        # The streaming connection, what it was told to subscribe, and the task that
        # sends it a change of subscriptions (resubscribe).
        self._ws: LivenessConnection | None = None
        self._sent: dict[Any, str] = {}
        self._syncing: asyncio.Task[None] | None = None
        self.counters = {
            "connects": 0, "reconnects": 0, "frames": 0, "frame_errors": 0, "server_errors": 0,
            "watchdog_timeouts": 0, "probes": 0, "disconnects": 0, "connect_failures": 0, "auth_failures": 0,
            "resubscribes": 0,
        }

    # -- what a broker defines --------------------------------------------------------

    async def _open(self) -> AbstractAsyncContextManager[LivenessConnection]:
        """A connection to open (raise :class:`AuthFailed` for refused credentials)."""
        raise NotImplementedError

    async def _subscribe(self, ws: LivenessConnection) -> None:
        """Subscribe :attr:`subscriptions` on a fresh connection (read the mapping
        before the first ``await``: :meth:`resubscribe` may replace it meanwhile)."""
        raise NotImplementedError

    async def _send_subscribe(self, ws: LivenessConnection, subscriptions: Mapping[Any, str]) -> None:
        """Subscribe ``subscriptions`` ({id: mode}) on a connection that streams
        (new ids, or a new mode for ids it has)."""
        raise NotImplementedError

    async def _send_unsubscribe(self, ws: LivenessConnection, ids: list[Any]) -> None:
        """Unsubscribe ``ids`` on a connection that streams."""
        raise NotImplementedError

    def _on_text(self, message: str) -> None:
        """A text frame from the broker (errors, notices)."""

    def _on_binary(self, message: bytes) -> None:
        """Called for each binary message before it is decoded (e.g. to count heartbeats)."""

    def _quiet_market(self) -> bool:
        """True when silence is expected (the market is closed): probe before giving up."""
        return False

    @property
    def target(self) -> str:
        """Where the session connects, for messages: never with credentials in it."""
        return self.broker

    # -- public -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return (it closes the connection)."""
        self._stop.set()

    def resubscribe(self, decoder: Decoder, subscriptions: Mapping[Any, str]) -> None:
        """From the next message on, feed ``decoder`` and subscribe ``subscriptions``
        ({id: mode}) instead (the day's rollover). Synchronous, so no message is
        decoded half by one decoder and half by the other. A streaming connection
        is sent the difference in the background (unsubscribe, then subscribe);
        any other subscribes the new set whole when it opens."""
        self.decoder = decoder
        self.subscriptions = dict(subscriptions)
        self._sync()

    def _sync(self) -> None:
        """Send the streaming connection the difference between what it was told
        and :attr:`subscriptions` (one sender at a time; it loops until they agree)."""
        if self._ws is not None and (self._syncing is None or self._syncing.done()) \
                and self._sent != self.subscriptions:
            self._syncing = asyncio.get_running_loop().create_task(self._send_changes(self._ws))

    async def _send_changes(self, ws: LivenessConnection) -> None:
        try:
            while ws is self._ws and self._sent != self.subscriptions:
                wanted = self.subscriptions
                gone = [key for key in self._sent if key not in wanted]
                changed = {key: mode for key, mode in wanted.items() if self._sent.get(key) != mode}
                if gone:
                    await self._send_unsubscribe(ws, gone)
                if changed:
                    await self._send_subscribe(ws, changed)
                self._sent = wanted
                self.counters["resubscribes"] += 1
                logger.info("%s: subscriptions changed on the open connection: %d unsubscribed, %d subscribed",
                            self.broker, len(gone), len(changed))
        except ConnectionClosed:
            pass  # the next connection subscribes the new set whole
        except Exception as exc:  # contained like any other failure of ours: the connection goes on
            self.faults.record("resubscribe", exc)

    def health(self) -> dict[str, Any]:
        """State, counters and the age of the last frame (for /healthz and metrics);
        while not streaming, why (``failure``: ``cannot_connect`` or ``connection_lost``,
        ``last_error``) and for how long (``down_for_s``); ``gave_up``: the reason of
        state ``gave_up``."""
        age = None if not self.last_frame_ns else (time.time_ns() - self.last_frame_ns) / 1e9
        down = None if self._down_since is None else round(time.monotonic() - self._down_since, 3)
        return {"broker": self.broker, "state": self.state, "last_frame_age_s": age, **self.counters,
                "failure": self.failure, "last_error": self.last_error, "down_for_s": down,
                "gave_up": self.gave_up, "contained": self.faults.health()}

    async def run(self) -> None:
        """Stream until :meth:`stop`, until the circuit breaker opens, or until the
        session gives up (``give_up_after``, or an answer that is not a feed)."""
        self._auth_failures = 0
        self._down_since = time.monotonic()
        while not self._stop.is_set():
            self.state = State.CONNECTING
            self._opened = False
            try:
                await self._connect_and_stream()
                self._auth_failures = 0
            except (InvalidStatus, AuthFailed, Refused) as exc:
                if self._refused(_refusal(exc)):
                    return
            except InvalidMessage as exc:  # during the opening handshake
                cause = exc.__cause__
                if isinstance(cause, ValueError):  # an answer, but not HTTP/1.1 (HTTP/1.0, Redis, SSH, ...)
                    if self._refused(Refused(f"it answered the WebSocket upgrade with something else than "
                                             f"HTTP/1.1 ({_one_line(cause)})")):
                        return
                else:  # e.g. closed before answering: a broker restarting
                    self._failed(CANNOT_CONNECT, _one_line(exc) + (f" ({_one_line(cause)})" if cause else ""))
            except TimeoutError as exc:
                if self._opened:
                    self.counters["watchdog_timeouts"] += 1
                    self._failed(CONNECTION_LOST, f"no frame for {self.watchdog:g} s")
                else:
                    self._failed(CANNOT_CONNECT, f"no answer within {self.open_timeout:g} s"
                                 + (f" ({exc})" if str(exc) else ""))
            except (ConnectionClosed, InvalidHandshake, OSError) as exc:
                self._failed(CONNECTION_LOST if self._opened else CANNOT_CONNECT, _one_line(exc))
            except Exception as exc:  # whatever else: this connection is over, the session is not
                self.faults.record("connection", exc, "(reconnecting)")
                self._failed(CONNECTION_LOST if self._opened else CANNOT_CONNECT, _one_line(exc), log=False)
            if self._stop.is_set():
                break
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            if self.give_up_after and now - self._down_since >= self.give_up_after:
                self._give_up(self._down_reason(now))
                return
            self.state = State.BACKOFF
            delay = self._backoff.next_delay(now)
            if self.give_up_after:  # the last attempt is made when the time is up
                delay = min(delay, max(0.0, self._down_since + self.give_up_after - now))
            self.counters["reconnects"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.state = State.STOPPED

    def _refused(self, refused: Refused) -> bool:
        """An answer other than the upgrade; True when the session ends on it (an open
        breaker, or not a feed before it ever streamed)."""
        if refused.status in (401, 403):
            self._auth_failures += 1
            self.counters["auth_failures"] += 1
            if self._auth_failures >= self.auth_failures_to_open:
                self._failed(CANNOT_CONNECT, str(refused), log=False)
                self.state = State.AUTH_FAILED
                logger.error("%s: %d consecutive auth failures (HTTP %d): circuit breaker open; "
                             "renew the access token", self.broker, self._auth_failures, refused.status)
                return True
        elif not refused.retryable and not self.streamed:
            self._failed(CANNOT_CONNECT, str(refused), log=False)
            name = self.broker.capitalize()
            self._give_up(f"{self.target} is not {'an' if name[0] in 'AEIOU' else 'a'} {name} feed: {refused} "
                          "(check the URL)")
            return True
        self._failed(CANNOT_CONNECT, str(refused))
        return False

    def _failed(self, failure: str, error: str, *, log: bool = True) -> None:
        """Count and log one failed attempt (or lost connection)."""
        self.failure = failure
        self.last_error = error
        if failure == CONNECTION_LOST:
            self.counters["disconnects"] += 1
            if log:
                logger.warning("%s: connection lost (%s): reconnecting", self.broker, error)
        else:
            self.counters["connect_failures"] += 1
            if log:
                never = "" if self.streamed else " (never connected)"
                logger.warning("%s: cannot connect to %s%s: %s; retrying", self.broker, self.target, never, error)

    def _down_reason(self, now: float) -> str:
        assert self._down_since is not None
        down = now - self._down_since
        if self.streamed:
            what = f"the connection to {self.target} was lost {down:.1f} s ago and not re-established"
        else:
            what = f"cannot connect to {self.target} for {down:.1f} s"
        return f"{what}: {self.last_error}; gave up (give_up_after {self.give_up_after:g} s)"

    def _give_up(self, reason: str) -> None:
        self.gave_up = reason
        self.state = State.GAVE_UP
        logger.info("%s: giving up: %s", self.broker, reason)  # the caller says it (once) as it exits

    # -- one connection ------------------------------------------------------------

    async def _connect_and_stream(self) -> None:
        """Returns on stop. Raises TimeoutError when the watchdog killed the
        connection, ConnectionClosed when the broker or the network did."""
        async with await self._open() as ws:
            self._opened = True
            self.counters["connects"] += 1
            self.state = State.SUBSCRIBING
            sent = self.subscriptions  # replaced whole by resubscribe(), never changed in place
            await self._subscribe(ws)
            self._ws, self._sent = ws, sent
            self._sync()  # a resubscribe() while subscribing
            self.state = State.STREAMING
            self.streamed = True
            self.failure = None
            self._down_since = None
            self._backoff.up(time.monotonic())
            self._timed_out = False
            watch = asyncio.create_task(self._watch(ws))
            try:
                async for message in ws:
                    self._on_message(message)
            except ConnectionClosed:
                if not self._timed_out:
                    raise
            finally:
                self._ws = None
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            if self._timed_out:
                raise TimeoutError
            if not self._stop.is_set():  # the broker closed the connection cleanly
                raise ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent,
                                       ws.protocol.close_rcvd_then_sent)

    async def _watch(self, ws: LivenessConnection) -> None:
        """Abort ``ws`` after ``watchdog`` seconds without a frame (after a
        probe that got no answer, in a quiet market); close it on stop."""
        probe_at: float | None = None  # when the unanswered probe went out
        while True:
            if probe_at is not None and ws.last_activity >= probe_at:
                probe_at = None  # a pong (or anything) came back
            deadline = (ws.last_activity if probe_at is None else probe_at) + self.watchdog
            wait = deadline - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)
                if self._stop.is_set():
                    await ws.close()
                    return
                continue
            if probe_at is None and self._quiet_market():
                probe_at = time.monotonic()  # a closed market is quiet: ask before declaring it dead
                self.counters["probes"] += 1
                with contextlib.suppress(ConnectionClosed):
                    await ws.ping()
                continue
            self._timed_out = True
            if ws.transport is not None:
                ws.transport.abort()
            return

    def _on_message(self, message: bytes | str) -> None:
        now = time.time_ns()
        self.last_frame_ns = now
        self.counters["frames"] += 1
        if isinstance(message, str):
            try:
                self._on_text(message)
            except Exception as exc:
                self.faults.record("text", exc)
            return
        if self.on_frame is not None:
            try:
                self.on_frame(now, message)
            except Exception as exc:
                self.faults.record("record", exc)
        decoder = self.decoder
        try:
            self._on_binary(message)
            decoder.feed(message, now)
        except FrameError as exc:
            self.counters["frame_errors"] += 1
            self.last_frame_error = exc
            self.last_bad_frame = bytes(message[:4096])
            logger.warning("%s: malformed frame skipped: %s", self.broker, exc)
            return
        except Exception as exc:  # not a malformed frame: a failure of ours, contained all the same
            self.last_bad_frame = bytes(message[:4096])
            self.faults.record("decode", exc)
            return
        if self.on_flush is not None and decoder.state.dirty_count:
            try:
                self.on_flush(decoder.state.flush())
            except Exception as exc:
                self.faults.record("flush", exc)


def _refusal(exc: InvalidStatus | AuthFailed | Refused) -> Refused:
    """An HTTP answer instead of the upgrade (or an authorize failure) as one :class:`Refused`."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, AuthFailed):
        return Refused(str(exc), exc.status)
    response = exc.response
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    return Refused(f"it answered the WebSocket upgrade with HTTP {response.status_code}{reason}",
                   response.status_code)


def _one_line(exc: BaseException) -> str:
    """An exception as one line of a message."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
