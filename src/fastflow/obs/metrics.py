"""Prometheus text exposition (format 0.0.4) without a client library:
counters, gauges and fixed-bucket histograms, every series prefixed
``fastflow_``; and the other side, for status lines and benchmarks: parsing
a scrape (:func:`parse`, :func:`fetch`) and histogram quantiles over the
window between two scrapes (:func:`quantile`).

An observation is one ``bisect`` and a few additions, cheap enough for once
per frame; nothing here runs per tick.

Latency accounting (docs/ingest.md, docs/protocol.md): one histogram family,
``fastflow_tick_age_seconds{stage="..."}``, the age of a tick at each stage
of its way, measured from its ``receive_time_ns`` with ``time.time_ns()``:
``decoded`` and ``redis`` in the plant, ``gateway`` and ``sent`` in the
gateway (:data:`STAGES`, :func:`tick_age`).
"""

from __future__ import annotations

import bisect
import math
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence

#: Latency buckets in seconds: 25 µs to 2.5 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)

#: Tick-age buckets in seconds: 50 µs to 5 s, fine between 0.25 and 100 ms so
#: that a p99 around a few ms is resolved to a fraction of a millisecond.
AGE_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.006,
    0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

#: The tick-age histogram family and its stages, in the order a tick passes them.
TICK_AGE = "tick_age_seconds"
STAGES: tuple[str, ...] = ("decoded", "redis", "gateway", "sent")
#: The stages the plant observes; the gateway observes the others.
PLANT_STAGES: tuple[str, ...] = ("decoded", "redis")
TICK_AGE_HELP = ("Age of a tick (now - its receive_time_ns) when it reaches a stage: decoded (plant: flush "
                 "handed to the consumers), redis (plant: Redis acknowledged the flush's writes), gateway "
                 "(gateway: published frame received), sent (gateway: every changed client's frame written "
                 "to its socket); weighted by ticks (client frames for sent)")


class Histogram:
    """Cumulative-bucket histogram of seconds, with quantile estimates for status lines.

    ``labels`` (``'stage="decoded"'``) are this histogram's own label pairs,
    rendered on every series; histograms of one family share ``name``, and
    :func:`family` renders them under one ``# HELP``/``# TYPE`` header."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS,
                 labels: str = "") -> None:
        self.name = name
        self.help = help_text
        self.bounds = list(buckets)
        if self.bounds != sorted(set(self.bounds)) or not self.bounds:
            raise ValueError("buckets must be distinct and ascending")
        self.labels = labels
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float, n: int = 1) -> None:
        """``n`` observations of ``seconds`` (a weight: e.g. the ticks of one flush)."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += n
        self.sum += seconds * n
        self.count += n

    def observe_ns(self, ns: int, n: int = 1) -> None:
        self.observe(ns * 1e-9, n)

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

    def window(self) -> Window:
        """A :class:`Window` over this histogram, starting now."""
        return Window(self)

    def render(self, labels: str | None = None, *, header: bool = True) -> list[str]:
        """The exposition lines; ``labels`` overrides the histogram's own,
        ``header=False`` leaves out ``# HELP`` and ``# TYPE`` (see :func:`family`)."""
        labels = self.labels if labels is None else labels
        name = f"fastflow_{self.name}"
        lines = [f"# HELP {name} {self.help}", f"# TYPE {name} histogram"] if header else []
        sep = "," if labels else ""
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            cumulative += n
            lines.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {cumulative}')
        cumulative += self.counts[-1]
        lines.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {cumulative}')
        suffix = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{suffix} {self.sum:.9g}")
        lines.append(f"{name}_count{suffix} {self.count}")
        return lines


class Window:
    """Quantiles of a :class:`Histogram` over the interval since the previous
    :meth:`advance` (or since the window was made): for status lines."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self._last = list(histogram.counts)

    def advance(self) -> list[int]:
        """The observations per bucket since the previous call (the last one is +Inf)."""
        now = list(self.histogram.counts)
        delta = [a - b for a, b in zip(now, self._last, strict=True)]
        self._last = now
        return delta

    def quantile(self, q: float) -> float | None:
        """Advance, and the quantile ``q`` of the interval (None when it had no observation)."""
        return bucket_quantile(self.histogram.bounds, self.advance(), q)


def window_ms(window: Window, q: float) -> str:
    """:meth:`Window.quantile` for a status line: ``"1.25 ms"``; ``"-"`` when the
    interval had no observation; ``"> 5000 ms"`` past the largest bucket."""
    value = window.quantile(q)
    if value is None:
        return "-"
    if math.isinf(value):
        return f"> {window.histogram.bounds[-1] * 1e3:g} ms"
    return f"{value * 1e3:.2f} ms"


def tick_age(stage: str) -> Histogram:
    """A new histogram of the ``fastflow_tick_age_seconds`` family for ``stage``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    return Histogram(TICK_AGE, TICK_AGE_HELP, AGE_BUCKETS, labels=f'stage="{stage}"')


def family(histograms: Iterable[Histogram]) -> list[str]:
    """Histograms of one family (same name, distinct labels) under one header."""
    lines: list[str] = []
    for i, histogram in enumerate(histograms):
        lines += histogram.render(header=i == 0)
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

#: The Content-Type of :func:`render`'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- reading a scrape -------------------------------------------------------------------


