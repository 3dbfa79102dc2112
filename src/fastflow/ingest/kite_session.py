"""One Kite ticker connection that survives real broker failures.

:class:`KiteSession` connects to ``{url}?api_key=...&access_token=...``,
subscribes its tokens grouped by mode, and feeds every binary message whole
into a :class:`~fastflow.hotpath.KiteDecoder`, stamped with its receive time
(ns). It then flushes the state once per message and hands the
:class:`~fastflow.hotpath.TickBatch` to ``on_flush``.

Failure handling (docs/ingest.md):

* **liveness watchdog**: any frame, Kite's 1-byte heartbeat included, resets
  it; ``watchdog`` seconds (default 5) without one means the socket is dead
  (half-open), so the session drops it and reconnects;
* **reconnect** with capped exponential backoff and full jitter: the n-th
  retry waits ``uniform(0, min(backoff_cap, backoff_base * 2**n))``; a
  connection that reached streaming resets the count;
* **resubscribe** every token in its mode after each reconnect (Kite keeps no
  subscriptions across connections);
* **circuit breaker**: ``auth_failures_to_open`` consecutive 401/403
  upgrades (an expired daily token) stop the session in state
  ``"auth_failed"`` instead of hammering the broker;
* **malformed frames** are counted (``frame_errors``) and kept (the last
  one, for diagnosis); the connection carries on;
* TLS certificates are verified (``wss://`` uses the default SSL context).

Cold code: one ``await`` per WebSocket message, never per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from fastflow.errors import FrameError
from fastflow.hotpath import KiteDecoder, TickBatch

logger = logging.getLogger(__name__)

MODES = ("ltp", "quote", "full")
MAX_TOKENS_PER_CONNECTION = 3000


class KiteSession:
    """Connect, subscribe, read into the hot path, and recover from failures."""

    def __init__(
        self,
        decoder: KiteDecoder,
        *,
        api_key: str,
        access_token: str,
        subscriptions: Mapping[int, str],
        url: str = "wss://ws.kite.trade",
        watchdog: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        auth_failures_to_open: int = 3,
        open_timeout: float = 10.0,
        on_flush: Callable[[TickBatch], None] | None = None,
        on_frame: Callable[[int, bytes], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if len(subscriptions) > MAX_TOKENS_PER_CONNECTION:
            raise ValueError(
                f"{len(subscriptions)} tokens: a Kite connection takes at most {MAX_TOKENS_PER_CONNECTION}"
            )
        bad = {m for m in subscriptions.values() if m not in MODES}
        if bad:
            raise ValueError(f"unknown mode(s) {sorted(bad)}; expected one of {MODES}")
        if watchdog <= 0 or backoff_base <= 0 or backoff_cap < backoff_base or auth_failures_to_open < 1:
            raise ValueError("watchdog and backoff_base must be > 0, backoff_cap >= backoff_base, "
                             "auth_failures_to_open >= 1")
        self.decoder = decoder
        self.api_key = api_key
        self.access_token = access_token
        self.subscriptions = dict(subscriptions)
        self.url = url
        self.watchdog = watchdog
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_failures_to_open = auth_failures_to_open
        self.open_timeout = open_timeout
        self.on_flush = on_flush
        self.on_frame = on_frame  # (receive time ns, raw binary message): recording
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()
        self.state = "idle"
        self.last_frame_error: FrameError | None = None
        self.last_bad_frame: bytes = b""
        self.last_server_error = ""
        self.last_frame_ns = 0
        self.counters = {
            "connects": 0, "reconnects": 0, "frames": 0, "heartbeats": 0, "frame_errors": 0,
            "server_errors": 0, "watchdog_timeouts": 0, "disconnects": 0, "auth_failures": 0,
        }

    # -- public -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return (it closes the connection)."""
        self._stop.set()

    def health(self) -> dict[str, Any]:
        """State, counters and the age of the last frame (for /healthz and metrics)."""
        age = None if not self.last_frame_ns else (time.time_ns() - self.last_frame_ns) / 1e9
        return {"state": self.state, "last_frame_age_s": age, **self.counters}

    async def run(self) -> None:
        """Stream until :meth:`stop`, or until the circuit breaker opens."""
        attempt = 0
        auth_failures = 0
        while not self._stop.is_set():
            self.state = "connecting"
            try:
                streamed = await self._connect_and_stream()
                auth_failures = 0
                if streamed:
                    attempt = 0
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    auth_failures += 1
                    self.counters["auth_failures"] += 1
                    if auth_failures >= self.auth_failures_to_open:
                        self.state = "auth_failed"
                        logger.error("kite: %d consecutive auth failures (HTTP %d): circuit breaker open; "
                                     "renew the access token", auth_failures, status)
                        return
                logger.warning("kite: upgrade refused with HTTP %d", status)
            except TimeoutError:
                self.counters["watchdog_timeouts"] += 1
                logger.warning("kite: no frame for %.1f s: reconnecting", self.watchdog)
            except (ConnectionClosed, InvalidHandshake, OSError) as exc:
                self.counters["disconnects"] += 1
                logger.warning("kite: connection lost (%s): reconnecting", exc)
            if self._stop.is_set():
                break
            self.state = "backoff"
            delay = self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))
            attempt += 1
            self.counters["reconnects"] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.state = "stopped"

    # -- one connection ------------------------------------------------------------

    async def _connect_and_stream(self) -> bool:
        """Returns True if the connection reached streaming before it ended."""
        url = f"{self.url}?api_key={self.api_key}&access_token={self.access_token}"
        async with connect(url, open_timeout=self.open_timeout, ping_interval=None, max_size=2**22) as ws:
            self.counters["connects"] += 1
            self.state = "subscribing"
            await self._subscribe(ws)
            self.state = "streaming"
            stop = asyncio.ensure_future(self._stop.wait())
            try:
                while True:
                    receive = asyncio.ensure_future(ws.recv())
                    done, _ = await asyncio.wait({receive, stop}, timeout=self.watchdog,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if stop in done:
                        receive.cancel()
                        return True
                    if not done:
                        receive.cancel()
                        raise TimeoutError
                    self._on_message(receive.result())
            finally:
                stop.cancel()

    async def _subscribe(self, ws: Any) -> None:
        by_mode: dict[str, list[int]] = {}
        for token, mode in self.subscriptions.items():
            by_mode.setdefault(mode, []).append(token)
        for mode, tokens in by_mode.items():
            await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
            if mode != "quote":  # a fresh subscription is in quote mode
                await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))

    def _on_message(self, message: bytes | str) -> None:
        now = time.time_ns()
        self.last_frame_ns = now
        self.counters["frames"] += 1
        if isinstance(message, str):
            self._on_text(message)
            return
        if self.on_frame is not None:
            self.on_frame(now, message)
        if len(message) == 1:
            self.counters["heartbeats"] += 1
        try:
            self.decoder.feed(message, now)
        except FrameError as exc:
            self.counters["frame_errors"] += 1
            self.last_frame_error = exc
            self.last_bad_frame = bytes(message[:4096])
            logger.warning("kite: malformed frame skipped: %s", exc)
            return
        if self.on_flush is not None and self.decoder.state.dirty_count:
            self.on_flush(self.decoder.state.flush())

    def _on_text(self, message: str) -> None:
        try:
            payload = json.loads(message)
        except ValueError:
            payload = {}
        if isinstance(payload, dict) and payload.get("type") == "error":
            self.counters["server_errors"] += 1
            self.last_server_error = str(payload.get("data", ""))
            logger.error("kite: server error: %s", self.last_server_error)


