"""The day's broker access token on disk: what ``fastflow login`` stores and the
configuration reads (docs/configuration.md, "The access token of the day").

The file is ``<state dir>/<broker>-token.json`` (:func:`token_path`), the state
directory being ``broker.state_dir``, else ``$XDG_STATE_HOME/fastflow``, else
``~/.local/state/fastflow`` (:func:`state_dir`). The directory is created 0700
and the file written 0600, atomically (a temporary file in the same directory,
then a rename): a reader never sees half a token. A file that other users may
read is refused, as ssh refuses a private key with loose permissions.

Both brokers' tokens die at a fixed wall-clock time in IST whatever time they
were issued (indian-market-facts.md §2.5 and §3.5): Kite's at 06:00, Upstox's at
03:30, the first such moment after the login (:func:`expiry_after`). The
expiry is stored with the token, so every reader can say when it bites.

Cold code, standard library only (the configuration imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from fastflow.errors import FastflowError

#: India Standard Time (no daylight saving).
IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
#: When each broker's access tokens expire, IST wall clock: the first such moment after issue.
EXPIRES_AT: Mapping[str, dt.time] = {"kite": dt.time(6, 0), "upstox": dt.time(3, 30)}
#: How long before the expiry the plant starts warning.
WARN_BEFORE = dt.timedelta(hours=1)


class TokenFileError(FastflowError, ValueError):
    """The token file exists but cannot be used (unreadable, malformed, readable by others)."""


def state_dir(configured: str = "", env: Mapping[str, str] | None = None) -> str:
    """Where fastflow keeps the broker's state of the day: ``configured`` if set, else
    ``$XDG_STATE_HOME/fastflow``, else ``~/.local/state/fastflow`` (``$HOME`` of ``env``)."""
    if configured:
        return os.path.abspath(os.path.expanduser(configured))
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME", "")
    if not base or not os.path.isabs(base):  # the XDG spec: a relative value is to be ignored
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".local", "state")
    return os.path.join(base, "fastflow")


def token_path(directory: str, broker: str) -> str:
    """The token file of ``broker`` in the state directory ``directory``."""
    return os.path.join(directory, f"{broker}-token.json")


def expiry_after(broker: str, issued: dt.datetime) -> dt.datetime:
    """When a token of ``broker`` issued at ``issued`` (aware) expires: the first
    :data:`EXPIRES_AT` moment, IST, strictly after it."""
    local = issued.astimezone(IST)
    at = dt.datetime.combine(local.date(), EXPIRES_AT[broker], IST)
    return at if at > local else at + dt.timedelta(days=1)


def describe_time(moment: dt.datetime) -> str:
    """``2026-12-02 06:00 IST``."""
    return moment.astimezone(IST).strftime("%Y-%m-%d %H:%M IST")


def describe_left(left: dt.timedelta) -> str:
    """``20 h 47 min``, ``42 min``, ``under a minute``."""
    minutes = int(left.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@dataclasses.dataclass(frozen=True)
class StoredToken:
    """One login's result: the access token and when it dies."""

    broker: str
    api_key: str
    access_token: str = dataclasses.field(repr=False)
    issued_at: dt.datetime
    expires_at: dt.datetime
    user_id: str = ""
    user_name: str = ""
    #: The REST base it was exchanged at ("" = the broker's own).
    api_url: str = ""

    def left(self, now: dt.datetime | None = None) -> dt.timedelta:
        return self.expires_at - (now or dt.datetime.now(dt.timezone.utc))

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.left(now) <= dt.timedelta(0)

    def validity(self, now: dt.datetime | None = None) -> str:
        """``valid until 2026-12-02 06:00 IST (in 20 h 47 min)`` or ``expired at ...``."""
        if self.expired(now):
            return f"expired at {describe_time(self.expires_at)}"
        return f"valid until {describe_time(self.expires_at)} (in {describe_left(self.left(now))})"

    def to_json(self) -> dict[str, Any]:
        return {"broker": self.broker, "api_key": self.api_key, "access_token": self.access_token,
                "user_id": self.user_id, "user_name": self.user_name, "api_url": self.api_url,
                "issued_at": self.issued_at.astimezone(IST).isoformat(timespec="seconds"),
                "expires_at": self.expires_at.astimezone(IST).isoformat(timespec="seconds")}

    @classmethod
    def from_json(cls, data: object, where: str) -> StoredToken:
        if not isinstance(data, dict):
            raise TokenFileError(f"{where}: not a fastflow token file (expected a JSON object)")
        try:
            fields = {name: data[name] for name in ("broker", "api_key", "access_token", "issued_at", "expires_at")}
            issued = dt.datetime.fromisoformat(str(fields["issued_at"]))
            expires = dt.datetime.fromisoformat(str(fields["expires_at"]))
        except KeyError as exc:
            raise TokenFileError(f"{where}: not a fastflow token file (no {exc.args[0]!r})") from None
        except ValueError as exc:
            raise TokenFileError(f"{where}: not a fastflow token file ({exc})") from None
        if issued.tzinfo is None or expires.tzinfo is None:
            raise TokenFileError(f"{where}: not a fastflow token file (times without a zone)")
        if not all(isinstance(fields[name], str) and fields[name] for name in ("broker", "access_token")):
            raise TokenFileError(f"{where}: not a fastflow token file (empty broker or access_token)")
        return cls(broker=str(fields["broker"]), api_key=str(fields["api_key"]),
                   access_token=str(fields["access_token"]), issued_at=issued, expires_at=expires,
                   user_id=str(data.get("user_id", "")), user_name=str(data.get("user_name", "")),
                   api_url=str(data.get("api_url", "")))


