"""`fastflow login kite|upstox` against the simulator's REST endpoints, over real
loopback sockets: the login URL, the redirect caught on the loopback port, the
token exchange (Kite's checksum, Upstox's client secret), the token file (0600,
with its expiry) and the configuration that reads it; the failures each end in
one clear line (wrong secret, expired request token, used code, stray requests,
timeout, busy port, Ctrl-C). The CLI tests run the real `fastflow sim`,
`fastflow login` and `fastflow plant` as subprocesses."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fastflow.brokers import loopback, tokens
from fastflow.brokers.kite.login import checksum
from fastflow.brokers.login import LoginError, login
from fastflow.config import Config, ConfigError, load_config
from fastflow.sim.servers.kite import KiteSimConfig
from fastflow.sim.servers.rest import KiteRest, RestServer, UpstoxRest
from fastflow.sim.servers.upstox import UpstoxSimConfig
from fastflow.sim.universe import kite_universe, upstox_universe

from ..waiting import until

IST = tokens.IST
DEADLINE = 20.0
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory, and no ./fastflow.toml or FASTFLOW_* from outside."""
    for name in list(os.environ):
        if name.startswith("FASTFLOW_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "state"


def config_for(broker: str, rest: RestServer, state: Path, redirect: str, **overrides: object) -> Config:
    values: dict[str, object] = {
        "broker.name": broker, "broker.api_key": "fastflow", "broker.api_secret": "sim-secret",
        "broker.api_url": rest.url, "broker.state_dir": str(state), "login.redirect_url": redirect,
        "login.timeout": DEADLINE, "login.open_browser": False,
    }
    if broker == "kite":
        values["broker.login_url"] = rest.url + "/connect/login"
    values.update(overrides)
    return load_config(env={}, overrides=values, command="login")


def location(url: str) -> str:
    """The ``Location`` of ``GET url`` (a 302), without following it."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=DEADLINE)
    try:
        connection.request("GET", parts.path + "?" + parts.query)
        response = connection.getresponse()
        assert response.status == 302, (response.status, response.read())
        return str(response.getheader("Location"))
    finally:
        connection.close()


class Browser:
    """Plays the user's browser: opens the printed URL (the simulator logs the user in
    and redirects to the loopback port); ``pages`` keeps what each answer said."""

    def __init__(self, act: Callable[[str], None] | None = None) -> None:
        self.pages: list[tuple[int, str]] = []
        self.act = act or self.follow

    def follow(self, url: str) -> None:
        status, _, body = loopback.request(url, timeout=DEADLINE)
        self.pages.append((status, body.decode()))

    def __call__(self, url: str) -> None:
        self.act(url)


async def with_rest(app: Any, test: Callable[[RestServer], Awaitable[None]]) -> None:
    rest = await RestServer(app).start()
    try:
        await asyncio.wait_for(test(rest), DEADLINE * 2)
    finally:
        await rest.stop()


def kite_rest(redirect: str, **options: Any) -> tuple[KiteRest, KiteSimConfig]:
    credentials = KiteSimConfig()
    return KiteRest(credentials, kite_universe(), redirect_url=redirect, **options), credentials


# -- Kite ---------------------------------------------------------------------------------------


def test_kite_login_stores_the_days_token_0600_with_its_expiry(state: Path) -> None:
    """The printed URL is Kite's (v=3, api_key); the simulator's login redirects to the
    loopback port with a request_token; the exchange's checksum passes; the token the
    simulator's ticker now accepts is stored 0600 in a 0700 directory, expiring at
    06:00 IST the next day; the browser's page says so."""
    redirect = f"http://127.0.0.1:{free_port()}/"
    app, credentials = kite_rest(redirect)
    said: list[str] = []
    browser = Browser()
    issued = dt.datetime(2026, 12, 1, 9, 12, tzinfo=IST)

    async def test(rest: RestServer) -> None:
        config = config_for("kite", rest, state, redirect)
        token, path = await login(config, say=said.append, browser=browser, now=lambda: issued)
        url = next(line for line in said if line.startswith("http"))
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        assert parts.path == "/connect/login" and query["v"] == ["3"] and query["api_key"] == ["fastflow"]
        assert token.access_token == credentials.access_token != "sim-token"  # the ticker's token now
        assert token.expires_at == dt.datetime(2026, 12, 2, 6, 0, tzinfo=IST)
        assert (token.user_id, token.broker, token.api_key) == ("SIM001", "kite", "fastflow")
        assert path == str(state / "kite-token.json")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        stored = json.loads(Path(path).read_text())
        assert stored["access_token"] == token.access_token
        assert stored["expires_at"] == "2026-12-02T06:00:00+05:30"
        assert tokens.read_token(path) == token
        await until(lambda: browser.pages, "the browser's page", DEADLINE)
        assert browser.pages[0][0] == 200 and "Logged in to Kite" in browser.pages[0][1]
        assert app.stats["sessions"] == 1

    asyncio.run(with_rest(app, test))


