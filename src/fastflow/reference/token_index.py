"""TokenIndex: instrument token -> slot (the twin of ``ext/token_index.pyx``).

The compiled index is an open-addressing hash table; here it is a dict.
"""

from __future__ import annotations

from collections.abc import Iterable

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
