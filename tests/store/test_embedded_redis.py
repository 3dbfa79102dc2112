"""Where Redis is: the embedded redis-server (a real child process: started,
pinged, killed, restarted, stopped with nothing left behind) and RedisTarget,
the parsed and validated Redis URL."""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fastflow.obs.process import children
from fastflow.obs.redact import mask_url
from fastflow.store.embedded import EmbeddedRedis, RedisServerError, find_redis_server
from fastflow.store.target import RedisTarget

from ..redis_servers import RedisClusterNodes, server_version, wait_for

# -- EmbeddedRedis -----------------------------------------------------------


def test_starts_answers_ping_and_stops_with_no_orphan_and_no_files() -> None:
    server = EmbeddedRedis().start()
    try:
        assert server.process is not None
        pid = server.process.pid
        assert pid in children()
        assert server.url == f"unix://{server.unix_socket}" and os.path.exists(server.unix_socket)
        client = RedisTarget.parse(server.url).client()
        assert client.ping() is True
        assert client.config_get("port") == {"port": "0"}  # no TCP port unless asked for
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {"appendonly": "no"}
        directory = server.directory
    finally:
        server.stop()
    assert pid not in children()
    assert not os.path.exists(directory) and server.directory == "" and server.process is None
    server.stop()  # twice is fine


def test_port_zero_gives_a_tcp_port_on_loopback_too() -> None:
    with EmbeddedRedis(port=0) as server:
        assert 0 < server.port < 65536
        tcp = RedisTarget.parse(f"redis://127.0.0.1:{server.port}/0").client()
        assert tcp.ping() is True
        assert tcp.config_get("bind") == {"bind": "127.0.0.1"}
        assert RedisTarget.parse(server.url).client().ping() is True


def test_kill_then_restart_on_the_same_socket_and_port() -> None:
    with EmbeddedRedis(port=0) as server:
        socket_path, port = server.unix_socket, server.port
        client = RedisTarget.parse(server.url).client()
        client.set("k", "v")
        assert server.process is not None
        killed = server.process.pid
        server.kill()
        assert killed not in children()
        with pytest.raises(redis.ConnectionError):
            redis.Redis(unix_socket_path=socket_path, retry=Retry(NoBackoff(), 0)).ping()
        server.restart()
        assert server.process is not None and server.process.pid != killed
        assert (server.unix_socket, server.port) == (socket_path, port)
        assert client.ping() is True  # the same client reconnects
        assert client.get("k") is None  # no persistence by default
        assert redis.Redis(host="127.0.0.1", port=port).ping() is True


def test_restart_of_a_running_server_stops_it_first() -> None:
    with EmbeddedRedis() as server:
        assert server.process is not None
        first = server.process.pid
        server.restart()
        assert server.process is not None and server.process.pid != first
        assert first not in children()
        assert RedisTarget.parse(server.url).client().ping() is True


def test_persist_dir_keeps_data_across_a_crash(tmp_path: Path) -> None:
    with EmbeddedRedis(persist_dir=str(tmp_path), extra=("--appendfsync", "always")) as server:
        client = RedisTarget.parse(server.url).client()
        client.set("kept", "yes")
        server.kill()
        server.restart()
        assert client.get("kept") == b"yes"
    assert any(tmp_path.iterdir())  # the append-only file stays; only the private directory goes