def test_the_official_kite_client_logs_in_and_downloads_at_the_simulator() -> None:
    """Differential: pykiteconnect's generate_session (its own checksum and form) and
    instruments() work against the simulator; a wrong secret raises its TokenException."""
    from kiteconnect import KiteConnect
    from kiteconnect.exceptions import TokenException

    app, credentials = kite_rest("http://127.0.0.1:1/")

    async def test(rest: RestServer) -> None:
        def client() -> None:
            kite = KiteConnect("fastflow", root=rest.url)
            session = kite.generate_session(app.issue_request_token(), api_secret="sim-secret")
            assert session["access_token"] == credentials.access_token
            kite.set_access_token(session["access_token"])
            rows = kite.instruments()
            assert len(rows) == len(kite_universe()) and {"NIFTY 50", "INFY"} <= {r["tradingsymbol"] for r in rows}
            assert {r["exchange"] for r in kite.instruments("NFO")} == {"NFO"}
            with pytest.raises(TokenException, match="checksum"):
                kite.generate_session(app.issue_request_token(), api_secret="not-the-secret")

        await asyncio.to_thread(client)

    asyncio.run(with_rest(app, test))
    assert checksum("key", "token", "secret") == hashlib.sha256(b"keytokensecret").hexdigest()


@pytest.mark.parametrize(("case", "expected", "hint"), [
    ("wrong secret", "Kite refused the token exchange (HTTP 403, TokenException: Invalid `checksum`.)",
     "broker.api_secret is not this app's api_secret"),
    ("expired request token", "Kite refused the token exchange (HTTP 403, TokenException: Token is invalid or has "
     "expired.)", "the request_token expired or was already used"),
])
def test_kite_refusals_are_one_line_and_store_nothing(state: Path, case: str, expected: str, hint: str) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/"
    app, credentials = kite_rest(redirect)

    def slow_user(url: str) -> None:  # logs in, then the browser reaches the redirect too late
        target = location(url)
        app.request_tokens.expire()
        browser.follow(target)

    browser = Browser(slow_user if case == "expired request token" else None)

    async def test(rest: RestServer) -> None:
        secret = "not-the-secret" if case == "wrong secret" else "sim-secret"
        with pytest.raises(LoginError) as info:
            await login(config_for("kite", rest, state, redirect, **{"broker.api_secret": secret}),
                        say=lambda _: None, browser=browser)
        message = str(info.value)
        assert message.startswith(expected) and hint in message and "\n" not in message
        assert info.value.status == 1
        assert "not-the-secret" not in message and "sim-secret" not in message
        await until(lambda: browser.pages, "the browser's page", DEADLINE)
        assert browser.pages[0][0] == 403 and "Login failed" in browser.pages[0][1]

    asyncio.run(with_rest(app, test))
    assert not (state / "kite-token.json").exists() and credentials.access_token == "sim-token"


