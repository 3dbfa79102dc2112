"""The Upstox Market Data Feed V3 connection that survives real broker failures.

:class:`UpstoxSession` authorizes, connects and subscribes, then feeds every
binary ``FeedResponse`` whole into an :class:`~fastflow.hotpath.UpstoxDecoder`.
Reconnect, backoff, watchdog, breaker and the hand-off to the hot path come
from :class:`~fastflow.ingest.session.FeedSession`; what is Upstox's own
(broker-formats.md §2.3-2.6):

* **authorize, then connect**: ``GET {api_url}/v3/feed/market-data-feed/authorize``
  with ``Authorization: Bearer <access_token>`` returns a single-use
  ``authorized_redirect_uri``, so every reconnect authorizes afresh. HTTP
  401/403 there (an expired token) counts towards the circuit breaker; any
  other failure is an ordinary retry, except, before the session has ever
  streamed, an answer that says this is not the Upstox API (an HTTP status other
  than 408, 429 or 5xx, a body that is not JSON or holds no feed URL): the
  session gives up at once (state ``gave_up``). ``https://`` verifies certificates
  (Python's default context; the SDK turns verification off, fastflow does not);
* **subscribe** in batches of at most ``batch_size`` keys per request, grouped
  by mode: ``{"guid", "method": "sub", "data": {"mode", "instrumentKeys"}}`` as
  JSON in a binary frame. The per-connection limits (5000 ltpc / 3000
  option_greeks / 2000 full / 1500 full_d30 alone, 2000/2000/1500/1500 mixed)
  are checked when the session is built, so a reconnect never meets a refusal;
* **liveness**: data frames and the server's WebSocket pings both reset the
  watchdog. Upstox pings only when it has nothing to send, so in an open
  market ``watchdog`` seconds of nothing means a dead socket. When the latest
  ``market_info`` says every subscribed segment is closed (``NORMAL_CLOSE``,
  ``CLOSING_END``, ``PRE_OPEN_END``), silence is normal: the watchdog sends a
  ping of its own and gives up only if no pong (or anything else) comes
  within another ``watchdog`` seconds.

:class:`UpstoxIngest` is the plant's view: one session (Upstox allows one
connection per user), with the same ``run`` / ``stop`` / ``health`` as
:class:`~fastflow.brokers.kite.session.KiteIngest`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastflow.brokers.upstox.constants import (
    API_URL,
    AUTHORIZE_PATH,
    COMBINED_LIMITS,
    INDIVIDUAL_LIMITS,
    MODES,
    limit_error,
)
from fastflow.hotpath import UpstoxDecoder
from fastflow.ingest.session import AuthFailed, FeedSession, LivenessConnection, Refused, open_websocket
from fastflow.obs.state import overall

logger = logging.getLogger(__name__)

#: Segment statuses in which no trades happen, so a quiet feed is expected.
CLOSED_STATUSES = frozenset({"PRE_OPEN_END", "NORMAL_CLOSE", "CLOSING_END"})


def check(subscriptions: Mapping[str, str]) -> None:
    """``ValueError`` unless one connection can take ``subscriptions`` ({key: mode})."""
    bad = {m for m in subscriptions.values() if m not in MODES}
    if bad:
        raise ValueError(f"unknown mode(s) {sorted(bad)}; expected one of {MODES}")
    error = limit_error(subscriptions, INDIVIDUAL_LIMITS, COMBINED_LIMITS)
    if error is not None:
        raise ValueError(f"an Upstox connection cannot take this subscription: {error}")


class UpstoxSession(FeedSession):
    """Authorize, connect, subscribe, read into the hot path, and recover from failures."""

    broker = "upstox"

    def __init__(
        self,
        decoder: UpstoxDecoder,
        *,
        access_token: str,
        subscriptions: Mapping[str, str],
        api_url: str = API_URL,
        batch_size: int = 1000,
        **options: Any,
    ) -> None:
        check(subscriptions)
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(f"api_url {api_url!r}: the feed is authorized over HTTP(S), e.g. https://api.upstox.com")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        super().__init__(decoder, **options)
        self.access_token = access_token
        self.subscriptions = dict(subscriptions)
        self.api_url = api_url.rstrip("/")
        self.batch_size = batch_size
        self._segments = frozenset(key.partition("|")[0] for key in self.subscriptions)
        self._upstox_decoder = decoder

    # -- authorize and connect ------------------------------------------------------

    def _authorize(self) -> str:
        """The single-use feed URL (blocking: runs in a thread)."""
        request = urllib.request.Request(
            self.api_url + AUTHORIZE_PATH,
            headers={"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.open_timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace")
            if exc.code in (401, 403):
                raise AuthFailed(exc.code, detail) from None
            detail = " ".join(detail.split())[:200]
            raise Refused(f"authorize: HTTP {exc.code}" + (f": {detail}" if detail else ""), exc.code) from None
        except urllib.error.URLError as exc:
            raise OSError(f"authorize: {exc.reason}") from None
        except ValueError as exc:  # not the Upstox API (a web page, another server)
            raise Refused(f"authorize: the answer is not JSON: {exc}") from None
        data = body.get("data") if isinstance(body, dict) else None
        url = data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri") if isinstance(data, dict) \
            else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise Refused(f"authorize: no ws:// or wss:// authorized_redirect_uri in {str(body)[:200]}")
        return url

    @property
    def target(self) -> str:
        return self.api_url

    async def _open(self) -> AbstractAsyncContextManager[LivenessConnection]:
        url = await asyncio.to_thread(self._authorize)
        return open_websocket(url, self.open_timeout)

    async def _subscribe(self, ws: LivenessConnection) -> None:
        await self._send_subscribe(ws, self.subscriptions)

    async def _send_subscribe(self, ws: LivenessConnection, subscriptions: Mapping[str, str]) -> None:
        by_mode: dict[str, list[str]] = {}
        for key, mode in subscriptions.items():
            by_mode.setdefault(mode, []).append(key)
        for mode, keys in by_mode.items():  # "sub" sets the mode of keys already subscribed, too
            for start in range(0, len(keys), self.batch_size):
                request = {"guid": uuid.uuid4().hex, "method": "sub",
                           "data": {"mode": mode, "instrumentKeys": keys[start : start + self.batch_size]}}
                await ws.send(json.dumps(request).encode())

    async def _send_unsubscribe(self, ws: LivenessConnection, ids: list[str]) -> None:
        for start in range(0, len(ids), self.batch_size):
            request = {"guid": uuid.uuid4().hex, "method": "unsub",
                       "data": {"instrumentKeys": ids[start : start + self.batch_size]}}
            await ws.send(json.dumps(request).encode())

    def resubscribe(self, decoder: Any, subscriptions: Mapping[Any, str]) -> None:
        """As :meth:`FeedSession.resubscribe`; ``ValueError``, with nothing changed, for
        a set the connection cannot take (a mode it does not know, over its limits)."""
        if not isinstance(decoder, UpstoxDecoder):
            raise TypeError("an Upstox session needs an UpstoxDecoder")
        check(subscriptions)
        self._upstox_decoder = decoder
        self._segments = frozenset(key.partition("|")[0] for key in subscriptions)
        super().resubscribe(decoder, subscriptions)

    # -- liveness -------------------------------------------------------------------

    def _quiet_market(self) -> bool:
        status = self._upstox_decoder.market_status
        known = [status.get(segment) for segment in self._segments]
        return bool(known) and all(s in CLOSED_STATUSES for s in known)

    def _on_text(self, message: str) -> None:
        self.counters["server_errors"] += 1
        self.last_server_error = message[:500]
        logger.error("upstox: unexpected text frame: %s", self.last_server_error)

    def health(self) -> dict[str, Any]:
        return {**super().health(), "market_status": self._upstox_decoder.market_status}


class UpstoxIngest:
    """The plant's Upstox ingest: one :class:`UpstoxSession` (one connection per user)."""

    def __init__(self, decoder: UpstoxDecoder, *, subscriptions: Mapping[str, str], **session_options: Any) -> None:
        self.sessions = [UpstoxSession(decoder, subscriptions=subscriptions, **session_options)]

    async def run(self) -> None:
        await self.sessions[0].run()

    def stop(self) -> None:
        self.sessions[0].stop()

    def resubscribe(self, decoder: UpstoxDecoder, subscriptions: Mapping[str, str]) -> None:
        """Feed ``decoder`` and subscribe ``subscriptions`` from now on (the day's
        rollover), on the open connection; ``ValueError``, with nothing changed, when
        one connection cannot take them."""
        self.sessions[0].resubscribe(decoder, subscriptions)

    def health(self) -> dict[str, Any]:
        return {"state": overall({s.state for s in self.sessions}),
                "connections": [s.health() for s in self.sessions]}
