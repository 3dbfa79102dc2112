"""One configuration for every fastflow process: a TOML file plus
``FASTFLOW_*`` environment variables, validated once at start-up
(docs/configuration.md).

Precedence, lowest first: the defaults below, the TOML file, the environment,
then ``overrides`` (dotted keys from command-line flags)::

    config = load_config()                                  # ./fastflow.toml if it exists
    config = load_config("prod.toml", overrides={"gateway.port": 0})
    config.gateway.port, config.broker.live, config.sources["gateway.port"]

The file is ``path`` if given, else ``$FASTFLOW_CONFIG``, else
``./fastflow.toml`` when it exists, else none. An environment variable is
``FASTFLOW_<SECTION>_<KEY>`` in upper case (``FASTFLOW_GATEWAY_PORT``); its
text is parsed by the key's type (lists comma-separated, ``gateway.api_keys``
as ``key=name,key2=name2``). Anything wrong (a syntax error, an unknown
section, key or variable, a value of the wrong type or out of range, a
combination that cannot work) is a :class:`ConfigError` naming the key and
where the value came from. :meth:`Config.masked` and :func:`render_toml` show
the effective configuration with the secrets masked.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import importlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastflow import brokers
from fastflow.errors import FastflowError
from fastflow.obs import redact

DEFAULT_FILE = "fastflow.toml"
BROKERS = brokers.NAMES
#: Each broker's subscription modes (from the broker registry).
MODES = {name: brokers.get(name).modes for name in BROKERS}
MASK = "********"
#: The synthetic universe's sizes (``simulator.universe``; fastflow.sim.universe.SIZES).
UNIVERSES = ("small", "full")
#: ``FASTFLOW_*`` variables that are not configuration keys (accepted silently).
#: ``FASTFLOW_TOKEN_SECRET`` is the legacy name of ``gateway.token_secret``.
RESERVED = frozenset({
    "FASTFLOW_CONFIG", "FASTFLOW_DEBUG", "FASTFLOW_PUREPYTHON", "FASTFLOW_REDIS_SERVER",
    "FASTFLOW_FUZZ_EXAMPLES", "FASTFLOW_TOKEN_SECRET",
    "FASTFLOW_API_KEY", "FASTFLOW_TOKEN",  # a gateway client's credential (fastflow tail)
    "FASTFLOW_ANNOTATE", "FASTFLOW_COVERAGE", "FASTFLOW_OPT_CFLAGS",  # build switches (setup.py)
})
LEGACY_TOKEN_SECRET = "FASTFLOW_TOKEN_SECRET"
#: Keys whose values are never shown (``redis.url`` has its password masked).
SECRETS = frozenset({"broker.access_token", "broker.api_secret", "gateway.token_secret", "gateway.api_keys"})
COMMAND_LINE = "command line"
DEFAULT = "default"


class ConfigError(FastflowError, ValueError):
    """The configuration is unusable; the message names the key and its source."""


@dataclasses.dataclass(frozen=True)
class BrokerSection:
    """``[broker]``: which broker, its credentials and what to subscribe."""

    name: str = brokers.DEFAULT
    api_key: str = ""
    access_token: str = dataclasses.field(default="", repr=False)
    url: str = ""
    instruments: str = ""
    symbols: tuple[str, ...] = ()
    mode: str = "full"
    watchdog: float = 5.0
    #: Seconds a connection must stream before the reconnect backoff starts again from its base.
    backoff_reset_after: float = 5.0
    #: Seconds without a streaming connection (never connected, or lost and not back) after
    #: which the plant gives up and exits 1 naming the reason; 0 = never (retry for ever).
    give_up_after: float = 0.0
    #: Kite: the app's api_secret; Upstox: its client secret (``api_key`` is the client_id).
    #: Only ``fastflow login`` uses it.
    api_secret: str = dataclasses.field(default="", repr=False)
    #: The REST API, the login page and the instrument master's URL ("" = the broker's
    #: own; a simulator's to test against it). docs/configuration.md.
    api_url: str = ""
    login_url: str = ""
    instruments_url: str = ""
    #: Where the day's access token (``fastflow login``) and instrument master are kept
    #: ("" = $XDG_STATE_HOME/fastflow, else ~/.local/state/fastflow).
    state_dir: str = ""

    @property
    def live(self) -> bool:
        """Credentials are set: connect to the real broker, not the simulator."""
        if self.name == "upstox":
            return bool(self.access_token)
        return bool(self.api_key and self.access_token)


@dataclasses.dataclass(frozen=True)
class SimulatorSection:
    """``[simulator]``: the local broker (``fastflow sim``; ``fastflow run`` without
    credentials). ``api_key``/``access_token`` are what its clients must present: not
    secrets, they open only the simulator, and a plant without credentials uses them."""

    #: 0: every instrument updates at its own cadence (about 1-2 snapshots a second when
    #: liquid); > 0: a load knob, the whole universe's updates per second.
    rate: float = 0.0
    #: Market seconds per real second (60: a session in 6 min 15 s).
    speed: float = 1.0
    #: Where the simulated day starts: HH:MM (IST; 09:00 shows the pre-open) or "now".
    start: str = "09:15"
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str = "fastflow"
    access_token: str = "sim-token"
    instruments_out: str = ""
    #: The api_secret (Upstox: client secret) its login endpoint checks (not a secret either).
    api_secret: str = "sim-secret"
    #: The port of its REST endpoints (login, token exchange, instrument dump); 0 = a free port.
    rest_port: int = 0
    faults: tuple[str, ...] = ()
    #: The synthetic universe: "small" (about 400 instruments) or "full" (about 8,300:
    #: NIFTY 50 stocks, indices, index and stock futures and options; fastflow.sim.universe).
    universe: str = "small"


@dataclasses.dataclass(frozen=True)
class RedisSection:
    """``[redis]``: where the plant writes and the gateways read (docs/redis.md)."""

    url: str = "embedded"
    cluster: bool = False
    prefix: str = "ff"
    #: The partition's name in the keys; "" = the broker's name.
    partition: str = ""
    stream_maxlen: int = 1_000
    #: The tick stream's bound in bytes too: fewer entries than ``stream_maxlen`` when
    #: flushes are large (each entry is one flush's frame).
    stream_max_bytes: int = 64 * 1024 * 1024
    #: ``maxmemory`` of the embedded Redis (policy noeviction: a full Redis refuses
    #: writes, which the plant reports and survives; nothing is evicted).
    maxmemory: str = "512mb"
    ttl: int = 86_400
    #: Seconds a Redis connection (the plant's writer, a gateway's subscription) must stay up
    #: before its reconnect backoff starts again from its base.
    backoff_reset_after: float = 5.0

    def __repr__(self) -> str:  # without the password in the URL
        return (f"RedisSection(url={mask_url(self.url)!r}, cluster={self.cluster!r}, prefix={self.prefix!r}, "
                f"partition={self.partition!r}, stream_maxlen={self.stream_maxlen!r}, ttl={self.ttl!r}, "
                f"backoff_reset_after={self.backoff_reset_after!r})")

    def partition_of(self, broker: BrokerSection) -> str:
        """The partition the plant writes and the gateway reads."""
        return self.partition or broker.name


@dataclasses.dataclass(frozen=True)
class PlantSection:
    """``[plant]``: the plant's /healthz listener, its status lines, and a capture to
    replay instead of a broker connection."""

    health_host: str = "127.0.0.1"
    health_port: int = 0
    status_every: float = 5.0
    #: A capture file (``fastflow record``) that drives the state instead of the broker.
    replay: str = ""
    #: The replay's pace: ``max`` or a factor of the recorded pace (1, 10, 0.5).
    speed: str = "max"
    #: HH:MM (IST): the day's rollover. From then on the day's instrument master is the
    #: current one (Kite asks clients to fetch its dump "once a day, ideally at around
    #: 08:30 AM"; fastflow.brokers.masters.PUBLISHED is this default), and a running
    #: plant loads it and swaps it in (docs/ingest.md, "The trading day").
    rollover: str = "08:30"

    @property
    def replay_speed(self) -> float | None:
        """``speed`` as a number; None for ``max``."""
        return None if self.speed == "max" else float(self.speed)

    @property
    def rollover_time(self) -> datetime.time:
        """``rollover`` as a time of day (IST)."""
        return datetime.time.fromisoformat(self.rollover)


@dataclasses.dataclass(frozen=True)
class GatewaySection:
    """``[gateway]``: the WebSocket gateway (docs/protocol.md)."""

    host: str = "127.0.0.1"
    port: int = 8765
    #: API key -> client name.
    api_keys: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False, hash=False)
    token_secret: str = dataclasses.field(default="", repr=False)
    #: The longest a signed token may still be valid for: one that expires later is refused.
    token_max_ttl: float = 86_400.0
    require_auth: bool = False
    allow_origins: tuple[str, ...] = ()
    #: Host names a handshake's ``Host`` may carry besides the gateway's own (an IP
    #: address, localhost, this machine's name); ``*`` for any (DNS rebinding defence).
    allow_hosts: tuple[str, ...] = ()
    max_symbols: int = 1_000
    high_water: int = 262_144
    lag_limit: float = 10.0
    #: Seconds without a frame from the plant, while the market is open, before the feed
    #: reads ``stale`` (clients get a status message; nothing is restarted for it).
    stale_after: float = 5.0
    #: Bytes of one client message (larger: closed with 1009).
    max_message: int = 65_536
    max_clients: int = 20_000
    #: Clients from one IP address (loopback exempt unless ``per_ip_loopback``), and
    #: connections still in their opening handshake, and how long that may take.
    max_clients_per_ip: int = 256
    per_ip_loopback: bool = False
    max_handshakes: int = 1_024
    handshake_timeout: float = 5.0
    #: Control messages per second per client, in bursts of ``control_burst``.
    control_rate: float = 20.0
    control_burst: int = 50
    #: WebSocket frames of every kind (data, fragments, pings, pongs) per second per
    #: client, in bursts of ``frame_burst``; past it the client is closed with 1008.
    frame_rate: float = 100.0
    frame_burst: int = 200
    #: Refused messages in a row before a client is closed (1008).
    max_strikes: int = 10
    #: Seconds between WebSocket keepalive pings (0: none), and to wait for a close handshake.
    ping_interval: float = 20.0
    close_timeout: float = 2.0
    #: SO_REUSEPORT: several gateways on one port.
    reuse_port: bool = False
    #: Seconds between status lines; 0 = none.
    status_every: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunSection:
    """``[run]``: what ``fastflow run`` prints, and how it keeps its children up."""

    status_every: float = 1.0
    log_lines: int = 20
    #: Restarts of one child allowed within ``restart_window`` seconds; one more and the
    #: run gives up (0: a child's death stops the run).
    restarts: int = 5
    restart_window: float = 300.0
    #: Seconds a child may go without answering ``/livez`` before it is killed and
    #: restarted (0: no liveness check, only exits count).
    liveness_timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class FlowSection:
    """``[flow]``: options flow detected in the plant's hot path, its score, and how
    long Redis keeps it (docs/flow.md)."""

    #: Detect flow on every update of an option or future.
    enabled: bool = True
    #: A block: one interval's dV of at least this many lots ...
    block_lots: int = 20
    #: ... and this multiple of the contract's running mean dV (once it has a baseline).
    block_multiple: float = 8.0
    #: A sweep takes at least this many levels of the previous book ...
    sweep_levels: int = 2
    #: ... with at least this many lots (a few lots walking a thin book, or a book that
    #: moved between two snapshots, is not an order sweeping it).
    sweep_min_lots: int = 20
    #: Repeated hits: same-side aggressive prints, each within this many ms of the last ...
    repeat_window_ms: int = 2000
    #: ... reported once the chain has this many.
    repeat_hits: int = 5
    #: Unusual volume: an interval's dV this many standard deviations over the baseline ...
    z_threshold: float = 4.0
    #: ... an exponentially weighted mean and variance with this weight per print ...
    z_alpha: float = 0.05
    #: ... judged once it has seen this many prints.
    z_min_samples: int = 30
    #: Unusual volume/OI: the day's volume passes OI with at least this many lots traded.
    voi_min_lots: int = 100
    #: Snapshots further apart than this (a reconnect, an outage) are not one interval.
    max_gap_ms: int = 5000
    #: ATM: the strike within this % of the underlying.
    atm_pct: float = 0.5
    #: Sweeps, blocks and repeated hits under this premium (₹) are not events ...
    premium_floor: float = 100_000.0
    #: ... or under the floor of their underlying's name, ``NAME=rupees``.
    premium_floors: tuple[str, ...] = ("NIFTY=500000", "BANKNIFTY=500000", "SENSEX=500000")
    #: The premium part of the score: 0 at premium_base, 1 at premium_full (₹, log scale).
    premium_base: float = 100_000.0
    premium_full: float = 10_000_000.0
    #: The size part is 1 at this fraction of open interest.
    oi_full: float = 0.05
    #: The tenor part falls from 1 at expiry to 0 this many days before it.
    tenor_days: float = 30.0
    #: The score's weights, in points; they sum to 100.
    weight_premium: float = 25.0
    weight_size_vs_oi: float = 15.0
    weight_aggressor: float = 15.0
    weight_sweep: float = 15.0
    weight_unusualness: float = 15.0
    weight_tenor: float = 10.0
    weight_moneyness: float = 5.0
    #: Seconds of flow the stream keeps (XADD ... MINID ~): the seed's "TTLs expire old flow data".
    retention: float = 3600.0
    #: ... and at most this many bytes of events (a periodic XTRIM MAXLEN from the mean size).
    stream_max_bytes: int = 64 * 2**20

    @property
    def weights(self) -> tuple[float, ...]:
        """The weights in score_parts order: premium, size_vs_oi, aggressor, sweep,
        unusualness, tenor, moneyness."""
        return (self.weight_premium, self.weight_size_vs_oi, self.weight_aggressor, self.weight_sweep,
                self.weight_unusualness, self.weight_tenor, self.weight_moneyness)

    @property
    def floors(self) -> dict[str, float]:
        """``premium_floors`` as name -> rupees."""
        return {name.strip().upper(): float(value) for name, _, value in
                (item.partition("=") for item in self.premium_floors)}


@dataclasses.dataclass(frozen=True)
class LoginSection:
    """``[login]``: ``fastflow login``'s loopback redirect (docs/configuration.md)."""

    #: The redirect URL registered with the broker app: http on a loopback address, with
    #: a port; ``fastflow login`` listens there for the redirect (the simulator plays
    #: the app registered with it).
    redirect_url: str = "http://127.0.0.1:8710/"
    #: Seconds to wait for the redirect.
    timeout: float = 300.0
    #: Open the login page in a browser (else only print its URL).
    open_browser: bool = True


