"""HTTP on the gateway's port, beside the WebSocket (``/ws``): the dashboard
(``/``, ``/static/*``), ``/healthz`` and ``/metrics``, and the handshake's
admission checks (origin 403, credential 401, capacity 503). websockets calls
the server's ``process_request`` with each request; these functions answer it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import mimetypes
import socket
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response

from fastflow.gateway.auth import NEVER, Auth
from fastflow.obs import metrics

STATIC = Path(__file__).parent / "static"
TEXT = "text/plain; charset=utf-8"
NOT_FOUND = b"not found: try / (dashboard), /ws, /healthz or /metrics\n"


def response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    """A complete HTTP response (the connection closes after it)."""
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def route(path: str, health: Callable[[], dict[str, Any]], metrics_text: Callable[[], bytes]) -> Response:
    """The answer to ``GET path`` (any path but ``/ws``)."""
    if path == "/healthz":
        body = health()
        status = HTTPStatus.OK if body["status"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        return response(status, json.dumps(body, indent=1).encode(), "application/json")
    if path == "/metrics":
        return response(HTTPStatus.OK, metrics_text(), metrics.CONTENT_TYPE)
    if path == "/livez":  # liveness only: the loop runs (obs.health.alive)
        return response(HTTPStatus.OK, b"alive\n", TEXT)
    if path in ("/", "/index.html"):
        return static("index.html")
    if path.startswith("/static/"):
        return static(path[len("/static/"):])
    return response(HTTPStatus.NOT_FOUND, NOT_FOUND, TEXT)


def static(name: str) -> Response:
    """A file of the dashboard (only the files in ``static/``, by name)."""
    try:
        files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
    except OSError:
        files = {}
    if name not in files:
        return response(HTTPStatus.NOT_FOUND, b"not found\n", TEXT)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
        kind += "; charset=utf-8"
    return response(HTTPStatus.OK, files[name].read_bytes(), kind)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def own_names() -> set[str]:
    """The names this machine answers to: localhost and its host names."""
    names = {"localhost", "localhost.localdomain"}
    with contextlib.suppress(OSError):
        names.add(socket.gethostname().lower())  # not getfqdn(): a DNS lookup that may hang
    return names


class Verdict(NamedTuple):
    """The handshake's outcome: ``refusal`` (None: admitted) and its ``reason``, or
    the client's ``name`` and its credential's ``expires`` (epoch seconds)."""

    refusal: Response | None
    name: str = ""
    expires: float = NEVER
    reason: str = ""
    address: str = ""  # counted under this address (per-IP cap): the server calls client_gone() with it


#: Headers the handshake decides on: more than one of any is refused (400), never guessed.
SINGLE_HEADERS = ("Host", "Origin", "Authorization")


class Admission:
    """The WebSocket handshake's checks, in order: one of each header it decides
    on (400), the browser origin (403), the credential (401, ``Authorization:
    Bearer`` or ``?token=``), the capacity (503)."""

    def __init__(self, auth: Auth, allowed_origins: tuple[str, ...], max_clients: int,
                 allowed_hosts: tuple[str, ...] = (), *, max_per_ip: int = 256, per_ip_loopback: bool = False,
                 max_handshakes: int = 1024) -> None:
        self.auth = auth
        self.allowed_origins = allowed_origins
        self.max_clients = max_clients
        self.allowed_hosts = {h.lower() for h in allowed_hosts} | own_names()
        self.max_per_ip = max_per_ip
        self.per_ip_loopback = per_ip_loopback
        self.max_handshakes = max_handshakes
        self.handshaking = 0  # connections accepted whose request has not arrived yet
        self.per_ip: dict[str, int] = {}  # clients admitted, by address (loopback only if counted)

    # -- connections before and after the handshake (the server calls these) ---------------

    def opening(self) -> bool:
        """A TCP connection was accepted: False (abort it) past ``max_handshakes`` pending."""
        if self.handshaking >= self.max_handshakes:
            return False
        self.handshaking += 1
        return True

    def handshake_over(self) -> None:
        """A pending connection sent its request, or went away before it."""
        self.handshaking -= 1

    def counted(self, peer: str | None) -> str:
        """The address ``peer`` counts under for the per-IP cap ("" when exempt)."""
        if not peer or (not self.per_ip_loopback and _is_loopback(peer)):
            return ""
        return peer

    def client_gone(self, address: str) -> None:
        left = self.per_ip.get(address, 0) - 1
        if left > 0:
            self.per_ip[address] = left
        else:
            self.per_ip.pop(address, None)

    def check(self, headers: Headers, query: Mapping[str, list[str]], peer: str | None,
              clients: int) -> Verdict:
        """A refusal (with its reason), or the client's name and credential expiry."""
        for header in SINGLE_HEADERS:
            if len(headers.get_all(header)) > 1:
                refused = response(HTTPStatus.BAD_REQUEST, f"more than one {header} header\n".encode(), TEXT)
                return Verdict(refused, reason="duplicate_header")
        host = headers.get("Host", "")
        if not self.host_allowed(host):
            return Verdict(response(HTTPStatus.FORBIDDEN, f"host {host} is not allowed\n".encode(), TEXT),
                           reason="host")
        origin = headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, headers.get("Host", "")):
            return Verdict(response(HTTPStatus.FORBIDDEN, f"origin {origin} is not allowed\n".encode(), TEXT),
                           reason="origin")
        credential = None
        authorization = headers.get("Authorization", "")
        if authorization.lower().startswith("bearer "):
            credential = authorization[7:].strip()
        elif query.get("token"):
            credential = query["token"][0]
        admitted = self.auth.admit(credential, peer)
        if admitted is None:
            why = "invalid or expired credential" if credential else "a credential is required"
            refusal = response(HTTPStatus.UNAUTHORIZED, f"{why}\n".encode(), TEXT)
            refusal.headers["WWW-Authenticate"] = 'Bearer realm="fastflow"'
            return Verdict(refusal, reason="auth")
        if clients >= self.max_clients:
            return Verdict(response(HTTPStatus.SERVICE_UNAVAILABLE, b"too many clients\n", TEXT), reason="full")
        address = self.counted(peer)
        if address:
            if self.per_ip.get(address, 0) >= self.max_per_ip:
                return Verdict(response(HTTPStatus.SERVICE_UNAVAILABLE,
                                        f"too many clients from {address}\n".encode(), TEXT), reason="per_ip")
            self.per_ip[address] = self.per_ip.get(address, 0) + 1
        return Verdict(None, *admitted, address=address)

    def host_allowed(self, host: str) -> bool:
        """A ``Host`` (``name[:port]``) the gateway answers to: an IP address (no DNS
        name, nothing to rebind), one of its own names, or listed (``*``: any).
        A page of ``attacker.example`` whose name the attacker's DNS points at
        127.0.0.1 sends ``Host: attacker.example``: refused."""
        name = urlsplit(f"//{host}").hostname or ""
        if "*" in self.allowed_hosts or name in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Allowed: listed, ``*`` listed, or the gateway's own origin (same host:port)."""
        allowed = self.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()
