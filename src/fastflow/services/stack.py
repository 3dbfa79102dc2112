"""The whole pipeline as separate processes: Redis, simulator, plant, gateway.

:class:`Stack` is what ``fastflow run`` supervises (and what ``fastflow bench
e2e`` measures). From a :class:`~fastflow.config.Config` it starts, in order:

1. the **embedded Redis** (``redis.url = "embedded"``: a private
   ``redis-server`` on a unix socket, :class:`~fastflow.store.embedded.EmbeddedRedis`),
   or nothing when the configuration names a Redis URL;
2. the **simulator** (``fastflow sim``), unless the configuration carries broker
   credentials: then the plant connects to the real broker instead;
3. the **plant** (``fastflow plant``), fed by the simulator or the broker,
   writing to Redis, with ``/healthz`` and ``/metrics`` on a free port;
4. the **gateway** (``fastflow gateway``), reading Redis, serving the dashboard
   and the WebSocket clients.

Each child is ``python -m fastflow.services NAME CONFIG.json`` in its own
session (a Ctrl-C in the terminal reaches only the supervisor, which stops the
children in order), with ``PR_SET_PDEATHSIG`` so that a supervisor killed with
SIGKILL still takes its children down. Configuration flows one way: each child
gets the validated configuration (with the run's Redis, simulator URL and
instrument dump filled in) in a file of the private run directory (mode 0600),
never as flags or environment variables, so no secret is on a command line. A
child reports readiness and its bound ports as one JSON message on a pipe
(:mod:`fastflow.obs.ready`); its output (stdout and stderr) is only kept, the
last lines of it, for the report when it dies.

A child that exits while the stack runs, or (plant, gateway) stops answering
``/livez`` for ``run.liveness_timeout`` seconds, is a failure: :meth:`Stack.wait`
returns it (:class:`ChildExit`, a hung one killed first) and the supervisor
restarts it (:meth:`Stack.restart`) within its budget. A restarted child gets
the configuration of its first start with the ports it bound then, so the others
find it where it was: the plant reconnects to a simulator or a Redis that comes
back, the gateway keeps its clients while the plant comes back, and clients
reconnect to a gateway that comes back on its port.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastflow.brokers import get as broker_spec
from fastflow.config import Config, to_data
from fastflow.config import environment_keys as config_variables
from fastflow.errors import FastflowError
from fastflow.obs import health
from fastflow.obs.process import die_with_parent, private_directory
from fastflow.obs.ready import READY_FD, read_ready, ready_pipe
from fastflow.store.embedded import EmbeddedRedis, RedisServerError

START_TIMEOUT = 60.0  # seconds for a child to say it is up
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL


def child_environment() -> dict[str, str]:
    """This process's environment without its fastflow configuration variables: a child
    takes its configuration from the file it is handed, and secrets stay out of environments."""
    drop = config_variables()
    return {k: v for k, v in os.environ.items() if k not in drop}


class StackError(FastflowError, RuntimeError):
    """The stack could not start: a child failed or did not come up (the message says which, with its log)."""


@dataclasses.dataclass(frozen=True)
class ChildExit:
    """A child that exited while it should have been running (or that stopped
    answering and was killed: ``hung`` says for how long)."""

    name: str
    pid: int
    returncode: int
    log: list[str]
    hung: float = 0.0

    def describe(self) -> str:
        code = self.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exited with code {code}"
        if self.hung:
            how = f"did not answer /livez for {self.hung:g} s and was killed"
        lines = "\n".join(f"    {line}" for line in self.log) or "    (no output)"
        return f"the {label(self.name)} (pid {self.pid}) {how}; its last lines:\n{lines}"


def label(name: str) -> str:
    """A child's name as the messages say it."""
    return "embedded redis-server" if name == "redis" else name


