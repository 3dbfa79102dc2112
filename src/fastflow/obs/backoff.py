"""The one reconnect backoff: capped exponential with full jitter, reset by a
connection that stayed up.

The n-th delay since the count last started again is drawn from
``uniform(0, min(cap, base * 2**n))`` (n = 0, 1, 2, ...), so a fleet of clients
that lost the same server does not come back in step. Every reconnecting loop
(the broker session, the Redis writer, the gateway's subscription, the Python
client) owns one::

    backoff = Backoff(0.5, 30.0, reset_after=5.0)
    while running:
        try:
            connect()
            backoff.up(clock())      # connected (streaming, subscribed): the clock starts
            stream()                 # until it fails
        except Lost:
            pass
        await sleep(backoff.next_delay(clock()))

A connection that was up for ``reset_after`` seconds or more was a good one:
the delay after it starts again from ``base``. One that fails sooner (a broker
that accepts and drops, a flapping Redis) keeps the count growing.
:meth:`reset` starts again at once (a loop that knows better). Sans-I/O: the
caller passes the time (any monotonic clock), nothing here sleeps; ``rng`` is
seedable for tests.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for consecutive retries: ``uniform(0, min(cap, base * 2**attempt))``.

    ``attempt`` counts the delays handed out since the count last started again
    (:meth:`reset`, or a connection up for ``reset_after`` seconds; None: never
    by time).
    """

    __slots__ = ("_up_since", "attempt", "base", "cap", "reset_after", "rng")

    def __init__(self, base: float, cap: float, rng: random.Random | None = None, *,
                 reset_after: float | None = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.reset_after = reset_after
        self.attempt = 0
        self._up_since: float | None = None

    def ceiling(self) -> float:
        """The largest delay :meth:`next_delay` can return now."""
        try:
            return min(self.cap, self.base * 2.0**self.attempt)
        except OverflowError:  # after ~1000 attempts base * 2**n is no float: long since at the cap
            return self.cap

    def up(self, now: float) -> None:
        """A connection is up (streaming, subscribed) since ``now``."""
        self._up_since = now

    def next_delay(self, now: float | None = None) -> float:
        """Seconds to wait before the next attempt (and count the attempt). With
        ``now``, a connection :meth:`up` for ``reset_after`` seconds or more by
        then first starts the count again."""
        if self._up_since is not None:
            if now is not None and self.reset_after is not None and now - self._up_since >= self.reset_after:
                self.attempt = 0
            self._up_since = None
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``base`` (after a connection that worked)."""
        self.attempt = 0
        self._up_since = None

    def __repr__(self) -> str:
        return f"Backoff(base={self.base!r}, cap={self.cap!r}, attempt={self.attempt})"
