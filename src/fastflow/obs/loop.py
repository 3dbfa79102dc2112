"""The event loop a long-lived service runs on: uvloop where it is installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def asyncio_run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on uvloop (the plant and the gateway), or asyncio's loop without it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(main)
    return uvloop.run(main)