def test_stray_requests_do_not_end_the_login_and_a_failed_login_does(state: Path) -> None:
    """Another path (404), no request_token or another login's state (400): the wait
    goes on and the real redirect still works. A redirect with status other than
    success ends the login with one line."""
    redirect_port = free_port()
    redirect = f"http://127.0.0.1:{redirect_port}/cb"
    app, _ = kite_rest(redirect)
    seen: list[int] = []

    def user(url: str) -> None:
        target = location(url)
        base = f"http://127.0.0.1:{redirect_port}"
        for stray in ("/favicon.ico", "/cb", "/cb?request_token=x&state=someone-else"):
            seen.append(loopback.request(base + stray, timeout=DEADLINE)[0])
        seen.append(loopback.request(target, timeout=DEADLINE)[0])

    async def test(rest: RestServer) -> None:
        token, _ = await login(config_for("kite", rest, state, redirect), say=lambda _: None, browser=user)
        assert token.access_token
        await until(lambda: len(seen) == 4, "the browser's last answer", DEADLINE)
        assert seen == [404, 400, 400, 200]

        def cancelled(url: str) -> None:
            target = location(url).replace("status=success", "status=cancelled")
            seen.append(loopback.request(target, timeout=DEADLINE)[0])

        with pytest.raises(LoginError, match=r"^the Kite login did not succeed \(status='cancelled'\)"):
            await login(config_for("kite", rest, state, redirect), say=lambda _: None, browser=cancelled)

    asyncio.run(with_rest(app, test))


def test_no_redirect_in_time_a_busy_port_and_missing_settings_are_one_line(state: Path) -> None:
    app, _ = kite_rest("http://127.0.0.1:1/")

    async def test(rest: RestServer) -> None:
        redirect = f"http://127.0.0.1:{free_port()}/"
        with pytest.raises(LoginError) as info:
            await login(config_for("kite", rest, state, redirect, **{"login.timeout": 0.3}), say=lambda _: None)
        assert str(info.value).startswith(f"no login redirect reached {redirect} within 0.3 s (login.timeout)")
        assert info.value.status == 1
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with pytest.raises(LoginError) as info:
                await login(config_for("kite", rest, state, f"http://127.0.0.1:{port}/"), say=lambda _: None)
        assert str(info.value).startswith(f"cannot listen on 127.0.0.1:{port} for the login redirect")
        assert "login.redirect_url" in str(info.value) and info.value.status == 2
        for key, text in (("broker.api_secret", "broker.api_secret is empty: set FASTFLOW_BROKER_API_SECRET"),
                          ("broker.api_key", "broker.api_key is empty: set FASTFLOW_BROKER_API_KEY")):
            with pytest.raises(LoginError, match=re.escape(text)) as info:
                await login(config_for("kite", rest, state, redirect, **{key: ""}), say=lambda _: None)
            assert info.value.status == 2

    asyncio.run(with_rest(app, test))


def test_the_redirect_url_must_be_loopback_http_with_a_port(state: Path) -> None:
    for bad in ("https://127.0.0.1:8710/", "http://example.com:8710/", "http://127.0.0.1/", "127.0.0.1:8710"):
        with pytest.raises(ConfigError, match="FASTFLOW_LOGIN_REDIRECT_URL: expected an http:// URL on a loopback address"):
            load_config(env={"FASTFLOW_LOGIN_REDIRECT_URL": bad}, command="login")
    assert load_config(env={"FASTFLOW_LOGIN_REDIRECT_URL": "http://[::1]:9/x"}, command="login")


# -- Upstox -------------------------------------------------------------------------------------


def upstox_rest(redirect: str) -> tuple[UpstoxRest, UpstoxSimConfig]:
    credentials = UpstoxSimConfig()
    return UpstoxRest(credentials, upstox_universe(), redirect_url=redirect), credentials


