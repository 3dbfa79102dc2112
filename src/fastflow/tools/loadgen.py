"""Load-generating WebSocket clients for the benchmarks (``fastflow bench e2e``,
``bench/gateway_load.py``): many msgpack clients per process, cheap enough that
the gateway, not the generator, is what gets measured.

A client (:class:`WsClient`) does the handshake by hand, subscribes to its
watchlist, parses server frames from their headers, and scans ``ticks``
frames for each tick's ``symbol``, ``seq`` and ``receive_time_ns`` with one
regular expression over the msgpack bytes (:data:`TICK_FIELDS`; a frame the
scan disagrees with is decoded with msgpack, and some are cross-checked
anyway). Per tick it checks that the symbol is on its watchlist and that the
seq is newer than the last one of that symbol, and it records the latency
``time.time_ns() (after the scan) - receive_time_ns``, which is the tick's age
when the client has decoded it: plant receive → client decode. With
``stamp="receive"`` the time is taken instead when ``data_received`` starts on
the frame's last bytes (before the scan), as ``bench/gateway_load.py`` measures.

With ``track`` a client also keeps, per symbol, ``[snapshot seq, first seq
after it, ticks received, last seq]``, so the driver can tell, against the
sequence the plant published, whether any tick was lost.

:func:`worker_main` runs one worker process: it reads its configuration as one
JSON line on stdin, connects its clients, answers ``ready``, and then obeys
``go`` (start the measured window), ``stop`` (end it and report) and
``finish {...}`` (wait, up to a deadline, until every tracked client has seen
the given last seq of each of its symbols, then report), one JSON line each.
The configuration's keys: ``host``, ``port``, ``ids`` (the client ids), ``symbols``,
``watch``, ``seed`` (required); ``full_clients`` (0), ``sample_every`` (1),
``verify_every`` (1000), ``track`` (false), ``stamp`` ("decode"), ``concurrency``
(100), ``connect_timeout`` (30 s), ``finish_timeout`` (20 s).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import random
import re
import resource
import sys
import time
from collections import Counter
from typing import Any

import msgpack

from fastflow.hotpath import ws_header

SUBPROTOCOL = "fastflow.msgpack.v1"
#: Latency histogram: buckets of 2% (50 per e-fold of microseconds).
LAT_SCALE = 50
#: ``{"type": "ticks", "ticks": [`` as the gateway splices it; the array header follows.
TICKS_HEAD = b"\x82\xa4type\xa5ticks\xa5ticks"
PREFIX_LEN = len(TICKS_HEAD) + 5
#: symbol, seq and receive_time_ns of every tick map: the plant's encoder writes these three
#: last, in this order (docs/state.md's fastflow extras).
TICK_FIELDS = re.compile(
    rb"\xa6symbol(?:[\xa0-\xbf]|\xd9.)(.*?)\xa3seq(?:([\x00-\x7f])|\xcc(.)|\xcd(..)|\xce(.{4})|\xcf(.{8}))"
    rb"\xafreceive_time_ns\xcf(.{8})", re.DOTALL)


# -- shared helpers ------------------------------------------------------------------------


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (thousands of sockets per process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    for value in (want, 65536, 20000):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (value, hard))
            return value
        except (ValueError, OSError):
            continue
    return soft


def watchlist(seed: int, cid: int, symbols: list[str], size: int) -> list[str]:
    """Client ``cid``'s watchlist: ``size`` distinct symbols, the same in every process."""
    return random.Random(seed * 1_000_003 + cid).sample(symbols, min(size, len(symbols)))


