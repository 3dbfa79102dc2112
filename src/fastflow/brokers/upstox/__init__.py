"""Upstox: Market Data Feed V3 (protobuf over WebSocket)."""
