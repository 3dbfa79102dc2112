"""``fastflow run``: the main job, as far as it exists today.

Today (foundation stage) it runs the compiled hot path end to end inside one
process: the built-in synthetic Kite market produces real Kite binary
messages at a target rate, :class:`~fastflow.hotpath.KiteDecoder` decodes
them into the C state, and one :meth:`~fastflow.hotpath.MarketState.flush`
per burst produces the msgpack ticks that Redis and the gateway will carry.
A live terminal table shows a watchlist and the measured costs. Redis, the
WebSocket gateway and the dashboard run as `fastflow gateway` and are not started here.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

from fastflow.hotpath import IMPLEMENTATION, KiteDecoder, MarketState
from fastflow.instruments import Instruments
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe

DEFAULT_WATCHLIST = (
    "NSE:NIFTY 50",
    "NSE:NIFTY BANK",
    "NSE:INFY",
    "NSE:RELIANCE",
    "NSE:TCS",
    "NSE:HDFCBANK",
    "NSE:ICICIBANK",
    "NSE:SBIN",
)

STAGE_NOTE = (
    "fastflow run — foundation stage: synthetic Kite market -> compiled decoder -> C state -> "
    "msgpack flush, in one process.\nThe simulators, the plant and its Redis writer run on their own "
    "(fastflow sim, fastflow plant), and so do the WebSocket gateway and its dashboard (fastflow gateway; "
    "see the README, 'Live prices in a browser'). They all join this command in the next release."
)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    rate: float = 20_000.0  # packets per second
    bursts_per_second: float = 20.0
    mode: str = "full"
    duration: float | None = None  # seconds; None = until Ctrl-C
    watchlist: Sequence[str] = DEFAULT_WATCHLIST
    seed: int = 0
    refresh: float = 1.0  # seconds between screen updates


@dataclasses.dataclass
class Counters:
    packets: int = 0
    messages: int = 0
    flushes: int = 0
    ticks_flushed: int = 0
    decode_ns: int = 0
    flush_ns: int = 0

    def minus(self, other: Counters) -> Counters:
        return Counters(*(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))


def _fmt_row(tick: dict[str, object]) -> str:
    ohlc = tick.get("ohlc")
    o = h = lo = "-"
    if isinstance(ohlc, dict):
        o, h, lo = (f"{ohlc[k]:,.2f}" for k in ("open", "high", "low"))
    ltp = tick.get("last_price")
    change = tick.get("change")
    volume = tick.get("volume_traded", "")
    return (
        f"{tick['symbol']!s:<16} {ltp if ltp is None else f'{ltp:,.2f}':>12} "
        f"{'' if change is None else f'{change:+.2f}%':>8} {o:>12} {h:>12} {lo:>12} "
        f"{volume!s:>12} {tick['seq']!s:>8}"
    )


def render(state: MarketState, watch: Sequence[str], window: Counters, seconds: float, total: Counters) -> str:
    head = (
        f"{'symbol':<16} {'ltp':>12} {'chg':>8} {'open':>12} {'high':>12} {'low':>12} {'volume':>12} {'seq':>8}"
    )
    rows = [_fmt_row(state.tick(sym)) for sym in watch]
    pps = window.packets / seconds if seconds > 0 else 0.0
    ns_packet = window.decode_ns / window.packets if window.packets else 0.0
    ns_tick = window.flush_ns / window.ticks_flushed if window.ticks_flushed else 0.0
    stats = (
        f"{pps:,.0f} packets/s decoded | decode {ns_packet:.0f} ns/packet | "
        f"flush {ns_tick:.0f} ns/tick, {window.ticks_flushed / max(window.flushes, 1):.0f} ticks/flush | "
        f"total {total.packets:,} packets, {total.flushes:,} flushes | hot path: {IMPLEMENTATION}"
    )
    return "\n".join([head, *rows, "", stats])


def run(options: RunOptions, out: TextIO = sys.stdout) -> Counters:
    rows = kite_universe()
    instruments = Instruments.from_kite_rows(rows)
    for sym in options.watchlist:
        instruments.slot(sym)  # KeyError early for an unknown symbol
    market = KiteMarket.from_rows(rows, seed=options.seed)
    state = MarketState(instruments)
    decoder = KiteDecoder(state)

    stop = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, _stop)
    tty = out.isatty()
    print(STAGE_NOTE, file=out)
    print(f"universe: {len(instruments)} instruments; target {options.rate:,.0f} packets/s "
          f"({options.mode} mode); Ctrl-C to stop\n", file=out, flush=True)

    per_burst = max(1, round(options.rate / options.bursts_per_second))
    interval = 1.0 / options.bursts_per_second
    total = Counters()
    shown = Counters()
    start = last_show = time.monotonic()
    next_burst = start
    try:
        while not stop:
            now = time.monotonic()
            if options.duration is not None and now - start >= options.duration:
                break
            if now < next_burst:
                time.sleep(next_burst - now)
                continue
            next_burst += interval
            remaining = per_burst
            messages = []
            while remaining > 0:
                n = min(remaining, market.size)
                messages.append(market.step(n, options.mode))
                remaining -= n
            t0 = time.perf_counter_ns()
            for msg in messages:
                total.packets += decoder.feed(msg)
            t1 = time.perf_counter_ns()
            batch = state.flush()
            t2 = time.perf_counter_ns()
            total.messages += len(messages)
            total.flushes += 1
            total.ticks_flushed += len(batch)
            total.decode_ns += t1 - t0
            total.flush_ns += t2 - t1
            if now - last_show >= options.refresh:
                screen = render(state, options.watchlist, total.minus(shown), now - last_show, total)
                if tty:
                    out.write("\x1b[H\x1b[J" + STAGE_NOTE + "\n\n")
                out.write(screen + "\n\n")
                out.flush()
                shown = dataclasses.replace(total)
                last_show = now
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.monotonic() - start
    print(
        f"stopped after {elapsed:.1f} s: {total.packets:,} packets in {total.messages:,} messages, "
        f"{total.flushes:,} flushes, decoder stats {decoder.stats()}",
        file=out,
        flush=True,
    )
    return total
