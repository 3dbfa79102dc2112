"""Where Redis is: :class:`RedisTarget` parses and validates a Redis URL once,
exposes its parts (the plant's writer opens raw asyncio connections from them)
and builds redis-py clients for everything else (docs/redis.md).

Accepted URLs::

    redis://[[user]:password@]host[:port][/db][?option=value&...]     TCP (host default 127.0.0.1, port 6379)
    rediss://[[user]:password@]host[:port][/db][?option=value&...]    TLS, certificate verification ON
    unix:///path/to/redis.sock[?db=N&password=...&username=...]       unix socket (also unix://[user:pw@]/path)
    redis+cluster://host[:port]  rediss+cluster://host[:port]         a Redis Cluster (any node as the seed)

``RedisTarget.parse(url, cluster=True)`` is the same as the ``+cluster``
scheme. User name and password are percent-decoded (write ``%40`` for ``@``);
``secret@host`` with no ``:`` is a password alone (as redis-cli reads it), and
a user name needs a password.
Options (query string): ``db``, ``username``, ``password``, ``socket_timeout``,
``connect_timeout`` (seconds), ``client_name``; with ``rediss`` also
``ssl_cert_reqs`` (``required`` (default), ``optional``, ``none``),
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (paths) and
``ssl_check_hostname`` (``true``/``false``; default: on when certificates are
required). Anything else is a :class:`ValueError` naming what is wrong; error
messages, ``str()`` and ``repr()`` never show the password.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from fastflow.obs.redact import MASK, mask_url

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

#: The highest database index a URL may name. The server's own ``databases``
#: setting (16 by default) is the real limit: it refuses a larger index on connect.
MAX_DB = 2**31 - 1
CERT_REQS = ("required", "optional", "none")
SCHEMES = {  # scheme -> (tls, cluster)
    "redis": (False, False),
    "rediss": (True, False),
    "redis+cluster": (False, True),
    "rediss+cluster": (True, True),
}
_TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_OPTIONS = ("db", "username", "password", "socket_timeout", "connect_timeout", "client_name", *_TLS_OPTIONS)
_HOST = re.compile(r"^[A-Za-z0-9._-]+$")
_BOOLS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """One Redis location, validated on construction (see the module docstring).

    Build it with :meth:`parse` from a URL, or directly from its parts. Exactly
    one of ``unix_path`` or ``host``/``port`` is used: with ``unix_path`` set,
    ``host`` and ``port`` are ignored.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    db: int = 0
    cluster: bool = False
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: ``None``: check the host name exactly when certificates are required.
    ssl_check_hostname: bool | None = None
    #: Seconds; ``None`` keeps redis-py's default (5 s). A blocking stream read
    #: must block for less than this.
    socket_timeout: float | None = None
    connect_timeout: float | None = None
    client_name: str | None = None

    def __post_init__(self) -> None:
        why = self._problem()
        if why:
            raise ValueError(f"redis target {self}: {why}")

    def _problem(self) -> str | None:
        """What is wrong with these parts, or None."""
        if self.unix_path is not None:
            if not isinstance(self.unix_path, str) or not self.unix_path.startswith("/"):
                return f"unix socket path {self.unix_path!r} must be absolute (unix:///path/to/redis.sock)"
            if self.tls:
                return "TLS over a unix socket is not supported by Redis"
            if self.cluster:
                return "a Redis Cluster cannot be reached through a unix socket: give a node's host:port"
        else:
            if not isinstance(self.host, str) or not (_HOST.fullmatch(self.host) or _is_ipv6(self.host)):
                return f"bad host {self.host!r}"
            if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
                return f"port {self.port!r} is out of range (1-65535)"
        if isinstance(self.db, bool) or not isinstance(self.db, int) or not 0 <= self.db <= MAX_DB:
            return f"database {self.db!r} is out of range (0-{MAX_DB}; the server's default limit is 0-15)"
        if self.cluster and self.db != 0:
            return f"a Redis Cluster has database 0 only, not {self.db}"
        if self.ssl_cert_reqs not in CERT_REQS:
            return f"ssl_cert_reqs {self.ssl_cert_reqs!r} is not one of {', '.join(CERT_REQS)}"
        if not self.tls:
            given = [name for name in _TLS_OPTIONS if getattr(self, name) not in (None, "required")]
            if given:
                return f"{', '.join(given)} need TLS (a rediss:// URL)"
        if self.ssl_check_hostname and self.ssl_cert_reqs == "none":
            return "ssl_check_hostname needs certificate verification (ssl_cert_reqs=none turns it off)"
        if self.ssl_keyfile and not self.ssl_certfile:
            return "ssl_keyfile needs ssl_certfile"
        for name in ("socket_timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):  # also refuses NaN
                return f"{name} must be a positive number of seconds, not {value!r}"
        if self.username is not None and self.password is None:
            return f"user name {self.username!r} without a password"
        return None

    # -- parsing -------------------------------------------------------------

    @classmethod
    def parse(cls, url: str, *, cluster: bool | None = None) -> RedisTarget:
        """Parse a Redis URL (module docstring). ``cluster=True`` makes it a
        Redis Cluster (like the ``+cluster`` schemes); ``cluster=False`` with a
        ``+cluster`` scheme is an error."""
        shown = mask_url(url)

        def bad(why: str) -> ValueError:
            return ValueError(f"redis URL {shown!r}: {why}")

        if not isinstance(url, str) or "://" not in url:
            raise bad("not a URL: expected redis://host:port/db, rediss://..., unix:///path/to.sock "
                      "or redis+cluster://host:port")
        scheme = url.split("://", 1)[0].lower()
        if scheme != "unix" and scheme not in SCHEMES:
            raise bad(f"unknown scheme {scheme + '://'!r}: use redis://, rediss:// (TLS), unix:// "
                      "or redis+cluster:// / rediss+cluster://")
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if parts.fragment:
            raise bad("a fragment (#...) means nothing here")
        options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            name = name.lower()
            if name not in _OPTIONS:
                raise bad(f"unknown option {name!r} (known: {', '.join(_OPTIONS)})")
            if name in options:
                raise bad(f"option {name!r} is given twice")
            options[name] = value
        userinfo, _, hostport = parts.netloc.rpartition("@")
        username: str | None = None
        password: str | None = None
        if userinfo or parts.netloc.endswith("@"):
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
            if password is None and username is not None:
                # user@ with no ':' is a password alone (no ACL user), as redis-cli reads it.
                username, password = None, username
        for name, current in (("username", username), ("password", password)):
            if name in options and current is not None:
                raise bad(f"{name} is given both before the '@' and as an option")
        username = options.pop("username", username) or None
        password = options.pop("password", password)

        kwargs: dict[str, Any] = {"username": username, "password": password}
        if scheme == "unix":
            if hostport:
                raise bad(f"unix:// takes an absolute path (unix:///path/to.sock), not a host {hostport!r}")
            if not parts.path or parts.path == "/":
                raise bad("no socket path: write unix:///path/to/redis.sock")
            kwargs["unix_path"] = unquote(parts.path)
            if cluster:
                raise bad("a Redis Cluster cannot be reached through a unix socket: give a node's host:port")
            db_text = options.pop("db", "0")
        else:
            tls, scheme_cluster = SCHEMES[scheme]
            if scheme_cluster and cluster is False:
                raise bad(f"{scheme}:// is a cluster URL but cluster=False was asked for")
            kwargs["tls"] = tls
            kwargs["cluster"] = scheme_cluster or bool(cluster)
            kwargs["host"], kwargs["port"] = _host_port(hostport, bad)
            path = parts.path.strip("/")
            if "db" in options and path:
                raise bad("the database is given both as the path and as ?db=")
            db_text = options.pop("db", path or "0")
        if not db_text.isdigit() or not db_text.isascii():
            raise bad(f"database {db_text!r} is not a number (the path is /DB, e.g. /0)")
        kwargs["db"] = int(db_text)
        for name in ("socket_timeout", "connect_timeout"):
            if name in options:
                kwargs[name] = _seconds(name, options.pop(name), bad)
        if "ssl_check_hostname" in options:
            text = options.pop("ssl_check_hostname").lower()
            if text not in _BOOLS:
                raise bad(f"ssl_check_hostname {text!r} is not true or false")
            kwargs["ssl_check_hostname"] = _BOOLS[text]
        if "ssl_cert_reqs" in options:
            kwargs["ssl_cert_reqs"] = options.pop("ssl_cert_reqs").lower()
        kwargs.update({name: value for name, value in options.items() if value != ""})
        target = cls.__new__(cls)
        for field in dataclasses.fields(cls):
            object.__setattr__(target, field.name, kwargs.get(field.name, field.default))
        why = target._problem()
        if why:
            raise bad(why)
        return target

    # -- views ---------------------------------------------------------------

    def to_url(self, *, mask: bool = True) -> str:
        """The URL of this target (``parse`` of it gives it back); with
        ``mask`` (the default) the password is ``***``."""
        secret = MASK if mask else quote(self.password or "", safe="")
        user = quote(self.username or "", safe="")
        query: list[tuple[str, str]] = []
        if self.unix_path is not None:
            if self.username is not None:
                query.append(("username", user))
            if self.password is not None:
                query.append(("password", secret))
            if self.db:
                query.append(("db", str(self.db)))
            base = f"unix://{quote(self.unix_path)}"
        else:
            scheme = ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")
            auth = ""
            if self.password is not None:
                auth = f"{user}:{secret}@"
            host = f"[{self.host}]" if ":" in self.host else self.host
            base = f"{scheme}://{auth}{host}:{self.port}" + (f"/{self.db}" if self.db else "")
        if self.tls:
            if self.ssl_cert_reqs != "required":
                query.append(("ssl_cert_reqs", self.ssl_cert_reqs))
            for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None:
                    query.append((name, quote(value)))
            if self.ssl_check_hostname is not None:
                query.append(("ssl_check_hostname", str(self.ssl_check_hostname).lower()))
        for name in ("socket_timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None:
                query.append((name, repr(value)))
        if self.client_name is not None:
            query.append(("client_name", quote(self.client_name, safe="")))
        return base + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")

    def __str__(self) -> str:
        try:
            return self.to_url()
        except (AttributeError, TypeError):  # called by __post_init__ on nonsense values
            return "<invalid>"

    def __repr__(self) -> str:
        return f"RedisTarget({str(self)!r})"

    @property
    def address(self) -> str | tuple[str, int]:
        """The unix socket path, or ``(host, port)``: what ``socket.connect`` takes."""
        return self.unix_path if self.unix_path is not None else (self.host, self.port)

    @property
    def check_hostname(self) -> bool:
        """Whether TLS checks the server's host name against its certificate."""
        if self.ssl_check_hostname is None:
            return self.ssl_cert_reqs == "required"
        return self.ssl_check_hostname

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for a raw connection (``asyncio.open_connection(...,
        ssl=target.ssl_context(), server_hostname=target.host)``); ``None``
        without TLS. Verification is on unless ``ssl_cert_reqs`` turns it off."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_certs)
        context.check_hostname = self.check_hostname
        context.verify_mode = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL,
                               "none": ssl.CERT_NONE}[self.ssl_cert_reqs]
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` (or, without ``db`` and
        ``unix_socket_path``, ``RedisCluster``); ``decode_responses=False``."""
        kwargs: dict[str, Any] = {"decode_responses": False, "username": self.username, "password": self.password}
        if self.unix_path is not None:
            kwargs["unix_socket_path"] = self.unix_path
        else:
            kwargs["host"], kwargs["port"] = self.host, self.port
        if not self.cluster:
            kwargs["db"] = self.db
        if self.tls:
            kwargs.update(ssl=True, ssl_cert_reqs=self.ssl_cert_reqs, ssl_ca_certs=self.ssl_ca_certs,
                          ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                          ssl_check_hostname=self.check_hostname)
        if self.socket_timeout is not None:
            kwargs["socket_timeout"] = self.socket_timeout
        if self.connect_timeout is not None:
            kwargs["socket_connect_timeout"] = self.connect_timeout
        if self.client_name is not None:
            kwargs["client_name"] = self.client_name
        return kwargs

    def client(self, **overrides: Any) -> redis.Redis | redis.cluster.RedisCluster:
        """A synchronous redis-py client: ``redis.cluster.RedisCluster`` for a
        cluster target (this node is the seed; the client finds the others),
        else ``redis.Redis``. ``overrides`` are passed on to it."""
        import redis
        import redis.cluster

        kwargs = {**self.client_kwargs(), **overrides}
        if self.cluster:
            return redis.cluster.RedisCluster(**kwargs)
        return redis.Redis(**kwargs)

    def async_client(self, **overrides: Any) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
        """The ``redis.asyncio`` twin of :meth:`client`."""
        import redis.asyncio
        import redis.asyncio.cluster

        kwargs = {**self.client_kwargs(), **overrides}
        if self.cluster:
            return redis.asyncio.cluster.RedisCluster(**kwargs)
        return redis.asyncio.Redis(**kwargs)


def _is_ipv6(host: str) -> bool:
    return ":" in host and re.fullmatch(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?", host) is not None


def _host_port(hostport: str, bad: Any) -> tuple[str, int]:
    if hostport.startswith("["):  # [IPv6]:port
        host, end, rest = hostport[1:].partition("]")
        if not end or (rest and not rest.startswith(":")):
            raise bad(f"bad IPv6 address {hostport!r}: write [::1]:6379")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = hostport.partition(":")
        if colon and not port_text:
            raise bad("empty port after ':'")
    host = unquote(host) or "127.0.0.1"
    if not port_text:
        return host, 6379
    if not port_text.isdigit() or not port_text.isascii():
        raise bad(f"port {port_text!r} is not a number (1-65535)")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} is out of range (1-65535)")
    return host, port


def _seconds(name: str, text: str, bad: Any) -> float:
    try:
        value = float(text)
    except ValueError:
        raise bad(f"{name} {text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise bad(f"{name} must be a positive number of seconds, not {text!r}")
    return value
