"""fastflow.obs.metrics: weighted histograms, one family under one header, and the
reading side (parse, quantile over a window, fetch) on known renderings."""

from __future__ import annotations

import http.server
import math
import threading
from collections.abc import Iterator

import pytest

from fastflow.obs import metrics


def test_observe_with_a_weight_counts_n_observations() -> None:
    h = metrics.Histogram("x_seconds", "x", (0.001, 0.01, 0.1))
    h.observe(0.0005)
    h.observe(0.005, 200)  # one flush of 200 ticks
    h.observe_ns(50_000_000, 3)
    h.observe(7.0, 2)
    assert h.counts == [1, 200, 3, 2]
    assert h.count == 206
    assert h.sum == pytest.approx(0.0005 + 200 * 0.005 + 3 * 0.05 + 2 * 7.0)
    h.observe(0.01, 0)  # a weight of 0 changes nothing
    assert h.count == 206 and h.counts == [1, 200, 3, 2]
    assert h.quantile(0.5) == 0.01  # the old upper-bound estimate, weighted too
    lines = h.render()
    assert 'fastflow_x_seconds_bucket{le="0.01"} 201' in lines
    assert 'fastflow_x_seconds_bucket{le="+Inf"} 206' in lines
    assert "fastflow_x_seconds_count 206" in lines


def test_buckets_must_be_ascending() -> None:
    with pytest.raises(ValueError):
        metrics.Histogram("x", "x", (0.1, 0.01))
    with pytest.raises(ValueError):
        metrics.Histogram("x", "x", ())


def test_age_buckets_resolve_a_few_milliseconds() -> None:
    bounds = metrics.AGE_BUCKETS
    assert bounds[0] == 0.00005 and bounds[-1] == 5.0 and list(bounds) == sorted(bounds)
    for ms in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 75, 100):
        assert ms / 1e3 in bounds
    with pytest.raises(ValueError, match="unknown stage"):
        metrics.tick_age("queued")


def test_a_family_renders_under_one_header() -> None:
    decoded, redis = metrics.tick_age("decoded"), metrics.tick_age("redis")
    decoded.observe(0.0002, 10)
    redis.observe(0.0031, 10)
    lines = metrics.family([decoded, redis])
    assert [line for line in lines if line.startswith("#")] == [
        f"# HELP fastflow_tick_age_seconds {metrics.TICK_AGE_HELP}", "# TYPE fastflow_tick_age_seconds histogram"]
    assert 'fastflow_tick_age_seconds_bucket{stage="decoded",le="0.00025"} 10' in lines
    assert 'fastflow_tick_age_seconds_bucket{stage="redis",le="0.003"} 0' in lines
    assert 'fastflow_tick_age_seconds_bucket{stage="redis",le="0.004"} 10' in lines
    assert 'fastflow_tick_age_seconds_count{stage="redis"} 10' in lines
    assert metrics.family([]) == []


KNOWN = """\
# HELP fastflow_tick_age_seconds Age
# TYPE fastflow_tick_age_seconds histogram
fastflow_tick_age_seconds_bucket{stage="sent",le="0.001"} 10
fastflow_tick_age_seconds_bucket{stage="sent",le="0.002"} 60
fastflow_tick_age_seconds_bucket{stage="sent",le="0.005"} 90
fastflow_tick_age_seconds_bucket{stage="sent",le="0.01"} 100
fastflow_tick_age_seconds_bucket{stage="sent",le="+Inf"} 100
fastflow_tick_age_seconds_sum{stage="sent"} 0.2
fastflow_tick_age_seconds_count{stage="sent"} 100
fastflow_tick_age_seconds_bucket{le="+Inf",stage="gateway"} 4
fastflow_tick_age_seconds_bucket{le="0.001",stage="gateway"} 4
fastflow_plain_total 3
fastflow_with_timestamp 2.5 1700000000000
fastflow_odd{reason="a \\"quoted\\" }, brace"} 7
fastflow_inf +Inf
not a sample line
broken{le="1" 3
"""


def test_parse_a_known_rendering() -> None:
    series = metrics.parse(KNOWN.encode())
    assert series['fastflow_tick_age_seconds_bucket{stage="sent",le="0.002"}'] == 60
    assert series['fastflow_tick_age_seconds_count{stage="sent"}'] == 100
    assert series["fastflow_plain_total"] == 3
    assert series["fastflow_with_timestamp"] == 2.5
    assert series['fastflow_odd{reason="a \\"quoted\\" }, brace"}'] == 7
    assert series["fastflow_inf"] == math.inf
    assert not any(key.startswith(("#", "not", "broken")) for key in series)
    assert metrics.split_series('fastflow_odd{reason="a \\"quoted\\" }, brace"}') == \
        ("fastflow_odd", {"reason": 'a "quoted" }, brace'})
    assert metrics.parse(KNOWN) == series  # str or bytes