def parse(text: str | bytes) -> dict[str, float]:
    """A scrape as ``{series: value}``; a series is the sample's name with its
    labels as written (``'fastflow_tick_age_seconds_bucket{stage="sent",le="0.001"}'``).
    Comments, blank lines and lines that are not a sample are skipped; a
    trailing timestamp is ignored."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            end = _label_end(line, brace)
            if end < 0:
                continue
            series, rest = line[:end + 1], line[end + 1:]
        else:
            if space == -1:
                continue
            series, rest = line[:space], line[space:]
        fields = rest.split()
        if not fields or len(fields) > 2:
            continue
        try:
            out[series] = float(fields[0])
        except ValueError:
            continue
    return out


def _label_end(line: str, start: int) -> int:
    """The index of the ``}`` closing the label set opened at ``start``, or -1."""
    quoted = escaped = False
    for i in range(start + 1, len(line)):
        c = line[i]
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = quoted
        elif c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return i
    return -1


def split_series(series: str) -> tuple[str, dict[str, str]]:
    """``'name{a="x",b="y"}'`` -> ``("name", {"a": "x", "b": "y"})`` (values unescaped)."""
    brace = series.find("{")
    if brace == -1:
        return series, {}
    labels: dict[str, str] = {}
    body = series[brace + 1:series.rfind("}")]
    i = 0
    while i < len(body):
        eq = body.find("=", i)
        if eq == -1 or eq + 1 >= len(body) or body[eq + 1] != '"':
            break
        key = body[i:eq].strip().lstrip(",").strip()
        value: list[str] = []
        j = eq + 2
        while j < len(body) and body[j] != '"':
            if body[j] == "\\" and j + 1 < len(body):
                j += 1
                value.append({"n": "\n"}.get(body[j], body[j]))
            else:
                value.append(body[j])
            j += 1
        labels[key] = "".join(value)
        i = j + 1
        while i < len(body) and body[i] in ", ":
            i += 1
    return series[:brace], labels


def quantile(after: Mapping[str, float], name: str, q: float, *, labels: str = "",
             before: Mapping[str, float] | None = None, interpolate: bool = True) -> float | None:
    """Quantile ``q`` (0..1, in the histogram's unit) of the histogram ``name``
    (the family's full name, ``"fastflow_tick_age_seconds"``) with the label
    pairs ``labels`` (``'stage="sent"'``; their order does not matter) over
    the window between the scrapes ``before`` and ``after`` (:func:`parse`),
    or over everything in ``after`` when ``before`` is None (or when a count
    went down: the process restarted in between).

    Linear interpolation inside the bucket holding the rank (from 0 for the
    first bucket), or with ``interpolate=False`` that bucket's upper bound.
    ``math.inf`` when the rank falls in the ``+Inf`` bucket; None when the
    window has no observation."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, got {q}")
    want = split_series("x{" + labels + "}")[1] if labels else {}
    now = _buckets(after, name, want)
    if not now:
        return None
    if before:
        then = _buckets(before, name, want)
        if all(now[b] >= then.get(b, 0.0) for b in now):
            now = {b: now[b] - then.get(b, 0.0) for b in now}
    bounds = sorted(now)
    cumulative = [now[b] for b in bounds]
    counts = [c - p for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
    if math.isinf(bounds[-1]):
        bounds.pop()
    else:  # no +Inf bucket (not ours): nothing above the largest bound
        counts.append(0.0)
    return bucket_quantile(bounds, counts, q, interpolate=interpolate)


def _buckets(scrape: Mapping[str, float], name: str, want: Mapping[str, str]) -> dict[float, float]:
    """``{le: cumulative count}`` of the buckets of ``name`` whose other labels are ``want``."""
    prefix = f"{name}_bucket"
    out: dict[float, float] = {}
    for series, value in scrape.items():
        if not series.startswith(prefix + "{"):
            continue
        base, found = split_series(series)
        le = found.pop("le", None)
        if base != prefix or le is None or found != want:
            continue
        try:
            out[float(le)] = value
        except ValueError:
            continue
    return out


def stage_quantile(after: Mapping[str, Mapping[str, float]], stage: str, q: float, *,
                   before: Mapping[str, Mapping[str, float]] | None = None) -> float | None:
    """Quantile ``q`` of the tick age at ``stage`` over a window, from scrapes of
    both processes keyed ``"plant"`` and ``"gateway"`` (the plant observes
    :data:`PLANT_STAGES`, the gateway the rest)."""
    process = "plant" if stage in PLANT_STAGES else "gateway"
    earlier = before.get(process) if before else None
    return quantile(after[process], f"fastflow_{TICK_AGE}", q, labels=f'stage="{stage}"', before=earlier or None)


def bucket_quantile(bounds: Sequence[float], counts: Sequence[float], q: float, *,
                    interpolate: bool = True) -> float | None:
    """Quantile ``q`` of observations per bucket: ``counts[i]`` (not cumulative)
    fell at or under ``bounds[i]`` and over the bound before it; one more count,
    the last, is the ``+Inf`` bucket. See :func:`quantile`."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    last = None
    for i, n in enumerate(counts):
        if n > 0:
            last = i
            if seen + n >= rank:
                break
        seen += n
        if i < len(bounds):
            lower = bounds[i]
    else:  # rounding: the rank is past the last observation
        if last is None:
            return None
        i, n = last, counts[last]
        seen, lower = total - n, (bounds[last - 1] if last else 0.0)
    if i >= len(bounds):
        return math.inf
    upper = bounds[i]
    if not interpolate:
        return upper
    return lower + (upper - lower) * min(1.0, max(0.0, rank - seen) / n)


def fetch(url: str, timeout: float = 5.0) -> dict[str, float]:
    """GET ``url`` (a ``/metrics`` endpoint, on loopback: no proxy) and :func:`parse` it.
    Raises ``OSError`` (``urllib.error.URLError``, ``HTTPError``) when it cannot."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        body: bytes = response.read()
    return parse(body)
