"""The gateway process (``fastflow gateway``): Redis pub/sub -> WebSocket clients.

``main(config)`` serves ``config.gateway`` on its host and port, reading the
partition ``config.redis`` names, until SIGINT/SIGTERM or ``duration``. It prints
the dashboard and WebSocket URLs, then ``ready: N instruments`` once it holds the
instrument list, and announces ``{"service": "gateway", "dashboard", "websocket",
"instruments"}`` to a parent (:mod:`fastflow.obs.ready`).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from fastflow.config import Config, GatewaySection
from fastflow.obs.loop import asyncio_run
from fastflow.obs.process import raise_open_files
from fastflow.obs.ready import announce

#: Open files a gateway needs besides its clients' sockets (listeners, Redis, files, the loop).
FDS_BESIDES_CLIENTS = 64


def main(config: Config, *, duration: float | None = None) -> int:
    """Serve until a signal or ``duration``; 0, or 2 when it cannot start."""
    from fastflow.gateway.server import Gateway, serve_gateway
    from fastflow.store.keys import Keys
    from fastflow.store.target import RedisTarget

    def fail(message: str) -> int:
        print(f"fastflow gateway: {message}", file=sys.stderr)
        return 2

    section, redis = config.gateway, config.redis
    # Each client and each pending handshake is a socket: the caps need that many descriptors, and
    # some for Redis and the rest; then accept() never meets EMFILE.
    besides = section.max_handshakes + FDS_BESIDES_CLIENTS
    wanted = section.max_clients + besides
    allowed = raise_open_files(wanted)
    if allowed < wanted:
        fits = max(allowed - besides, 0)
        why = (f"gateway.max_clients {section.max_clients:,} and gateway.max_handshakes {section.max_handshakes:,} "
               f"need {wanted:,} open files; RLIMIT_NOFILE allows {allowed:,} (raise it: ulimit -n, LimitNOFILE=)")
        if section.max_clients != GatewaySection.max_clients or fits < 1:  # a cap asked for: not shrunk
            return fail(why)
        print(f"fastflow gateway: warning: {why}; serving at most {fits:,} clients", file=sys.stderr, flush=True)
        section = dataclasses.replace(section, max_clients=fits)
    try:
        gateway = Gateway(section, redis=RedisTarget.parse(redis.url, cluster=True if redis.cluster else None),
                          keys=Keys(redis.partition_of(config.broker), prefix=redis.prefix),
                          backoff_reset_after=redis.backoff_reset_after)
    except ValueError as exc:
        return fail(str(exc))

    def report(message: str) -> None:
        print(f"fastflow gateway: {message}", flush=True)

    def ready(served: Gateway) -> Any:
        return announce("gateway", dashboard=served.http_url, websocket=served.ws_url,
                        instruments=len(served.symbols))

    try:
        asyncio_run(serve_gateway(gateway, duration=duration, report=report, on_ready=ready))
    except OSError as exc:
        return fail(f"cannot listen on {section.host}:{section.port}: {exc.strerror or exc}")
    return 0
