"""Zerodha Kite: the ticker WebSocket (binary frames)."""
