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
