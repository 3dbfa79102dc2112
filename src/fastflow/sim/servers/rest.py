"""The simulator's REST endpoints: the brokers' login, token exchange and instrument
dump, so ``fastflow login`` and the day's master download are tested end to end.

They listen on their own port (:class:`RestServer`, ``simulator.rest_port``),
beside the WebSocket: the real brokers serve them from other hosts too
(``api.kite.trade`` and ``kite.zerodha.com`` beside ``ws.kite.trade``;
``assets.upstox.com`` beside ``api.upstox.com``), and the WebSocket server's
``process_request`` cannot take a ``POST`` with a form body.

**Kite** (:class:`KiteRest`; indian-market-facts.md §2):

* ``GET /connect/login?v=3&api_key=K[&redirect_params=...]`` plays the user who
  logs in: it answers **302** to the app's registered redirect URL
  (``login.redirect_url``) with ``request_token=...&action=login&type=login&
  status=success`` and the ``redirect_params`` echoed. An unknown api_key gets 400;
* ``POST /session/token`` (form ``api_key``, ``request_token``, ``checksum``):
  the request_token is single-use and lives ``request_token_ttl`` seconds.
  Unknown, used or expired: **403** ``{"status": "error", "error_type":
  "TokenException", "message": "Token is invalid or has expired."}``; a checksum
  that is not SHA-256(api_key + request_token + api_secret): **403**
  TokenException ``Invalid `checksum`.``; a missing field: 400 InputException.
  Success returns the session (``access_token``, ``user_id``, ...) and makes the
  issued token the one the ticker accepts (connections presenting the old one
  are refused from then on, as after ``expire_token``);
* ``GET /instruments`` (and ``/instruments/{exchange}``): the universe as Kite's
  CSV, gzipped (``Content-Encoding: gzip``). An ``Authorization: token K:T`` header, when sent, must be valid (403).

**Upstox** (:class:`UpstoxRest`; §3):

* ``GET /v2/login/authorization/dialog?response_type=code&client_id=&redirect_uri=&state=``
  plays the user who approves: **302** to ``redirect_uri?code=...&state=...``; a
  client_id or redirect_uri that is not the app's (the simulator's api_key and
  ``login.redirect_url``) gets 400 ``UDAPI100068``;
* ``POST /v2/login/authorization/token`` (form ``code``, ``client_id``,
  ``client_secret``, ``redirect_uri``, ``grant_type=authorization_code``): the
  code is single-use even when the exchange fails. Unknown, used or expired
  code: **401** ``UDAPI100057`` "Invalid Auth code"; wrong client_id or secret:
  **401** ``UDAPI100016`` "Invalid Credentials"; wrong redirect_uri: 400
  ``UDAPI100068``. (The real codes of the last three and their statuses are not
  documented: the simulator's choice, in Upstox's error shape.) Success returns
  the profile with ``access_token`` and rotates the feed's token;
* ``GET /market-quote/instruments/exchange/complete.json.gz``: the universe as
  Upstox's gzipped JSON.

Test hooks: :meth:`KiteRest.issue_request_token` / :meth:`UpstoxRest.issue_code`
(the user logged in, the browser not involved), ``instruments_status`` (answer
the dump with that error status), ``stats`` (counts per route).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Protocol

from fastflow.brokers.kite.constants import INSTRUMENTS_PATH as KITE_INSTRUMENTS_PATH
from fastflow.brokers.kite.constants import SESSION_TOKEN_PATH
from fastflow.brokers.kite.login import checksum
from fastflow.brokers.loopback import Handler, HttpAnswer, HttpRequest, start_server
from fastflow.brokers.upstox.constants import INSTRUMENTS_PATH as UPSTOX_INSTRUMENTS_PATH
from fastflow.brokers.upstox.constants import LOGIN_DIALOG_PATH, TOKEN_PATH
from fastflow.config import LoginSection, SimulatorSection
from fastflow.sim.universe.files import kite_csv_bytes, upstox_json_bytes

__all__ = ["KiteRest", "RestServer", "UpstoxRest"]

KITE_LOGIN_PATH = "/connect/login"


class Credentials(Protocol):
    """What a simulator's WebSocket checks (``KiteSimConfig``, ``UpstoxSimConfig``):
    a login replaces ``access_token``."""

    access_token: str


def _json(status: int, body: object) -> HttpAnswer:
    return status, [("Content-Type", "application/json")], json.dumps(body).encode()


def _redirect(location: str) -> HttpAnswer:
    return HTTPStatus.FOUND, [("Location", location), ("Content-Type", "text/plain; charset=utf-8")], b""


def _with_query(url: str, params: Sequence[tuple[str, str]], extra: str = "") -> str:
    query = urllib.parse.urlencode(params) + (f"&{extra}" if extra else "")
    return url + ("&" if "?" in url else "?") + query


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class _Tokens:
    """Single-use values (request tokens, codes) that expire after ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._live: dict[str, float] = {}

    def issue(self) -> str:
        now = time.monotonic()
        self._live = {value: until for value, until in self._live.items() if until > now}
        value = secrets.token_urlsafe(24)
        self._live[value] = now + self.ttl
        return value

    def take(self, value: str) -> bool:
        """True when ``value`` was issued, unused and unexpired; it is used up either way."""
        return self._live.pop(value, 0.0) > time.monotonic()

    def expire(self) -> None:
        """Every outstanding value dies (a test's "the user waited too long")."""
        self._live.clear()