@pytest.mark.parametrize("kind", ["missing", "directory", "not executable"])
def test_a_bad_FASTFLOW_REDIS_SERVER_is_a_clear_error(kind: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "redis-server"
    if kind == "directory":
        path.mkdir()
    elif kind == "not executable":
        path.write_text("#!/bin/sh\n")
    monkeypatch.setenv("FASTFLOW_REDIS_SERVER", str(path))
    with pytest.raises(RedisServerError, match=f"FASTFLOW_REDIS_SERVER={path} is not an executable file"):
        EmbeddedRedis()


@pytest.mark.parametrize("kind", ["not a program", "exits at once"])
def test_a_binary_that_is_not_redis_fails_to_start_cleanly(kind: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "redis-server"
    path.write_bytes(b"\x00garbage" if kind == "not a program" else b"#!/bin/sh\necho broken >&2\nexit 3\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FASTFLOW_REDIS_SERVER", str(path))
    assert find_redis_server() == str(path)
    before = set(children())
    server = EmbeddedRedis()
    with pytest.raises(RedisServerError, match="could not be started" if kind == "not a program" else "broken"):
        server.start()
    assert set(children()) <= before and server.directory == "" and server.process is None


def test_a_bad_option_fails_with_the_server_log_and_leaves_nothing() -> None:
    before = set(children())
    server = EmbeddedRedis(extra=("--no-such-option", "1"))
    with pytest.raises(RedisServerError, match="no-such-option"):
        server.start()
    wait_for(lambda: set(children()) <= before, "no child left")
    assert server.directory == "" and server.process is None


def test_server_version_of_the_found_binary() -> None:
    assert server_version(find_redis_server()) >= (6, 2, 0)  # XAUTOCLAIM needs 6.2


def test_a_cluster_that_fails_to_form_leaves_no_process_and_no_files() -> None:
    class Failing(RedisClusterNodes):
        def _create(self) -> None:
            self.seen = (self.directory, [process.pid for process in self.processes])
            assert set(self.seen[1]) <= set(children()) and os.path.isdir(self.directory)
            raise RuntimeError("cluster create failed (on purpose)")

    nodes = Failing()
    with pytest.raises(RuntimeError, match="on purpose"):
        nodes.start()
    directory, pids = nodes.seen
    assert len(pids) == 3 and not set(pids) & set(children()) and not os.path.exists(directory)


# -- RedisTarget ---------------------------------------------------------------


@pytest.mark.parametrize(("url", "parts"), [
    ("redis://", {"host": "127.0.0.1", "port": 6379, "db": 0, "tls": False, "cluster": False}),
    ("redis://cache.internal:7000/3", {"host": "cache.internal", "port": 7000, "db": 3}),
    ("redis://alice:s%40cret@h/1", {"username": "alice", "password": "s@cret", "db": 1}),
    ("redis://:pw@h", {"username": None, "password": "pw"}),
    ("redis://pw@h", {"username": None, "password": "pw"}),  # a password alone, as redis-cli reads it
    ("redis://h?db=4&socket_timeout=2.5&connect_timeout=1", {"db": 4, "socket_timeout": 2.5, "connect_timeout": 1.0}),
    ("redis://[::1]:6380", {"host": "::1", "port": 6380}),
    ("rediss://h", {"tls": True, "ssl_cert_reqs": "required", "check_hostname": True}),
    ("rediss://h?ssl_cert_reqs=none", {"tls": True, "ssl_cert_reqs": "none", "check_hostname": False}),
    ("rediss://h?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false",
     {"ssl_ca_certs": "/etc/ca.pem", "check_hostname": False, "ssl_cert_reqs": "required"}),
    ("unix:///run/redis/redis.sock", {"unix_path": "/run/redis/redis.sock", "address": "/run/redis/redis.sock"}),
    ("unix:///tmp/r.sock?db=2&password=pw", {"unix_path": "/tmp/r.sock", "db": 2, "password": "pw"}),
    ("unix://:pw@/tmp/r.sock", {"unix_path": "/tmp/r.sock", "password": "pw"}),
    ("redis+cluster://10.0.0.5:7000", {"cluster": True, "host": "10.0.0.5", "port": 7000, "tls": False}),
    ("rediss+cluster://h", {"cluster": True, "tls": True}),
    ("REDIS://H:1", {"host": "H", "port": 1}),
])
def test_redis_target_parses_good_urls(url: str, parts: dict[str, object]) -> None:
    target = RedisTarget.parse(url)
    for name, value in parts.items():
        assert getattr(target, name) == value, name
    assert RedisTarget.parse(target.to_url(mask=False)) == target  # round trip


@pytest.mark.parametrize(("url", "why"), [
    ("localhost:6379", "not a URL"),
    ("http://h", "unknown scheme 'http://'"),
    ("redis://h:abc", "port 'abc' is not a number"),
    ("redis://h:0", "port 0 is out of range"),
    ("redis://h:65536", "port 65536 is out of range"),
    ("redis://h:", "empty port"),
    ("redis://h/x", "database 'x' is not a number"),
    ("redis://h/-1", "database '-1' is not a number"),
    ("redis://h/2147483648", "database 2147483648 is out of range"),
    ("redis://h/1?db=2", "both as the path and as ?db="),
    ("redis://h?timeout=1", "unknown option 'timeout'"),
    ("redis://h?db=1&db=2", "option 'db' is given twice"),
    ("redis://h?ssl_cert_reqs=none", "ssl_cert_reqs need TLS"),
    ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs 'maybe' is not one of required, optional, none"),
    ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname needs certificate verification"),
    ("rediss://h?ssl_check_hostname=perhaps", "is not true or false"),
    ("redis://h?socket_timeout=0", "socket_timeout must be a positive number"),
    ("redis://h?socket_timeout=soon", "is not a number of seconds"),
    ("redis://bad host", "bad host"),
    ("unix://relative.sock", "absolute path"),
    ("unix://", "no socket path"),
    ("redis+cluster://h/1", "database 0 only"),
    ("redis://u:pw@h?password=x", "password is given both"),
    ("redis://h#frag", "fragment"),
])
def test_redis_target_refuses_bad_urls_saying_why(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="redis URL .*: .*" + why.replace("?", r"\?").replace("(", r"\(")):
        RedisTarget.parse(url)


def test_cluster_flag_and_its_conflicts() -> None:
    assert RedisTarget.parse("redis://h:7000", cluster=True) == RedisTarget.parse("redis+cluster://h:7000")
    with pytest.raises(ValueError, match="unix socket"):
        RedisTarget.parse("unix:///tmp/r.sock", cluster=True)
    with pytest.raises(ValueError, match="cluster=False"):
        RedisTarget.parse("redis+cluster://h", cluster=False)
    with pytest.raises(ValueError, match="unix socket"):
        RedisTarget(unix_path="/tmp/r.sock", cluster=True)
    with pytest.raises(ValueError, match="database 0 only"):
        RedisTarget(cluster=True, db=2)
    with pytest.raises(ValueError, match="out of range"):
        RedisTarget(port=70000)


def test_the_password_never_shows() -> None:
    target = RedisTarget.parse("rediss://alice:hunter2@h:6380/1?ssl_cert_reqs=optional")
    assert "hunter2" not in str(target) and "hunter2" not in repr(target)
    assert str(target) == "rediss://alice:***@h:6380/1?ssl_cert_reqs=optional"
    assert repr(target) == "RedisTarget('rediss://alice:***@h:6380/1?ssl_cert_reqs=optional')"
    assert "hunter2" in target.to_url(mask=False)
    unix = RedisTarget.parse("unix:///tmp/r.sock?password=hunter2")
    assert "hunter2" not in str(unix) and "hunter2" not in repr(unix)
    for bad in ("redis://alice:hunter2@h:99999", "unix://:hunter2@relative", "redis://h?password=hunter2&nope=1",
                "redis://hunter2@h:0", "redis://al:hun@ter2@h:0"):
        with pytest.raises(ValueError) as raised:
            RedisTarget.parse(bad)
        assert "hunter2" not in str(raised.value) and "***" in str(raised.value)
    with pytest.raises(ValueError) as raised:
        RedisTarget(password="hunter2", port=0)
    assert "hunter2" not in str(raised.value)
    assert mask_url("redis://u:p@h/0?password=q") == "redis://u:***@h/0?password=***"
    assert mask_url("redis://p@h") == "redis://***@h" and mask_url("unix:///a@b.sock") == "unix:///a@b.sock"


def test_tls_context_verifies_by_default() -> None:
    assert RedisTarget.parse("redis://h").ssl_context() is None
    context = RedisTarget.parse("rediss://h").ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    relaxed = RedisTarget.parse("rediss://h?ssl_cert_reqs=none").ssl_context()
    assert relaxed is not None and relaxed.verify_mode == ssl.CERT_NONE and not relaxed.check_hostname
    kwargs = RedisTarget.parse("rediss://h?ssl_cert_reqs=none").client_kwargs()
    assert kwargs["ssl"] is True and kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False


def test_client_connects_with_the_parsed_parts(redis_server: EmbeddedRedis) -> None:
    client = RedisTarget.parse(redis_server.url + "?db=3&client_name=fastflow-test").client()
    assert isinstance(client, redis.Redis)
    client.set("in-db-3", 1)
    assert client.client_getname() == "fastflow-test"
    assert RedisTarget.parse(redis_server.url).client().get("in-db-3") is None
    assert client.get("in-db-3") == b"1"  # decode_responses=False: bytes
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        RedisTarget.parse(redis_server.url + "?db=16").client().ping()


def test_a_killed_parent_leaves_no_redis_server_behind() -> None:
    import signal
    import subprocess
    import sys
    import time

    code = ("from fastflow.store.embedded import EmbeddedRedis; s = EmbeddedRedis().start(); "
            "print(s.process.pid, flush=True); import sys; sys.stdin.read()")  # alive until killed
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    server = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel can clean up
    parent.wait()
    assert parent.stdin is not None
    parent.stdin.close()
    parent.stdout.close()
    deadline = time.monotonic() + 10.0
    while True:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.kill(server, signal.SIGKILL)
            raise AssertionError("redis-server outlived its SIGKILLed parent")
        time.sleep(0.02)
