"""Facts of Kite's ticker that the ingest, the registry and the simulator share
(broker-formats.md §1). The binary layout's constants are in
:mod:`fastflow.reference.broker_wire` (the twin of ``ext/broker_wire.pxi``)."""

from __future__ import annotations

from typing import Final

#: Subscription modes (``{"a": "mode", "v": [mode, [tokens]]}``).
MODES: Final = ("ltp", "quote", "full")
#: The ticker's endpoint.
URL: Final = "wss://ws.kite.trade"
#: Tokens one connection may subscribe, and connections one api_key may open.
MAX_TOKENS_PER_CONNECTION: Final = 3000
MAX_CONNECTIONS: Final = 3
#: What one api_key may subscribe: 3 connections x 3000 tokens.
MAX_TOKENS: Final = MAX_CONNECTIONS * MAX_TOKENS_PER_CONNECTION

#: Kite Connect's REST API (indian-market-facts.md §2): the token exchange and the
#: instrument dump live under it; every call sends ``X-Kite-Version: 3``.
API_URL: Final = "https://api.kite.trade"
API_VERSION: Final = "3"
#: The login page the user opens (``?v=3&api_key=...``).
LOGIN_URL: Final = "https://kite.zerodha.com/connect/login"
#: ``POST`` api_key, request_token, checksum -> the day's access_token.
SESSION_TOKEN_PATH: Final = "/session/token"
#: ``GET``: the day's instrument dump (CSV, gzipped).
INSTRUMENTS_PATH: Final = "/instruments"
