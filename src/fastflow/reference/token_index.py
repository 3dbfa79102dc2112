"""TokenIndex: instrument token -> slot, and KeyIndex: Upstox instrument_key
-> slot (the twins of ``ext/token_index.pyx``).

The compiled indexes are open-addressing hash tables; here they are dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_MAX_TOKEN = 0xFFFFFFFF


class TokenIndex:
    """Maps 32-bit broker tokens to state slots."""

    def __init__(self, tokens: Iterable[int]) -> None:
        tokens = list(tokens)
        if len(tokens) >= (1 << 30):
            raise ValueError("too many instruments for one index")
        self._slots: dict[int, int] = {}
        for i, token in enumerate(tokens):
            if not 0 <= token <= _MAX_TOKEN:
                raise ValueError(f"token {token} at slot {i} is not a 32-bit unsigned integer")
            if token in self._slots:
                raise ValueError(f"duplicate token {token} at slot {i}")
            self._slots[token] = i

    def get(self, token: int) -> int:
        """The slot of ``token``, or -1."""
        if not 0 <= token <= _MAX_TOKEN:
            return -1
        return self._slots.get(token, -1)

    def __len__(self) -> int:
        return len(self._slots)


class KeyIndex:
    """Maps instrument-key byte strings (UTF-8) to state slots."""

    def __init__(self, keys: Any) -> None:
        len(keys)  # a sized sequence, as the compiled index requires
        encoded: list[bytes] = [k.encode("utf-8") for k in keys]
        self._slots: dict[bytes, int] = {}
        for i, raw in enumerate(encoded):
            if raw in self._slots:
                raise ValueError(f"duplicate instrument key {keys[i]!r} at slot {i}")
            self._slots[raw] = i

    def lookup(self, raw: bytes) -> int:
        """The slot of the key bytes ``raw``, or -1."""
        return self._slots.get(raw, -1)

    def get(self, key: Any) -> int:
        """The slot of ``key`` (str or bytes), or -1."""
        raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        return self.lookup(raw)

    def __len__(self) -> int:
        return len(self._slots)
