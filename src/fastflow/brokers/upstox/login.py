"""The Upstox login (indian-market-facts.md §3): OAuth2's authorization-code flow.

* the user opens ``{api_url}/v2/login/authorization/dialog?response_type=code&
  client_id=K&redirect_uri=R&state=S`` (``redirect_uri`` must be exactly the
  app's registered one);
* Upstox redirects the browser to ``R?code=...&state=S``; fastflow refuses a
  redirect whose ``state`` is not the one it sent (CSRF);
* ``POST {api_url}/v2/login/authorization/token`` (form: ``code``,
  ``client_id``, ``client_secret``, ``redirect_uri``,
  ``grant_type=authorization_code``) answers the profile with
  ``access_token`` (and a read-only ``extended_token``, not kept), or
  ``{"status": "error", "errors": [{"errorCode": "UDAPI...", "message": ...}]}``.
  The code is single-use, even when the exchange fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastflow.brokers.login import LoginError, refused, rest_json
from fastflow.brokers.upstox.constants import API_URL, LOGIN_DIALOG_PATH, TOKEN_PATH

if TYPE_CHECKING:
    from fastflow.config import BrokerSection

name = "upstox"
title = "Upstox"
PARAM = "code"


def login_url(broker: BrokerSection, redirect_url: str, state: str) -> str:
    """The authorization dialog the user opens."""
    base = broker.login_url or (broker.api_url or API_URL).rstrip("/") + LOGIN_DIALOG_PATH
    query = urlencode({"response_type": "code", "client_id": broker.api_key, "redirect_uri": redirect_url,
                       "state": state})
    return f"{base}?{query}"


def redirect_value(query: Mapping[str, str], state: str) -> tuple[str | None, str]:
    """``(code, "")`` from the redirect's query, or ``(None, why)`` for a request that
    is not this login's redirect; :class:`LoginError` when Upstox says the login failed."""
    if query.get("state") != state:
        return None, "this redirect is not from the login fastflow started (its state differs)"
    if "error" in query:
        detail = query.get("error_description", "")
        raise LoginError(f"the Upstox login did not succeed ({query['error'][:60]}"
                         f"{': ' + detail[:200] if detail else ''}); nothing stored")
    code = query.get(PARAM, "")
    if not code:
        return None, "no code in this request"
    return code, ""


def exchange(broker: BrokerSection, redirect_url: str, code: str) -> Mapping[str, Any]:
    """The token response of ``code`` (blocking), with ``access_token``."""
    url = (broker.api_url or API_URL).rstrip("/") + TOKEN_PATH
    form = {"code": code, "client_id": broker.api_key, "client_secret": broker.api_secret,
            "redirect_uri": redirect_url, "grant_type": "authorization_code"}
    status, body = rest_json(url, form, {"Accept": "application/json", "Api-Version": "2.0"}, title)
    inner = body.get("data")
    data: Mapping[str, Any] = inner if isinstance(inner, dict) else body
    if status != 200 or not data.get("access_token"):
        code_, message = _error(body)
        raise LoginError(refused(title, url, status, ": ".join(p for p in (code_, message) if p) or str(body)[:200],
                                 _hint(code_, message)))
    return data


def _error(body: Mapping[str, Any]) -> tuple[str, str]:
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return (str(first.get("errorCode") or first.get("error_code") or ""),
            str(first.get("message") or body.get("message") or ""))


def _hint(code: str, message: str) -> str:
    text = message.lower()
    if code == "UDAPI100057" or "auth code" in text or ("code" in text and "invalid" in text and "client" not in text):
        return ("the code expired or was already used (it is single-use, even when the exchange fails): "
                "run `fastflow login upstox` again")
    if "redirect" in text:
        return "login.redirect_url must be exactly the app's registered redirect URL"
    if code == "UDAPI100016" or "credential" in text or "secret" in text or "client" in text:
        return ("broker.api_key (the client_id) or broker.api_secret (the client secret, "
                "FASTFLOW_BROKER_API_SECRET) is not this app's")
    return ""


def user(data: Mapping[str, Any]) -> tuple[str, str]:
    return str(data.get("user_id", "")), str(data.get("user_name", ""))