class KiteRest:
    """Kite's login page, token exchange and instrument dump (module docstring)."""

    def __init__(self, credentials: Credentials, rows: Sequence[Mapping[str, object]], *,
                 api_key: str = SimulatorSection.api_key, api_secret: str = SimulatorSection.api_secret,
                 redirect_url: str = LoginSection.redirect_url, request_token_ttl: float = 300.0) -> None:
        self.credentials = credentials
        self.rows = list(rows)
        self.api_key = api_key
        self.api_secret = api_secret
        self.redirect_url = redirect_url
        self.request_tokens = _Tokens(request_token_ttl)
        self.instruments_status = HTTPStatus.OK
        self.stats = {"logins": 0, "sessions": 0, "refused": 0, "instruments": 0}
        self._dumps: dict[str, bytes] = {}

    def issue_request_token(self) -> str:
        """A request_token, as if the user had just logged in."""
        self.stats["logins"] += 1
        return self.request_tokens.issue()

    def _error(self, status: int, kind: str, message: str) -> HttpAnswer:
        self.stats["refused"] += 1
        return _json(status, {"status": "error", "message": message, "data": None, "error_type": kind})

    async def __call__(self, request: HttpRequest) -> HttpAnswer:
        path = request.path
        if path == KITE_LOGIN_PATH and request.method == "GET":
            return self._login(request.query)
        if path == SESSION_TOKEN_PATH and request.method == "POST":
            return self._session(request.form)
        if (path == KITE_INSTRUMENTS_PATH or path.startswith(KITE_INSTRUMENTS_PATH + "/")) and request.method == "GET":
            return self._instruments(path.removeprefix(KITE_INSTRUMENTS_PATH).strip("/"),
                                     request.headers.get("authorization"))
        return self._error(HTTPStatus.NOT_FOUND, "GeneralException", f"Route not found: {request.method} {path}")

    def _login(self, query: Mapping[str, str]) -> HttpAnswer:
        if query.get("api_key") != self.api_key:
            return self._error(HTTPStatus.BAD_REQUEST, "InputException", "Invalid `api_key`.")
        params = [("action", "login"), ("type", "login"), ("status", "success"),
                  ("request_token", self.issue_request_token())]
        return _redirect(_with_query(self.redirect_url, params, query.get("redirect_params", "")))

    def _session(self, form: Mapping[str, str]) -> HttpAnswer:
        missing = [field for field in ("api_key", "request_token", "checksum") if not form.get(field)]
        if missing:
            return self._error(HTTPStatus.BAD_REQUEST, "InputException", f"Missing `{missing[0]}`.")
        if not _same(form["api_key"], self.api_key):
            return self._error(HTTPStatus.FORBIDDEN, "TokenException", "Invalid `api_key`.")
        if not self.request_tokens.take(form["request_token"]):
            return self._error(HTTPStatus.FORBIDDEN, "TokenException", "Token is invalid or has expired.")
        if not _same(form["checksum"], checksum(self.api_key, form["request_token"], self.api_secret)):
            return self._error(HTTPStatus.FORBIDDEN, "TokenException", "Invalid `checksum`.")
        token = secrets.token_hex(16)
        self.credentials.access_token = token
        self.stats["sessions"] += 1
        return _json(HTTPStatus.OK, {"status": "success", "data": {
            "user_type": "individual/res_no_nn", "email": "sim@example.com", "user_name": "Sim User",
            "user_shortname": "Sim", "broker": "ZERODHA", "exchanges": ["NSE", "NFO", "BSE", "CDS", "MCX"],
            "products": ["CNC", "NRML", "MIS"], "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": None, "user_id": "SIM001", "api_key": self.api_key, "access_token": token,
            "public_token": secrets.token_hex(16), "refresh_token": "", "enctoken": "",
            "login_time": time.strftime("%Y-%m-%d %H:%M:%S"), "meta": {"demat_consent": "consent"}}})

    def _instruments(self, exchange: str, authorization: str | None) -> HttpAnswer:
        if authorization is not None and not _same(
                authorization, f"token {self.api_key}:{self.credentials.access_token}"):
            return self._error(HTTPStatus.FORBIDDEN, "TokenException", "Incorrect `api_key` or `access_token`.")
        if self.instruments_status != HTTPStatus.OK:
            return self._error(self.instruments_status, "NetworkException", "the dump is not available (simulated)")
        if exchange not in self._dumps:
            rows = [r for r in self.rows if not exchange or r["exchange"] == exchange]
            if not rows:
                return self._error(HTTPStatus.NOT_FOUND, "InputException", f"Unknown exchange `{exchange[:20]}`.")
            self._dumps[exchange] = kite_csv_bytes(rows)
        self.stats["instruments"] += 1
        # gzipped on the wire, as the official client (requests) expects: it decodes Content-Encoding
        return HTTPStatus.OK, [("Content-Type", "text/csv"), ("Content-Encoding", "gzip")], self._dumps[exchange]


