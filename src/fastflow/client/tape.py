"""``fastflow flow``: a gateway's live options-flow tape in the terminal, through
:mod:`fastflow.client` (docs/flow.md).

One line per event: exchange time, contract, kind, side and aggressor bucket, lots,
premium in ₹ lakh, price against the touch it met, and the score; on a terminal a
bullish event is green and a bearish one red. With ``--json`` each event is one
JSON object (the whole event map) per line.

Exit status: 0 after ``--count`` events, on Ctrl-C / SIGTERM, or when the output
pipe closes; 1 when the gateway cannot be reached (``--retries`` attempts in a row
failed); 2 for bad usage: refused credentials, a filter the gateway refuses (it
says which field), a URL that is not a gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from fastflow.client import AuthError, Client, ClientError, ServerError, Unreachable

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
_GREEN, _RED, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"


@dataclasses.dataclass(frozen=True)
class TapeOptions:
    url: str
    underlyings: Sequence[str] = ()
    symbols: Sequence[str] = ()
    kinds: Sequence[str] = ()
    min_score: float = 0.0
    min_premium: float = 0.0
    api_key: str | None = None
    token: str | None = None
    count: int | None = None  # exit after this many events
    json: bool = False
    retries: int = 8
    color: bool | None = None  # None: when the output is a terminal

    def flow_filter(self) -> dict[str, Any]:
        """The subscribe_flow filter (only what was given)."""
        out: dict[str, Any] = {}
        for name in ("underlyings", "symbols", "kinds"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        if self.min_score:
            out["min_score"] = self.min_score
        if self.min_premium:
            out["min_premium"] = self.min_premium
        return out


def format_event(event: dict[str, Any], color: bool = False) -> str:
    """One event as a line of the tape."""
    stamp = event.get("exchange_timestamp")
    when = dt.datetime.fromtimestamp(stamp, IST).strftime("%H:%M:%S") if isinstance(stamp, int) else "--:--:--"
    lots = event.get("lots")
    premium = event.get("premium")
    price, bid, ask = event.get("price"), event.get("bid"), event.get("ask")
    extra = ""
    if event.get("kind") == "sweep":
        extra = f" {event.get('levels')} levels"
    elif event.get("kind") == "repeated":
        extra = f" {event.get('hits')} hits"
    elif event.get("kind") == "unusual":
        extra = f" {event.get('reason')}"
    line = (f"{when} {event.get('symbol')!s:<28} {event.get('kind')!s:<8} {event.get('side')!s:<4} "
            f"{event.get('aggressor')!s:<9} {f'{lots:,.0f}' if isinstance(lots, (int, float)) else '-':>7} lots "
            f"₹{f'{premium / 1e5:,.2f}' if isinstance(premium, (int, float)) else '-':>9} L "
            f"@ {f'{price:.2f}' if isinstance(price, (int, float)) else '-'} "
            f"({f'{bid:.2f}' if isinstance(bid, (int, float)) else '-'}/"
            f"{f'{ask:.2f}' if isinstance(ask, (int, float)) else '-'}) "
            f"score {event.get('score')!s:>3}{extra}")
    sentiment = event.get("sentiment")
    if color and sentiment in ("bullish", "bearish"):
        return f"{_GREEN if sentiment == 'bullish' else _RED}{line}{_RESET}"
    return line


async def tape(options: TapeOptions, out: TextIO | None = None, err: TextIO | None = None,
               handle_signals: bool = True) -> int:
    """Run ``fastflow flow``; the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    color = not options.json and (out.isatty() if options.color is None else options.color)

    def fail(status: int, message: str) -> int:
        print(f"fastflow flow: {message}", file=err, flush=True)
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
    session = asyncio.ensure_future(_print(client, options, out, color))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([session, stopping], return_when=asyncio.FIRST_COMPLETED)
        if session.done():
            session.result()
        return 0
    except AuthError as exc:
        return fail(2, f"{exc}: check --api-key / --token")
    except ServerError as exc:
        return fail(2, f"the gateway refused the filter: {exc.message}")
    except Unreachable as exc:
        return fail(1, f"gateway unreachable: {exc}")
    except ClientError as exc:
        return fail(2, str(exc))
    except TimeoutError:
        return fail(1, f"no reply from the gateway at {options.url}")
    except BrokenPipeError:  # whoever read the output went away (| head)
        if out is sys.stdout:
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    finally:
        for future in (session, stopping):
            if not future.done():
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await future
        for signum in signals:
            loop.remove_signal_handler(signum)
        await client.close()


async def _print(client: Client, options: TapeOptions, out: TextIO, color: bool) -> None:
    remaining = options.count
    async for event in client.flow(**options.flow_filter()):
        out.write((json.dumps(event, separators=(",", ":")) if options.json else format_event(event, color)) + "\n")
        out.flush()
        if remaining is not None:
            remaining -= 1
            if remaining <= 0:
                return
