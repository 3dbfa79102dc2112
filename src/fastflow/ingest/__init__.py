"""Broker connections: each WebSocket message goes whole into the hot path."""
