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

Each child is ``python -m fastflow ...`` in its own session (a Ctrl-C in the
terminal reaches only the supervisor, which stops the children in order), with
``PR_SET_PDEATHSIG`` so that a supervisor killed with SIGKILL still takes its
children down. Secrets never go on a child's command line: the broker's
credentials and the gateway's keys travel in ``FASTFLOW_*`` environment
variables. Each child's output (stdout and stderr) is kept, the last lines of
it, for the report when it dies.

A child that exits while the stack runs is a failure: :meth:`Stack.wait`
returns it (:class:`ChildExit`) and the supervisor stops the rest; nothing is
restarted (the plant and the gateway already reconnect to a broker or a Redis
that comes back; a process that exits has a reason worth reading).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from fastflow.config import Config
from fastflow.store.embedded import EmbeddedRedis, RedisServerError, die_with_parent

#: The simulator's credentials (not secrets: they only open the simulator).
SIM_API_KEY = "fastflow"
SIM_ACCESS_TOKEN = "sim-token"

START_TIMEOUT = 60.0  # seconds for a child to say it is up
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL


class StackError(RuntimeError):
    """The stack could not start: a child failed or did not come up (the message says which, with its log)."""


@dataclasses.dataclass(frozen=True)
class ChildExit:
    """A child that exited while it should have been running."""

    name: str
    pid: int
    returncode: int
    log: list[str]

    def describe(self) -> str:
        code = self.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exited with code {code}"
        lines = "\n".join(f"    {line}" for line in self.log) or "    (no output)"
        return f"the {self.name} (pid {self.pid}) {how}; its last lines:\n{lines}"