def test_upstox_login_is_the_authorization_code_flow(state: Path) -> None:
    """The dialog URL carries response_type=code, client_id, redirect_uri and state;
    the code is exchanged with the client secret; the token expires at 03:30 IST
    (the same day when issued before 03:30)."""
    redirect = f"http://127.0.0.1:{free_port()}/"
    app, credentials = upstox_rest(redirect)
    said: list[str] = []
    issued = dt.datetime(2026, 12, 1, 2, 30, tzinfo=IST)

    async def test(rest: RestServer) -> None:
        token, path = await login(config_for("upstox", rest, state, redirect), say=said.append, browser=Browser(),
                                  now=lambda: issued)
        url = next(line for line in said if line.startswith("http"))
        query = parse_qs(urlsplit(url).query)
        assert urlsplit(url).path == "/v2/login/authorization/dialog"
        assert query["response_type"] == ["code"] and query["client_id"] == ["fastflow"]
        assert query["redirect_uri"] == [redirect] and query["state"][0]
        assert token.access_token == credentials.access_token != "sim-token"
        assert token.expires_at == dt.datetime(2026, 12, 1, 3, 30, tzinfo=IST)
        assert path == str(state / "upstox-token.json") and stat.S_IMODE(os.stat(path).st_mode) == 0o600

    asyncio.run(with_rest(app, test))


def test_upstox_refusals_wrong_secret_used_code_and_foreign_state(state: Path) -> None:
    redirect_port = free_port()
    redirect = f"http://127.0.0.1:{redirect_port}/"
    app, _ = upstox_rest(redirect)
    targets: list[str] = []

    def keep(url: str) -> None:  # the browser reaches the redirect; the code is remembered
        targets.append(location(url))
        loopback.request(targets[-1], timeout=DEADLINE)

    async def test(rest: RestServer) -> None:
        with pytest.raises(LoginError) as info:
            await login(config_for("upstox", rest, state, redirect, **{"broker.api_secret": "wrong"}),
                        say=lambda _: None, browser=keep)
        assert str(info.value).startswith("Upstox refused the token exchange (HTTP 401, UDAPI100016: Invalid "
                                          "Credentials): broker.api_key (the client_id) or broker.api_secret")
        # the same code again (single-use even though the exchange failed), with this login's state
        code = parse_qs(urlsplit(targets[0]).query)["code"][0]

        def replay(url: str) -> None:
            own_state = parse_qs(urlsplit(url).query)["state"][0]
            loopback.request(f"http://127.0.0.1:{redirect_port}/?code={code}&state={own_state}", timeout=DEADLINE)

        with pytest.raises(LoginError, match=r"UDAPI100057: Invalid Auth code\): the code expired or was already"):
            await login(config_for("upstox", rest, state, redirect), say=lambda _: None, browser=replay)

        def foreign(url: str) -> None:  # a redirect with someone else's state is not this login's
            status, _, body = loopback.request(location(url).replace("state=", "state=x"), timeout=DEADLINE)
            targets.append(f"{status} {body.decode()}")

        with pytest.raises(LoginError, match="no login redirect"):
            await login(config_for("upstox", rest, state, redirect, **{"login.timeout": 1.0}), say=lambda _: None,
                        browser=foreign)
        assert targets[-1].startswith("400 ") and "state differs" in targets[-1]
        status, _, body = await asyncio.to_thread(
            loopback.request, f"{rest.url}/v2/login/authorization/dialog?response_type=code&client_id=fastflow&"
            "redirect_uri=http://127.0.0.1:1/other", timeout=DEADLINE)
        assert status == 400 and json.loads(body)["errors"][0]["errorCode"] == "UDAPI100068"

    asyncio.run(with_rest(app, test))
    assert not (state / "upstox-token.json").exists()