def test_quantile_on_a_known_rendering() -> None:
    after = metrics.parse(KNOWN)
    name = "fastflow_tick_age_seconds"
    # 100 observations: 10 <= 1 ms, 50 in (1, 2], 30 in (2, 5], 10 in (5, 10]
    assert metrics.quantile(after, name, 0.5, labels='stage="sent"') == pytest.approx(0.0018)
    assert metrics.quantile(after, name, 0.1, labels='stage="sent"') == pytest.approx(0.001)
    assert metrics.quantile(after, name, 0.05, labels='stage="sent"') == pytest.approx(0.0005)  # from 0
    assert metrics.quantile(after, name, 0.99, labels='stage="sent"') == pytest.approx(0.0095)
    assert metrics.quantile(after, name, 0.99, labels='stage="sent"', interpolate=False) == 0.01
    assert metrics.quantile(after, name, 1.0, labels='stage="sent"') == pytest.approx(0.01)
    # labels in another order; the other stage is not mixed in
    assert metrics.quantile(after, name, 0.5, labels='stage="gateway"') == pytest.approx(0.0005)
    assert metrics.quantile(after, name, 0.5, labels=' stage="gateway" ') == pytest.approx(0.0005)
    # no such histogram, or labels that match nothing
    assert metrics.quantile(after, "fastflow_nope", 0.5) is None
    assert metrics.quantile(after, name, 0.5) is None
    assert metrics.quantile(after, name, 0.5, labels='stage="decoded"') is None
    with pytest.raises(ValueError):
        metrics.quantile(after, name, 99, labels='stage="sent"')


def test_quantile_over_the_window_between_two_scrapes() -> None:
    h = metrics.tick_age("sent")
    h.observe(0.0004, 1000)  # before the window: fast
    before = metrics.parse(metrics.render([metrics.family([h])]))
    h.observe(0.0045, 99)  # the window: 99 ticks at 4.5 ms, 1 at 40 ms
    h.observe(0.04)
    after = metrics.parse(metrics.render([metrics.family([h])]))
    name, labels = "fastflow_tick_age_seconds", 'stage="sent"'
    # everything: 1000 in (0.25, 0.5] ms, 99 in (4, 5] ms, 1 in (30, 50] ms
    assert metrics.quantile(after, name, 0.5, labels=labels) == pytest.approx(0.00025 + 0.00025 * 550 / 1000)
    # the window only: 99 in (4, 5] ms, 1 in (30, 50] ms
    assert metrics.quantile(after, name, 0.5, labels=labels, before=before) == pytest.approx(0.004 + 0.001 * 50 / 99)
    assert metrics.quantile(after, name, 0.999, labels=labels, before=before) == pytest.approx(0.03 + 0.02 * 0.9)
    assert metrics.quantile(before, name, 0.5, labels=labels, before=before) is None  # an empty window
    assert metrics.quantile(after, name, 0.5, labels=labels, before=None) == \
        metrics.quantile(after, name, 0.5, labels=labels, before={})
    # counts that went down (a restarted process): the window is everything in `after`
    assert metrics.quantile(before, name, 0.5, labels=labels, before=after) == \
        metrics.quantile(before, name, 0.5, labels=labels)


def test_quantile_in_the_inf_bucket_is_inf() -> None:
    h = metrics.tick_age("decoded")
    h.observe(0.001, 9)
    h.observe(60.0)  # a replayed capture's ticks are hours old
    after = metrics.parse(metrics.render([h.render()]))
    name, labels = "fastflow_tick_age_seconds", 'stage="decoded"'
    assert metrics.quantile(after, name, 0.95, labels=labels) == math.inf
    assert metrics.quantile(after, name, 0.95, labels=labels, interpolate=False) == math.inf
    assert metrics.quantile(after, name, 0.5, labels=labels) == pytest.approx(0.00075 + 0.00025 * 5 / 9)


def test_bucket_quantile_edges() -> None:
    assert metrics.bucket_quantile([1.0, 2.0], [0, 0, 0], 0.5) is None
    assert metrics.bucket_quantile([1.0, 2.0], [0, 4, 0], 0.0) == 1.0  # the lower edge of the first non-empty
    assert metrics.bucket_quantile([1.0, 2.0], [0, 4, 0], 1.0) == 2.0
    assert metrics.bucket_quantile([1.0, 2.0], [0, 0, 3], 0.5) == math.inf


def test_a_window_reports_each_interval() -> None:
    h = metrics.tick_age("redis")
    window = h.window()
    assert window.quantile(0.99) is None and metrics.window_ms(window, 0.99) == "-"
    h.observe(0.0035, 100)
    assert metrics.window_ms(window, 0.99) == "3.99 ms"  # 3..4 ms, interpolated
    assert window.quantile(0.99) is None  # nothing since
    h.observe(0.0004, 10)
    h.observe(9.0)
    assert window.advance() == [0, 0, 0, 10] + [0] * (len(h.bounds) - 4) + [1]
    h.observe(9.0)
    assert metrics.window_ms(window, 0.99) == "> 5000 ms"


@pytest.fixture
def served() -> Iterator[str]:
    body = KNOWN.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", metrics.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch(served: str) -> None:
    assert metrics.fetch(f"{served}/metrics", 5.0) == metrics.parse(KNOWN)
    with pytest.raises(OSError):
        metrics.fetch(f"{served}/nope", 5.0)
