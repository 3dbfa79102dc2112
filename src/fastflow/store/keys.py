"""The Redis key schema (docs/redis.md): every key of a partition shares one
hash tag, so on a Redis Cluster a partition lives on one slot.

A partition is what one plant writes: its broker's instruments (default
partition name: the broker, ``kite`` or ``upstox``). With the default prefix
``ff`` the Kite plant's keys are::

    ff:{kite}:latest        hash   "EXCHANGE:TRADINGSYMBOL" -> msgpack tick map (TTL, refreshed per flush)
    ff:{kite}:ticks         stream one entry per flush, field "t" = msgpack array of the flush's ticks,
                                   trimmed with MAXLEN ~
    ff:{kite}:live          pub/sub channel (SPUBLISH on a Redis 7 cluster): one message per flush,
                                   the same msgpack array
    ff:{kite}:instruments   hash   "EXCHANGE:TRADINGSYMBOL" -> msgpack map of the instrument row
    ff:{kite}:ids           hash   broker id (Kite token / Upstox instrument_key) -> symbol; on Upstox
                                   also each derivative's Kite-style symbol (NFO:NIFTY26DECFUT)
    ff:{kite}:meta          hash   broker, instrument count, writer start time, flushes, dropped entries
    ff:{kite}:flow          stream one entry per options-flow event, field "e" = its msgpack map,
                                   trimmed by time (XADD MINID ~) and by bytes (XTRIM MAXLEN ~)
    ff:{kite}:flowlive      pub/sub channel: one message per flush with events, their msgpack array
"""

from __future__ import annotations

import dataclasses
import re

from fastflow.config import BrokerSection, RedisSection

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Keys:
    """The keys of one partition (see the module docstring)."""

    partition: str = BrokerSection.name
    prefix: str = RedisSection.prefix

    def __post_init__(self) -> None:
        for what, value in (("partition", self.partition), ("prefix", self.prefix)):
            if not _NAME.fullmatch(value) or "{" in value or "}" in value:
                raise ValueError(f"{what} {value!r}: 1-64 characters of letters, digits, '_', '.', ':' or '-'")

    @property
    def tag(self) -> str:
        """``prefix:{partition}``: everything before the key's own name."""
        return f"{self.prefix}:{{{self.partition}}}"

    @property
    def latest(self) -> str:
        return f"{self.tag}:latest"

    @property
    def ticks(self) -> str:
        return f"{self.tag}:ticks"

    @property
    def live(self) -> str:
        return f"{self.tag}:live"

    @property
    def instruments(self) -> str:
        return f"{self.tag}:instruments"

    @property
    def ids(self) -> str:
        return f"{self.tag}:ids"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    @property
    def flow(self) -> str:
        return f"{self.tag}:flow"

    @property
    def flowlive(self) -> str:
        return f"{self.tag}:flowlive"

    def all(self) -> list[str]:
        """Every key of the partition (for cleanup and tests)."""
        return [self.latest, self.ticks, self.instruments, self.ids, self.meta, self.flow]