def test_an_upstox_feed_takes_the_token_the_login_stored(state: Path) -> None:
    """After the login the simulator's feed accepts the stored token (and no longer
    the old one): an UpstoxSession with it streams."""
    from fastflow.brokers.upstox.session import UpstoxSession
    from fastflow.hotpath import MarketState, UpstoxDecoder
    from fastflow.instruments import Instruments
    from fastflow.sim.market.upstox import UpstoxMarket
    from fastflow.sim.servers.upstox import UpstoxSimulator

    redirect = f"http://127.0.0.1:{free_port()}/"

    async def main() -> None:
        sim = UpstoxSimulator(UpstoxMarket.from_universe(seed=3), UpstoxSimConfig())
        await sim.start("127.0.0.1", 0)
        rest = await RestServer(UpstoxRest(sim.config, upstox_universe(), redirect_url=redirect)).start()
        try:
            token, _ = await login(config_for("upstox", rest, state, redirect), say=lambda _: None,
                                   browser=Browser())
            stored = tokens.read_token(str(state / "upstox-token.json"))
            assert stored is not None and stored.access_token == token.access_token == sim.config.access_token
            instruments = Instruments.from_upstox_rows(upstox_universe())
            key = str(instruments.instrument_key[0])
            session = UpstoxSession(UpstoxDecoder(MarketState(instruments)), access_token=stored.access_token,
                                    subscriptions={key: "ltpc"}, api_url=sim.api_url)
            task = asyncio.create_task(session.run())
            try:
                await until(lambda: session.state == "streaming", "streaming with the stored token", DEADLINE)
            finally:
                session.stop()
                await asyncio.wait_for(task, DEADLINE)
        finally:
            await rest.stop()
            await sim.stop()

    asyncio.run(main())


# -- the token file and the configuration --------------------------------------------------------


def stored(state: Path, broker: str = "kite", *, api_key: str = "myapp", left: float = 3600 * 5,
           token: str = "tok-from-login") -> str:
    now = dt.datetime.now(dt.timezone.utc)
    path = tokens.token_path(str(state), broker)
    tokens.write_token(path, tokens.StoredToken(broker=broker, api_key=api_key, access_token=token,
                                                issued_at=now - dt.timedelta(hours=1),
                                                expires_at=now + dt.timedelta(seconds=left)))
    return path


def test_expiry_rules() -> None:
    at = dt.datetime
    assert tokens.expiry_after("kite", at(2026, 12, 1, 9, 0, tzinfo=IST)) == at(2026, 12, 2, 6, 0, tzinfo=IST)
    assert tokens.expiry_after("kite", at(2026, 12, 1, 5, 59, tzinfo=IST)) == at(2026, 12, 1, 6, 0, tzinfo=IST)
    assert tokens.expiry_after("kite", at(2026, 12, 1, 6, 0, tzinfo=IST)) == at(2026, 12, 2, 6, 0, tzinfo=IST)
    assert tokens.expiry_after("upstox", at(2026, 12, 1, 2, 30, tzinfo=IST)) == at(2026, 12, 1, 3, 30, tzinfo=IST)
    utc = at(2026, 12, 1, 3, 0, tzinfo=dt.timezone.utc)  # 08:30 IST
    assert tokens.expiry_after("upstox", utc) == at(2026, 12, 2, 3, 30, tzinfo=IST)


