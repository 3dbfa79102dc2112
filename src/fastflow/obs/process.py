"""Child processes: start them so that they die with us, wait for them to be
ready, read their output with a deadline, stop them for sure, find orphans.

Used by the embedded Redis, the ``fastflow run`` supervisor, the e2e harness
and the load generator, and by the tests and benchmarks that start servers.
Linux first (``prctl``, ``/proc``); elsewhere the helpers degrade to no-ops
where they cannot work (:func:`die_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable

#: Seconds a stopped child gets between SIGTERM and SIGKILL.
STOP_TIMEOUT = 10.0


def die_with_parent() -> None:
    """In the child, before exec (``preexec_fn=die_with_parent``): Linux sends it
    SIGTERM when its parent dies, so even a SIGKILLed fastflow leaves no child behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float,
               interval: float = 0.01) -> bool:
    """Poll ``ready()`` every ``interval`` seconds: True once it is, False as soon
    as ``process`` has exited or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop ``process`` for sure: SIGTERM, then SIGKILL after ``timeout`` seconds;
    reaped either way. Its exit status (None: no process). Safe to call twice."""
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        _reap(process, timeout)
    return process.wait()


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT) -> None:
    """:func:`stop_process` for many, in parallel: all get SIGTERM first, then
    each is waited for (and SIGKILLed after ``timeout`` seconds)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    for process in processes:
        _reap(process, timeout)


def _reap(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def children(parent: int | None = None) -> list[int]:
    """Live (not zombie) child processes of ``parent`` (default: this process), from /proc."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                found.append(int(entry))
    return found


class LineReader:
    """A child's stdout (``stdout=PIPE``), line by line, each read with a deadline
    (``select`` on the raw pipe: no thread). Every line read is kept in :attr:`seen`."""

    def __init__(self, process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
        assert process.stdout is not None, "start the process with stdout=subprocess.PIPE"
        self.process = process
        self.timeout = timeout
        self.fd = process.stdout.fileno()
        self.buffer = b""
        self.seen: list[str] = []

    def readline(self, timeout: float | None = None) -> str:
        """The next line (without its newline). Raises TimeoutError when none comes in
        ``timeout`` seconds (default: the reader's), EOFError when the pipe closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line from pid {self.process.pid} in time; saw {self.seen}")
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    status = self.process.poll()
                    raise EOFError(f"pid {self.process.pid} closed its output (status {status}); "
                                   f"saw {self.seen}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.seen.append(line.decode())
        return self.seen[-1]

    def until(self, marker: str, timeout: float | None = None) -> str:
        """The first line (from here on) that contains ``marker``; all within ``timeout`` seconds."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                line = self.readline(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no line with {marker!r} from pid {self.process.pid} in {wait:g} s; "
                                   f"saw {self.seen}") from None
            if marker in line:
                return line


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` toward ``wanted`` (up to the hard
    limit); the soft limit it has now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    return int(soft) if soft != resource.RLIM_INFINITY else wanted


#: The file in a private working directory that names the process owning it.
OWNER_FILE = "owner.pid"


def private_directory(prefix: str) -> str:
    """A new private directory under the temporary directory, marked with this
    process's pid; first, the directories of ``prefix`` that a process killed
    without a chance to clean up (``kill -9``) left behind are removed (those
    whose owner is gone; unmarked or foreign ones are left alone)."""
    import shutil
    import tempfile

    root = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if not name.startswith(prefix) or not os.path.isdir(path):
                continue
            try:
                with open(os.path.join(path, OWNER_FILE)) as handle:
                    owner = int(handle.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if owner > 0 and not _alive(owner):
                shutil.rmtree(path, ignore_errors=True)
    directory = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(directory, OWNER_FILE), "w") as handle:
        handle.write(str(os.getpid()))
    return directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and its directory not ours to judge
    return True