def write_token(path: str, token: StoredToken) -> None:
    """Store ``token`` at ``path``: directory 0700 (created), file 0600, atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    text = json.dumps(token.to_json(), indent=2) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=".token-", dir=directory)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_token(path: str) -> StoredToken | None:
    """The token stored at ``path``; None when there is no such file.
    :class:`TokenFileError` when it cannot be used (including a file that other
    users may read or write)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenFileError(f"{path}: other users may read it (mode {stat.S_IMODE(mode):04o}): "
                                 f"chmod 600 {path}, or log in again")
        raw = handle.read(1 << 20)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenFileError(f"{path}: not a fastflow token file (not JSON)") from None
    return StoredToken.from_json(data, path)


def stored_for(directory: str, broker: str, access_token: str) -> StoredToken | None:
    """The stored token of ``broker`` when it is ``access_token`` (so its expiry is
    known), else None; never raises."""
    try:
        token = read_token(token_path(directory, broker))
    except TokenFileError:
        return None
    return token if token is not None and token.access_token == access_token else None


def watch_expiry(token: StoredToken, warn: Callable[[str], object], *,
                 now: dt.datetime | None = None) -> list[asyncio.TimerHandle]:
    """On the running loop: ``warn`` once when :data:`WARN_BEFORE` remains (at once
    if less does already), and once when the token expires. The handles, to cancel."""
    loop = asyncio.get_running_loop()
    left = token.left(now).total_seconds()
    login = f"run `fastflow login {token.broker}`"

    def soon() -> None:
        remaining = describe_left(token.left())
        warn(f"warning: the {token.broker} access token expires at {describe_time(token.expires_at)} "
             f"(in {remaining}): {login} before then, and restart the plant")

    def expired() -> None:
        warn(f"the {token.broker} access token expired at {describe_time(token.expires_at)}: the broker will "
             f"refuse reconnections; {login}, then restart the plant")

    handles = [loop.call_later(max(0.0, left - WARN_BEFORE.total_seconds()), soon)] if left > 0 else []
    handles.append(loop.call_later(max(0.0, left), expired))
    return handles