#: Where a command run on its own documents another default than ``fastflow run``: each
#: such default is here, once, and sits just above the section defaults (below the file,
#: the environment and the flags).
COMMAND_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "gateway": {"redis.url": "redis://127.0.0.1:6379/0"},
    # The desk a user starts shows the whole market: 8,239 instruments at their natural
    # cadence (about 7,000 updates/s) keep the Redis hop near 1.5 ms on 2 cores.
    "run": {"simulator.universe": "full"},
}
#: The commands :func:`load_config` knows; ``run`` (and ``config``) check what only
#: ``fastflow run`` needs (credentials in pairs).
COMMANDS = ("run", "config", "sim", "plant", "gateway", "login")

_SECTIONS: dict[str, type[Any]] = {
    "broker": BrokerSection, "simulator": SimulatorSection, "redis": RedisSection,
    "plant": PlantSection, "gateway": GatewaySection, "run": RunSection, "login": LoginSection,
    "flow": FlowSection,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The effective configuration. ``source_file`` is the file read (absolute
    path) or None; ``sources`` maps every dotted key to where its value came
    from: ``"default"``, the file's name, an environment variable's name or
    ``"command line"``. Neither takes part in ``==``; ``repr`` shows no secret."""

    broker: BrokerSection = dataclasses.field(default_factory=BrokerSection)
    simulator: SimulatorSection = dataclasses.field(default_factory=SimulatorSection)
    redis: RedisSection = dataclasses.field(default_factory=RedisSection)
    plant: PlantSection = dataclasses.field(default_factory=PlantSection)
    gateway: GatewaySection = dataclasses.field(default_factory=GatewaySection)
    run: RunSection = dataclasses.field(default_factory=RunSection)
    login: LoginSection = dataclasses.field(default_factory=LoginSection)
    flow: FlowSection = dataclasses.field(default_factory=FlowSection)
    source_file: str | None = dataclasses.field(default=None, compare=False)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    def get(self, key: str) -> Any:
        """The value of a dotted key, e.g. ``config.get("gateway.port")``."""
        if key not in _KEYS:
            raise KeyError(f"unknown configuration key {key!r}")
        section, _, name = key.partition(".")
        return getattr(getattr(self, section), name)

    def secrets_on_command_line(self) -> list[str]:
        """The keys whose secret came from a flag (visible to every local user in
        ``ps`` and ``/proc/PID/cmdline``): set ones of :data:`SECRETS`, and
        ``redis.url`` when it carries a password."""
        keys = [key for key in sorted(SECRETS) if self.sources.get(key) == COMMAND_LINE and self.get(key)]
        if self.sources.get("redis.url") == COMMAND_LINE and mask_url(self.redis.url) != self.redis.url:
            keys.append("redis.url")
        return keys

    def masked(self) -> dict[str, dict[str, Any]]:
        """The configuration as nested plain data (lists, dicts), secrets
        masked: a set secret is ``"********"``, an unset one ``""``; each API
        key shows as its first 2 characters and ``…`` (just ``…`` when shorter
        than 8); the password in ``redis.url`` is masked."""
        out: dict[str, dict[str, Any]] = {}
        for key in _KEYS:
            section, _, name = key.partition(".")
            value = self.get(key)
            if key == "gateway.api_keys":
                value = _mask_api_keys(value)
            elif key in SECRETS:
                value = MASK if value else ""
            elif key == "redis.url":
                value = mask_url(value)
            elif isinstance(value, tuple):
                value = list(value)
            out.setdefault(section, {})[name] = value
        return out


# -- the schema -------------------------------------------------------------------------------

def _default(field: dataclasses.Field[Any]) -> Any:
    factory = field.default_factory
    return factory() if callable(factory) else field.default


#: Dotted key -> default value; the default's type is the key's type.
_KEYS: dict[str, Any] = {
    f"{section}.{field.name}": _default(field) for section, cls in _SECTIONS.items()
    for field in dataclasses.fields(cls)
}


def _start_time(value: Any) -> bool:
    if value == "now":
        return True
    try:
        datetime.time.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _clock_time(value: Any) -> bool:
    """HH:MM, 00:00 to 23:59."""
    match = re.fullmatch(r"(\d\d):(\d\d)", str(value))
    return match is not None and int(match.group(1)) < 24 and int(match.group(2)) < 60


def _floors(value: Any) -> bool:
    """NAME=rupees items: a name, and a number >= 0."""
    for item in value:
        name, eq, rupees = str(item).partition("=")
        try:
            ok = bool(eq and name.strip()) and math.isfinite(float(rupees)) and float(rupees) >= 0
        except ValueError:
            ok = False
        if not ok:
            return False
    return True


def _number(low: float, *, strict: bool) -> Callable[[Any], bool]:
    return lambda v: math.isfinite(v) and (v > low if strict else v >= low)


def _port(value: int) -> bool:
    return 0 <= value <= 65535


def _host(value: str) -> bool:
    return bool(value) and not any(c.isspace() for c in value)


def _origin(value: str) -> bool:
    if value == "*":
        return True
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.path
            and not parts.query and not parts.fragment and "@" not in parts.netloc)


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def _redirect_url(value: str) -> bool:
    from fastflow.brokers.loopback import is_loopback

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme == "http" and port is not None and is_loopback(parts.hostname or "")
            and not parts.fragment and "@" not in parts.netloc)


def _speed(value: str) -> bool:
    if value == "max":
        return True
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except ValueError:
        return False


_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # what fastflow.store.keys.Keys accepts

#: Dotted key -> (what is expected, the check) for keys with more than a type.
_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "broker.name": ("kite or upstox", lambda v: v in BROKERS),
    "broker.mode": ("one of ltp, quote, full (kite) or ltpc, full, option_greeks, full_d30 (upstox)",
                    lambda v: v in MODES["kite"] + MODES["upstox"]),
    "broker.symbols": ("a list of symbols (EXCHANGE:TRADINGSYMBOL, token or instrument key) as strings",
                       lambda v: all(s.strip() for s in v)),
    "broker.watchdog": ("a number of seconds > 0", _number(0, strict=True)),
    "broker.backoff_reset_after": ("a number of seconds >= 0", _number(0, strict=False)),
    "broker.give_up_after": ("a number of seconds >= 0 (0: never)", _number(0, strict=False)),
    "redis.backoff_reset_after": ("a number of seconds >= 0", _number(0, strict=False)),
    "simulator.rate": ("a number of updates per second >= 0 (0: each instrument's own cadence)",
                       _number(0, strict=False)),
    "simulator.speed": ("a number of market seconds per second > 0", _number(0, strict=True)),
    "simulator.start": ("HH:MM (IST) or now", _start_time),
    "simulator.host": ("a host name or address", _host),
    "simulator.port": ("an integer 0..65535", _port),
    "simulator.rest_port": ("an integer 0..65535", _port),
    "broker.api_url": ('"" or an http:// or https:// URL', lambda v: v == "" or _http_url(v)),
    "broker.login_url": ('"" or an http:// or https:// URL', lambda v: v == "" or _http_url(v)),
    "broker.instruments_url": ('"" or an http:// or https:// URL', lambda v: v == "" or _http_url(v)),
    "login.redirect_url": ("an http:// URL on a loopback address with a port, like http://127.0.0.1:8710/",
                           lambda v: _redirect_url(v)),
    "login.timeout": ("a number of seconds > 0", _number(0, strict=True)),
    "simulator.universe": ("small or full", lambda v: v in UNIVERSES),
    "redis.partition": ("\"\" or 1-64 letters, digits, '_', '.', ':' or '-'",
                        lambda v: v == "" or _PREFIX.fullmatch(v) is not None),
    "plant.status_every": ("a number of seconds > 0", _number(0, strict=True)),
    "plant.speed": ("max or a number > 0", _speed),
    "plant.rollover": ("HH:MM (IST), like 08:30", _clock_time),
    "gateway.status_every": ("a number of seconds >= 0 (0: none)", _number(0, strict=False)),
    "redis.url": ("embedded or a Redis URL (redis://, rediss://, unix://)", bool),
    "redis.prefix": ("1-64 letters, digits, '_', '.', ':' or '-' (no whitespace or braces)",
                     lambda v: _PREFIX.fullmatch(v) is not None),
    # The writer refuses 0 (RedisWriter: maxlen >= 1).
    "redis.stream_maxlen": ("an integer number of flushes > 0", lambda v: v > 0),
    "redis.ttl": ("an integer number of seconds > 0", lambda v: v > 0),
    "redis.stream_max_bytes": ("an integer number of bytes > 0", lambda v: v > 0),
    "redis.maxmemory": ('a size Redis reads, like "512mb" or "2gb" ("0": no limit)',
                        lambda v: re.fullmatch(r"\d+(b|kb|mb|gb|k|m|g)?", v.strip().lower()) is not None),
    "plant.health_host": ("a host name or address", _host),
    "plant.health_port": ("an integer 0..65535", _port),
    "gateway.host": ("a host name or address", _host),
    "gateway.port": ("an integer 0..65535", _port),
    "gateway.api_keys": ('a table of API key = "client name" (both non-empty strings)',
                         lambda v: all(k and n for k, n in v.items())),
    "gateway.allow_hosts": ('a list of host names (or "*")', lambda v: all(h.strip() for h in v)),
    "gateway.allow_origins": ('a list of origins like "https://host[:port]" (or "*")',
                              lambda v: all(_origin(o) for o in v)),
    "gateway.max_symbols": ("an integer > 0", lambda v: v > 0),
    "gateway.high_water": ("an integer number of bytes > 0", lambda v: v > 0),
    "gateway.lag_limit": ("a number of seconds > 0", _number(0, strict=True)),
    "gateway.stale_after": ("a number of seconds > 0", _number(0, strict=True)),
    "gateway.max_message": ("an integer number of bytes > 0", lambda v: v > 0),
    "gateway.max_clients": ("an integer > 0", lambda v: v > 0),
    "gateway.max_clients_per_ip": ("an integer > 0", lambda v: v > 0),
    "gateway.max_handshakes": ("an integer > 0", lambda v: v > 0),
    "gateway.handshake_timeout": ("a number of seconds > 0", _number(0, strict=True)),
    "gateway.control_rate": ("a number of messages per second > 0", _number(0, strict=True)),
    "gateway.control_burst": ("an integer > 0", lambda v: v > 0),
    "gateway.token_max_ttl": ("a number of seconds > 0", _number(0, strict=True)),
    "gateway.frame_rate": ("a number of frames per second > 0", _number(0, strict=True)),
    "gateway.frame_burst": ("an integer > 0", lambda v: v > 0),
    "gateway.max_strikes": ("an integer > 0", lambda v: v > 0),
    "gateway.ping_interval": ("a number of seconds >= 0 (0: none)", _number(0, strict=False)),
    "gateway.close_timeout": ("a number of seconds > 0", _number(0, strict=True)),
    "run.status_every": ("a number of seconds >= 0 (0: none)", _number(0, strict=False)),
    "run.log_lines": ("an integer > 0", lambda v: v > 0),
    "run.restarts": ("an integer >= 0 (0: never restart)", lambda v: v >= 0),
    "run.restart_window": ("a number of seconds > 0", _number(0, strict=True)),
    "run.liveness_timeout": ("a number of seconds >= 0 (0: no liveness check)", _number(0, strict=False)),
    "flow.block_lots": ("an integer > 0", lambda v: v > 0),
    "flow.block_multiple": ("a number >= 0", _number(0, strict=False)),
    "flow.sweep_levels": ("an integer from 2 to 5 (the levels a Kite book has)", lambda v: 2 <= v <= 5),
    "flow.sweep_min_lots": ("an integer >= 0", lambda v: v >= 0),
    "flow.repeat_window_ms": ("an integer > 0 (milliseconds)", lambda v: v > 0),
    "flow.repeat_hits": ("an integer >= 2", lambda v: v >= 2),
    "flow.z_threshold": ("a number > 0", _number(0, strict=True)),
    "flow.z_alpha": ("a number between 0 and 1", lambda v: 0 < v < 1),
    "flow.z_min_samples": ("an integer >= 2", lambda v: v >= 2),
    "flow.voi_min_lots": ("an integer >= 0", lambda v: v >= 0),
    "flow.max_gap_ms": ("an integer > 0 (milliseconds)", lambda v: v > 0),
    "flow.atm_pct": ("a number >= 0 (percent)", _number(0, strict=False)),
    "flow.premium_floor": ("a number >= 0 (rupees)", _number(0, strict=False)),
    "flow.premium_floors": ("a list of NAME=rupees, like [\"NIFTY=500000\"]", _floors),
    "flow.premium_base": ("a number > 0 (rupees)", _number(0, strict=True)),
    "flow.premium_full": ("a number > 0 (rupees)", _number(0, strict=True)),
    "flow.oi_full": ("a number > 0", _number(0, strict=True)),
    "flow.tenor_days": ("a number of days > 0", _number(0, strict=True)),
    **{f"flow.weight_{part}": ("a number >= 0 (points of the score)", _number(0, strict=False))
       for part in ("premium", "size_vs_oi", "aggressor", "sweep", "unusualness", "tenor", "moneyness")},
    "flow.retention": ("a number of seconds > 0", _number(0, strict=True)),
    "flow.stream_max_bytes": ("an integer > 0 (bytes)", lambda v: v > 0),
}
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
               tuple: "a list of strings", dict: "a table of strings"}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def env_var(key: str) -> str:
    """The environment variable of a dotted key: ``gateway.port`` -> ``FASTFLOW_GATEWAY_PORT``."""
    return "FASTFLOW_" + key.replace(".", "_").upper()


_ENV = {env_var(key): key for key in _KEYS}


def environment_keys() -> frozenset[str]:
    """Every environment variable that carries configuration (the keys', and the legacy token secret's)."""
    return frozenset(_ENV) | {LEGACY_TOKEN_SECRET}


def _where(source: str, key: str) -> str:
    """The prefix of a message about ``key`` from ``source``: an environment
    variable names the key by itself."""
    if source in _ENV or source == LEGACY_TOKEN_SECRET:
        return source
    if source == DEFAULT:
        return key
    return f"{source}: {key}"


def _check(key: str, value: Any, source: str) -> Any:
    """``value`` (TOML-typed) as the key's type, or a ConfigError."""
    default = _KEYS[key]
    kind = type(default)
    ok: bool
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300
        value = float(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    elif kind is dict:
        ok = isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in value.items())
        value = dict(value) if ok else value
    else:
        ok = isinstance(value, str)
    expect, rule = _RULES.get(key, (_TYPE_NAMES[kind], None))
    if not ok or (rule is not None and not rule(value)):
        got = "" if key in SECRETS else f", got {value!r}"
        raise ConfigError(f"{_where(source, key)}: expected {expect}{got}")
    return value


def parse_api_keys(text: str) -> dict[str, str]:
    """``key=name,key2=name2`` as a dict; a key without ``=name`` maps to
    ``"api-key"``. ValueError on an empty key."""
    keys: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, name = item.partition("=")
        key, name = key.strip(), name.strip()
        if not key:
            raise ValueError("expected key=name,key2=name2 (a key may not be empty)")
        keys[key] = name if eq and name else "api-key"
    return keys


def _from_text(key: str, text: str, source: str) -> Any:
    """An environment variable's (or a string flag's) text as the key's type."""
    kind = type(_KEYS[key])
    value: Any = text
    try:
        if kind is bool:
            value = _BOOLS[text.strip().lower()]
        elif kind is int:
            value = int(text)
        elif kind is float:
            value = float(text)
        elif kind is tuple:
            value = tuple(item.strip() for item in text.split(",") if item.strip())
        elif kind is dict:
            value = parse_api_keys(text)
    except (KeyError, ValueError):
        expect = _RULES.get(key, (_TYPE_NAMES[kind],))[0]
        if kind is bool:
            expect += " (1/0, true/false, yes/no, on/off)"
        elif kind is dict:
            expect = "key=name,key2=name2"
        got = "" if key in SECRETS else f", got {text!r}"
        raise ConfigError(f"{_where(source, key)}: expected {expect}{got}") from None
    return _check(key, value, source)


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, list(_KEYS), n=1)
    if not close:  # a key in the wrong section: port -> gateway.port
        bare = key.rpartition(".")[2]
        # the later section first: [gateway] before [simulator] (gateway.port, gateway.host)
        close = [k for k in reversed(_KEYS) if k.rpartition(".")[2] == bare][:1]
    return f"unknown key {key}" + (f" (did you mean {close[0]}?)" if close else "")


