"""Failures of per-message handlers, contained: counted by reason, logged sparingly.

Nothing a peer sends may end a process: a broker's text or binary frame, a
client's control message, a Redis reply. Each handler that runs per message
catches what it raises and hands it to its :class:`Faults`::

    try:
        handle(message)
    except Exception as exc:
        faults.record("text", exc)

The count goes up by reason (``text``, ``decode``, ``flush`` ...; shown in
``/healthz`` and ``/metrics``), the last failure of each reason is kept for
diagnosis, and the log gets one line per reason per ``interval`` seconds (with
how many were not logged since), so a peer that sends a million bad messages
costs a million counts, not a million tracebacks. The traceback itself is
logged once per reason, at the first failure: a bug shows where it is, an
attack does not fill the disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Faults:
    """Contained failures of one component (``name`` in the log lines)."""

    __slots__ = ("_clock", "_logged_at", "_unlogged", "counts", "interval", "last", "logger", "name")

    def __init__(self, name: str, logger: logging.Logger, *, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self.counts: dict[str, int] = {}
        self.last: dict[str, str] = {}  # reason -> "Type: message" of its latest failure
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def record(self, reason: str, exc: BaseException, detail: str = "") -> None:
        """Count ``exc`` under ``reason``; log it unless this reason was logged
        less than ``interval`` seconds ago."""
        n = self.counts[reason] = self.counts.get(reason, 0) + 1
        text = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        self.last[reason] = text
        now = self._clock()
        logged = self._logged_at.get(reason)
        if logged is not None and now - logged < self.interval:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._logged_at[reason] = now
        skipped = self._unlogged.pop(reason, 0)
        more = f", {skipped} not logged since the last line" if skipped else ""
        where = f" {detail}" if detail else ""
        if n == 1:
            self.logger.error("%s: %s failed%s, contained: %s", self.name, reason, where, text, exc_info=exc)
        else:
            self.logger.error("%s: %s failed%s, contained (%d so far%s): %s", self.name, reason, where, n, more,
                              text)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def health(self) -> dict[str, object]:
        """``{"counts": {reason: n}, "last": {reason: "Type: message"}}`` for /healthz."""
        return {"counts": dict(self.counts), "last": dict(self.last)}
