"""Facts of the Upstox Market Data Feed V3 that the ingest and the simulator share
(broker-formats.md §2.3-2.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: Subscription modes (``data.mode`` of a request); ``full`` is the 5-level full feed.
MODES: Final = ("ltpc", "full", "option_greeks", "full_d30")

#: The API base the feed is authorized at.
API_URL: Final = "https://api.upstox.com"
#: The authorize endpoint: ``GET`` with ``Authorization: Bearer <token>`` -> a single-use feed URL.
AUTHORIZE_PATH: Final = "/v3/feed/market-data-feed/authorize"
#: The SDK's endpoint: answers with a redirect to a fresh authorized URL.
FEED_PATH: Final = "/v3/feed/market-data-feed"

#: Keys per connection when one mode is used alone / with other modes (V3 limits table;
#: full_d30 has no row there, 1500 is what third parties cite).
INDIVIDUAL_LIMITS: Final[Mapping[str, int]] = {"ltpc": 5000, "option_greeks": 3000, "full": 2000, "full_d30": 1500}
COMBINED_LIMITS: Final[Mapping[str, int]] = {"ltpc": 2000, "option_greeks": 2000, "full": 1500, "full_d30": 1500}


def limit_error(modes: Mapping[str, str], individual: Mapping[str, int] = INDIVIDUAL_LIMITS,
                combined: Mapping[str, int] = COMBINED_LIMITS) -> str | None:
    """Why the subscription ``modes`` (key -> mode) breaks the per-connection limits, or None."""
    counts: dict[str, int] = {}
    for mode in modes.values():
        counts[mode] = counts.get(mode, 0) + 1
    caps = individual if len(counts) == 1 else combined
    for mode, count in counts.items():
        if count > caps[mode]:
            alone = "alone" if len(counts) == 1 else "combined with other modes"
            return f"{count} keys in mode {mode}: at most {caps[mode]} ({alone})"
    return None

#: The OAuth2 authorization-code login (indian-market-facts.md §3): the dialog the user
#: opens, under :data:`API_URL`, and the code's exchange for the day's access_token.
LOGIN_DIALOG_PATH: Final = "/v2/login/authorization/dialog"
TOKEN_PATH: Final = "/v2/login/authorization/token"
#: The day's instrument master, every exchange (gzipped JSON, refreshed daily).
INSTRUMENTS_PATH: Final = "/market-quote/instruments/exchange/complete.json.gz"
INSTRUMENTS_URL: Final = "https://assets.upstox.com" + INSTRUMENTS_PATH
