"""Zerodha Kite: the ticker WebSocket (binary frames); :data:`SPEC` is its entry
in the broker registry (:func:`fastflow.brokers.get`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fastflow.brokers import Ingest, select_symbols
from fastflow.brokers.kite.constants import MAX_TOKENS, MODES, URL

if TYPE_CHECKING:
    from fastflow.hotpath import KiteDecoder, MarketState, TickBatch
    from fastflow.instruments import Instruments


class KiteSpec:
    """Kite in the broker registry: int instrument tokens, 3 x 3000 per api_key."""

    name = "kite"
    title = "Kite"
    modes: tuple[str, ...] = MODES
    default_url = URL
    keyed = False
    instruments_suffix = "csv"

    def load_instruments(self, path: str) -> Instruments:
        from fastflow.instruments import Instruments

        return Instruments.from_kite_csv(path)

    def instruments_from_rows(self, rows: Iterable[Mapping[str, object]]) -> Instruments:
        from fastflow.instruments import Instruments

        return Instruments.from_kite_rows(rows)

    def subscription_limit(self, mode: str) -> int:
        return MAX_TOKENS

    def subscriptions(self, instruments: Instruments, symbols: Iterable[str] | None, mode: str, *,
                      limit: int | None = None) -> tuple[dict[Any, str], str]:
        limit = self.subscription_limit(mode) if limit is None else limit

        def resolve(text: str) -> int:
            return instruments.token_of(int(text) if text.isdigit() else text)

        return select_symbols(instruments, symbols, mode, limit,
                              lambda n: [int(t) for t in instruments.token[:n]], resolve,
                              f"an api_key takes at most {limit:,} tokens")

    def decoder(self, state: MarketState) -> KiteDecoder:
        from fastflow.hotpath import KiteDecoder

        return KiteDecoder(state)

    def ingest(self, decoder: Any, subscriptions: Mapping[Any, str], *, api_key: str = "",
               access_token: str = "", url: str = "", watchdog: float | None = None,
               on_flush: Callable[[TickBatch], None] | None = None, **options: Any) -> Ingest:
        from fastflow.brokers.kite.session import KiteIngest
        from fastflow.hotpath import KiteDecoder

        if not isinstance(decoder, KiteDecoder):
            raise TypeError("a Kite ingest needs a KiteDecoder")
        if watchdog is not None:
            options["watchdog"] = watchdog
        return KiteIngest(decoder, subscriptions=subscriptions, api_key=api_key, access_token=access_token,
                          url=url or self.default_url, on_flush=on_flush, **options)


SPEC = KiteSpec()