class Child:
    """One ``python -m fastflow`` child: its process, its output lines, its pid."""

    def __init__(self, name: str, args: Sequence[str], *, env: dict[str, str] | None = None,
                 keep: int = 200, echo: Callable[[str, str], object] | None = None,
                 cpus: set[int] | None = None) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "fastflow", *args]
        self.env = env
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.echo = echo
        self.cpus = cpus
        self.process: asyncio.subprocess.Process | None = None
        self._seen = 0  # lines read so far (the deque forgets old ones)
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=die_with_parent)
        if self.cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cpus)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            self._seen += 1
            if self.echo is not None:
                self.echo(self.name, text)
            self._changed.set()
        await self.process.wait()
        self._changed.set()

    async def expect(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first line (from the start) matching ``pattern``; raises
        :class:`StackError` when the child exits or ``timeout`` passes first."""
        regex = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checked = 0
        while True:
            fresh = self._seen - checked
            for text in list(self.lines)[-fresh:] if fresh else ():
                if match := regex.search(text):
                    return match
            checked = self._seen
            if self._reader is None or self._reader.done():
                raise StackError(self.failure().describe())
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StackError(f"the {self.name} (pid {self.pid}) was not up within {timeout:g} s; "
                                 f"its last lines:\n" + "\n".join(f"    {t}" for t in list(self.lines)[-20:]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def failure(self) -> ChildExit:
        """The child as it ended: exit code (-1 while unknown) and the output lines kept."""
        code = self.process.returncode if self.process is not None else None
        return ChildExit(self.name, self.pid, code if code is not None else -1, list(self.lines))

    async def exited(self) -> ChildExit:
        """Wait for the process to end (and its output to be read)."""
        assert self._reader is not None
        await asyncio.shield(self._reader)
        return self.failure()

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
                 cpus: dict[str, set[int]] | None = None, plant_args: Sequence[str] = (),
                 gateway_args: Sequence[str] = (), sim_args: Sequence[str] = ()) -> None:
        self.config = config
        self.echo = echo
        self.cpus = cpus or {}
        self.extra = {"plant": list(plant_args), "gateway": list(gateway_args), "simulator": list(sim_args)}
        self.children: dict[str, Child] = {}
        self.redis: EmbeddedRedis | None = None
        self.redis_url = config.redis.url
        self.directory = ""
        self.sim_url = ""
        self.plant_url = ""  # http://host:port (…/healthz, …/metrics)
        self.dashboard_url = ""
        self.ws_url = ""
        self.instruments = 0

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
        self.directory = tempfile.mkdtemp(prefix="fastflow-run-")
        if config.redis.url == "embedded":
            try:
                self.redis = await asyncio.to_thread(EmbeddedRedis().start)
            except RedisServerError as exc:
                raise StackError(f"the embedded Redis did not start: {exc}") from exc
            self.redis_url = self.redis.url
        broker = config.broker.name
        plant = self._plant_args()
        if self.simulated:
            suffix = "csv" if broker == "kite" else "json"
            dump = os.path.join(self.directory, f"instruments.{suffix}")
            sim = self._child("simulator", [
                "sim", "--broker", broker, "--port", "0", "--rate", repr(config.simulator.rate),
                "--seed", str(config.simulator.seed), "--instruments-out", dump,
                "--api-key", SIM_API_KEY, "--access-token", SIM_ACCESS_TOKEN])
            await sim.start()
            match = await sim.expect(r"(wss?|https?)://127\.0\.0\.1:(\d+)")
            port = match.group(2)
            self.sim_url = f"ws://127.0.0.1:{port}/" if broker == "kite" else f"http://127.0.0.1:{port}"
            plant += ["--url", self.sim_url, "--instruments", dump,
                      "--api-key", SIM_API_KEY, "--access-token", SIM_ACCESS_TOKEN]
        else:
            if config.broker.url:
                plant += ["--url", config.broker.url]
            plant += ["--instruments", config.broker.instruments]
        child = self._child("plant", plant, env=self._secret_env("plant"))
        await child.start()
        match = await child.expect(r"/healthz on (http://\S+)/healthz")
        self.plant_url = match.group(1)
        gateway = self._child("gateway", self._gateway_args(), env=self._secret_env("gateway"))
        await gateway.start()
        match = await gateway.expect(r"dashboard (http://\S+)\s+websocket (ws://\S+)")
        self.dashboard_url, self.ws_url = match.group(1), match.group(2)
        ready = await gateway.expect(r"ready: (\d+) instruments")
        self.instruments = int(ready.group(1))

    def _child(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, args + self.extra.get(name, []), env=env, echo=self.echo, cpus=self.cpus.get(name))
        self.children[name] = child
        return child

    def _plant_args(self) -> list[str]:
        c = self.config
        args = ["plant", "--broker", c.broker.name, "--mode", c.broker.mode, "--watchdog", repr(c.broker.watchdog),
                "--redis", self.redis_url, "--redis-prefix", c.redis.prefix, "--stream-maxlen",
                str(c.redis.stream_maxlen), "--ttl", str(c.redis.ttl), "--health-host", c.plant.health_host,
                "--health-port", str(c.plant.health_port)]
        if c.redis.cluster:
            args.append("--redis-cluster")
        args += ["--symbols", ",".join(c.broker.symbols)] if c.broker.symbols else ["--all"]
        return args

    def _gateway_args(self) -> list[str]:
        c = self.config
        g = c.gateway
        args = ["gateway", "--host", g.host, "--port", str(g.port), "--redis", self.redis_url,
                "--redis-prefix", c.redis.prefix, "--partition", c.broker.name, "--max-symbols",
                str(g.max_symbols), "--high-water", str(g.high_water), "--lag-limit", repr(g.lag_limit)]
        if c.redis.cluster:
            args.append("--redis-cluster")
        if g.require_auth:
            args.append("--require-auth")
        for origin in g.allow_origins:
            args += ["--allow-origin", origin]
        return args

    def _secret_env(self, who: str) -> dict[str, str]:
        """The child's environment: this one without FASTFLOW_ configuration
        variables, plus the secrets it needs."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("FASTFLOW_BROKER_", "FASTFLOW_GATEWAY_", "FASTFLOW_TOKEN_SECRET"))}
        c = self.config
        if who == "plant" and not self.simulated:
            env["FASTFLOW_BROKER_ACCESS_TOKEN"] = c.broker.access_token
            if c.broker.api_key:
                env["FASTFLOW_BROKER_API_KEY"] = c.broker.api_key
        if who == "gateway":
            if c.gateway.token_secret:
                env["FASTFLOW_GATEWAY_TOKEN_SECRET"] = c.gateway.token_secret
            if c.gateway.api_keys:
                env["FASTFLOW_GATEWAY_API_KEYS"] = ",".join(f"{k}={v}" for k, v in c.gateway.api_keys.items())
        return env

    async def wait(self) -> ChildExit:
        """Until a child (or the embedded Redis) exits; returns which."""
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
            return ChildExit("embedded redis-server", self.redis.process.pid, self.redis.process.returncode or -1,
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