class UpstoxRest:
    """Upstox's authorization dialog, token exchange and instrument file (module docstring)."""

    def __init__(self, credentials: Credentials, records: Sequence[Mapping[str, object]], *,
                 client_id: str = SimulatorSection.api_key, client_secret: str = SimulatorSection.api_secret,
                 redirect_url: str = LoginSection.redirect_url, code_ttl: float = 300.0) -> None:
        self.credentials = credentials
        self.records = list(records)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_url = redirect_url
        self.codes = _Tokens(code_ttl)
        self.instruments_status = HTTPStatus.OK
        self.stats = {"logins": 0, "sessions": 0, "refused": 0, "instruments": 0}
        self._dump = b""

    def issue_code(self) -> str:
        """An authorization code, as if the user had just approved the app."""
        self.stats["logins"] += 1
        return self.codes.issue()

    def _error(self, status: int, code: str, message: str) -> HttpAnswer:
        self.stats["refused"] += 1
        return _json(status, {"status": "error", "errors": [{
            "errorCode": code, "message": message, "propertyPath": None, "invalidValue": None,
            "error_code": code, "property_path": None, "invalid_value": None}]})

    async def __call__(self, request: HttpRequest) -> HttpAnswer:
        path = request.path
        if path == LOGIN_DIALOG_PATH and request.method == "GET":
            return self._dialog(request.query)
        if path == TOKEN_PATH and request.method == "POST":
            return self._token(request.form)
        if path == UPSTOX_INSTRUMENTS_PATH and request.method == "GET":
            return self._instruments()
        return self._error(HTTPStatus.NOT_FOUND, "UDAPI100060", "Resource not Found.")

    def _dialog(self, query: Mapping[str, str]) -> HttpAnswer:
        if query.get("response_type") != "code":
            return self._error(HTTPStatus.BAD_REQUEST, "UDAPI100068", "response_type must be code")
        if query.get("client_id") != self.client_id or query.get("redirect_uri") != self.redirect_url:
            return self._error(HTTPStatus.BAD_REQUEST, "UDAPI100068",
                               "Check your 'client_id' and 'redirect_uri'; one or both are incorrect.")
        params = [("code", self.issue_code())] + ([("state", query["state"])] if "state" in query else [])
        return _redirect(_with_query(self.redirect_url, params))

    def _token(self, form: Mapping[str, str]) -> HttpAnswer:
        if form.get("grant_type") != "authorization_code":
            return self._error(HTTPStatus.BAD_REQUEST, "UDAPI100036", "Invalid grant_type")
        used = self.codes.take(form.get("code", ""))  # single-use, even when the exchange fails
        if not (_same(form.get("client_id", ""), self.client_id)
                and _same(form.get("client_secret", ""), self.client_secret)):
            return self._error(HTTPStatus.UNAUTHORIZED, "UDAPI100016", "Invalid Credentials")
        if form.get("redirect_uri") != self.redirect_url:
            return self._error(HTTPStatus.BAD_REQUEST, "UDAPI100068",
                               "Check your 'client_id' and 'redirect_uri'; one or both are incorrect.")
        if not used:
            return self._error(HTTPStatus.UNAUTHORIZED, "UDAPI100057", "Invalid Auth code")
        token = secrets.token_hex(16)
        self.credentials.access_token = token
        self.stats["sessions"] += 1
        return _json(HTTPStatus.OK, {
            "email": "sim@example.com", "exchanges": ["NSE", "NFO", "BSE", "BFO", "MCX", "CDS"],
            "products": ["D", "I", "CO", "MTF"], "broker": "UPSTOX", "user_id": "SIM001", "user_name": "Sim User",
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "user_type": "individual", "poa": False,
            "is_active": True, "access_token": token, "extended_token": None})

    def _instruments(self) -> HttpAnswer:
        if self.instruments_status != HTTPStatus.OK:
            return self._error(self.instruments_status, "UDAPI100500", "the file is not available (simulated)")
        if not self._dump:
            self._dump = upstox_json_bytes(self.records)
        self.stats["instruments"] += 1
        return HTTPStatus.OK, [("Content-Type", "application/gzip")], self._dump


class RestServer:
    """One of the above on ``host:port`` (0: a free port)."""

    def __init__(self, app: Handler) -> None:
        self.app = app
        self._server: Any = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> RestServer:
        """Listen (``OSError`` when it cannot)."""
        self._server = await start_server(self.app, host, port)
        self.host = host
        return self

    @property
    def port(self) -> int:
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
