"""The one health server (fastflow.obs.health) over a real loopback socket: routes,
200/503, 404/405/400/408/431/500, the response head, and its client :func:`get`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import pytest

from fastflow.obs import health
from fastflow.obs.health import HealthServer, Response, health_response, json_response

DEADLINE = 10.0
METRICS = b"# TYPE fastflow_up gauge\nfastflow_up 1\n"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw request; status, headers and body (the server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(DEADLINE):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Connection"] == "close" and headers["Cache-Control"] == "no-store"
    assert lines[0].startswith("HTTP/1.1 ")
    return int(lines[0].split(" ")[1]), headers, body


def served(test: Callable[[HealthServer, dict[str, bool]], Awaitable[None]], **options: float) -> None:
    """Run ``test`` against a started server with /healthz (200 while ``state["ok"]``,
    else 503), /metrics and /boom (raises)."""
    state = {"ok": True}

    def boom() -> Response:
        raise RuntimeError("a bug")

    routes = {
        "/healthz": lambda: health_response({"status": "ok" if state["ok"] else "down"}, state["ok"]),
        "/metrics": lambda: (HTTPStatus.OK, METRICS, PROMETHEUS),
        "/boom": boom,
    }

    async def main() -> None:
        server = HealthServer(routes, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
        await server.start()
        try:
            await test(server, state)
        finally:
            await server.stop()

    asyncio.run(main())


def test_healthz_is_200_then_503_with_the_json_body() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        status, headers, body = await http(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert body == b'{"status": "ok"}\n'
        state["ok"] = False
        status, _, body = await http(server.port, b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n")
        assert status == 503 and json.loads(body) == {"status": "down"}
        assert server.requests == 2

    served(test)


def test_a_route_gives_its_own_body_and_content_type() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        status, headers, body = await http(server.port, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n")
        assert status == 200 and headers["Content-Type"] == PROMETHEUS and body == METRICS

    served(test)


def test_other_paths_are_404_naming_the_routes() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        for path in (b"/nope", b"/metrics/x", b"/healthz/", b"/"):
            status, headers, body = await http(server.port, b"GET " + path + b" HTTP/1.1\r\n\r\n")
            assert status == 404 and headers["Content-Type"] == "application/json"
            assert json.loads(body)["error"] == (f"no such path: {path.decode()}; "
                                                 "try GET /healthz or GET /metrics or GET /boom")

    served(test)


def test_other_methods_are_405_with_allow_get() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        for request in (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"DELETE /healthz HTTP/1.0\r\n\r\n",
                        b"PUT /metrics?x=1 HTTP/1.0\r\n\r\n", b"HEAD /metrics HTTP/1.1\r\n\r\n"):
            status, headers, body = await http(server.port, request)
            method, path = request.decode().split(" ")[:2]
            assert status == 405 and headers["Allow"] == "GET"
            assert json.loads(body)["error"] == f"{method} not allowed on {path.split('?')[0]}; use GET"

    served(test)


def test_a_bad_request_line_is_400_and_a_huge_head_431() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        for request in (b"nonsense\r\n\r\n", b"GET /healthz\r\n\r\n", b"GET /healthz SPDY/3\r\n\r\n",
                        b"GET  /healthz HTTP/1.1\r\n\r\n"):
            status, _, body = await http(server.port, request)
            assert status == 400 and json.loads(body) == {"error": "malformed request line"}
        status, _, body = await http(server.port, b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"x" * 20_000 + b"\r\n\r\n")
        assert status == 431 and json.loads(body) == {"error": "request head over 8192 bytes"}

    served(test)


def test_an_incomplete_head_is_408_after_the_read_timeout() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        status, _, body = await http(server.port, b"GET /healthz HTTP/1.1\r\n")  # no blank line
        assert status == 408 and json.loads(body) == {"error": "incomplete request head"}

    served(test, read_timeout=0.2)


def test_a_failing_route_is_500_and_the_server_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        status, _, body = await http(server.port, b"GET /boom HTTP/1.1\r\n\r\n")
        assert status == 500 and json.loads(body) == {"error": "/boom failed"}
        status, _, _ = await http(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert status == 200

    served(test)
    assert "a bug" in caplog.text


def test_urls_and_the_client_side_get() -> None:
    async def test(server: HealthServer, state: dict[str, bool]) -> None:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.url_of("/healthz") == f"http://127.0.0.1:{server.port}/healthz"
        assert await asyncio.to_thread(health.get, server.url_of("/healthz")) == (200, b'{"status": "ok"}\n')
        state["ok"] = False
        status, body = await asyncio.to_thread(health.get, server.url_of("/healthz"))
        assert status == 503 and json.loads(body) == {"status": "down"}
        status, _ = await asyncio.to_thread(health.get, server.url + "/nope")
        assert status == 404

    served(test)


def test_json_response() -> None:
    assert json_response({"a": [1]}) == (HTTPStatus.OK, b'{"a": [1]}\n', "application/json")
    assert json_response({}, HTTPStatus.SERVICE_UNAVAILABLE)[0] == 503
