"""Zerodha Kite ticker connections that survive real broker failures.

:class:`KiteSession` is one connection to ``{url}?api_key=...&access_token=...``:
it subscribes its tokens grouped by mode and feeds every binary message whole
into a :class:`~fastflow.hotpath.KiteDecoder`. Reconnect, backoff, watchdog,
breaker and the hand-off to the hot path come from
:class:`~fastflow.ingest.session.FeedSession`; what is Kite's own:

* any frame resets the watchdog, Kite's 1-byte heartbeat (sent about every
  second when nothing else is) included, so 5 s of nothing means a dead socket;
* a fresh subscription is in quote mode, so other modes take a ``mode`` request;
* ``{"type": "error"}`` text frames are counted and kept (``last_server_error``);
* an expired daily access token shows as HTTP 403 at the upgrade (breaker).

:class:`KiteIngest` runs every connection of one api_key: up to 3 of up to
3000 tokens each.

Cold code: one Python call per WebSocket message, never per packet.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastflow.brokers.kite.constants import MAX_CONNECTIONS, MAX_TOKENS_PER_CONNECTION, MODES, URL
from fastflow.hotpath import KiteDecoder
from fastflow.ingest.session import FeedSession, LivenessConnection, open_websocket
from fastflow.obs.state import State, overall

logger = logging.getLogger(__name__)



class KiteSession(FeedSession):
    """Connect, subscribe, read into the hot path, and recover from failures."""

    broker = "kite"

    def __init__(
        self,
        decoder: KiteDecoder,
        *,
        api_key: str,
        access_token: str,
        subscriptions: Mapping[int, str],
        url: str = URL,
        **options: Any,
    ) -> None:
        if len(subscriptions) > MAX_TOKENS_PER_CONNECTION:
            raise ValueError(
                f"{len(subscriptions)} tokens: a Kite connection takes at most {MAX_TOKENS_PER_CONNECTION}"
            )
        bad = {m for m in subscriptions.values() if m not in MODES}
        if bad:
            raise ValueError(f"unknown mode(s) {sorted(bad)}; expected one of {MODES}")
        super().__init__(decoder, **options)
        self.api_key = api_key
        self.access_token = access_token
        self.subscriptions = dict(subscriptions)
        self.url = url
        self.counters["heartbeats"] = 0

    @property
    def target(self) -> str:
        return self.url  # the credentials travel in the query string: never shown

    async def _open(self) -> AbstractAsyncContextManager[LivenessConnection]:
        return open_websocket(f"{self.url}?api_key={self.api_key}&access_token={self.access_token}",
                              self.open_timeout)

    async def _subscribe(self, ws: LivenessConnection) -> None:
        await self._send_subscribe(ws, self.subscriptions)

    async def _send_subscribe(self, ws: LivenessConnection, subscriptions: Mapping[int, str]) -> None:
        by_mode: dict[str, list[int]] = {}
        for token, mode in subscriptions.items():
            by_mode.setdefault(mode, []).append(token)
        for mode, tokens in by_mode.items():
            await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
            if mode != "quote":  # a fresh subscription is in quote mode
                await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))

    async def _send_unsubscribe(self, ws: LivenessConnection, ids: list[int]) -> None:
        await ws.send(json.dumps({"a": "unsubscribe", "v": ids}))

    def _on_binary(self, message: bytes) -> None:
        if len(message) == 1:
            self.counters["heartbeats"] += 1

    def _on_text(self, message: str) -> None:
        try:
            payload = json.loads(message)
        except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep to parse
            self.faults.record("text", exc, "(not JSON)")
            return
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
        max_connections: int = MAX_CONNECTIONS,
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
        self.max_connections = max_connections
        self.tokens_per_connection = tokens_per_connection
        self._session_options = session_options
        self.sessions = [
            KiteSession(decoder, subscriptions=dict(items[i * tokens_per_connection : (i + 1) * tokens_per_connection]),
                        **session_options)
            for i in range(chunks)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._stopped = False
        self._added = asyncio.Event()  # run() waits on a session resubscribe() started, too

    async def run(self) -> None:
        """Run every session until :meth:`stop` (or until all their breakers open). A
        session that gives up (``give_up_after``, or a URL that is not a feed) stops the
        others: the ingest gives up whole. A session :meth:`resubscribe` adds runs too."""
        self._running = True
        for session in self.sessions:
            self._start(session)
        try:
            while True:
                for task in self._tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        task.result()  # a session that crashed crashes the ingest
                pending = [task for task in self._tasks if not task.done()]
                if not pending:
                    return
                self._added.clear()
                added = asyncio.ensure_future(self._added.wait())
                await asyncio.wait([*pending, added], return_when=asyncio.FIRST_COMPLETED)
                added.cancel()
        finally:
            self._running = False
            for task in self._tasks:
                task.cancel()

    def _start(self, session: KiteSession) -> None:
        async def one() -> None:
            await session.run()
            if session.state == State.GAVE_UP:
                self.stop()

        self._tasks.append(asyncio.get_running_loop().create_task(one()))
        self._added.set()

    def stop(self) -> None:
        self._stopped = True
        for session in self.sessions:
            session.stop()

    def resubscribe(self, decoder: KiteDecoder, subscriptions: Mapping[int, str]) -> None:
        """Feed ``decoder`` and subscribe ``subscriptions`` from now on (the day's
        rollover), on the open connections: a token stays on the connection that has
        it, what left is unsubscribed there, new tokens go where there is room (a new
        connection, up to ``max_connections``, when there is none). ``ValueError``,
        with nothing changed, when they do not fit or name an unknown mode."""
        bad = {m for m in subscriptions.values() if m not in MODES}
        if bad:
            raise ValueError(f"unknown mode(s) {sorted(bad)}; expected one of {MODES}")
        plans = [{t: subscriptions[t] for t in session.subscriptions if t in subscriptions}
                 for session in self.sessions]
        placed = {t for plan in plans for t in plan}
        fresh = [(t, m) for t, m in subscriptions.items() if t not in placed]
        for plan in plans:
            room = self.tokens_per_connection - len(plan)
            plan.update(fresh[:room])
            del fresh[:room]
        while fresh:
            plans.append(dict(fresh[: self.tokens_per_connection]))
            del fresh[: self.tokens_per_connection]
        if len(plans) > self.max_connections:
            raise ValueError(f"{len(subscriptions)} tokens need {len(plans)} connections; an api_key gets at most "
                             f"{self.max_connections} x {self.tokens_per_connection} tokens")
        for session, plan in zip(self.sessions, plans, strict=False):
            session.resubscribe(decoder, plan)
        for plan in plans[len(self.sessions):]:
            session = KiteSession(decoder, subscriptions=plan, **self._session_options)
            if self._stopped:
                session.stop()
            self.sessions.append(session)
            if self._running:
                self._start(session)

    def health(self) -> dict[str, Any]:
        """Per-connection health and the overall state: ``streaming`` only when
        every connection streams."""
        return {"state": overall({s.state for s in self.sessions}),
                "connections": [session.health() for session in self.sessions]}
