"""Prometheus text exposition (format 0.0.4) without a client library:
counters, gauges and fixed-bucket histograms, every series prefixed
``fastflow_``.

An observation is one ``bisect`` and two additions, cheap enough for once per
frame; nothing here runs per tick.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence

#: Latency buckets in seconds: 25 µs to 2.5 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)


class Histogram:
    """Cumulative-bucket histogram of seconds, with quantile estimates for status lines."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.help = help_text
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def observe_ns(self, ns: int) -> None:
        self.observe(ns * 1e-9)

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding quantile ``q`` (0 when empty)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def render(self, labels: str = "") -> list[str]:
        lines = [f"# HELP fastflow_{self.name} {self.help}", f"# TYPE fastflow_{self.name} histogram"]
        sep = "," if labels else ""
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            cumulative += n
            lines.append(f'fastflow_{self.name}_bucket{{{labels}{sep}le="{bound:g}"}} {cumulative}')
        cumulative += self.counts[-1]
        lines.append(f'fastflow_{self.name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}')
        suffix = f"{{{labels}}}" if labels else ""
        lines.append(f"fastflow_{self.name}_sum{suffix} {self.sum:.9g}")
        lines.append(f"fastflow_{self.name}_count{suffix} {self.count}")
        return lines


def counter(name: str, help_text: str, value: float | dict[str, float], label: str = "") -> list[str]:
    """A counter; a dict value renders one series per ``label`` value."""
    return _series("counter", name, help_text, value, label)


def gauge(name: str, help_text: str, value: float | dict[str, float], label: str = "") -> list[str]:
    return _series("gauge", name, help_text, value, label)


def _series(kind: str, name: str, help_text: str, value: float | dict[str, float], label: str) -> list[str]:
    full = f"fastflow_{name}"
    lines = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    if isinstance(value, dict):
        for key, v in sorted(value.items()):
            lines.append(f'{full}{{{label}="{_escape(key)}"}} {v:g}')
    else:
        lines.append(f"{full} {value:g}")
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(sections: Iterable[list[str]]) -> bytes:
    return ("\n".join(line for section in sections for line in section) + "\n").encode()


Collector = Callable[[], Iterable[list[str]]]
