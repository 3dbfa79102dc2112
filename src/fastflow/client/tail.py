"""``fastflow tail``: a gateway's live ticks in the terminal, through :mod:`fastflow.client`.

When stdout is a terminal, a table (symbol, LTP, change %, open, high, low, close, volume,
seq, age in ms = now - ``receive_time_ns``) is redrawn in place with ANSI escapes, at most
10 times a second. Otherwise (a pipe, a file, a test) every tick update is one line with the
same columns. With ``--json``, every tick is one JSON object (the whole tick map) per line,
terminal or not.

Exit status: 0 after ``--count`` ticks, on Ctrl-C / SIGTERM, or when the output pipe
closes; 1 when the gateway cannot be reached (``--retries`` consecutive attempts failed, at
the start or after a drop, with capped exponential backoff between them); 2 for bad usage:
the gateway refused the credential (HTTP 401/403), a symbol it does not know, a subscription
it refused, a URL that is not ``ws://`` or ``wss://`` or that the server refuses (HTTP 404),
or no symbol the gateway knows. Symbols are normalised as the dashboard does
(:func:`normalize_symbol`: ``nse:infy`` and ``infy`` are ``NSE:INFY``); an unknown one gets
one warning line, once, and the known ones are shown. While the gateway has no instrument
list yet (no plant), tail says so and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from fastflow.client import AuthError, Client, ClientError, ServerError, Tick, Unreachable

REDRAW_INTERVAL = 0.1  # seconds: at most 10 redraws a second

_HEAD = (f"{'symbol':<22} {'ltp':>12} {'chg %':>8} {'open':>12} {'high':>12} {'low':>12} {'close':>12} "
         f"{'volume':>14} {'seq':>9} {'age ms':>8}")


@dataclasses.dataclass(frozen=True)
class TailOptions:
    url: str
    symbols: Sequence[str | int]
    api_key: str | None = None
    token: str | None = None
    count: int | None = None  # exit after this many ticks
    json: bool = False
    retries: int = 8  # consecutive failed connection attempts before giving up (exit 1)
    tty: bool | None = None  # None: ask the output stream


def _price(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def format_row(tick: Tick, now_ns: int) -> str:
    """One tick as a line of the table (also the non-terminal output)."""
    ohlc = tick.get("ohlc")
    o = h = lo = c = "-"
    if isinstance(ohlc, dict):
        o, h, lo, c = (_price(ohlc.get(k)) for k in ("open", "high", "low", "close"))
    change = tick.get("change")
    volume = tick.get("volume_traded")
    received = tick.get("receive_time_ns")
    age = f"{(now_ns - received) / 1e6:.0f}" if isinstance(received, int) else "-"
    return (f"{tick.get('symbol')!s:<22} {_price(tick.get('last_price')):>12} "
            f"{f'{change:+.2f}' if isinstance(change, (int, float)) else '-':>8} {o:>12} {h:>12} {lo:>12} {c:>12} "
            f"{f'{volume:,}' if isinstance(volume, int) else '-':>14} {tick.get('seq')!s:>9} {age:>8}")


def render(symbols: Sequence[str], client: Client, now_ns: int) -> str:
    """The whole table: header, one row per watched symbol, a status line."""
    rows = []
    for symbol in symbols:
        tick = client.last.get(symbol)
        rows.append(format_row(tick, now_ns) if tick is not None else f"{symbol:<22} {'(waiting)':>12}")
    stats = client.stats
    status = (f"{client.url}  {client.state}  ticks {stats['ticks']:,}  gaps {stats['gaps']}  "
              f"reconnects {stats['reconnects']}  (Ctrl-C to quit)")
    return "\n".join([_HEAD, *rows, "", status])


async def tail(options: TailOptions, out: TextIO | None = None, err: TextIO | None = None,
               handle_signals: bool = True) -> int:
    """Run ``fastflow tail``; the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    tty = not options.json and (out.isatty() if options.tty is None else options.tty)

    def fail(status: int, message: str) -> int:
        print(f"fastflow tail: {message}", file=err, flush=True)
        return status

    if not options.url.startswith(("ws://", "wss://")):
        return fail(2, f"--url must be a ws:// or wss:// URL, not {options.url!r}")
    client = Client(options.url, (), api_key=options.api_key, token=options.token,
                    max_retries=options.retries, backoff_cap=5.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        return await _tail(client, options, out, tty, stop, fail)
    except AuthError as exc:
        return fail(2, f"{exc}: check --api-key / --token")
    except ServerError as exc:
        return fail(2, f"the gateway refused the subscription: {exc}")
    except Unreachable as exc:
        return fail(1, f"gateway unreachable: {exc}")
    except ClientError as exc:  # e.g. HTTP 404: not a gateway's /ws
        return fail(2, str(exc))
    except TimeoutError:
        return fail(1, f"no reply from the gateway at {options.url}")
    except BrokenPipeError:  # whoever read the output went away (| head)
        if out is sys.stdout:
            with contextlib.suppress(OSError):  # no second error when Python flushes stdout at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await client.close()
        if tty:
            out.write("\x1b[?25h")  # the cursor back
            out.flush()


async def _tail(client: Client, options: TailOptions, out: TextIO, tty: bool, stop: asyncio.Event,
                fail: Callable[[int, str], int]) -> int:
    """The session until it ends by itself (its status) or ``stop`` is set (0)."""
    session = asyncio.ensure_future(_session(client, options, out, tty, fail))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([session, stopping], return_when=asyncio.FIRST_COMPLETED)
        return session.result() if session.done() else 0
    finally:
        for future in (session, stopping):
            if not future.done():
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await future


def normalize_symbol(symbol: str | int) -> str | int:
    """What the user typed, as the gateway names it: the dashboard's rule
    (``app.js`` ``normalizeSymbol``). ``nse:infy`` and ``infy`` -> ``NSE:INFY``, blanks
    collapsed (``nse : nifty  50`` -> ``NSE:NIFTY 50``); Kite tokens (digits) and Upstox
    instrument keys (``NSE_EQ|INE009A01021``, case-sensitive) are kept as given."""
    if isinstance(symbol, int):
        return symbol
    text = " ".join(symbol.split())
    if not text or text.isdigit() or "|" in text:
        return int(text) if text.isdigit() else text
    text = text.upper()
    if ":" not in text:
        text = "NSE:" + text
    exchange, _, name = text.partition(":")
    return f"{exchange.strip()}:{name.strip()}"


async def _session(client: Client, options: TailOptions, out: TextIO, tty: bool,
                   fail: Callable[[int, str], int]) -> int:
    await client.start()
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in options.symbols))
    reply = await _subscribe(client, wanted, fail)
    unknown = [str(s) for s in reply.get("unknown") or []]
    symbols = [str(s) for s in reply.get("symbols", [])]
    if not symbols:
        if unknown:
            return fail(2, f"unknown symbol{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; nothing to tail")
        return fail(2, "nothing to tail: give EXCHANGE:TRADINGSYMBOLs or instrument tokens")
    for symbol in unknown:  # once each; the known ones are shown
        fail(0, f"warning: unknown symbol {symbol} (not shown)")
    await _consume(client, options, out, tty, symbols)
    return 0


