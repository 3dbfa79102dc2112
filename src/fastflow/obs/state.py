"""The states a component reports in ``health()`` and the status lines.

``State`` is a ``str`` enum: each member *is* its lower-case string, so
``/healthz`` JSON, msgpack and ``state == "streaming"`` comparisons are
unchanged, while the code names states instead of typing strings.
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    """A component's state (which ones a component goes through: its docstring)."""

    __str__ = str.__str__  # "streaming", not "State.STREAMING", in f-strings and logs
    __format__ = str.__format__  # type: ignore[assignment]

    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    STREAMING = "streaming"
    CONNECTED = "connected"
    LIVE = "live"
    WAITING_FOR_PLANT = "waiting_for_plant"
    BACKOFF = "backoff"
    RECONNECTING = "reconnecting"
    DEGRADED = "degraded"
    AUTH_FAILED = "auth_failed"
    GAVE_UP = "gave_up"
    FINISHED = "finished"
    STOPPED = "stopped"
    CLOSED = "closed"


def overall(states: set[str]) -> State:
    """One state for several connections: ``streaming`` only when all stream,
    ``auth_failed`` when any breaker is open, ``gave_up`` when any gave up
    (``broker.give_up_after``, or not a feed), else ``degraded``."""
    if states == {State.STREAMING}:
        return State.STREAMING
    if State.AUTH_FAILED in states:
        return State.AUTH_FAILED
    return State.GAVE_UP if State.GAVE_UP in states else State.DEGRADED
