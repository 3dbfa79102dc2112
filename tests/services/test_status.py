"""`fastflow run`'s status line over real HTTP scrapes: a plant that stops
answering is shown as such (a timed-out scrape printed -34,800 ticks/s), and
the next answer that comes is measured against the last one that did."""

from __future__ import annotations

import asyncio
import http.server
import threading
import types
from typing import Any

from fastflow.services.supervisor import Status


class MetricsServer:
    """``/metrics`` on 127.0.0.1 with a ticks counter the test sets."""

    def __init__(self) -> None:
        self.ticks = 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (f"fastflow_plant_ticks_total {outer.ticks:g}\n"
                        "fastflow_gateway_clients 3\n").encode()
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
