"""Fault injection for the broker simulators (``fastflow sim --fault NAME@SECONDS[:DURATION]``).

A simulator that can be faulted implements :class:`FaultTarget`; the Kite
simulator (:class:`fastflow.sim.servers.kite.KiteSimulator`) does, and any
other broker's simulator implements the same methods so that
:func:`run_faults` and the command line drive it unchanged.

=========================  =====================================================
``drop@T``                 every connection aborted (TCP reset, no close frame)
``silence@T[:S]``          nothing at all for S seconds (default 5), not even heartbeats
``garbage@T``              one binary frame that is not valid framing
``hostile@T``              text frames no handler should choke on: JSON nested
                           5,000 deep, text that is not JSON, a 1 MiB string
``expire@T``               the access token stops working (upgrades get 403)
``slow@T[:S[:F]]``         for S seconds (default 5) data goes out at rate / F (default 10)
``burst@T[:S]``            for S seconds (default 2) data is held back, heartbeats go on;
                           then every held message goes out at once, in order
=========================  =====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

FAULTS = ("drop", "silence", "garbage", "hostile", "expire", "slow", "burst")

#: What ``hostile@T`` sends each connection, as text frames (a broker's text handler
#: must count them and go on: Python's json raises RecursionError on the first).
HOSTILE_TEXT = (
    '{"type":"order","data":' + "[" * 5000 + "]" * 5000 + "}",
    "not json {",
    '{"type":"error","data":"' + "x" * (1 << 20) + '"}',
)

#: Default durations (seconds) of the faults that last; the others are instantaneous.
DEFAULT_SECONDS = {"silence": 5.0, "slow": 5.0, "burst": 2.0}
#: Default slow-down factor of ``slow``.
DEFAULT_SLOW_FACTOR = 10.0


class FaultTarget(Protocol):
    """What a simulator offers to the fault switches."""

    def drop(self) -> int:
        """Abort every connection without a close frame; return how many."""
        ...

    def silence(self, seconds: float) -> None:
        """Send nothing, not even heartbeats, for ``seconds``; sockets stay open."""
        ...

    async def send_garbage(self) -> None:
        """Send every connection one malformed binary frame."""
        ...

    async def send_hostile_text(self) -> None:
        """Send every connection each of :data:`HOSTILE_TEXT` as a text frame."""
        ...

    def expire_token(self) -> None:
        """The current access token stops working (new upgrades get 403)."""
        ...

    def slow(self, seconds: float, factor: float) -> None:
        """For ``seconds``, send data at the configured rate divided by ``factor``."""
        ...

    def burst(self, seconds: float) -> None:
        """For ``seconds``, hold data back (heartbeats go on), then release it all at once."""
        ...


@dataclasses.dataclass(frozen=True)
class Fault:
    """A scheduled fault: ``name@at[:seconds[:factor]]`` on the command line."""

    name: str
    at: float
    seconds: float = 0.0
    factor: float = 1.0  # slow only: the rate is divided by it

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``drop@10``, ``silence@20:5`` (5 s of silence), ``garbage@3``, ``expire@30``,
        ``slow@5:10`` (10 s at a tenth of the rate), ``slow@5:10:4`` (at a quarter),
        ``burst@8:3`` (3 s held back, then released at once)."""
        name, sep, when = text.partition("@")
        if name not in FAULTS or not sep:
            raise ValueError(
                f"fault {text!r}: expected NAME@SECONDS[:DURATION] with NAME in {', '.join(FAULTS)}"
            )
        parts = when.split(":")
        if len(parts) > (3 if name == "slow" else 2):
            raise ValueError(f"fault {text!r}: too many ':' fields")
        try:
            at = float(parts[0])
            seconds = float(parts[1]) if len(parts) > 1 and parts[1] else DEFAULT_SECONDS.get(name, 0.0)
            factor = float(parts[2]) if len(parts) > 2 else (DEFAULT_SLOW_FACTOR if name == "slow" else 1.0)
        except ValueError:
            raise ValueError(f"fault {text!r}: times must be numbers of seconds") from None
        if at < 0 or seconds < 0:
            raise ValueError(f"fault {text!r}: times must not be negative")
        if not factor >= 1:
            raise ValueError(f"fault {text!r}: the slow-down factor must be >= 1")
        return cls(name, at, seconds, factor)


async def send_hostile_text(connections: Iterable[ServerConnection]) -> None:
    """Each of :data:`HOSTILE_TEXT` as a text frame to each of ``connections``."""
    for connection in list(connections):
        for text in HOSTILE_TEXT:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(text)


async def run_faults(simulator: FaultTarget, faults: list[Fault], report: Callable[[str], object] = print) -> None:
    """Inject ``faults`` at their times (seconds from now)."""
    started = time.monotonic()
    for fault in sorted(faults, key=lambda f: f.at):
        await asyncio.sleep(max(0.0, fault.at - (time.monotonic() - started)))
        if fault.name == "drop":
            report(f"fault: dropped {simulator.drop()} connection(s)")
        elif fault.name == "silence":
            simulator.silence(fault.seconds)
            report(f"fault: silent for {fault.seconds:g} s")
        elif fault.name == "garbage":
            await simulator.send_garbage()
            report("fault: sent a garbage frame")
        elif fault.name == "hostile":
            await simulator.send_hostile_text()
            report(f"fault: sent {len(HOSTILE_TEXT)} hostile text frames")
        elif fault.name == "slow":
            simulator.slow(fault.seconds, fault.factor)
            report(f"fault: sending at 1/{fault.factor:g} of the rate for {fault.seconds:g} s")
        elif fault.name == "burst":
            simulator.burst(fault.seconds)
            report(f"fault: holding data for {fault.seconds:g} s, then releasing it at once")
        else:
            simulator.expire_token()
            report("fault: access token expired (new upgrades get 403)")
