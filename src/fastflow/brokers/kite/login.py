"""The Kite Connect login (indian-market-facts.md §2): the login page's URL, the
redirect's ``request_token``, and its exchange for the day's access token.

* the user opens ``{login_url}?v=3&api_key=K&redirect_params=state%3D...``
  (``redirect_params`` is echoed back on the redirect; fastflow puts a random
  ``state`` there and refuses a redirect that carries another one);
* Kite redirects the browser to the app's registered redirect URL with
  ``request_token=...&action=login&type=login&status=success``;
* ``POST {api_url}/session/token`` (form: ``api_key``, ``request_token``,
  ``checksum`` = hex SHA-256 of api_key + request_token + api_secret) answers
  ``{"status": "success", "data": {"access_token": ..., "user_id": ..., ...}}``,
  or ``{"status": "error", "error_type": "TokenException", "message": ...}``
  with HTTP 403 for a wrong checksum and for an expired or used request_token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastflow.brokers.kite.constants import API_URL, API_VERSION, LOGIN_URL, SESSION_TOKEN_PATH
from fastflow.brokers.login import LoginError, refused, rest_json

if TYPE_CHECKING:
    from fastflow.config import BrokerSection

name = "kite"
title = "Kite"
#: The redirect's query parameter that carries what is exchanged.
PARAM = "request_token"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """Kite's checksum: hex SHA-256 of ``api_key + request_token + api_secret``."""
    return hashlib.sha256((api_key + request_token + api_secret).encode("utf-8")).hexdigest()


def login_url(broker: BrokerSection, redirect_url: str, state: str) -> str:
    """The page the user opens (Kite sends the browser to the app's registered redirect URL)."""
    query = urlencode({"v": "3", "api_key": broker.api_key, "redirect_params": urlencode({"state": state})})
    return f"{broker.login_url or LOGIN_URL}?{query}"


def redirect_value(query: Mapping[str, str], state: str) -> tuple[str | None, str]:
    """``(request_token, "")`` from the redirect's query, or ``(None, why)`` for a
    request that is not this login's redirect; :class:`LoginError` when Kite says
    the login failed."""
    status = query.get("status", "success")
    if status != "success":
        raise LoginError(f"the Kite login did not succeed (status={status[:40]!r}); nothing stored")
    if "state" in query and query["state"] != state:  # absent: a Kite that did not echo redirect_params
        return None, "this redirect is not from the login fastflow started (its state differs)"
    token = query.get(PARAM, "")
    if not token:
        return None, "no request_token in this request"
    return token, ""


def exchange(broker: BrokerSection, redirect_url: str, request_token: str) -> Mapping[str, Any]:
    """The session of ``request_token`` (blocking): its ``data``, with ``access_token``."""
    url = (broker.api_url or API_URL).rstrip("/") + SESSION_TOKEN_PATH
    form = {"api_key": broker.api_key, "request_token": request_token,
            "checksum": checksum(broker.api_key, request_token, broker.api_secret)}
    status, body = rest_json(url, form, {"X-Kite-Version": API_VERSION, "Accept": "application/json"}, title)
    data = body.get("data") if body.get("status") == "success" else None
    if status != 200 or not isinstance(data, dict) or not data.get("access_token"):
        raise LoginError(refused(title, url, status, _why(body), _hint(status, body)))
    return data


def _why(body: Mapping[str, Any]) -> str:
    kind, message = str(body.get("error_type", "")), str(body.get("message", ""))
    return ": ".join(part for part in (kind, message) if part) or str(body)[:200]


def _hint(status: int, body: Mapping[str, Any]) -> str:
    message = str(body.get("message", "")).lower()
    if "checksum" in message:
        return "broker.api_secret is not this app's api_secret (FASTFLOW_BROKER_API_SECRET)"
    if "api_key" in message:
        return "broker.api_key is not this app's api_key"
    if status == 403 or "token" in message:
        return ("the request_token expired or was already used (it lasts a few minutes, once): "
                "run `fastflow login kite` again and finish the login promptly")
    return ""


def user(data: Mapping[str, Any]) -> tuple[str, str]:
    """``(user_id, user_name)`` of a session."""
    return str(data.get("user_id", "")), str(data.get("user_name", ""))
