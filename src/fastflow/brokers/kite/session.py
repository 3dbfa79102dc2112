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
        by_mode: dict[str, list[int]] = {}
        for token, mode in self.subscriptions.items():
            by_mode.setdefault(mode, []).append(token)
        for mode, tokens in by_mode.items():
            await ws.send(json.dumps({"a": "subscribe", "v": tokens}))
            if mode != "quote":  # a fresh subscription is in quote mode
                await ws.send(json.dumps({"a": "mode", "v": [mode, tokens]}))

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
        self.sessions = [
            KiteSession(decoder, subscriptions=dict(items[i * tokens_per_connection : (i + 1) * tokens_per_connection]),
                        **session_options)
            for i in range(chunks)
        ]

    async def run(self) -> None:
        """Run every session until :meth:`stop` (or until all their breakers open). A
        session that gives up (``give_up_after``, or a URL that is not a feed) stops the
        others: the ingest gives up whole."""

        async def one(session: KiteSession) -> None:
            await session.run()
            if session.state == State.GAVE_UP:
                self.stop()

        await asyncio.gather(*(one(session) for session in self.sessions))

    def stop(self) -> None:
        for session in self.sessions:
            session.stop()

    def health(self) -> dict[str, Any]:
        """Per-connection health and the overall state: ``streaming`` only when
        every connection streams."""
        return {"state": overall({s.state for s in self.sessions}),
                "connections": [session.health() for session in self.sessions]}