class Child:
    """One service child (``python -m fastflow.services NAME CONFIG.json``): its process,
    its output lines, its pid, and its readiness message."""

    def __init__(self, name: str, config_path: str, *, keep: int = 200,
                 echo: Callable[[str, str], object] | None = None, cpus: set[int] | None = None) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "fastflow.services", name, config_path]
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.echo = echo
        self.cpus = cpus
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Task[dict[str, Any] | None] | None = None
        self.hung = 0.0  # seconds without a /livez answer when it was killed for it

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        env = child_environment()
        read_fd, write_fd = ready_pipe()
        env[READY_FD] = str(write_fd)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent,
                pass_fds=(write_fd,))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        if self.cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cpus)
        self._reader = asyncio.create_task(self._read())
        self._ready = asyncio.create_task(read_ready(read_fd))

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            if self.echo is not None:
                self.echo(self.name, text)
        await self.process.wait()

    async def ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The child's readiness message (:mod:`fastflow.obs.ready`); raises
        :class:`StackError` when the child exits first or ``timeout`` passes."""
        assert self._ready is not None and self._reader is not None
        try:
            message = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            raise StackError(f"the {self.name} (pid {self.pid}) was not up within {timeout:g} s; "
                             f"its last lines:\n" + "\n".join(f"    {t}" for t in list(self.lines)[-20:])) from None
        if message is None:  # the pipe closed without a message: the child is exiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), STOP_TIMEOUT)
            raise StackError(self.failure().describe())
        return message

    def failure(self) -> ChildExit:
        """The child as it ended: exit code (-1 while unknown) and the output lines kept."""
        code = self.process.returncode if self.process is not None else None
        return ChildExit(self.name, self.pid, code if code is not None else -1, list(self.lines), self.hung)

    async def exited(self) -> ChildExit:
        """Wait for the process to end (and its output to be read)."""
        assert self._reader is not None
        await asyncio.shield(self._reader)
        return self.failure()

    async def kill(self) -> None:
        """SIGKILL (a hung child); waits for the end and the rest of its output."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.stop()

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; waits for the end."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, timeout)


