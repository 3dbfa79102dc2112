"""``fastflow login kite|upstox``: the broker's browser login, caught on a
loopback port, and the day's access token stored where the configuration finds it.

1. Listen on ``login.redirect_url`` (http on a loopback address: the app's
   registered redirect URL). A busy port is a one-line error, nothing else runs.
2. Print the login page's URL (and open it in a browser unless
   ``login.open_browser`` is false): Kite's ``/connect/login?v=3&api_key=...``,
   Upstox's authorization dialog (:mod:`fastflow.brokers.kite.login`,
   :mod:`fastflow.brokers.upstox.login`).
3. Wait, up to ``login.timeout`` seconds, for the browser's redirect with Kite's
   ``request_token`` or Upstox's ``code``. A request to another path, or without
   the value, or with another ``state`` (not this login's) gets a 4xx page and
   the wait goes on; a redirect that says the login failed ends it.
4. Exchange the value at the broker's REST API (``broker.api_url``) with the
   app's secret (``broker.api_secret``): Kite's checksum, Upstox's client secret.
5. Store the token with its expiry (:mod:`fastflow.brokers.tokens`, mode 0600)
   and answer the browser with a page that says so (or what went wrong).

Exit status: 0 logged in; 1 the broker refused (wrong secret, expired or used
request token/code), no redirect in time, or the broker unreachable; 2 a
configuration that cannot work (no api_key or api_secret, the redirect port busy);
130 cancelled with Ctrl-C (nothing stored). Every failure is one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import importlib
import json
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastflow.brokers import loopback
from fastflow.brokers.tokens import StoredToken, expiry_after, state_dir, token_path, write_token
from fastflow.errors import FastflowError

if TYPE_CHECKING:
    from fastflow.config import Config


class LoginError(FastflowError):
    """The login failed; ``status`` is the exit status (1 the broker or the
    wait, 2 the configuration)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def provider(broker: str) -> ModuleType:
    """The login module of ``broker`` (``fastflow.brokers.<broker>.login``)."""
    return importlib.import_module(f"fastflow.brokers.{broker}.login")


# -- the REST call, shared by the brokers' modules -------------------------------------------


def rest_json(url: str, form: Mapping[str, str], headers: Mapping[str, str],
              title: str) -> tuple[int, Mapping[str, Any]]:
    """``POST form`` to ``url``: the status and the JSON object answered (blocking);
    :class:`LoginError` when there is no answer or it is not a JSON object."""
    try:
        status, _, body = loopback.request(url, form=form, headers=headers, timeout=30.0, max_bytes=1 << 20)
    except OSError as exc:
        raise LoginError(f"cannot reach {title} at {url}: {exc}") from None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        raise LoginError(f"{title} answered the token exchange at {url} with HTTP {status} and no JSON: {text!r}")
    return status, data


def refused(title: str, url: str, status: int, why: str, hint: str) -> str:
    """One line: the broker refused the exchange, why, and what to do."""
    return f"{title} refused the token exchange (HTTP {status}, {why})" + (f": {hint}" if hint else "")


# -- the flow ---------------------------------------------------------------------------------


def _page(status: int, heading: str, text: str) -> loopback.HttpAnswer:
    body = (f"<!doctype html><meta charset=utf-8><title>fastflow login</title>"
            f"<h1>{html.escape(heading)}</h1><p>{html.escape(text)}</p>\n")
    return loopback.text_answer(status, body, "text/html; charset=utf-8")


