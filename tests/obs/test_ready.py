"""Readiness as one structured message on a pipe (fastflow.obs.ready), with a real child process."""

from __future__ import annotations

import asyncio
import os
import sys

from fastflow.obs.ready import READY_FD, read_ready, ready_pipe

from ..waiting import synchronous

CHILD = """
import sys
from fastflow.obs.ready import announce
print("a log line that nobody parses", flush=True)
announce("demo", port=int(sys.argv[1]), url="http://127.0.0.1:1/")
announce("demo", port=0)  # a second call does nothing
"""


async def start(code: str, *args: str, env_fd: bool = True) -> tuple[asyncio.subprocess.Process, int]:
    read_fd, write_fd = ready_pipe()
    env = {**os.environ, READY_FD: str(write_fd)} if env_fd else dict(os.environ)
    try:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, *args, env=env,
                                                       pass_fds=(write_fd,), stdout=asyncio.subprocess.DEVNULL)
    finally:
        os.close(write_fd)
    return process, read_fd


@synchronous
async def test_a_child_announces_its_ports_once() -> None:
    process, read_fd = await start(CHILD, "4321")
    message = await asyncio.wait_for(read_ready(read_fd), 30)
    assert message == {"service": "demo", "port": 4321, "url": "http://127.0.0.1:1/"}
    assert await asyncio.wait_for(process.wait(), 30) == 0


@synchronous
async def test_a_child_that_dies_first_gives_none() -> None:
    process, read_fd = await start("import sys; sys.exit(3)")
    assert await asyncio.wait_for(read_ready(read_fd), 30) is None
    assert await asyncio.wait_for(process.wait(), 30) == 3


@synchronous
async def test_garbage_on_the_pipe_is_not_a_message() -> None:
    process, read_fd = await start("import os, sys; os.write(int(os.environ['FASTFLOW_READY_FD']), b'not json\\n')")
    assert await asyncio.wait_for(read_ready(read_fd), 30) is None
    await process.wait()


def test_without_a_parent_announce_does_nothing(monkeypatch: object) -> None:
    from fastflow.obs.ready import announce

    assert READY_FD not in os.environ
    announce("demo", port=1)  # no variable: nothing to write, no error