class Stack:
    """Redis + simulator + plant + gateway, as child processes (see the module docstring).

    ``echo(name, line)`` sees every output line of every child; ``cpus`` pins
    children by name (``{"gateway": {1}}``), for benchmarks."""

    def __init__(self, config: Config, *, echo: Callable[[str, str], object] | None = None,
                 cpus: dict[str, set[int]] | None = None) -> None:
        self.config = config
        self.echo = echo
        self.cpus = cpus or {}
        self.children: dict[str, Child] = {}
        self.redis: EmbeddedRedis | None = None
        self.redis_url = config.redis.url
        self.directory = ""
        self.sim_url = ""
        self.plant_url = ""  # http://host:port (…/healthz, …/metrics)
        self.dashboard_url = ""
        self.ws_url = ""
        self.instruments = 0
        self.configs: dict[str, Config] = {}  # each child's, with the ports it bound at its first start
        self.livez: dict[str, str] = {}  # child -> its /livez URL

    @property
    def simulated(self) -> bool:
        return not self.config.broker.live

    async def start(self) -> None:
        """Start everything in order; raises :class:`StackError` (after stopping
        what did start) when a piece fails."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        self.directory = private_directory("fastflow-run-")  # and the ones killed runs left, removed
        if config.redis.url == "embedded":
            try:
                self.redis = await asyncio.to_thread(EmbeddedRedis(maxmemory=config.redis.maxmemory).start)
            except RedisServerError as exc:
                raise StackError(f"the embedded Redis did not start: {exc}") from exc
            self.redis_url = self.redis.url
        config = dataclasses.replace(config, redis=dataclasses.replace(config.redis, url=self.redis_url))
        if self.simulated:
            spec = broker_spec(config.broker.name)
            dump = os.path.join(self.directory, f"instruments.{spec.instruments_suffix}")
            simulator = dataclasses.replace(config.simulator, host="127.0.0.1", port=0, instruments_out=dump)
            sim_config = dataclasses.replace(config, simulator=simulator)
            ready = await self._start_child("simulator", sim_config)
            self.sim_url = str(ready["url"])
            self.configs["simulator"] = dataclasses.replace(sim_config, simulator=dataclasses.replace(
                simulator, port=_port_of(self.sim_url)))
            config = dataclasses.replace(config, broker=dataclasses.replace(
                config.broker, url=self.sim_url, instruments=dump))
        ready = await self._start_child("plant", config)
        self._plant_ready(ready)
        self.configs["plant"] = dataclasses.replace(config, plant=dataclasses.replace(
            config.plant, health_port=_port_of(self.plant_url)))
        ready = await self._start_child("gateway", config)
        self._gateway_ready(ready)
        self.instruments = int(ready["instruments"])
        self.configs["gateway"] = dataclasses.replace(config, gateway=dataclasses.replace(
            config.gateway, port=_port_of(self.ws_url)))

    def _plant_ready(self, ready: dict[str, Any]) -> None:
        self.plant_url = str(ready["health_url"]).removesuffix("/healthz")
        self.livez["plant"] = f"{self.plant_url}/livez"

    def _gateway_ready(self, ready: dict[str, Any]) -> None:
        self.dashboard_url, self.ws_url = str(ready["dashboard"]), str(ready["websocket"])
        self.livez["gateway"] = f"{self.dashboard_url}livez"

    async def restart(self, name: str) -> int:
        """Start child ``name`` (``redis`` for the embedded Redis) again, with the
        configuration and ports of its first start; its new pid. Raises
        :class:`StackError` when it does not come up."""
        if name == "redis":
            assert self.redis is not None
            try:
                await asyncio.to_thread(self.redis.restart)
            except RedisServerError as exc:
                raise StackError(f"the embedded Redis did not restart: {exc}") from exc
            assert self.redis.process is not None
            return self.redis.process.pid
        old = self.children[name]
        await old.stop()
        ready = await self._start_child(name, self.configs[name])
        if name == "plant":
            self._plant_ready(ready)
        elif name == "gateway":
            self._gateway_ready(ready)
        return self.children[name].pid

    async def hung(self, timeout: float, every: float = 1.0) -> ChildExit:
        """Until a child with a ``/livez`` (plant, gateway) has not answered it for
        ``timeout`` seconds; that child is killed and returned. Never returns
        when ``timeout`` is 0."""
        if timeout <= 0:
            await asyncio.Event().wait()
        loop = asyncio.get_running_loop()
        answered = {name: loop.time() for name in self.livez}
        while True:
            await asyncio.sleep(every)
            for name, url in list(self.livez.items()):
                child = self.children.get(name)
                if child is None or not child.running:
                    answered[name] = loop.time()  # an exit is wait()'s to report
                    continue
                if await asyncio.to_thread(_answers, url, min(timeout, 2.0)):
                    answered[name] = loop.time()
                elif loop.time() - answered.setdefault(name, loop.time()) >= timeout:
                    child.hung = timeout  # whichever of wait() and this reports it, says why
                    await child.kill()  # a stopped process ignores SIGTERM
                    return child.failure()

    async def _start_child(self, name: str, config: Config) -> dict[str, Any]:
        """Hand ``config`` to the child ``name`` in a file of the run directory, start
        it, and wait for its readiness message."""
        path = os.path.join(self.directory, f"{name}.json")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(to_data(config), handle)
        child = Child(name, path, echo=self.echo, cpus=self.cpus.get(name))
        self.children[name] = child
        await child.start()
        return await child.ready()

    async def wait(self) -> ChildExit:
        """Until a child (or the embedded Redis, named ``redis``) exits; returns which."""
        waits: dict[asyncio.Task[Any], str] = {
            asyncio.create_task(child.exited()): name for name, child in self.children.items()}
        if self.redis is not None and self.redis.process is not None:
            waits[asyncio.create_task(asyncio.to_thread(self.redis.process.wait))] = "redis"
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        task = done.pop()
        if waits[task] == "redis":
            assert self.redis is not None and self.redis.process is not None
            return ChildExit("redis", self.redis.process.pid, self.redis.process.returncode or -1,
                             self.redis.log_tail().splitlines())
        result: ChildExit = task.result()
        return result

    async def stop(self) -> None:
        """Stop the gateway, the plant and the simulator (in that order), then
        Redis; remove the run's files. Safe to call twice."""
        for name in ("gateway", "plant", "simulator"):
            child = self.children.get(name)
            if child is not None:
                await child.stop()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
            self.redis = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def _answers(url: str, timeout: float) -> bool:
    """True when ``GET url`` answers 200 within ``timeout`` (liveness)."""
    try:
        return health.get(url, timeout)[0] == 200
    except OSError:
        return False
