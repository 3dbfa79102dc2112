"""Readiness as one structured message, never scraped from logs.

A service that its parent (``fastflow run``) started finds the write end of a
pipe in ``$FASTFLOW_READY_FD``; :func:`announce` writes one JSON line there
once the service is up (``{"service": "plant", "health_url": ...}``) and closes
it. Run by hand, there is no such variable and :func:`announce` does nothing:
the service's own human-readable lines are for people.

The parent side is :func:`ready_pipe` (the pair of descriptors to hand down)
and :func:`read_ready` (the message, or None when the child closed the pipe
without one, e.g. because it died).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

#: The environment variable naming the descriptor a child announces on.
READY_FD = "FASTFLOW_READY_FD"
#: The longest readiness message a parent accepts.
MAX_MESSAGE = 64 * 1024


def announce(service: str, **fields: Any) -> None:
    """Tell the parent ``service`` is up, with ``fields`` (JSON-able: ports, URLs,
    counts). At most once per process; a no-op without a parent listening."""
    text = os.environ.pop(READY_FD, "")
    if not text:
        return
    line = json.dumps({"service": service, **fields}, separators=(",", ":")).encode() + b"\n"
    try:
        fd = int(text)
        os.write(fd, line)
        os.close(fd)
    except (ValueError, OSError):  # the parent is gone or the variable is not ours: nothing to tell
        pass


def ready_pipe() -> tuple[int, int]:
    """``(read_fd, write_fd)``: the write end goes to the child (``pass_fds`` and
    ``$FASTFLOW_READY_FD``), the parent reads the other with :func:`read_ready`."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, True)
    return read_fd, write_fd


async def read_ready(read_fd: int) -> dict[str, Any] | None:
    """The child's readiness message from ``read_fd`` (closed here), or None when
    the pipe closed first (the child exited without announcing)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_MESSAGE)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
    try:
        line = await reader.readline()
    except ValueError:  # over MAX_MESSAGE
        return None
    finally:
        transport.close()
    if not line:
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
