"""The WebSocket gateway: msgpack (or JSON) fan-out of the plant's ticks to
clients with their own watchlists (docs/protocol.md)."""