# -- reading --------------------------------------------------------------------------------------


def _read_file(path: str, shown: str) -> dict[str, Any]:
    """The file's values by dotted key, checked; relative ``broker.instruments``
    paths are taken relative to the file's directory."""
    try:
        toml = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python 3.10
        try:
            toml = importlib.import_module("tomli")
        except ModuleNotFoundError:
            raise ConfigError(f"{shown}: reading TOML needs Python 3.11 or the tomli package") from None
    try:
        with open(path, "rb") as handle:
            data = toml.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except toml.TOMLDecodeError as exc:
        found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(exc), re.S)
        if found:
            raise ConfigError(f"{shown}: line {found[2]}: {found[1]} (column {found[3]})") from None
        raise ConfigError(f"{shown}: {exc}") from None
    values = _tables(data, shown)
    instruments = values.get("broker.instruments")
    if instruments and not os.path.isabs(instruments):
        values["broker.instruments"] = os.path.join(os.path.dirname(os.path.abspath(path)), instruments)
    return values


def _tables(data: Mapping[str, Any], shown: str) -> dict[str, Any]:
    """``[section]`` tables (a TOML file's, or :func:`to_data`'s) as checked values by dotted key."""
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in _SECTIONS:
            if not isinstance(table, Mapping):
                raise ConfigError(f"{shown}: {_unknown_key(section)}: keys belong in a section such as [gateway]")
            close = difflib.get_close_matches(section, list(_SECTIONS), n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise ConfigError(f"{shown}: unknown section [{section}]{hint}")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{shown}: {section}: expected a table [{section}], got {table!r}")
        for name, value in table.items():
            key = f"{section}.{name}"
            if key not in _KEYS:
                raise ConfigError(f"{shown}: {_unknown_key(key)}")
            values[key] = _check(key, value, shown)
    return values


def _build(values: Mapping[str, Any], sources: Mapping[str, str], source_file: str | None) -> Config:
    """The :class:`Config` of checked ``values`` by dotted key (the others at their defaults)."""
    sections = {section: cls(**{field.name: values[f"{section}.{field.name}"] for field in dataclasses.fields(cls)
                                if f"{section}.{field.name}" in values}) for section, cls in _SECTIONS.items()}
    return Config(**sections, source_file=source_file, sources=sources)


def _find_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    """``(path, how to name it)`` of the file to read, or None."""
    if path is not None:
        return os.fspath(path), os.fspath(path)
    named = env.get("FASTFLOW_CONFIG", "")
    if named:
        if not os.path.exists(named):
            raise ConfigError(f"FASTFLOW_CONFIG: no such file: {named}")
        return named, named
    if os.path.exists(DEFAULT_FILE):
        return DEFAULT_FILE, DEFAULT_FILE
    return None


def _read_env(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """The ``FASTFLOW_*`` variables' values by dotted key, with the variable's name."""
    values: dict[str, tuple[Any, str]] = {}
    for name in sorted(env):
        if not name.startswith("FASTFLOW_") or name in RESERVED:
            continue
        key = _ENV.get(name)
        if key is None:
            close = difflib.get_close_matches(name, list(_ENV), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name}: not a fastflow configuration variable{hint}; "
                              "see docs/configuration.md")
        values[key] = (_from_text(key, env[name], name), name)
    legacy = env.get(LEGACY_TOKEN_SECRET, "")
    if legacy and "gateway.token_secret" not in values:
        values["gateway.token_secret"] = (legacy, LEGACY_TOKEN_SECRET)
    return values


def _from_override(key: str, value: object) -> Any:
    if key not in _KEYS:
        raise ConfigError(f"{COMMAND_LINE}: {_unknown_key(key)}")
    kind = type(_KEYS[key])
    if isinstance(value, str) and kind is not str:
        return _from_text(key, value, COMMAND_LINE)
    if kind is dict and isinstance(value, (list, tuple)):  # repeated --api-key KEY[=NAME] flags
        return _from_text(key, ",".join(str(v) for v in value), COMMAND_LINE)
    return _check(key, value, COMMAND_LINE)


def load_config(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, object] | None = None, command: str = "run") -> Config:
    """Read and validate the configuration (module docstring).

    ``path``: the TOML file (missing: an error); None looks at
    ``$FASTFLOW_CONFIG``, then ``./fastflow.toml``. ``env`` defaults to
    ``os.environ``. ``overrides`` maps dotted keys to values from command-line
    flags (typed, or strings parsed like environment variables); a None value
    means the flag was not given. ``command`` (one of :data:`COMMANDS`) picks
    that command's own defaults (:data:`COMMAND_DEFAULTS`). Raises :class:`ConfigError`.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    env = os.environ if env is None else env
    values: dict[str, Any] = dict(COMMAND_DEFAULTS.get(command, {}))
    sources: dict[str, str] = dict.fromkeys(_KEYS, DEFAULT)
    source_file: str | None = None
    found = _find_file(path, env)
    if found is not None:
        file, shown = found
        for key, value in _read_file(file, shown).items():
            values[key], sources[key] = value, shown
        source_file = os.path.abspath(file)
    for key, (value, name) in _read_env(env).items():
        values[key], sources[key] = value, name
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key], sources[key] = _from_override(key, value), COMMAND_LINE
    if command in TOKEN_COMMANDS:
        _stored_token(values, sources, env)
    config = _build(values, sources, source_file)
    _validate(config, command)
    return config


#: The commands that connect to the broker, and so take the token ``fastflow login`` stored.
TOKEN_COMMANDS = ("run", "config", "plant")


def _stored_token(values: dict[str, Any], sources: dict[str, str], env: Mapping[str, str]) -> None:
    """Without an access token but with an api_key, the token ``fastflow login`` stored
    for that broker and api_key (:mod:`fastflow.brokers.tokens`); its path is the
    source. An expired one is an error (the day's login is due), a stored token of
    another api_key is not this configuration's and is left alone."""
    from fastflow.brokers import tokens

    api_key = values.get("broker.api_key", "")
    if values.get("broker.access_token") or not api_key:
        return
    name = values.get("broker.name", brokers.DEFAULT)
    path = tokens.token_path(tokens.state_dir(values.get("broker.state_dir", ""), env), name)
    try:
        token = tokens.read_token(path)
    except tokens.TokenFileError as exc:
        raise ConfigError(f"broker.access_token: {exc}") from None
    if token is None or token.broker != name or token.api_key != api_key:
        return
    if token.expired():
        raise ConfigError(f"{path}: broker.access_token: the {name} access token {token.validity()}; "
                          f"run `fastflow login {name}` for the day's")
    values["broker.access_token"], sources["broker.access_token"] = token.access_token, path


#: The source named for the values of a configuration handed to a child process.
HANDED_DOWN = "fastflow run"


def to_data(config: Config) -> dict[str, dict[str, Any]]:
    """The configuration as nested plain data, secrets included (JSON-able): what
    ``fastflow run`` hands a child in a file only its user can read
    (:func:`from_data` reads it back). Never print it: :meth:`Config.masked` is for showing."""
    out: dict[str, dict[str, Any]] = {}
    for key in _KEYS:
        section, _, name = key.partition(".")
        value = config.get(key)
        out.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) else \
            dict(value) if isinstance(value, Mapping) else value
    return out


