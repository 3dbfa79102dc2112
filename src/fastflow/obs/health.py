"""The one health server: a few ``GET`` routes (``/healthz``, ``/metrics``) over
HTTP/1.1 for probes and scrapers, on loopback by default.

A route is a callable that returns ``(status, body, content type)``; the
server does the HTTP. One request per connection: the server closes it after
the response (``Connection: close``, ``Cache-Control: no-store``, an exact
``Content-Length``). 404 for a path that is no route (the error names the
routes), 405 for any method but ``GET`` on a route (``Allow: GET``), 400 for a
malformed request line, 408 when the request head does not arrive within
``read_timeout``, 431 when it exceeds ``max_request_bytes``, 500 when a route
raises; errors have a JSON body ``{"error": "..."}``. A query string is
ignored. ::

    server = HealthServer({"/healthz": lambda: json_response(plant.health()),
                           "/metrics": lambda: (HTTPStatus.OK, render(), metrics.CONTENT_TYPE)})
    await server.start()
    print(server.url_of("/healthz"))

:func:`get` is the client side, for tests, benchmarks and supervisors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: ``(status, body, content type)``: what a route answers.
Response = tuple[HTTPStatus, bytes, str]
Route = Callable[[], Response]

JSON = "application/json"


def json_response(body: Any, status: HTTPStatus = HTTPStatus.OK) -> Response:
    """``body`` as one line of JSON."""
    return status, (json.dumps(body) + "\n").encode(), JSON


def alive() -> Response:
    """``/livez``: 200 whenever the process's event loop runs. Liveness only: a
    process that answers is alive even when its feed is stale or Redis is away
    (``/healthz`` says that); a supervisor restarts a child only when this fails."""
    return HTTPStatus.OK, b"alive\n", "text/plain; charset=utf-8"


def health_response(health: Any, healthy: bool) -> Response:
    """A health check's answer: ``health`` as JSON, 200 when ``healthy``, else 503."""
    return json_response(health, HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE)


class HealthServer:
    """``GET`` on ``routes`` (path -> :data:`Route`) at ``host:port`` (0: any free
    port); see the module docstring for the answers."""

    def __init__(self, routes: Mapping[str, Route], host: str = "127.0.0.1", port: int = 0, *,
                 max_request_bytes: int = 8192, read_timeout: float = 5.0) -> None:
        self.routes = dict(routes)
        self.host = host
        self.requested_port = port
        self.max_request_bytes = max_request_bytes
        self.read_timeout = read_timeout
        self.requests = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.requested_port,
                                                  limit=self.max_request_bytes)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`start`)."""
        assert self._server is not None, "not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """``http://host:port``, without a path."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_of(self, path: str) -> str:
        """The URL of ``path`` (a route) on this server."""
        return self.url + path

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        try:
            status, payload, kind, extra = await self._respond(reader)
            head = [f"HTTP/1.1 {status.value} {status.phrase}", f"Content-Type: {kind}",
                    f"Content-Length: {len(payload)}", "Cache-Control: no-store", "Connection: close", *extra]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, bytes, str, list[str]]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except asyncio.LimitOverrunError:
            return _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                          f"request head over {self.max_request_bytes} bytes")
        except TimeoutError:
            return _error(HTTPStatus.REQUEST_TIMEOUT, "incomplete request head")
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _error(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, target = parts[0], parts[1]
        path = urlsplit(target).path
        route = self.routes.get(path)
        if route is None:
            choices = " or ".join(f"GET {p}" for p in self.routes)
            return _error(HTTPStatus.NOT_FOUND, f"no such path: {target[:100]}; try {choices}")
        if method != "GET":
            status, body, kind, _ = _error(HTTPStatus.METHOD_NOT_ALLOWED,
                                           f"{method[:20]} not allowed on {path}; use GET")
            return status, body, kind, ["Allow: GET"]
        try:
            status, body, kind = route()
        except Exception:
            logger.exception("health server: %s failed", path)
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{path} failed")
        return status, body, kind, []


def _error(status: HTTPStatus, message: str) -> tuple[HTTPStatus, bytes, str, list[str]]:
    return (*json_response({"error": message}, status), [])


def get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """``GET url`` directly (never through a proxy: these servers are local): the
    status and the body, also for an HTTP error status. Raises ``OSError`` when
    there is no answer (refused, timed out)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()