def test_the_configuration_takes_the_stored_token_for_its_api_key(state: Path) -> None:
    """With an api_key and no access token, run/plant/config read the token file of
    that broker and api_key (its path is the source, the value masked); a token set
    in the environment wins; another app's token is not taken; an expired one is one
    line naming `fastflow login`; a file others can read is refused."""
    path = stored(state)
    env = {"FASTFLOW_BROKER_API_KEY": "myapp", "FASTFLOW_BROKER_STATE_DIR": str(state)}
    config = load_config(env=env, command="plant")
    assert config.broker.access_token == "tok-from-login" and config.broker.live
    assert config.sources["broker.access_token"] == path
    assert config.masked()["broker"]["access_token"] == "********"
    assert load_config(env={**env, "FASTFLOW_BROKER_ACCESS_TOKEN": "env-tok"}).broker.access_token == "env-tok"
    assert load_config(env=env, command="sim").broker.access_token == ""  # the simulator needs no login
    with pytest.raises(ConfigError, match=r"broker.access_token: empty while broker.api_key is set: Kite needs both "
                                          r".*fastflow login kite"):
        load_config(env={**env, "FASTFLOW_BROKER_API_KEY": "other-app"})
    stored(state, left=-60)
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert re.fullmatch(rf"{re.escape(path)}: broker.access_token: the kite access token expired at "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d IST; run `fastflow login kite` for the day's", str(info.value))
    stored(state)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"other users may read it \(mode 0644\): chmod 600"):
        load_config(env=env)
    os.chmod(path, 0o600)
    upstox = stored(state, "upstox", token="up-tok")
    config = load_config(env={**env, "FASTFLOW_BROKER_NAME": "upstox"}, command="run")
    assert config.broker.access_token == "up-tok" and config.sources["broker.access_token"] == upstox


def test_the_expiry_is_surfaced_before_it_bites() -> None:
    """Less than an hour left: a warning at once; at the expiry, the error line."""
    now = dt.datetime.now(dt.timezone.utc)
    token = tokens.StoredToken(broker="kite", api_key="k", access_token="t", issued_at=now,
                               expires_at=now + dt.timedelta(seconds=0.3))
    assert token.validity().startswith("valid until ") and token.validity().endswith("(in under a minute)")
    lines: list[str] = []

    async def main() -> None:
        tokens.watch_expiry(token, lines.append)
        await until(lambda: len(lines) == 2, "both lines", DEADLINE)

    asyncio.run(main())
    assert lines[0].startswith("warning: the kite access token expires at ") and "fastflow login kite" in lines[0]
    assert lines[1].startswith("the kite access token expired at ") and "fastflow login kite" in lines[1]


# -- the CLI, as processes -------------------------------------------------------------------