class KiteIngest:
    """All the Kite connections of one api_key: the instrument list split into
    chunks of at most ``tokens_per_connection`` (3000) over at most
    ``max_connections`` (3) :class:`KiteSession`\\ s, all feeding one decoder.
    Each session reconnects and resubscribes on its own."""

    def __init__(
        self,
        decoder: KiteDecoder,
        *,
        subscriptions: Mapping[int, str],
        max_connections: int = 3,
        tokens_per_connection: int = MAX_TOKENS_PER_CONNECTION,
        **session_options: Any,
    ) -> None:
        if not 1 <= tokens_per_connection <= MAX_TOKENS_PER_CONNECTION:
            raise ValueError(f"tokens_per_connection must be 1..{MAX_TOKENS_PER_CONNECTION}")
        items = list(subscriptions.items())
        chunks = max(1, -(-len(items) // tokens_per_connection))
        if chunks > max_connections:
            raise ValueError(
                f"{len(items)} tokens need {chunks} connections; an api_key gets at most {max_connections} "
                f"x {tokens_per_connection} tokens: run another plant with another key for the rest"
            )
        self.sessions = [
            KiteSession(decoder, subscriptions=dict(items[i * tokens_per_connection : (i + 1) * tokens_per_connection]),
                        **session_options)
            for i in range(chunks)
        ]

    async def run(self) -> None:
        """Run every session until :meth:`stop` (or until all their breakers open)."""
        await asyncio.gather(*(session.run() for session in self.sessions))

    def stop(self) -> None:
        for session in self.sessions:
            session.stop()

    def health(self) -> dict[str, Any]:
        """Per-connection health and the overall state: ``streaming`` only when
        every connection streams."""
        states = {session.state for session in self.sessions}
        overall = "streaming" if states == {"streaming"} else ("auth_failed" if "auth_failed" in states else
                                                                 "degraded")
        return {"state": overall, "connections": [session.health() for session in self.sessions]}