async def _subscribe(client: Client, symbols: Sequence[str | int], fail: Callable[[int, str], int]) -> dict[str, Any]:
    """Subscribe, waiting while the gateway has no instrument list yet (``unavailable``)."""
    waited = False
    while True:
        try:
            return await client.subscribe(symbols)
        except ServerError as exc:
            if exc.code != "unavailable":
                raise
            if not waited:
                fail(0, f"{exc.message}; waiting")
                waited = True
            await asyncio.sleep(0.5)


async def _consume(client: Client, options: TailOptions, out: TextIO, tty: bool, symbols: list[str]) -> None:
    """Print ticks until ``--count`` is reached (or forever)."""
    remaining = options.count
    if tty:
        out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear the screen
        redraw = asyncio.ensure_future(_redraw(client, out, symbols))
        try:
            async for _ in client:
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        break
        finally:
            redraw.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await redraw
        _draw(client, out, symbols)
        out.write("\n")
        out.flush()
        return
    write = out.write
    async for tick in client:
        if options.json:
            write(json.dumps(tick, separators=(",", ":")) + "\n")
        else:
            write(format_row(tick, time.time_ns()) + "\n")
        out.flush()
        if remaining is not None:
            remaining -= 1
            if remaining <= 0:
                return


def _draw(client: Client, out: TextIO, symbols: list[str]) -> None:
    out.write("\x1b[H\x1b[J" + render(symbols, client, time.time_ns()))
    out.flush()


async def _redraw(client: Client, out: TextIO, symbols: list[str]) -> None:
    while True:
        _draw(client, out, symbols)
        await asyncio.sleep(REDRAW_INTERVAL)
