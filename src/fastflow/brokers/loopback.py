"""A small HTTP/1.1 server for the login's loopback redirect (and the simulator's
REST endpoints), and a small client for the brokers' REST calls.

Server: one request per connection (``Connection: close``, an exact
``Content-Length``, ``Cache-Control: no-store``); the request head is bounded
(``max_head``), the body read by its ``Content-Length`` (``max_body``), a
request that does not arrive within ``read_timeout`` is dropped. The handler is
``async (HttpRequest) -> HttpAnswer``; if it raises, the answer is 500. No
chunked bodies, no keep-alive: what a browser's redirect and a REST client
need, nothing more. (websockets' ``process_request`` answers ``GET`` only: it
refuses a request with a body, so a ``POST`` form cannot go through it.)

Client: :func:`request` (blocking: call it in a thread) sends a form or a
``GET`` with urllib, verifying certificates; a loopback host is never sent
through a proxy. It returns the status, headers and body for every HTTP status,
and raises ``OSError`` only when no answer came.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One request: ``headers`` by lower-case name."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The query's parameters, the first value of each."""
        return _first(urllib.parse.parse_qs(urllib.parse.urlsplit(self.target).query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body's fields, the first value of each."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return _first(urllib.parse.parse_qs(text, keep_blank_values=True))


#: ``(status, extra headers, body)``; a ``Content-Type`` belongs in the headers.
HttpAnswer = tuple[int, Sequence[tuple[str, str]], bytes]
Handler = Callable[[HttpRequest], Awaitable[HttpAnswer]]


def _first(values: Mapping[str, list[str]]) -> dict[str, str]:
    return {name: items[0] for name, items in values.items() if items}


def text_answer(status: int, text: str, kind: str = "text/plain; charset=utf-8") -> HttpAnswer:
    return status, [("Content-Type", kind)], text.encode("utf-8")


async def start_server(handler: Handler, host: str, port: int, *, max_head: int = 16384,
                       max_body: int = 1 << 16, read_timeout: float = 10.0,
                       on_answered: Callable[[], object] | None = None) -> asyncio.Server:
    """Serve ``handler`` on ``host:port`` (0: a free port); ``OSError`` when it cannot
    listen. ``on_answered()`` runs after each connection is answered and closed."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(_read(reader, max_body), read_timeout)
            except asyncio.LimitOverrunError:
                answer = text_answer(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large\n")
            except ValueError as exc:
                answer = text_answer(HTTPStatus.BAD_REQUEST, f"{exc}\n")
            else:
                try:
                    answer = await handler(request)
                except Exception:
                    logger.exception("http: %s %s failed", request.method, request.path)
                    answer = text_answer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
            status, headers, body = answer
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            head = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(body)}", "Cache-Control: no-store",
                    "Connection: close", *(f"{name}: {value}" for name, value in headers)]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, or never finished its request
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if on_answered is not None:
                on_answered()

    return await asyncio.start_server(connection, host, port, limit=max_head)


async def _read(reader: asyncio.StreamReader, max_body: int) -> HttpRequest:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ValueError("transfer codings are not supported")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise ValueError("malformed Content-Length") from None
    if not 0 <= length <= max_body:
        raise ValueError(f"a body of {length} bytes (at most {max_body})")
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(parts[0], parts[1], headers, body)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def request(url: str, *, form: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
            timeout: float = 30.0, max_bytes: int = 1 << 30) -> tuple[int, Mapping[str, str], bytes]:
    """``POST`` ``form`` (``application/x-www-form-urlencoded``) to ``url``, or
    ``GET`` it without one: status, headers and body, for every HTTP status
    (blocking). ``OSError`` when there is no answer (refused, unknown host, timed out, TLS)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    sent = dict(headers or {})
    if data is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    http_request = urllib.request.Request(url, data=data, headers=sent, method="POST" if data is not None else "GET")
    host = urllib.parse.urlsplit(url).hostname or ""
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(host) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(http_request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read(max_bytes)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers.items()), exc.read(1 << 16)
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise OSError(getattr(reason, "strerror", None) or str(reason)) from None
    except TimeoutError:
        raise OSError(f"no answer within {timeout:g} s") from None