def from_data(data: Mapping[str, Any], *, source: str = HANDED_DOWN) -> Config:
    """A :class:`Config` from :func:`to_data`'s output, every value checked again
    (a ConfigError names the key); no file, no environment."""
    return _build(_tables(data, source), dict.fromkeys(_KEYS, source), None)


def _validate(config: Config, command: str = "run") -> None:
    """The checks that involve more than one key, or the file system."""
    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{_where(config.sources[key], key)}: {message}")

    broker = config.broker
    modes = MODES[broker.name]
    whole_run = command in ("run", "config")  # fastflow plant checks mode and URL against its broker itself
    if whole_run and broker.mode not in modes:
        article = "an" if broker.name == "upstox" else "a"
        raise fail("broker.mode", f"{broker.mode!r} is not {article} {broker.name} mode; expected "
                   f"{', '.join(modes[:-1])} or {modes[-1]}")
    if whole_run and broker.url:
        schemes = ("ws", "wss") if broker.name == "kite" else ("http", "https")
        parts = urlsplit(broker.url)
        if parts.scheme not in schemes or not parts.netloc:
            raise fail("broker.url", f"expected a {schemes[0]}:// or {schemes[1]}:// URL for {broker.name} "
                       f"(or \"\" for the broker's own), got {broker.url!r}")
    if whole_run and broker.name == "kite" and bool(broker.api_key) != bool(broker.access_token):
        empty = "broker.access_token" if broker.api_key else "broker.api_key"
        other = "broker.api_key" if broker.api_key else "broker.access_token"
        hint = " (`fastflow login kite` stores the day's token where this finds it)" if broker.api_key else ""
        raise fail(empty, f"empty while {other} is set: Kite needs both (or neither, for the simulator){hint}")
    if broker.instruments and not os.path.isfile(broker.instruments):
        raise fail("broker.instruments", f"no such file: {broker.instruments}")

    flow = config.flow
    if abs(sum(flow.weights) - 100.0) > 1e-9:
        changed = [key for key in _KEYS if key.startswith("flow.weight_") and config.sources.get(key) != DEFAULT]
        raise fail((changed or ["flow.weight_premium"])[0], f"the flow score's weights (flow.weight_*) must sum to 100, not "
                   f"{sum(flow.weights):g}")
    if flow.premium_base >= flow.premium_full:
        raise fail("flow.premium_base", f"must be under flow.premium_full ({flow.premium_full:g})")

    redis = config.redis
    if redis.url == "none" and command == "plant":
        pass  # fastflow plant --redis none: no store
    elif redis.url == "embedded":
        if redis.cluster:
            raise fail("redis.cluster", "the embedded Redis is not a cluster: give redis.url a cluster node")
    else:
        from fastflow.store.target import RedisTarget

        try:
            RedisTarget.parse(redis.url, cluster=True if redis.cluster else None)
        except ValueError as exc:
            raise fail("redis.url", str(exc)) from None

    gateway = config.gateway
    if gateway.require_auth and not gateway.api_keys and not gateway.token_secret:
        raise fail("gateway.require_auth", "no client could connect: set gateway.api_keys or "
                   "gateway.token_secret too")


# -- showing ---------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password shown as ``********``, like every secret here
    (the rule: :func:`fastflow.obs.redact.mask_url`)."""
    return redact.mask_url(url, MASK)


def _mask_api_keys(keys: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, name in keys.items():
        shown = (key[:2] if len(key) >= 8 else "") + "…"
        base, n = shown, 1
        while shown in out:  # two keys with the same first characters
            n += 1
            shown = f"{base}{n}"
        out[shown] = name
    return out


def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML wants DEL escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _comment(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def render_toml(config: Config, *, sources: bool = True) -> str:
    """The masked effective configuration as TOML (:meth:`Config.masked`);
    with ``sources`` each value is followed by a comment naming where it came
    from. The first line is a comment naming the file read."""
    if config.source_file is None:
        lines = ["# no configuration file; defaults and environment"]
    else:
        lines = [f"# configuration file: {_comment(config.source_file)}"]
    for section, table in config.masked().items():
        lines += ["", f"[{section}]"]
        for name, value in table.items():
            line = f"{name} = {_toml_value(value)}"
            if sources:
                line += f"  # {_comment(config.sources.get(f'{section}.{name}', DEFAULT))}"
            lines.append(line)
    return "\n".join(lines) + "\n"
