"""The root of fastflow's exceptions, and the ones the hot path raises.

Every public exception of the package derives from :class:`FastflowError`
(``except FastflowError`` catches anything fastflow raises on purpose) and
keeps its historical base too (``ValueError``, ``ConnectionError``, ...), so
existing ``except`` clauses still work. :class:`FrameError` is defined here,
in Python, so that the compiled module (``ext/frame_error.pyx`` imports it)
and the reference implementation raise the very same class.
"""

from __future__ import annotations


class FastflowError(Exception):
    """Base of every exception fastflow defines."""


class ListenError(FastflowError, OSError):
    """A server cannot listen where it was told (the address is busy, not ours, refused)."""


class FrameError(FastflowError, ValueError):
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
