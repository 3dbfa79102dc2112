"""Upstox: Market Data Feed V3 (protobuf over WebSocket); :data:`SPEC` is its entry
in the broker registry (:func:`fastflow.brokers.get`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fastflow.brokers import Ingest, select_symbols
from fastflow.brokers.upstox.constants import API_URL, INDIVIDUAL_LIMITS, MODES

if TYPE_CHECKING:
    from fastflow.hotpath import MarketState, TickBatch, UpstoxDecoder
    from fastflow.instruments import Instruments


class UpstoxSpec:
    """Upstox in the broker registry: instrument_keys, one connection per user
    capped per mode; the URL is the API base the feed is authorized at."""

    name = "upstox"
    title = "Upstox"
    modes: tuple[str, ...] = MODES
    default_url = API_URL
    keyed = True
    instruments_suffix = "json"

    def load_instruments(self, path: str) -> Instruments:
        from fastflow.instruments import Instruments

        return Instruments.from_upstox(path)

    def instruments_from_rows(self, rows: Iterable[Mapping[str, object]]) -> Instruments:
        from fastflow.instruments import Instruments

        return Instruments.from_upstox_rows(rows)

    def subscription_limit(self, mode: str) -> int:
        return INDIVIDUAL_LIMITS.get(mode, 0)

    def subscriptions(self, instruments: Instruments, symbols: Iterable[str] | None, mode: str, *,
                      limit: int | None = None) -> tuple[dict[Any, str], str]:
        limit = self.subscription_limit(mode) if limit is None else limit
        return select_symbols(instruments, symbols, mode, limit,
                              lambda n: [str(k) for k in instruments.instrument_key[:n]], instruments.key_of,
                              f"an Upstox connection takes at most {limit:,} keys in {mode} mode")

    def decoder(self, state: MarketState) -> UpstoxDecoder:
        from fastflow.hotpath import UpstoxDecoder

        return UpstoxDecoder(state)

    def ingest(self, decoder: Any, subscriptions: Mapping[Any, str], *, api_key: str = "",
               access_token: str = "", url: str = "", watchdog: float | None = None,
               on_flush: Callable[[TickBatch], None] | None = None, **options: Any) -> Ingest:
        from fastflow.brokers.upstox.session import UpstoxIngest
        from fastflow.hotpath import UpstoxDecoder

        if not isinstance(decoder, UpstoxDecoder):
            raise TypeError("an Upstox ingest needs an UpstoxDecoder")
        if watchdog is not None:
            options["watchdog"] = watchdog
        return UpstoxIngest(decoder, subscriptions=subscriptions, access_token=access_token,
                            api_url=url or self.default_url, on_flush=on_flush, **options)


SPEC = UpstoxSpec()