class Process:
    """A subprocess whose stdout lines are read as they come."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "fastflow", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []

    def expect(self, pattern: str, deadline: float = DEADLINE) -> re.Match[str]:
        assert self.process.stdout is not None
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            line = self.process.stdout.readline()  # the processes flush line by line
            if not line:
                break
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no {pattern!r} in {self.lines} (stderr: {self.finish(5)[1]})")

    def finish(self, deadline: float = DEADLINE) -> tuple[str, str]:
        out, err = self.process.communicate(timeout=deadline)
        return "".join(self.lines) + out, err

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=DEADLINE)


@pytest.fixture
def sim(state: Path) -> Iterator[tuple[Process, dict[str, str]]]:
    """`fastflow sim --broker kite` (its ticker and REST URLs), and the environment that
    points `fastflow login` and `fastflow plant` at it."""
    redirect = f"http://127.0.0.1:{free_port()}/"
    env = {**ENV, "FASTFLOW_LOGIN_REDIRECT_URL": redirect}
    process = Process("sim", "--broker", "kite", "--port", "0", env=env)
    try:
        ws = process.expect(r"Kite ticker on (ws://127\.0\.0\.1:\d+/)").group(1)
        rest = process.expect(r"REST API on (http://127\.0\.0\.1:\d+)").group(1)
        yield process, {**env, "FASTFLOW_BROKER_API_KEY": "fastflow", "FASTFLOW_BROKER_API_SECRET": "sim-secret",
                        "FASTFLOW_BROKER_API_URL": rest, "FASTFLOW_BROKER_LOGIN_URL": rest + "/connect/login",
                        "FASTFLOW_BROKER_STATE_DIR": str(state), "SIM_WS": ws}
    finally:
        process.process.send_signal(signal.SIGTERM)
        process.finish()


def test_fastflow_login_kite_then_the_plant_streams_with_the_stored_token(sim: tuple[Process, dict[str, str]],
                                                                          state: Path) -> None:
    """The whole first hour: `fastflow login kite --no-browser` prints the URL, the test
    plays the browser, the token lands in the state directory (0600); `fastflow plant`
    with only the api_key finds it, downloads the day's instrument master from the
    simulator's REST API (cached for the day), and streams with the new token (the
    simulator's old one is refused since the login); so does `fastflow record`."""
    _, env = sim
    ws = env.pop("SIM_WS")
    run = Process("login", "kite", "--no-browser", env=env)
    try:
        url = run.expect(r"^\s+(http://\S+)$").group(1)
        assert "/connect/login?v=3&api_key=fastflow" in url
        status, _, page = loopback.request(url, timeout=DEADLINE)
        assert status == 200 and "Logged in to Kite" in page.decode()
        out, err = run.finish()
    finally:
        run.stop()
    assert run.process.returncode == 0, out + err
    path = state / "kite-token.json"
    assert re.search(rf"logged in to Kite as Sim User \(SIM001\); the access token is in {re.escape(str(path))}, "
                     r"valid until \d{4}-\d\d-\d\d 06:00 IST", out), out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and err == ""
    token = json.loads(path.read_text())["access_token"]
    assert token not in out

    plant_env = {k: v for k, v in env.items() if k != "FASTFLOW_BROKER_API_SECRET"}
    plant = Process("plant", "--url", ws, "--symbols", "NSE:INFY,NSE:NIFTY 50", "--redis", "none",
                    "--duration", "3", "--status-every", "0.5", env=plant_env)
    try:
        plant.expect(r"instrument master of \d{4}-\d\d-\d\d: [\d,]+ instruments downloaded from "
                     r"http://127\.0\.0\.1:\d+/instruments")
        plant.expect(r"kite: access token valid until \d{4}-\d\d-\d\d 06:00 IST")
        plant.expect(r"^fastflow plant: streaming: .* ticks [1-9]")
        out, err = plant.finish()
    finally:
        plant.stop()
    assert plant.process.returncode == 0, out + err
    assert token not in out + err
    cached = list((state / "instruments").iterdir())
    assert len(cached) == 1 and re.fullmatch(r"kite-\d{4}-\d\d-\d\d\.csv\.gz", cached[0].name)

    capture = state / "capture.bin"  # `fastflow record` takes the stored token too
    record = subprocess.run([sys.executable, "-m", "fastflow", "record", "--url", ws, "--symbols", "NSE:INFY",
                             "--duration", "2", "--out", str(capture)], capture_output=True, text=True,
                            env=plant_env, timeout=DEADLINE * 2)
    assert record.returncode == 0, record.stdout + record.stderr
    frames = re.search(r"fastflow record: (\d+) frames", record.stdout)
    assert frames and int(frames.group(1)) > 0, record.stdout


def test_fastflow_login_ctrl_c_and_busy_port(sim: tuple[Process, dict[str, str]], state: Path) -> None:
    """Ctrl-C while waiting: exit 130, one line, no traceback, nothing stored. The
    redirect port busy: exit 2, one line."""
    _, env = sim
    env.pop("SIM_WS")
    run = Process("login", "kite", "--no-browser", env=env)
    try:
        run.expect(r"waiting for the redirect")
        run.process.send_signal(signal.SIGINT)
        out, err = run.finish()
    finally:
        run.stop()
    assert run.process.returncode == 130, out + err
    assert err.strip() == "fastflow login: cancelled; nothing stored" and "Traceback" not in out + err
    assert not (state / "kite-token.json").exists()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "fastflow", "login", "kite", "--no-browser", "--redirect-url",
                                 f"http://127.0.0.1:{port}/"], capture_output=True, text=True, env=env,
                                timeout=DEADLINE * 2)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"fastflow login: cannot listen on 127.0.0.1:{port} for the login redirect")
    assert result.stderr.count("\n") == 1
