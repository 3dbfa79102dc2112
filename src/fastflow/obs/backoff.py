"""The one reconnect backoff: capped exponential with full jitter.

The n-th delay since the last :meth:`Backoff.reset` is drawn from
``uniform(0, min(cap, base * 2**n))`` (n = 0, 1, 2, ...), so a fleet of
clients that lost the same server does not come back in step. Every
reconnecting loop (the broker session, the Redis writer, the gateway's
subscription, the Python client) owns one::

    backoff = Backoff(0.5, 30.0)
    while running:
        if connect_and_stream():
            backoff.reset()          # a good connection: start again from ``base``
        await sleep(backoff.next_delay())

The caller decides what counts as a good connection (and validates its own
arguments). Sans-I/O: no clock and no sleeping here, only the arithmetic and
the random draw (``rng``, seedable for tests). A policy such as "reset once a
connection has stayed up for ``reset_after`` seconds" belongs here too, as an
optional argument with a hook the caller calls when a connection is up.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive retries: ``uniform(0, min(cap, base * 2**attempt))``.

    ``attempt`` counts the delays handed out since the last :meth:`reset`.
    """

    __slots__ = ("attempt", "base", "cap", "rng")

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.attempt = 0

    def ceiling(self) -> float:
        """The largest delay :meth:`next_delay` can return now."""
        try:
            return min(self.cap, self.base * 2.0**self.attempt)
        except OverflowError:  # after ~1000 attempts base * 2**n is no float: long since at the cap
            return self.cap

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt (and count the attempt)."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``base`` (after a connection that worked)."""
        self.attempt = 0

    def __repr__(self) -> str:
        return f"Backoff(base={self.base!r}, cap={self.cap!r}, attempt={self.attempt})"
