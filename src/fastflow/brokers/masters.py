"""The day's instrument master, downloaded from the broker and cached for the day.

When the configuration names no ``broker.instruments`` and the plant talks to a
real broker (credentials, and either the broker's own ticker or a REST URL set:
:func:`wants_download`), the plant takes the broker's own dump of the day:

* Kite: ``GET {broker.api_url}/instruments`` (a gzipped CSV, built once a day),
  with ``X-Kite-Version: 3`` and the session's ``Authorization``;
* Upstox: ``GET https://assets.upstox.com/market-quote/instruments/exchange/complete.json.gz``.

``broker.instruments_url`` replaces either URL (a simulator's). The file is kept
as ``<state dir>/instruments/<broker>-<day>.<csv|json>[.gz]`` and reused for the
rest of that day; the next day it is downloaded again and the older days' files
are removed. The *day* is the dump's: the IST date, counted from
the day's rollover (``plant.rollover``, default :data:`PUBLISHED`: 08:30 IST; Kite
asks clients to fetch the dump "once a day, ideally at around 08:30 AM"; Upstox's
refresh time is not documented), so a plant started at 07:00 uses (and names) the
previous day's dump and the first start after 08:30 fetches the new one; a plant
that runs through the rollover loads the new one then (:func:`load_master`, called
again by the plant's rollover). A download is written to a temporary
file, loaded (so a truncated or malformed answer never enters the cache), then
renamed into place.

A failed download is :class:`MasterDownloadError`, one line naming the URL and
the reason (with the path of an older cached day, if any, to run with by hand).

:func:`load_master` is the one place that says where the plant's master comes from:
the day's download (above), the file ``broker.instruments`` names (read again each
time, so a file replaced in place gives the new day's), or a synthetic universe the
caller supplies for a day (the command line's; nothing under ``brokers/`` imports
``sim/``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastflow.brokers import get as broker_spec
from fastflow.brokers import loopback
from fastflow.brokers.kite import constants as kite
from fastflow.brokers.tokens import IST, state_dir
from fastflow.brokers.upstox import constants as upstox
from fastflow.config import PlantSection
from fastflow.errors import FastflowError

if TYPE_CHECKING:
    from fastflow.config import BrokerSection
    from fastflow.instruments import Instruments

#: The time of day (IST) from which the day's dump counts as published: the default
#: of ``plant.rollover`` (08:30, Kite's advice), defined once in the configuration.
PUBLISHED = PlantSection().rollover_time
_GZIP_MAGIC = b"\x1f\x8b"


class MasterDownloadError(FastflowError, OSError):
    """The day's instrument master could not be downloaded (or what came is not one)."""


def wants_download(broker: BrokerSection) -> bool:
    """True when the plant should take the day's master from the broker: no
    ``broker.instruments``, credentials, and the broker's own ticker or a REST URL
    (``api_url``/``instruments_url``) set. A simulator's ticker URL alone keeps the
    synthetic universe that simulator serves."""
    return (not broker.instruments and broker.live
            and (not broker.url or bool(broker.api_url) or bool(broker.instruments_url)))


def master_url(broker: BrokerSection) -> str:
    """Where the day's master of ``broker`` is downloaded from."""
    if broker.instruments_url:
        return broker.instruments_url
    if broker.name == "kite":
        return (broker.api_url or kite.API_URL).rstrip("/") + kite.INSTRUMENTS_PATH
    return upstox.INSTRUMENTS_URL


def master_day(now: dt.datetime | None = None, published: dt.time = PUBLISHED) -> dt.date:
    """The day whose dump is current at ``now``: the IST date, the previous one before
    ``published`` (IST; the day's rollover)."""
    local = (now or dt.datetime.now(dt.timezone.utc)).astimezone(IST)
    return local.date() if local.time() >= published else local.date() - dt.timedelta(days=1)


def cache_dir(broker: BrokerSection) -> str:
    return os.path.join(state_dir(broker.state_dir), "instruments")


