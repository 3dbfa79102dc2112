"""``fastflow gateway`` as processes: two on one Redis serve the same feed, and
two share one port with --reuse-port. The processes run their own (uv)loop; the
test's side stays on asyncio's."""

from __future__ import annotations

import asyncio
import os

from websockets.asyncio.client import connect

from fastflow.store.embedded import EmbeddedRedis

from ..gateway_harness import (
    Collector,
    MarketFeed,
    by_symbol,
    flushed,
    gateway_process,
    hello,
    subscribe,
    target_of,
)
from ..waiting import until


def test_two_gateway_processes_serve_the_same_feed(redis_server: EmbeddedRedis) -> None:
    """Two ``fastflow gateway`` processes on one Redis: clients of either get the
    same ticks, equal to the plant's. Then two on one port with --reuse-port."""

    async def main() -> None:
        feed = MarketFeed(target_of(redis_server))
        await feed.start()
        await feed.step(300)
        try:
            async with gateway_process(redis_server) as first, gateway_process(redis_server) as second:
                assert first != second
                clients = [await connect(url, compression=None) for url in (first, second) * 3]
                collectors = []
                for ws in clients:
                    await hello(ws)
                    await subscribe(ws, feed.symbols[:100])
                    collectors.append(Collector(ws))
                expected: list[tuple[str, int]] = []
                for _ in range(10):
                    expected += [(s, q) for s, q in flushed(await feed.step(300)) if s in set(feed.symbols[:100])]
                for collector in collectors:
                    await until(lambda c=collector: len(c.seen) >= len(expected), "every tick, both processes")
                    assert by_symbol(collector.seen) == by_symbol(expected)
                    await collector.stop()
                for ws in clients:
                    await ws.close()
                port = int(first.rsplit(":", 1)[1].split("/")[0])
            async with gateway_process(redis_server, "--port", str(port), "--reuse-port") as a, \
                    gateway_process(redis_server, "--port", str(port), "--reuse-port") as b:
                assert a == b  # both listen on the one port; the kernel spreads the connections
                for _ in range(4):
                    async with connect(a, compression=None) as ws:
                        await hello(ws)
                        _, snapshot = await subscribe(ws, ["NSE:TCS"])
                        assert snapshot["ticks"] == [feed.tick("NSE:TCS")]
        finally:
            await feed.stop()

    asyncio.run(main())


def test_the_client_cap_is_checked_against_the_open_files_limit(redis_server: EmbeddedRedis) -> None:
    """RLIMIT_NOFILE of 300: an explicit gateway.max_clients of 1,000 cannot be
    served (a clear start-up error, exit 2); the default cap shrinks to fit, with a
    warning, rather than failing at the 237th client with EMFILE."""
    import resource
    import subprocess
    import sys

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    command = [sys.executable, "-m", "fastflow", "gateway", "--redis", f"unix://{redis_server.unix_socket}",
               "--port", "0", "--duration", "0.5"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=low_limit,
                             env={**os.environ, "FASTFLOW_GATEWAY_MAX_CLIENTS": "1000",
                                                     "FASTFLOW_GATEWAY_MAX_HANDSHAKES": "100"})
    assert refused.returncode == 2, refused.stderr
    assert ("fastflow gateway: gateway.max_clients 1,000 and gateway.max_handshakes 100 need 1,164 open files; "
            "RLIMIT_NOFILE allows 300 (raise it: ulimit -n, LimitNOFILE=)") in refused.stderr
    shrunk = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=low_limit,
                            env={**os.environ, "FASTFLOW_GATEWAY_MAX_HANDSHAKES": "100"})
    assert shrunk.returncode == 0, shrunk.stderr
    assert "RLIMIT_NOFILE allows 300 (raise it: ulimit -n, LimitNOFILE=); serving at most 136 clients" in shrunk.stderr