async def login(config: Config, *, say: Callable[[str], object] = print,
                browser: Callable[[str], object] | None = None,
                now: Callable[[], dt.datetime] | None = None) -> tuple[StoredToken, str]:
    """Log in to ``config.broker.name`` (module docstring): the stored token and its
    path. ``say`` prints progress (the URL to open among it); ``browser(url)`` opens
    the page (None: not opened). Raises :class:`LoginError`."""
    broker, section = config.broker, config.login
    module = provider(broker.name)
    title: str = module.title
    if not broker.api_key:
        what = "client_id (its API key)" if broker.name == "upstox" else "api_key"
        raise LoginError(f"broker.api_key is empty: set FASTFLOW_BROKER_API_KEY (or [broker] api_key) to the "
                         f"{title} app's {what}", 2)
    if not broker.api_secret:
        what = "client secret (its API secret)" if broker.name == "upstox" else "api_secret"
        raise LoginError(f"broker.api_secret is empty: set FASTFLOW_BROKER_API_SECRET to the {title} app's "
                         f"{what} (keep it out of shared files)", 2)
    redirect = urlsplit(section.redirect_url)
    host, port, path = redirect.hostname or "127.0.0.1", redirect.port or 80, redirect.path or "/"
    state = secrets.token_urlsafe(16)
    store = token_path(state_dir(broker.state_dir), broker.name)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[StoredToken] = loop.create_future()
    answered = asyncio.Event()
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))

    async def handle(request: loopback.HttpRequest) -> loopback.HttpAnswer:
        if request.path != path or request.method != "GET":
            return _page(HTTPStatus.NOT_FOUND, "Not the login redirect", f"fastflow waits on {section.redirect_url}")
        if done.done():
            return _page(HTTPStatus.GONE, "This login is over", "You can close this tab.")
        try:
            value, why = module.redirect_value(request.query, state)
        except LoginError as exc:
            done.set_exception(exc)
            return _page(HTTPStatus.BAD_REQUEST, "Login failed", str(exc))
        if value is None:
            return _page(HTTPStatus.BAD_REQUEST, "Not this login's redirect", why)
        try:
            data = await asyncio.to_thread(module.exchange, broker, section.redirect_url, value)
            issued = clock()
            user_id, user_name = module.user(data)
            token = StoredToken(broker=broker.name, api_key=broker.api_key, access_token=str(data["access_token"]),
                                issued_at=issued, expires_at=expiry_after(broker.name, issued), user_id=user_id,
                                user_name=user_name, api_url=broker.api_url)
            try:
                write_token(store, token)
            except OSError as exc:
                raise LoginError(f"cannot store the access token in {store}: {exc.strerror or exc}") from None
        except LoginError as exc:
            if not done.done():
                done.set_exception(exc)
            return _page(HTTPStatus.FORBIDDEN, "Login failed", str(exc))
        if not done.done():
            done.set_result(token)
        return _page(HTTPStatus.OK, f"Logged in to {title}",
                     f"fastflow stored the access token ({token.validity(issued)}). You can close this tab.")

    def after() -> None:
        if done.done():
            answered.set()

    try:
        server = await loopback.start_server(handle, host, port, on_answered=after)
    except OSError as exc:
        raise LoginError(f"cannot listen on {host}:{port} for the login redirect ({section.redirect_url}): "
                         f"{exc.strerror or exc}; free the port, or set login.redirect_url "
                         "(FASTFLOW_LOGIN_REDIRECT_URL) to another one, registered with the app too", 2) from None
    try:
        url = module.login_url(broker, section.redirect_url, state)
        say(f"open this URL in a browser and log in to {title}:")
        say(url)
        say(f"waiting for the redirect to {section.redirect_url} (up to {section.timeout:g} s; Ctrl-C cancels)")
        if browser is not None:
            threading.Thread(target=browser, args=(url,), daemon=True).start()  # a console browser may block
        try:
            token = await asyncio.wait_for(asyncio.shield(done), section.timeout)
        except TimeoutError:
            raise LoginError(f"no login redirect reached {section.redirect_url} within {section.timeout:g} s "
                             "(login.timeout): open the URL, log in, and check that the app's redirect URL is "
                             f"{section.redirect_url}; nothing stored") from None
        finally:
            if done.done():  # let the browser get its page before the server goes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), 2.0)
    finally:
        server.close()
    return token, store


def _open_browser(url: str) -> None:
    import webbrowser

    with contextlib.suppress(Exception):  # no browser: the URL is printed anyway
        webbrowser.open(url, new=2)


def main(config: Config) -> int:
    """``fastflow login``: 0 logged in, 1/2 failed (one line on stderr), 130 cancelled."""
    def say(text: str) -> None:
        print(f"fastflow login: {text}" if not text.startswith(("http://", "https://")) else f"  {text}", flush=True)

    try:
        token, store = asyncio.run(login(config, say=say,
                                         browser=_open_browser if config.login.open_browser else None))
    except LoginError as exc:
        print(f"fastflow login: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("\nfastflow login: cancelled; nothing stored", file=sys.stderr)
        return 130
    who = f" as {token.user_name} ({token.user_id})" if token.user_name else f" as {token.user_id}" \
        if token.user_id else ""
    print(f"fastflow login: logged in to {provider(token.broker).title}{who}; the access token is in {store}, "
          f"{token.validity()}", flush=True)
    return 0