def _cached(directory: str, name: str) -> dict[dt.date, str]:
    """The cached masters of broker ``name`` by day."""
    found: dict[dt.date, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(directory):
            match = re.fullmatch(rf"{re.escape(name)}-(\d{{4}}-\d{{2}}-\d{{2}})\.(csv|json)(\.gz)?", entry)
            if match:
                with contextlib.suppress(ValueError):
                    found[dt.date.fromisoformat(match.group(1))] = os.path.join(directory, entry)
    return found


def _headers(broker: BrokerSection, access_token: str) -> dict[str, str]:
    headers = {"Accept-Encoding": "gzip", "User-Agent": "fastflow"}
    if broker.name == "kite":
        headers["X-Kite-Version"] = kite.API_VERSION
        if broker.api_key and access_token:
            headers["Authorization"] = f"token {broker.api_key}:{access_token}"
    return headers


def day_master(broker: BrokerSection, *, access_token: str = "", now: dt.datetime | None = None,
               published: dt.time = PUBLISHED,
               report: Callable[[str], object] | None = None) -> tuple[Instruments, str]:
    """The day's instrument master of ``broker`` and its cached path: the cached
    file of the day (:func:`master_day` of ``now`` and ``published``), else a fresh
    download (blocking). ``access_token`` defaults to ``broker.access_token``. Raises
    :class:`MasterDownloadError`, or :class:`~fastflow.instruments.InstrumentError`
    for a cached file that no longer loads."""
    spec = broker_spec(broker.name)
    day = master_day(now, published)
    directory = cache_dir(broker)
    cached = _cached(directory, spec.name)
    if day in cached:
        instruments = spec.load_instruments(cached[day])
        if report is not None:
            report(f"instrument master of {day}: {len(instruments):,} instruments from {cached[day]} (cached)")
        return instruments, cached[day]
    url = master_url(broker)
    older = max((d for d in cached if d < day), default=None)
    fallback = f" (an older copy: {cached[older]}; set broker.instruments to it to run with it)" if older else ""
    try:
        status, _, body = loopback.request(url, headers=_headers(broker, access_token or broker.access_token),
                                           timeout=60.0)
    except OSError as exc:
        raise MasterDownloadError(f"cannot download the {spec.name} instrument master from {url}: {exc}"
                                  f"{fallback}") from None
    if status != 200:
        detail = " ".join(body[:200].decode("utf-8", "replace").split())
        raise MasterDownloadError(f"cannot download the {spec.name} instrument master from {url}: HTTP {status}"
                                  f"{': ' + detail if detail else ''}{fallback}")
    suffix = spec.instruments_suffix + (".gz" if body[:2] == _GZIP_MAGIC else "")
    path = os.path.join(directory, f"{spec.name}-{day.isoformat()}.{suffix}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{spec.name}-", suffix="." + suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        from fastflow.instruments import InstrumentError

        try:
            instruments = spec.load_instruments(temporary)
        except InstrumentError as exc:
            raise MasterDownloadError(f"the {spec.name} instrument master from {url} does not load: "
                                      f"{exc}{fallback}") from None
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    for other, stale in cached.items():  # a day is kept until the next one is in
        if other != day:
            with contextlib.suppress(OSError):
                os.unlink(stale)
    if report is not None:
        report(f"instrument master of {day}: {len(instruments):,} instruments downloaded from {url} to {path}")
    return instruments, path


def load_master(broker: BrokerSection, *, access_token: str = "", now: dt.datetime | None = None,
                published: dt.time = PUBLISHED, synthetic: Callable[[dt.date], Instruments] | None = None,
                report: Callable[[str], object] | None = None) -> Instruments:
    """The instrument master the configuration names for the day current at ``now``
    (:func:`master_day` with ``published``, the day's rollover): the day's download
    when :func:`wants_download` (:func:`day_master`), else the file
    ``broker.instruments`` names (read again, so a file replaced in place gives the
    new day's), else ``synthetic(day)`` (the simulator's universe of that day, which
    the command line supplies). The plant calls it at start-up and again at each
    rollover. Blocking. Raises :class:`MasterDownloadError`,
    :class:`~fastflow.instruments.InstrumentError` or :class:`OSError`."""
    if wants_download(broker):
        return day_master(broker, access_token=access_token, now=now, published=published, report=report)[0]
    if not broker.instruments and synthetic is not None:
        return synthetic(master_day(now, published))
    return broker_spec(broker.name).load_instruments(broker.instruments)
