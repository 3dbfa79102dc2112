"""`fastflow run`'s status line over real HTTP scrapes: a plant that stops
answering is shown as such (a timed-out scrape printed -34,800 ticks/s), and
the next answer that comes is measured against the last one that did."""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
import types
from typing import Any

from fastflow.services.supervisor import Status
from fastflow.store.embedded import EmbeddedRedis


class MetricsServer:
    """``/metrics`` on 127.0.0.1 with a ticks counter the test sets."""

    def __init__(self) -> None:
        self.ticks = 0.0
        self.extra: dict[str, float] = {}  # more series the test sets
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (f"fastflow_plant_ticks_total {outer.ticks:g}\n"
                        "fastflow_gateway_clients 3\n"
                        + "".join(f"{k} {v:g}\n" for k, v in outer.extra.items())).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_plant_that_does_not_answer_is_shown_and_no_rate_goes_negative() -> None:
    async def main() -> None:
        plant, gateway = MetricsServer(), MetricsServer()
        stack = types.SimpleNamespace(plant_url=plant.url, dashboard_url=gateway.url + "/",
                                      redis_url="unix:///nonexistent/redis.sock")
        status = Status(stack)  # type: ignore[arg-type]
        try:
            plant.ticks = 5_000
            first = await status.line()
            assert "ticks/s" in first and "3 clients" in first and "redis ?" in first
            plant.close()  # the scrape fails (a SIGSTOPped plant times out the same way)
            silent = await status.line()
            assert silent.startswith("plant not answering |") and "-" not in silent.split("|")[0]
            back = MetricsServer()
            back.ticks = 2_000  # restarted: its counter began again
            stack.plant_url = back.url
            again = await status.line()
            rate = float(again.split(" ticks/s")[0].replace(",", ""))
            assert rate > 0, again
            back.close()
        finally:
            gateway.close()
            await status.close()

    asyncio.run(main())


def test_the_status_line_shows_the_drops_and_redis_memory_against_its_maxmemory(redis_server: EmbeddedRedis) -> None:
    """`4,219 flushes written, 25 dropped` was in the plant's line, never in `fastflow
    run`'s; nor was the bound on Redis's memory. Drops count from the run's start, also
    across a restarted plant; memory is INFO's used_memory_human of the run's Redis."""

    async def main() -> None:
        plant, gateway = MetricsServer(), MetricsServer()
        with EmbeddedRedis(maxmemory="64mb") as bounded:
            stack = types.SimpleNamespace(plant_url=plant.url, dashboard_url=gateway.url + "/",
                                          redis_url=f"unix://{bounded.unix_socket}")
            status = Status(stack)  # type: ignore[arg-type]
            try:
                first = await status.line()
                assert first.endswith("| dropped 0 flushes to redis, 0 frames to slow clients"), first
                assert re.search(r"\| redis [0-9.]+[KMG] of 64\.00M \|", first), first
                plant.extra["fastflow_redis_dropped_total"] = 25
                gateway.extra["fastflow_gateway_conflations_total"] = 3
                plant.extra["fastflow_redis_full"] = 1
                line = await status.line()
                assert "| redis FULL " in line and line.endswith(
                    "| dropped 25 flushes to redis, 3 frames to slow clients"), line
                back = MetricsServer()  # the plant restarted: its counter began again
                back.extra["fastflow_redis_dropped_total"] = 1
                stack.plant_url = back.url
                line = await status.line()
                assert line.endswith("| dropped 26 flushes to redis, 3 frames to slow clients"), line
                assert "FULL" not in line
                back.close()
            finally:
                await status.close()
        stack.redis_url = f"unix://{redis_server.unix_socket}"  # a Redis without maxmemory
        status = Status(stack)  # type: ignore[arg-type]
        try:
            assert re.search(r"\| redis [0-9.]+[KMG] \(no maxmemory\) \|", await status.line())
        finally:
            await status.close()
            plant.close()
            gateway.close()

    asyncio.run(main())
