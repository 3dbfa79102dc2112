"""Exceptions shared by the compiled hot path and its reference twin."""

from __future__ import annotations


class FrameError(ValueError):
    """A broker frame that cannot be decoded.

    ``reason`` says what is wrong and ``offset`` is the byte offset in the
    frame where decoding stopped. The frame is rejected whole: no packet of it
    is applied to the state. Callers treat it as a resync point (count it,
    keep the raw bytes for diagnosis, carry on with the next frame).
    """

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} (at byte offset {offset})")
        self.reason = reason
        self.offset = offset

    def __reduce__(self) -> tuple[type[FrameError], tuple[str, int]]:
        return (type(self), (self.reason, self.offset))
