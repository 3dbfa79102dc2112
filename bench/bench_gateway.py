"""The WebSocket gateway's fan-out, short form: a few seconds of live load
through the real processes, with sanity checks only.

The full benchmark, its scenarios and its results table are
``bench/gateway_load.py`` (bench/results/gateway.md); this runs the same
machinery small enough for ``make test``: an embedded redis-server, ``python
-m fastflow gateway`` as a subprocess, the plant's frames PUBLISHed at
:data:`FLUSH_HZ` flushes/s of :data:`TICKS` full ticks, and :data:`CLIENTS`
raw WebSocket clients (one worker process), each subscribed to
:data:`WATCH` random instruments of the 404. Every client checks every
frame: every client got frames, no tick of a symbol off its watchlist, seqs
increasing per symbol. The figures (frames/s, deliveries/s, publish -> client
latency, the gateway's own fan-out histogram, RSS per client, CPU) go to
``extra_info``; nothing asserts a speed, the machine is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.gateway_load import Publisher, Run, raise_fd_limit
from fastflow.store.embedded import EmbeddedRedis

CLIENTS = 150
WATCH = 50
FLUSH_HZ = 20.0
TICKS = 200
SECONDS = 3.0


@pytest.fixture(scope="module")
def feed() -> Iterator[tuple[EmbeddedRedis, Publisher]]:
    raise_fd_limit()
    with EmbeddedRedis() as server:
        publisher = Publisher(server.url)
        publisher.load()
        try:
            yield server, publisher
        finally:
            publisher.close()


def bench_gateway_fanout(benchmark: Any, feed: tuple[EmbeddedRedis, Publisher]) -> None:
    server, publisher = feed
    assert server.process is not None
    run = Run(publisher, server.process.pid, clients=CLIENTS, flush_hz=FLUSH_HZ, ticks=TICKS, duration=SECONDS,
              watch=WATCH, workers=1, full_clients=CLIENTS, sample_every=1, pin=False, connect_timeout=30.0,
              log=lambda message: None)
    f = benchmark.pedantic(run.execute, rounds=1, iterations=1)
    lat, hop, checks = f["latency"], f["gateway_hop"], f["checks"]
    benchmark.extra_info.update({
        "clients": f["connected"], "watchlist": WATCH, "flushes_per_s": round(f["flush_hz"], 1),
        "ticks_per_flush": TICKS, "frames_per_s": round(f["frames_per_s"]),
        "deliveries_per_s": round(f["deliveries_per_s"]), "mb_per_s": round(f["mb_per_s"], 1),
        "latency_p50_ms": lat["p50_ms"], "latency_p99_ms": lat["p99_ms"],
        "gateway_hop_p99_le_ms": hop["p99_le_ms"], "gateway_hop_mean_ms": hop["mean_ms"],
        "conflations": f["conflations"], "gateway_rss_kib_per_client": f["gateway_rss_kib_per_client"],
        "gateway_cpu_percent": f["cpu_percent"]["gateway"], "frames_checked": checks["scanned"],
    })
    print(f"\ngateway: {f['connected']} clients x {WATCH} symbols, {f['flush_hz']:.0f} flushes/s x {TICKS} ticks: "
          f"{f['frames_per_s']:,.0f} frames/s, {f['deliveries_per_s']:,.0f} deliveries/s, "
          f"{f['mb_per_s']:.1f} MB/s; latency p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms; "
          f"gateway hop p99 <= {hop['p99_le_ms']:g} ms (mean {hop['mean_ms']:.2f} ms); "
          f"{f['conflations']} conflations; gateway CPU {f['cpu_percent']['gateway']:.0f}%")
    assert f["connected"] == CLIENTS, f["connect_failures"]
    assert checks["no_frames"] == 0 and f["per_client_frames_per_s"]["min"] > 0  # every client got frames
    assert checks["foreign"] == 0  # no tick of a symbol off the client's watchlist
    assert checks["seq_errors"] == 0  # each symbol's ticks in seq order
    assert checks["scan_mismatch"] == 0 and checks["scanned"] > 0
    assert not checks["other_frames"] and not checks["closes"] and not checks["lost"]
    assert f["frames_received"] > 0 and f["ticks_received"] > 0
