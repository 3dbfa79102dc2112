"""Waiting on conditions with a deadline (never a fixed sleep), and the harness
the broker-session tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

DEADLINE = 10.0


async def until(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``deadline`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, f"not in {deadline} s: {what}"
        await asyncio.sleep(0.005)


async def drive(sim: Any, session: Any, test: Callable[[], Awaitable[None]]) -> None:
    """Run ``session`` against the started simulator ``sim``: once it streams,
    run ``test``; then stop both, whatever happened."""
    task = asyncio.create_task(session.run())
    try:
        await until(lambda: session.state == "streaming", "streaming")
        await test()
    finally:
        session.stop()
        await asyncio.wait_for(task, DEADLINE)
        await sim.stop()
    assert session.state in ("stopped", "auth_failed")


def subscribed(sim: Any, subscriptions: Mapping[Any, str]) -> bool:
    """Some connection of ``sim`` holds exactly ``subscriptions``."""
    return any(client.modes == subscriptions for client in sim._clients)


def ticks_flow_again(state: Any, keys: Any) -> Callable[[], bool]:
    """A condition: every one of ``keys`` ticked after this call."""
    seqs = {k: state.tick(k)["seq"] for k in keys}
    return lambda: all(state.tick(k)["seq"] > seqs[k] for k in keys)


def synchronous(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """An ``async def`` test run with ``asyncio.run`` (the suite has no asyncio plugin)."""
    import functools

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