def machine() -> str:
    """CPU model, cores, Python and kernel: the line every results file starts with."""
    cpu = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked client frame (RFC 6455 5.3)."""
    n = len(payload)
    head = ws_header(n, opcode, masked=True)
    mask = os.urandom(4)
    if not n:
        return head + mask
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


def scan_ticks(payload: bytes) -> list[tuple[str, int, int]]:
    """(symbol, seq, receive_time_ns) of each tick in a frame (the gateway's or
    the plant's), without a full decode."""
    fb = int.from_bytes
    return [(sym.decode(), fb(s0 or s1 or s2 or s3 or s4, "big"), fb(rt, "big"))
            for sym, s0, s1, s2, s3, s4, rt in TICK_FIELDS.findall(payload)]


def array_count(prefix: bytes) -> int:
    """Ticks in a ``ticks`` frame from its first bytes; -1 when it is not one (or too short)."""
    if not prefix.startswith(TICKS_HEAD) or len(prefix) <= len(TICKS_HEAD):
        return -1
    at = len(TICKS_HEAD)
    b = prefix[at]
    if 0x90 <= b <= 0x9F:
        return b & 0x0F
    if b == 0xDC and len(prefix) >= at + 3:
        return int.from_bytes(prefix[at + 1:at + 3], "big")
    if b == 0xDD and len(prefix) >= at + 5:
        return int.from_bytes(prefix[at + 1:at + 5], "big")
    return -1


def bucket_of(us: int) -> int:
    """The latency histogram bucket of ``us`` microseconds."""
    return int(math.log(us) * LAT_SCALE) if us > 1 else 0


def latency_quantiles(hist: Counter[int] | dict[int, int], qs: tuple[float, ...]) -> dict[str, Any]:
    """Quantiles (ms, the bucket's upper bound: 2% resolution) of a merged client histogram."""
    total = sum(hist.values())
    out: dict[str, Any] = {"samples": total}
    ordered = sorted(hist.items())
    for q in qs:
        rank, seen, value = q * total, 0, None
        for bucket, n in ordered:
            seen += n
            if seen >= rank:
                value = math.exp((bucket + 1) / LAT_SCALE) / 1e3
                break
        out[f"p{q * 100:g}_ms"] = value
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, in seconds (nan when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan"), float("nan")
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (nan when it is gone)."""
    user, system = cpu_times(pid)
    return user + system


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def system_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


# -- the client ------------------------------------------------------------------------------


class WorkerStats:
    """What one worker process counts over the measured window (and the checks, always)."""

    def __init__(self) -> None:
        self.frames = 0  # ticks frames received
        self.ticks = 0  # ticks in them (array headers)
        self.bytes = 0  # wire bytes received
        self.uncounted = 0  # ticks frames whose array header was not readable
        self.scanned = 0  # frames scanned for symbol / seq / latency
        self.verified = 0  # of those, also decoded with msgpack and compared
        self.scan_mismatch = 0
        self.foreign = 0  # ticks of a symbol not on the client's watchlist
        self.seq_errors = 0  # a tick not newer than the last seen of its symbol
        self.other = Counter[str]()  # other frames by kind (error, text, ...)
        self.closes = Counter[str]()  # close frames by code
        self.lost = 0  # connections lost without a close frame
        self.latency = Counter[int]()  # bucket -> ticks
        self.by_second: dict[int, Counter[int]] = {}  # second of the window -> bucket -> ticks
        self.go_ns = 0
        self.latency_max_us = 0


class WsClient(asyncio.Protocol):
    """One WebSocket client: the handshake by hand, then server frames parsed from the header.

    ``full``: scan every ticks frame (else 1 in ``sample_every``); ``track``:
    keep per symbol [snapshot seq, first seq, ticks, last seq] (implies full);
    ``stamp``: when a tick's latency is taken, ``"decode"`` (after the scan) or
    ``"receive"`` (when ``data_received`` starts on the frame's last bytes)."""

    def __init__(self, cid: int, symbols: list[str], host: str, port: int, stats: WorkerStats, *,
                 full: bool, sample_every: int = 1, verify_every: int = 1000, track: bool = False,
                 stamp: str = "decode") -> None:
        if stamp not in ("decode", "receive"):
            raise ValueError(f"stamp must be 'decode' or 'receive', not {stamp!r}")
        self.cid = cid
        self.symbols = symbols
        self.watch = frozenset(symbols)
        self.host = host
        self.port = port
        self.stats = stats
        self.full = full or track
        self.track = track
        self.stamp_on_receive = stamp == "receive"
        self.sample_every = max(1, sample_every)
        self.phase = cid % self.sample_every
        self.verify_every = max(1, verify_every)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failed = ""
        self.measuring = False
        self.open = False
        self.live = False  # the snapshot arrived: everything after it is ticks
        self.handshake = bytearray()
        self.seqs: dict[str, int] = {}
        self.tracked: dict[str, list[int]] = {}  # symbol -> [snapshot seq, first seq, ticks, last seq]
        self.binary = 0  # binary frames seen since live
        self.frames = 0  # ticks frames in the window
        self.changed: asyncio.Event | None = None  # set on every tracked frame (finish waits on it)
        # the frame being parsed
        self.hdr = b""
        self.left = 0
        self.opcode = 0
        self.chunks: list[bytes] | None = None
        self.prefix = b""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances (no isinstance check here)
        writer: Any = transport
        self.transport = writer
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
            "\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self._fail(f"connection lost during setup: {exc or 'closed'}")
        elif self.transport is not None:
            self.stats.lost += 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.time_ns() if self.stamp_on_receive else 0
        if not self.open:
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                if len(self.handshake) > 65536:
                    self._fail("handshake reply too long")
                return
            head, data = bytes(self.handshake[:end]), bytes(self.handshake[end + 4:])
            if not head.startswith(b"HTTP/1.1 101"):
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                self._fail(f"handshake refused: {status}")
                return
            self.open = True
            self.handshake = bytearray()
            self.send(2, msgpack.packb({"op": "subscribe", "symbols": self.symbols}))
            if not data:
                return
        if self.measuring:
            self.stats.bytes += len(data)
        if self.hdr:
            data = self.hdr + data
            self.hdr = b""
        pos, n = 0, len(data)
        while pos < n:
            left = self.left
            if left:
                take = n - pos if n - pos < left else left
                if self.chunks is not None:
                    self.chunks.append(data[pos:pos + take])
                elif len(self.prefix) < PREFIX_LEN:
                    self.prefix += data[pos:pos + min(take, PREFIX_LEN - len(self.prefix))]
                pos += take
                self.left = left - take
                if self.left:
                    return
                self._done(now)
                continue
            if n - pos < 2:
                self.hdr = data[pos:]
                return
            b0, length = data[pos], data[pos + 1] & 0x7F
            h = 2 if length < 126 else 4 if length == 126 else 10
            if n - pos < h:
                self.hdr = data[pos:]
                return
            if h > 2:
                length = int.from_bytes(data[pos + 2:pos + h], "big")
            pos += h
            self.opcode = opcode = b0 & 0x0F
            self.left = length
            self.prefix = b""
            if opcode == 2 and self.live:
                self.binary += 1
                keep = self.full or self.binary % self.sample_every == self.phase
            else:
                keep = True
            self.chunks = [] if keep else None
            if not length:
                self._done(now)

    # -- frames

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def _done(self, now: int = 0) -> None:
        """A whole frame; ``now``: its receive time (0: take the time after the scan)."""
        opcode, chunks, self.chunks = self.opcode, self.chunks, None
        payload = b"".join(chunks) if chunks is not None else b""
        stats = self.stats
        if opcode == 2:
            if not self.live:
                self._setup(payload)
                return
            k = array_count(payload[:PREFIX_LEN] if chunks is not None else self.prefix)
            if k < 0:
                if chunks is None:  # not a ticks frame, or a header split oddly: decode nothing, count it
                    stats.uncounted += 1
                    return
                message = msgpack.unpackb(payload, raw=False)
                stats.other[str(message.get("type"))] += 1
                return
            if self.measuring:
                stats.frames += 1
                stats.ticks += k
                self.frames += 1
            if chunks is not None:
                self._check(payload, k, now)
        elif opcode == 9:
            self.send(0xA, payload)
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            stats.closes[f"{code} {payload[2:].decode(errors='replace')}"] += 1
            if not self.ready.done():
                self._fail(f"closed during setup: {code}")
            if self.transport is not None:
                self.transport.close()
                self.transport = None
        elif opcode != 0xA:
            stats.other[f"opcode {opcode}"] += 1

    def _setup(self, payload: bytes) -> None:
        """hello, subscribed, snapshot: live after the snapshot."""
        message = msgpack.unpackb(payload, raw=False)
        kind = message.get("type")
        if kind == "error":
            self._fail(f"error: {message.get('code')}: {message.get('message')}")
        elif kind == "snapshot":
            for tick in message["ticks"]:
                symbol, seq = tick["symbol"], tick["seq"]
                self.seqs[symbol] = seq
                if self.track:
                    self.tracked[symbol] = [seq, 0, 0, seq]
                if symbol not in self.watch:
                    self.stats.foreign += 1
            self.live = True
            if not self.ready.done():
                self.ready.set_result(None)

    def _check(self, payload: bytes, k: int, now: int = 0) -> None:
        stats = self.stats
        ticks = scan_ticks(payload)
        if not now:
            now = time.time_ns()  # decoded: the tick's age is now - receive_time_ns
        stats.scanned += 1
        if len(ticks) != k or stats.scanned % self.verify_every == 0:
            decoded = msgpack.unpackb(payload, raw=False)["ticks"]
            exact = [(t["symbol"], t["seq"], t["receive_time_ns"]) for t in decoded]
            stats.verified += 1
            if exact != ticks:
                stats.scan_mismatch += 1
                ticks = exact
        watch, seqs, tracked = self.watch, self.seqs, self.tracked
        latency = stats.latency if self.measuring else None
        for symbol, seq, received in ticks:
            if symbol not in watch:
                stats.foreign += 1
            if seq <= seqs.get(symbol, -1):
                stats.seq_errors += 1
            seqs[symbol] = seq
            if self.track:
                entry = tracked.get(symbol)
                if entry is None:
                    entry = tracked[symbol] = [-1, 0, 0, -1]
                if not entry[2]:
                    entry[1] = seq
                entry[2] += 1
                entry[3] = seq
            if latency is not None:
                us = (now - received) // 1000
                bucket = bucket_of(us)
                latency[bucket] += 1
                second = (now - stats.go_ns) // 1_000_000_000
                per = stats.by_second.get(second)
                if per is None:
                    per = stats.by_second[second] = Counter()
                per[bucket] += 1
                if us > stats.latency_max_us:
                    stats.latency_max_us = us
        if self.changed is not None:
            self.changed.set()

    def _fail(self, why: str) -> None:
        self.failed = self.failed or why
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()


# -- a worker process ------------------------------------------------------------------------


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def caught_up(clients: list[WsClient], final: dict[str, int]) -> bool:
    """Every tracked, live client has seen the final seq of each of its symbols."""
    for c in clients:
        if c.failed or c.transport is None:
            continue
        for symbol in c.symbols:
            want = final.get(symbol)
            if want is not None and c.seqs.get(symbol, -1) < want:
                return False
    return True


async def _worker(cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stats = WorkerStats()
    host, port = cfg["host"], cfg["port"]
    track = bool(cfg.get("track"))
    clients = [WsClient(cid, watchlist(cfg["seed"], cid, cfg["symbols"], cfg["watch"]), host, port, stats,
                        full=cid < cfg.get("full_clients", 0), sample_every=cfg.get("sample_every", 1),
                        verify_every=cfg.get("verify_every", 1000), track=track,
                        stamp=cfg.get("stamp", "decode")) for cid in cfg["ids"]]
    changed = asyncio.Event()
    for c in clients:
        c.changed = changed
    gate = asyncio.Semaphore(cfg.get("concurrency", 100))
    timeout = cfg.get("connect_timeout", 30.0)

    async def connect(client: WsClient) -> None:
        async with gate:
            try:
                await asyncio.wait_for(loop.create_connection(lambda: client, host, port), timeout)
                await asyncio.wait_for(asyncio.shield(client.ready), timeout)
            except (OSError, TimeoutError, ConnectionError) as exc:
                client.failed = client.failed or f"{type(exc).__name__}: {exc}"
                if client.transport is not None:
                    client.transport.abort()

    started = time.monotonic()
    await asyncio.gather(*(connect(c) for c in clients))
    failures = Counter(c.failed for c in clients if c.failed)
    emit({"event": "ready", "clients": len(clients), "connected": sum(1 for c in clients if not c.failed),
          "failures": dict(failures.most_common(5)), "seconds": round(time.monotonic() - started, 3)})
    window = [0.0, 0.0]
    cpu = [0.0, 0.0]
    caught = True
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _, rest = line.strip().partition(" ")
        if command == "go":
            for c in clients:
                c.measuring = True
            window[0], cpu[0] = time.monotonic(), time.process_time()
            stats.go_ns = time.time_ns()
        elif command == "stop" or not line:
            for c in clients:
                c.measuring = False
            window[1], cpu[1] = time.monotonic(), time.process_time()
            break
        elif command == "finish":  # the publisher stopped: wait until every client has the last seqs
            for c in clients:
                c.measuring = False
            window[1], cpu[1] = time.monotonic(), time.process_time()
            final = json.loads(rest)
            deadline = loop.time() + float(cfg.get("finish_timeout", 20.0))
            while not (caught := caught_up(clients, final)) and loop.time() < deadline:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.0, deadline - loop.time()))
            break
    live = [c for c in clients if c.transport is not None and c.live]
    per_client = sorted(c.frames for c in clients if not c.failed)
    emit({"event": "result", "clients": len(clients), "live_at_end": len(live), "caught_up": caught,
          "seconds": window[1] - window[0], "cpu_seconds": cpu[1] - cpu[0],
          "frames": stats.frames, "ticks": stats.ticks, "bytes": stats.bytes, "uncounted": stats.uncounted,
          "scanned": stats.scanned, "verified": stats.verified, "scan_mismatch": stats.scan_mismatch,
          "foreign": stats.foreign, "seq_errors": stats.seq_errors, "other": dict(stats.other),
          "closes": dict(stats.closes), "lost": stats.lost, "latency": {str(k): v for k, v in stats.latency.items()},
          "latency_by_second": {str(s): {str(k): v for k, v in c.items()} for s, c in stats.by_second.items()},
          "latency_max_us": stats.latency_max_us, "per_client_frames": per_client,
          "no_frames": sum(1 for f in per_client if f == 0),
          "failed": sum(1 for c in clients if c.failed),
          "tracked": {str(c.cid): c.tracked for c in clients if track and not c.failed}})
    for c in clients:
        if c.transport is not None:
            c.transport.abort()


def worker_main() -> int:
    """One worker process: configuration on stdin (one JSON line), commands after it."""
    raise_fd_limit()
    cfg = json.loads(sys.stdin.readline())
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(_worker(cfg))
    else:
        uvloop.run(_worker(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
