"""The gateway's live dashboard in a real browser (headless Chromium through
Selenium and Debian's chromedriver), against the real gateway, a real
redis-server and a simulated Kite market written by the plant's RedisWriter.

The page must load from the gateway, connect (``#conn-state`` shows ``live``),
show the default watchlist's cards with the plant's exact prices and sequence
numbers as they change, flash, show a latency readout and the top movers, let
the watchlist be edited (a symbol, a Kite token, an unknown symbol, a removal),
keep the edits in localStorage across a reload (a stored symbol the gateway
does not know is marked, not dropped), and come back on its own after the
gateway restarts; with no JavaScript error in the console. The hand-written msgpack
codec (static/msgpack.js) is checked against msgpack-python in the same
browser.

What a trader must see (issue 15 item 3), each against the ticks the plant
published: every figure of a card (the day's change in ₹ and %, bid/ask and
spread, the exchange's trade time, the instrument's decimals, the whole symbol);
the colour of the day's change, rare brief flashes and movers that agree with the
cards; the feed's state (live, stale, feed down when Redis is gone, never green
without Redis), the market's session and stale cards; a latency readout that
ignores a browser clock an hour off; the watchlist in the URL; examples taken
from the live universe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import itertools
import math
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback as traceback_module
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack
import pytest

from fastflow.analytics import flow as options_flow
from fastflow.config import FlowSection
from fastflow.gateway.server import Gateway
from fastflow.sim.market import KiteMarket
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis
from fastflow.store.target import RedisTarget

from ..gateway_harness import MarketFeed, make_gateway, target_of

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("the dashboard test needs chromium and chromedriver on PATH "
                "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

DEADLINE = 15.0  # seconds for any one thing the page should do
STATIC = Path(__file__).resolve().parents[2] / "src" / "fastflow" / "gateway" / "static"
DEFAULT_WATCHLIST = ["NSE:NIFTY 50", "NSE:NIFTY BANK", "NSE:INFY", "NSE:RELIANCE",
                     "NSE:TCS", "NSE:HDFCBANK", "NSE:ICICIBANK", "NSE:SBIN"]
ITC_TOKEN = next(int(r["instrument_token"]) for r in kite_universe()
                 if (r["exchange"], r["tradingsymbol"]) == ("NSE", "ITC"))

# Every card's symbol, seq, raw and shown price, read in one go (one consistent DOM state).
READ_CARDS = """
return Array.from(document.querySelectorAll('#cards .card'), c => ({
  symbol: c.dataset.symbol, seq: c.dataset.seq || null, ltp: c.dataset.ltp || null,
  text: c.querySelector('.ltp').textContent, classes: c.className}));
"""


class LiveMarket:
    """A MarketFeed and a Gateway on an event loop in a thread of their own (the
    browser is driven, blocking, from the test's thread). Every tick the plant
    publishes is recorded in ``published[(symbol, seq)] = tick``. The stream can be
    paused (:meth:`pause`, :meth:`resume`) and instruments kept out of it
    (:meth:`freeze`); ``gateway`` options go to the gateway's section."""

    def __init__(self, server: EmbeddedRedis | RedisTarget, hz: float = 20.0, packets: int = 100,
                 stream: bool = True, flow: FlowSection | None = None, **gateway: Any) -> None:
        self.target = target_of(server) if isinstance(server, EmbeddedRedis) else server
        self.flow = flow  # detect options flow with these settings; its events go to `events`
        self.events: list[dict[str, Any]] = []
        self.stream = stream
        self.hz = hz
        self.packets = packets
        self.gateway_options = gateway
        self.published: dict[tuple[str, int], dict[str, Any]] = {}
        self.feed: MarketFeed | None = None
        self._streaming: asyncio.Event | None = None
        self._paused: asyncio.Event | None = None
        self.gateway: Gateway | None = None
        self.port = 0
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-market", daemon=True)

    def __enter__(self) -> LiveMarket:
        self._thread.start()
        if not self._ready.wait(DEADLINE):
            raise TimeoutError(f"the market and gateway did not start in {DEADLINE} s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already gone
                self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(2 * DEADLINE)
        if self._thread.is_alive():  # say where it is stuck: its stack, and its loop's tasks
            frame = sys._current_frames().get(self._thread.ident or 0)
            stack = "".join(traceback_module.format_stack(frame)) if frame is not None else "?"
            tasks = [] if self.loop is None else [repr(t) for t in asyncio.all_tasks(self.loop)]
            raise AssertionError(f"the market thread did not stop:\n{stack}\ntasks: {tasks}")
        if self._error is not None and kind is None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        streaming = self._streaming = asyncio.Event()
        streaming.set()
        paused = self._paused = asyncio.Event()
        if not self.stream:  # a gateway alone (on a Redis it may never reach)
            try:
                await self.start_gateway(wait=False)
                self.url = self.gateway.http_url if self.gateway else ""
                self._ready.set()
                await self._stop.wait()
            finally:
                await self.stop_gateway()
            return
        feed = self.feed = MarketFeed(self.target)
        if self.flow is not None:
            options_flow.enable(feed.state, self.flow)
        await feed.start()

        async def stream() -> None:  # MarketFeed.run, with a pause
            # Until stopped, not only until cancelled: asyncio.wait_for in Python 3.11 (inside
            # the writer's drain) can swallow a cancellation that meets its own completion.
            while not stop.is_set():
                if not streaming.is_set():
                    paused.set()
                    await streaming.wait()
                    paused.clear()
                    continue
                batch = await feed.step(self.packets)
                self.events += options_flow.decode(batch.flow)
                for symbol in batch.symbols():
                    tick = feed.tick(symbol)
                    self.published[(symbol, int(tick["seq"]))] = tick
                await asyncio.sleep(1.0 / self.hz)  # the load generator's pace; it waits on nothing

        streamer = asyncio.create_task(stream())
        try:
            await self.start_gateway()
            self.url = self.gateway.http_url if self.gateway else ""
            self._ready.set()
            await self._stop.wait()
        finally:
            streamer.cancel()
            try:
                with contextlib.suppress(asyncio.CancelledError):
                    await streamer  # a stream that failed says why, once all is stopped
            finally:
                await self.stop_gateway()
                await feed.stop()

    async def pause(self) -> None:
        """No more flushes until :meth:`resume`; returns once the one in progress is acknowledged."""
        assert self._streaming is not None and self._paused is not None
        self._streaming.clear()
        await self._paused.wait()

    async def resume(self) -> None:
        assert self._streaming is not None
        self._streaming.set()

    def freeze(self, symbols: set[str]) -> None:
        """From now on the market moves every instrument but ``symbols`` (none: all again)."""
        rows = [r for r in kite_universe() if f"{r['exchange']}:{r['tradingsymbol']}" not in symbols]

        async def swap() -> None:
            assert self.feed is not None
            self.feed.market = KiteMarket.from_rows(rows, seed=len(self.published))

        self.call(swap)

    async def start_gateway(self, wait: bool = True) -> None:
        """A gateway on ``self.port`` (the first one: any free port)."""
        gateway = make_gateway(self.target, host="127.0.0.1", port=self.port, **self.gateway_options)
        await gateway.start()
        self.gateway = gateway
        self.port = gateway.port
        if wait:
            await gateway.wait_ready(DEADLINE)

    async def stop_gateway(self) -> None:
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            await gateway.stop()

    def call(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` on the market's loop and wait for it."""
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(work(), self.loop).result(2 * DEADLINE)

    def recorded(self, key: tuple[str, int]) -> None:
        """Wait (from the test's thread) until ``key`` was published and recorded."""
        end = time.monotonic() + DEADLINE
        while key not in self.published:
            assert time.monotonic() < end, f"{key[0]} shows seq {key[1]}, which the plant never published"
            time.sleep(0.005)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module, with a throwaway profile."""
    profile = tempfile.mkdtemp(prefix="fastflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER or ""), options=options)
        driver.set_page_load_timeout(DEADLINE)
        driver.set_script_timeout(DEADLINE)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any], what: str,
         deadline: float = DEADLINE) -> Any:
    """Poll ``condition(driver)`` until it is truthy (its value); fail with ``what``."""
    try:
        return WebDriverWait(driver, deadline, poll_frequency=0.05).until(condition)
    except TimeoutException:
        try:
            state = driver.execute_script(
                "const f = window.fastflow; return f ? {state: f.state, received: f.received, "
                "lastError: f.lastError, watchlist: f.watchlist} : null;")
        except WebDriverException as exc:
            state = f"unreadable: {exc.msg}"
        raise AssertionError(f"not in {deadline} s: {what} (page: {state})") from None


def cards(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = driver.execute_script(READ_CARDS)
    return found


def by_symbol(driver: webdriver.Chrome) -> dict[str, dict[str, Any]]:
    return {card["symbol"]: card for card in cards(driver)}


def conn_state(driver: webdriver.Chrome) -> str:
    state: str = driver.find_element(By.ID, "conn-state").text.strip().lower()
    return state


def shown_price(text: str) -> float:
    """A card's LTP text (en-IN grouping: 1,23,456.70) as a number."""
    assert re.fullmatch(r"\d{1,3}(?:,\d{2})*(?:,\d{3})?\.\d{2}(?:\d{2})?", text), f"not a formatted price: {text!r}"
    return float(text.replace(",", ""))


def assert_exact(market: LiveMarket, card: dict[str, Any]) -> None:
    """The card shows exactly the tick the plant published with the card's seq."""
    symbol, seq = card["symbol"], int(card["seq"])
    # The market records a flush once Redis acknowledged it, which can be after the
    # gateway already passed the published frame on to the browser.
    market.recorded((symbol, seq))
    published = market.published[(symbol, seq)]["last_price"]
    assert float(card["ltp"]) == published, (symbol, seq, card["ltp"], published)
    assert shown_price(card["text"]) == published, (symbol, seq, card["text"], published)


def severe(driver: webdriver.Chrome) -> list[str]:
    """The console's SEVERE entries since the last call ([] where chromedriver has no log)."""
    try:
        entries = driver.get_log("browser")
    except WebDriverException:
        return []
    return [entry["message"] for entry in entries if entry.get("level") == "SEVERE"]


def test_dashboard_streams_edits_and_reconnects(redis_server: EmbeddedRedis, browser: webdriver.Chrome) -> None:
    driver = browser
    with LiveMarket(redis_server) as market:
        driver.get(market.url)
        assert driver.title.startswith("fastflow")
        wait(driver, lambda d: conn_state(d) == "live", "the connection badge says live")

        # The default watchlist (localStorage is empty), every card priced by the plant.
        assert [c["symbol"] for c in cards(driver)] == DEFAULT_WATCHLIST
        first = wait(driver, lambda d: (all(c["seq"] for c in cards(d)) and by_symbol(d)),
                     "a price on every default card")
        for card in first.values():
            assert_exact(market, card)

        # Prices move: every card's seq goes up, some LTP text changes, cards flash.
        def moved(d: webdriver.Chrome) -> bool:
            now = by_symbol(d)
            return (all(int(now[s]["seq"]) > int(first[s]["seq"]) for s in DEFAULT_WATCHLIST)
                    and any(now[s]["text"] != first[s]["text"] for s in DEFAULT_WATCHLIST))

        wait(driver, moved, "every card's seq increasing and some LTP changing")
        for card in cards(driver):
            assert_exact(market, card)
        flashes = driver.execute_script("return window.fastflow.flashes;")
        assert flashes["up"] + flashes["down"] > 0

        # The latency readout: the round trip of a ping to the gateway, in ms.
        rtt = wait(driver, lambda d: d.find_element(By.ID, "rtt").get_attribute("data-rtt"), "an rtt readout")
        assert math.isfinite(float(rtt)) and float(rtt) >= 0
        assert re.fullmatch(r"[\d.]+ ms", driver.find_element(By.ID, "rtt").text)

        # Top gainers and losers among the watchlist, by change (the rows on screen).
        def movers(d: webdriver.Chrome) -> list[list[tuple[str, float]]]:
            found: list[list[tuple[str, float]]] = [
                [(symbol, float(change.rstrip("%"))) for symbol, change in rows] for rows in d.execute_script(
                    "const rows = id => Array.from(document.querySelectorAll(id + ' li'))"
                    ".filter(li => li.checkVisibility())"
                    ".map(li => [li.dataset.symbol, li.querySelector('.mover-chg').textContent]);"
                    "return [rows('#gainers'), rows('#losers')];")]
            return found

        gainers, losers = wait(driver, lambda d: any(movers(d)) and movers(d), "the movers panel filled")
        assert len(gainers) + len(losers) > 0 and len(gainers) <= 5 and len(losers) <= 5
        assert {s for s, _ in gainers + losers} <= set(DEFAULT_WATCHLIST)
        assert not {s for s, _ in gainers} & {s for s, _ in losers}
        assert all(c > 0 for _, c in gainers) and [c for _, c in gainers] == sorted((c for _, c in gainers), reverse=True)
        assert all(c < 0 for _, c in losers) and [c for _, c in losers] == sorted(c for _, c in losers)
        assert severe(driver) == []

        # Editing: a symbol as typed by hand, a Kite token, an unknown symbol, a removal.
        field = driver.find_element(By.ID, "add-symbol")
        field.send_keys("wipro\n")
        wait(driver, lambda d: by_symbol(d).get("NSE:WIPRO", {}).get("seq"), "a priced NSE:WIPRO card")
        field.send_keys(f"{ITC_TOKEN}\n")
        wait(driver, lambda d: by_symbol(d).get("NSE:ITC", {}).get("seq"), "the token's card named NSE:ITC, priced")
        assert str(ITC_TOKEN) not in by_symbol(driver)
        field.send_keys("NSE:NOSUCHSYMBOL\n")
        wait(driver, lambda d: "NOSUCHSYMBOL" in d.find_element(By.ID, "notice").text
             and "NSE:NOSUCHSYMBOL" not in by_symbol(d), "an unknown-symbol notice and no card for it")
        for card in cards(driver):
            assert_exact(market, card)

        driver.find_element(By.CSS_SELECTOR, '.card[data-symbol="NSE:SBIN"] .remove').click()
        edited = [s for s in DEFAULT_WATCHLIST if s != "NSE:SBIN"] + ["NSE:WIPRO", "NSE:ITC"]
        wait(driver, lambda d: [c["symbol"] for c in cards(d)] == edited, "the SBIN card removed")
        stored = driver.execute_script("return JSON.parse(localStorage.getItem('fastflow.watchlist'));")
        assert stored == edited
        # Unsubscribed: after every other card has moved on, no SBIN tick was taken in.
        before = by_symbol(driver)
        wait(driver, lambda d: all(int(c["seq"]) > int(before[c["symbol"]]["seq"]) for c in cards(d)),
             "every remaining card updating")
        assert not driver.execute_script("return window.fastflow.ticks.has('NSE:SBIN');")

        # A reload keeps the edited watchlist (localStorage), priced again.
        driver.refresh()
        wait(driver, lambda d: conn_state(d) == "live", "live again after the reload")
        assert [c["symbol"] for c in cards(driver)] == edited
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card after the reload")
        for card in cards(driver):
            assert_exact(market, card)

        # A stored symbol the gateway no longer knows stays, marked, until the user removes it.
        driver.execute_script("localStorage.setItem('fastflow.watchlist', JSON.stringify(arguments[0]));",
                              [*edited, "NSE:DELISTED"])
        driver.get(market.url)  # without ?symbols= (the edits put it in the URL, which wins)
        wait(driver, lambda d: conn_state(d) == "live", "live again after the second reload")
        gone = wait(driver, lambda d: by_symbol(d).get("NSE:DELISTED"), "the stored unknown symbol's card")
        assert "unknown" in gone["classes"].split() and gone["text"] == "unknown" and gone["seq"] is None
        driver.find_element(By.CSS_SELECTOR, '.card[data-symbol="NSE:DELISTED"] .remove').click()
        wait(driver, lambda d: [c["symbol"] for c in cards(d)] == edited, "the unknown card removed")
        assert driver.execute_script("return JSON.parse(localStorage.getItem('fastflow.watchlist'));") == edited
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card")
        for card in cards(driver):
            assert_exact(market, card)
        assert severe(driver) == []

        # The gateway goes away and comes back on the same port: the page reconnects
        # by itself, resubscribes its watchlist and streams again.
        market.call(market.stop_gateway)
        wait(driver, lambda d: conn_state(d) == "reconnecting", "the badge says reconnecting")
        market.call(market.start_gateway)
        wait(driver, lambda d: conn_state(d) == "live", "live again after the gateway restart")
        resumed = by_symbol(driver)
        wait(driver, lambda d: all(int(c["seq"]) > int(resumed[c["symbol"]]["seq"]) for c in cards(d)),
             "every card updating after the reconnect")
        assert [c["symbol"] for c in cards(driver)] == edited
        for card in cards(driver):
            assert_exact(market, card)
        # While the gateway was down the browser logged its failed connection attempts.
        assert [m for m in severe(driver) if "WebSocket connection to" not in m] == []


# -- what a trader must see (issue 15 item 3) ---------------------------------------------------

UNIVERSE = [f"{r['exchange']}:{r['tradingsymbol']}" for r in kite_universe()]
TOKENS = {f"{r['exchange']}:{r['tradingsymbol']}": int(str(r["instrument_token"])) for r in kite_universe()}
LONG_OPTION = max((s for s in UNIVERSE if s.startswith("NFO:") and s[-2:] in ("CE", "PE")), key=len)
CURRENCY_FUTURE = next(s for s in UNIVERSE if s.startswith("CDS:") and s.endswith("FUT"))
EQUITIES = [s for s in UNIVERSE if s.startswith("NSE:") and " " not in s][:16]
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
GREEN, RED = "rgb(38, 166, 91)", "rgb(229, 72, 77)"  # style.css --up, --down

# Everything a card shows, read in one go (one consistent DOM state).
READ_DETAIL = """
return Array.from(document.querySelectorAll('#cards .card'), c => {
  const q = s => { const e = c.querySelector(s); return e ? e.textContent : null; };
  const color = s => { const e = c.querySelector(s); return e ? getComputedStyle(e).color : null; };
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const sym = c.querySelector('.sym'), quote = c.querySelector('.quote'), age = c.querySelector('.age');
  return {
    symbol: c.dataset.symbol, seq: c.dataset.seq || null, ltp: q('.ltp'), close: q('.close'),
    pct: q('.chg-pct') ?? q('.chg'), abs: q('.chg-abs'), bid: q('.bid'), bidQty: q('.bid-qty'), ask: q('.ask'),
    askQty: q('.ask-qty'), spread: q('.spread'), quote: !!quote && quote.checkVisibility(), ltt: q('.ltt'),
    text: c.innerText, title: c.title, ltpColor: color('.ltp'), chgColor: color('.chg'),
    stale: c.classList.contains('stale'), age: age && age.checkVisibility() ? age.textContent : '',
    opacity: Number(getComputedStyle(c).opacity),
    sym: sym.textContent, symFits: sym.scrollWidth <= sym.clientWidth && sym.scrollHeight <= sym.clientHeight,
    symEllipsis: getComputedStyle(sym).textOverflow === 'ellipsis', symBox: box(sym), cardBox: box(c),
    removeBox: box(c.querySelector('.remove')),
  };
});
"""

# The movers rows on screen.
READ_MOVERS = """
const rows = id => Array.from(document.querySelectorAll(id + ' li'))
  .filter(li => li.checkVisibility()).map(li => [li.dataset.symbol, li.querySelector('.mover-chg').textContent]);
return [rows('#gainers'), rows('#losers')];
"""


def detail(driver: webdriver.Chrome) -> dict[str, dict[str, Any]]:
    return {card["symbol"]: card for card in driver.execute_script(READ_DETAIL)}


def badge(driver: webdriver.Chrome) -> tuple[str, str]:
    """The badge's text and colour."""
    found: list[str] = driver.execute_script(
        "const b = document.getElementById('conn-state'); return [b.textContent, getComputedStyle(b).color];")
    return found[0].strip(), found[1]


def open_page(driver: webdriver.Chrome, url: str) -> None:
    """Load ``url`` in a fresh page, the console's entries of the pages before dropped
    (a page left on a stopped gateway logs its reconnects until it is unloaded)."""
    driver.get("about:blank")
    severe(driver)
    driver.get(url)


def page_url(market: LiveMarket, symbols: list[str], extra: str = "") -> str:
    return market.url + "?" + extra + "symbols=" + ",".join(urllib.parse.quote(s, safe=":") for s in symbols)


def url_symbols(driver: webdriver.Chrome) -> list[str] | None:
    """The watchlist in the page's URL (?symbols=), or None without one."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query, keep_blank_values=True)
    values = query.get("symbols")
    return None if values is None else [s for s in values[0].split(",") if s]


def inr(value: float, decimals: int) -> str:
    """``value`` as the page shows a price: en-IN grouping (1,23,456.70), ``decimals`` places."""
    whole, _, frac = f"{abs(value):.{decimals}f}".partition(".")
    head, groups = whole[:-3], [whole[-3:]]
    while head:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ("-" if value < 0 else "") + ",".join(groups) + ("." + frac if frac else "")


def decimals_of(symbol: str) -> int:
    """The decimals the dashboard promises: 4 for currency derivatives, else 2."""
    return 4 if symbol.split(":")[0] in ("CDS", "BCD") else 2


def ist(epoch_seconds: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_seconds, IST).strftime("%H:%M:%S") + " IST"


def day_of(card: dict[str, Any]) -> str:
    """up | down | flat: the card's shown LTP against its shown previous close."""
    ltp, close = shown_price(card["ltp"]), shown_price(card["close"])
    return "up" if ltp > close else "down" if ltp < close else "flat"


def assert_day_colour(card: dict[str, Any]) -> str:
    """The card's LTP and change are coloured by the day's change; which it is."""
    day = day_of(card)
    expected = {"up": GREEN, "down": RED}.get(day)
    for part in ("ltpColor", "chgColor"):
        if expected:
            assert card[part] == expected, (card["symbol"], day, part, card[part], card["ltp"], card["close"])
        else:
            assert card[part] not in (GREEN, RED), (card["symbol"], day, part, card[part])
    return day


def assert_card_shows(market: LiveMarket, card: dict[str, Any]) -> None:
    """Every figure on the card is the one of the tick the plant published with the card's
    seq, with the instrument's decimals; the symbol is whole and visible; no #seq."""
    symbol, seq = card["symbol"], int(card["seq"])
    market.recorded((symbol, seq))
    tick = market.published[(symbol, seq)]
    d = decimals_of(symbol)
    price, close = tick["last_price"], tick["ohlc"]["close"]
    assert card["ltp"] == inr(price, d) and card["close"] == inr(close, d), (symbol, card, tick)
    assert card["ltp"].rpartition(".")[2] == "0" * d or len(card["ltp"].rpartition(".")[2]) == d
    move = price - close
    assert card["abs"] == ("+" if move > 0 else "") + inr(move, d), (symbol, card["abs"], price, close)
    assert re.fullmatch(r"[+-]?\d+\.\d{2}%", card["pct"]) and card["pct"].startswith("+") == (tick["change"] > 0)
    assert abs(float(card["pct"].rstrip("%")) - tick["change"]) <= 0.0051, (symbol, card["pct"], tick["change"])
    assert_day_colour(card)
    depth = tick.get("depth")
    if depth and depth["buy"] and depth["sell"]:
        bid, ask = depth["buy"][0], depth["sell"][0]
        assert card["quote"], (symbol, "the bid/ask row is hidden")
        assert card["bid"] == inr(bid["price"], d) and card["ask"] == inr(ask["price"], d), (symbol, card, depth)
        times = "\N{MULTIPLICATION SIGN}"
        assert card["bidQty"] == f" {times}{inr(bid['quantity'], 0)}", (symbol, card["bidQty"], bid)
        assert card["askQty"] == f" {times}{inr(ask['quantity'], 0)}", (symbol, card["askQty"], ask)
        assert card["spread"] == inr(ask["price"] - bid["price"], d), (symbol, card["spread"], bid, ask)
    else:
        assert not card["quote"], (symbol, "a bid/ask row without depth")
    traded = tick.get("last_trade_time") or tick["exchange_timestamp"]
    assert card["ltt"] == ist(traded), (symbol, card["ltt"], traded)
    # The whole symbol is on screen: not clipped, no ellipsis, inside its card, clear of the remove button.
    assert card["sym"] == symbol and card["symFits"] and not card["symEllipsis"], card
    left, _, right, bottom = card["symBox"]
    assert card["cardBox"][0] <= left and right <= card["removeBox"][0] and bottom <= card["cardBox"][3], card
    assert not re.search(r"#\s*\d", card["text"]), card["text"]  # the seq is in the tooltip only
    assert f"seq {seq}" in card["title"]


def test_cards_show_quote_change_trade_time_and_whole_symbols(redis_server: EmbeddedRedis,
                                                               browser: webdriver.Chrome) -> None:
    """A card shows the LTP, the day's change in ₹ and %, coloured by it, the best bid and
    ask with their quantities and the spread (when the tick has depth), the last trade's
    exchange time in IST, all with the instrument's decimals (4 for a currency future),
    and its whole symbol, a long option's strike and CE/PE included."""
    driver = browser
    symbols = ["NSE:INFY", "NSE:NIFTY 50", LONG_OPTION, CURRENCY_FUTURE]
    with LiveMarket(redis_server) as market:
        open_page(driver, page_url(market, symbols))
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        seen: dict[str, set[int]] = {s: set() for s in symbols}

        def checked_three_updates(d: webdriver.Chrome) -> bool:
            cards = detail(d)
            assert list(cards) == symbols
            for card in cards.values():
                if card["seq"]:
                    assert_card_shows(market, card)
                    seen[card["symbol"]].add(int(card["seq"]))
            return all(len(seqs) >= 3 for seqs in seen.values())

        wait(driver, checked_three_updates, "three updates of every card, each shown exactly")
        cards = detail(driver)
        assert not cards["NSE:NIFTY 50"]["quote"]  # an index: no depth
        assert len(cards[CURRENCY_FUTURE]["ltp"].rpartition(".")[2]) == 4
        assert len(cards["NSE:INFY"]["ltp"].rpartition(".")[2]) == 2
        assert severe(driver) == []


def test_colours_flashes_and_movers_follow_the_days_change(redis_server: EmbeddedRedis,
                                                           browser: webdriver.Chrome) -> None:
    """A card is green above the previous close, red below, whatever its last tick did; a
    price change flashes it briefly (a 300 ms fade), at most once a second however fast
    it ticks; and the movers panel always agrees with the cards on screen."""
    driver = browser
    with LiveMarket(redis_server) as market:
        open_page(driver, page_url(market, EQUITIES))
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card")
        # Every flash, timed on the page's clock as it starts (the flash-up/-down class added).
        driver.execute_script("""
          window.__flashes = {};
          new MutationObserver(records => {
            const before = new Map();  // each card's classes before this batch of changes
            for (const r of records) if (!before.has(r.target)) before.set(r.target, (r.oldValue || '').split(' '));
            for (const [c, was] of before) {
              const on = cls => c.classList.contains(cls) && !was.includes(cls);
              if (on('flash-up') || on('flash-down')) (window.__flashes[c.dataset.symbol] ||= []).push(performance.now());
            }
          }).observe(document.getElementById('cards'),
                       {attributes: true, attributeFilter: ['class'], attributeOldValue: true, subtree: true});""")
        days: set[str] = set()
        states: set[tuple[str, ...]] = set()

        def agree(d: webdriver.Chrome) -> bool:
            shown, (gainers, losers) = d.execute_script(f"return [(() => {{{READ_DETAIL}}})(), "
                                                         f"(() => {{{READ_MOVERS}}})()];")
            by = {c["symbol"]: c for c in shown}
            for card in shown:
                days.add(assert_day_colour(card))
            for rows, side, order in ((gainers, "up", -1), (losers, "down", 1)):
                assert len(rows) <= 5
                for symbol, text in rows:  # the card's own figure, on the right side
                    assert by[symbol]["pct"] == text and day_of(by[symbol]) == side, (symbol, text, by[symbol])
                values = [float(text.rstrip("%")) for _, text in rows]
                assert values == sorted(values, key=lambda v: order * v), rows
                rest = [float(c["pct"].rstrip("%")) for c in shown
                        if day_of(c) == side and c["symbol"] not in {s for s, _ in rows}]
                if len(rows) < 5:
                    assert not rest, (side, rows, rest)  # every mover of that side is listed
                else:  # no card of that side beyond the fifth row's figure is left out
                    assert all(order * v >= order * values[-1] for v in rest), (side, rows, rest)
            states.add(tuple(c["seq"] or "" for c in shown))
            flashes = d.execute_script("return window.__flashes;")
            return len(states) >= 40 and {"up", "down"} <= days and max(map(len, flashes.values()), default=0) >= 3

        wait(driver, agree, "40 states of the cards, green and red ones, the movers agreeing; a card flashed 3 times",
             deadline=3 * DEADLINE)
        flashes = driver.execute_script("return window.__flashes;")
        for symbol, times in flashes.items():
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(gap >= 900 for gap in gaps), (symbol, gaps)  # at most one flash a second
        counts = driver.execute_script("return window.fastflow.flashes;")
        assert counts["up"] + counts["down"] > 0 and counts["skipped"] > 0, counts  # fast cards did not strobe
        fade = driver.execute_script(
            # a card not in the 50 ms hold of a flash (which has no transition, by design)
            "const s = getComputedStyle(document.querySelector('#cards .card:not(.flash-up):not(.flash-down)'));"
            "return [s.transitionProperty.split(', '), s.transitionDuration.split(', ')];")
        durations = dict(zip(*fade, strict=True))
        assert durations["background-color"] == "0.3s", durations
        assert severe(driver) == []


def test_feed_state_market_and_stale_cards(redis_server: EmbeddedRedis, browser: webdriver.Chrome) -> None:
    """The badge follows the gateway's word on the feed (live, stale, feed down; never
    green without Redis), the market's session is shown, and a card whose instrument has
    had no update for 5 s is dimmed and says how long, while the others stream on."""
    driver = browser
    symbols = ["NSE:INFY", "NSE:TCS", "NSE:RELIANCE", "NSE:SBIN"]
    with LiveMarket(redis_server, stale_after=2.0) as market:
        open_page(driver, page_url(market, symbols))
        wait(driver, lambda d: badge(d) == ("live", GREEN), "a green live badge")
        assert driver.find_element(By.ID, "market-state").text == "market open"  # a simulated market is open
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card")

        # One instrument stops ticking; the others go on.
        market.freeze({"NSE:TCS"})
        frozen = wait(driver, lambda d: (c := detail(d))["NSE:TCS"]["stale"] and c["NSE:TCS"]["opacity"] < 0.6 and c,
                      "the TCS card marked stale and dimmed (its 300 ms fade done)")
        tcs = frozen["NSE:TCS"]
        assert re.fullmatch(r"stale \d+ s", tcs["age"]) and int(tcs["age"].split()[1]) >= 5, tcs["age"]
        assert badge(driver) == ("live", GREEN)

        def others_moved(d: webdriver.Chrome) -> bool:
            now = detail(d)
            assert now["NSE:TCS"]["stale"] and now["NSE:TCS"]["seq"] == tcs["seq"]
            assert not any(now[s]["stale"] for s in symbols if s != "NSE:TCS"), now
            return all(int(now[s]["seq"]) > int(frozen[s]["seq"]) for s in symbols if s != "NSE:TCS")

        wait(driver, others_moved, "the other cards updating, fresh, while TCS stays stale")
        market.freeze(set())
        wait(driver, lambda d: not detail(d)["NSE:TCS"]["stale"], "TCS fresh again once it ticks")

        # The whole feed stops: the gateway says stale, every card goes stale.
        market.call(market.pause)
        wait(driver, lambda d: badge(d)[0] == "stale", "the badge says stale")
        assert badge(driver)[1] != GREEN
        wait(driver, lambda d: all(c["stale"] for c in detail(d).values()), "every card stale")
        market.call(market.resume)
        wait(driver, lambda d: badge(d) == ("live", GREEN) and not any(c["stale"] for c in detail(d).values()),
             "live and fresh again")

        # Redis goes away: the gateway has no subscription, the badge says so, in red.
        market.call(market.pause)
        redis_server.kill()
        wait(driver, lambda d: badge(d) == ("feed down", RED), "a red 'feed down' badge")
        assert driver.execute_script("return window.fastflow.state;") == "down"
        redis_server.restart()
        market.call(market.resume)
        wait(driver, lambda d: badge(d) == ("live", GREEN), "live again once Redis is back", deadline=2 * DEADLINE)
        # The page logged nothing; the gateway may have (its own reconnects are not the page's).
        assert [m for m in severe(driver) if "WebSocket connection to" not in m] == []


@contextlib.contextmanager
def on_every_page(driver: webdriver.Chrome, source: str) -> Iterator[None]:
    """``source`` runs first on every page loaded meanwhile (CDP)."""
    added = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]})


def test_a_gateway_without_redis_is_never_green(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """A gateway that cannot reach Redis: the page connects, and its badge says "feed
    down", in red; it never said "live" on the way."""
    driver = browser
    nowhere = RedisTarget.parse(f"unix://{tmp_path / 'no-redis.sock'}")
    record = """
      window.__badges = [];
      new MutationObserver(() => {
        const b = document.getElementById('conn-state');
        if (b && window.__badges[window.__badges.length - 1] !== b.textContent) window.__badges.push(b.textContent);
      }).observe(document, {childList: true, characterData: true, subtree: true});"""
    with on_every_page(driver, record), LiveMarket(nowhere, stream=False) as market:
        open_page(driver, market.url)
        wait(driver, lambda d: badge(d) == ("feed down", RED), "a red 'feed down' badge")
        said = driver.execute_script("return window.__badges;")
        assert said and "live" not in said, said
        assert driver.find_element(By.ID, "market-state").is_displayed()  # the session, from the calendar
        assert severe(driver) == []


def test_latency_readout_is_a_round_trip_on_the_browsers_clock(redis_server: EmbeddedRedis,
                                                                browser: webdriver.Chrome) -> None:
    """With the browser's clock an hour ahead of the plant's, the readout is still the
    ping's round trip (no difference of two machines' clocks), no card is taken for
    stale, and the trade times are the exchange's."""
    driver = browser
    skew = """
      (() => { const SKEW = 3600 * 1000, now = Date.now, origin = performance.timeOrigin;
               Date.now = () => now() + SKEW;
               Object.defineProperty(performance, 'timeOrigin', {get: () => origin + SKEW}); })();"""
    with on_every_page(driver, skew), LiveMarket(redis_server) as market:
        open_page(driver, page_url(market, ["NSE:INFY", "NSE:TCS"]))
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        assert driver.execute_script("return Date.now();") > time.time() * 1000 + 3_000_000  # the skew took
        rtt = float(wait(driver, lambda d: d.find_element(By.ID, "rtt").get_attribute("data-rtt"), "an rtt"))
        assert 0 <= rtt < 60_000, rtt
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card")
        before = detail(driver)

        def updating_and_no_hour_shown(d: webdriver.Chrome) -> bool:
            header = d.find_element(By.CSS_SELECTOR, ".status").text
            assert "rtt" in header
            for figure in re.findall(r"(-?[\d,.]+) ms", header):  # no readout carries the hour
                assert abs(float(figure.replace(",", ""))) < 60_000, header
            now = detail(d)
            assert not any(c["stale"] for c in now.values()), now
            return all(int(c["seq"]) > int(before[c["symbol"]]["seq"]) + 5 for c in now.values())

        wait(driver, updating_and_no_hour_shown, "every card updating, the header free of the clock skew")
        for card in detail(driver).values():
            assert_card_shows(market, card)
        assert severe(driver) == []


def test_the_url_sets_the_watchlist_and_follows_its_edits(redis_server: EmbeddedRedis,
                                                          browser: webdriver.Chrome) -> None:
    """``?symbols=`` sets the watchlist (as typed: ``infy`` is NSE:INFY); adding or removing a
    card rewrites the URL in place, other parameters kept; a reload shows the same list."""
    driver = browser
    with LiveMarket(redis_server) as market:
        open_page(driver, market.url + "?view=desk&symbols=NSE:INFY,tcs,NSE:NIFTY%2050")
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        assert [c["symbol"] for c in cards(driver)] == ["NSE:INFY", "NSE:TCS", "NSE:NIFTY 50"]
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card")
        assert driver.execute_script("return localStorage.getItem('fastflow.watchlist');") is None  # a link's list

        driver.find_element(By.ID, "add-symbol").send_keys("wipro\n")
        wait(driver, lambda d: url_symbols(d) == ["NSE:INFY", "NSE:TCS", "NSE:NIFTY 50", "NSE:WIPRO"],
             "NSE:WIPRO in the URL")
        driver.find_element(By.CSS_SELECTOR, '.card[data-symbol="NSE:INFY"] .remove').click()
        wanted = ["NSE:TCS", "NSE:NIFTY 50", "NSE:WIPRO"]
        wait(driver, lambda d: url_symbols(d) == wanted, "NSE:INFY out of the URL")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query)
        assert query["view"] == ["desk"]
        assert "symbols=NSE:TCS,NSE:NIFTY%2050,NSE:WIPRO" in driver.current_url  # readable
        assert driver.execute_script("return JSON.parse(localStorage.getItem('fastflow.watchlist'));") == wanted

        driver.refresh()
        wait(driver, lambda d: conn_state(d) == "live", "live after the reload")
        assert [c["symbol"] for c in cards(driver)] == wanted
        wait(driver, lambda d: all(c["seq"] for c in cards(d)), "a price on every card after the reload")
        for card in cards(driver):
            assert_exact(market, card)
        driver.execute_script("localStorage.clear();")  # the next test's gateway may get this port
        assert severe(driver) == []


def test_examples_come_from_the_live_universe(redis_server: EmbeddedRedis, browser: webdriver.Chrome) -> None:
    """The symbol field's placeholder and the unknown-symbol hint name an instrument the
    gateway knows (the watchlist's first, with its Kite token), not a hard-coded one."""
    driver = browser
    with LiveMarket(redis_server) as market:
        open_page(driver, page_url(market, ["NSE:TCS", "NSE:WIPRO"]))
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        field = driver.find_element(By.ID, "add-symbol")
        wait(driver, lambda d: "NSE:TCS" in (field.get_attribute("placeholder") or ""), "NSE:TCS in the placeholder")
        placeholder = field.get_attribute("placeholder") or ""
        assert str(TOKENS["NSE:TCS"]) in placeholder and "NIFTY26NOVFUT" not in placeholder, placeholder
        field.send_keys("NSE:NOSUCHSYMBOL\n")
        wait(driver, lambda d: "NOSUCHSYMBOL" in d.find_element(By.ID, "notice").text, "the unknown-symbol notice")
        hint = driver.find_element(By.ID, "notice").text
        assert "e.g. NSE:TCS" in hint, hint
        assert "NIFTY26NOVFUT" not in driver.page_source
        driver.execute_script("localStorage.clear();")
        assert severe(driver) == []


# -- the msgpack codec -------------------------------------------------------------------------

CODEC_JS = """
const [cases] = arguments;
const b64 = bytes => { let s = ''; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); };
const unb64 = text => Uint8Array.from(atob(text), c => c.charCodeAt(0));
const plain = v => {
  if (v instanceof Uint8Array) return {bin: b64(v)};
  if (v instanceof Date) return {date: v.getTime()};
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) <= 2 ** 64) {
    return {big: BigInt(v).toString()};  // a 64-bit int, as the nearest double
  }
  if (v && typeof v === 'object') {
    if ('extType' in v) return {ext: v.extType, data: b64(v.data)};
    const out = {}; for (const k of Object.keys(v)) out[k] = plain(v[k]); return out;
  }
  return v;
};
const decoded = cases.decode.map(text => {
  try { return {ok: plain(FastflowMsgpack.decode(unb64(text)))}; } catch (e) { return {error: e.message}; }
});
const encoded = cases.encode.map(v => b64(FastflowMsgpack.encode(v)));
const bin = b64(FastflowMsgpack.encode({data: unb64(cases.bin)}));
return {decoded, encoded, bin};
"""


def plain(value: Any) -> Any:
    """What CODEC_JS's ``plain`` makes of the decoded ``value``."""
    if isinstance(value, bytes):
        return {"bin": base64.b64encode(value).decode()}
    if isinstance(value, msgpack.Timestamp):
        return {"date": value.to_unix_nano() // 1_000_000}
    if isinstance(value, msgpack.ExtType):
        return {"ext": value.code, "data": base64.b64encode(value.data).decode()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return {"big": str(int(float(value)))}
    return value


def test_msgpack_codec_matches_msgpack_python(browser: webdriver.Chrome) -> None:
    """static/msgpack.js decodes everything msgpack-python makes (every type and width,
    and the plant's real tick frames), refuses malformed input, and encodes with the
    minimal forms msgpack-python uses (so its bytes are msgpack-python's own)."""
    plant_frame = _plant_frame()
    values: list[Any] = [
        0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**53 + 2, 2**63, 2**64 - 1,
        -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**53) + 1, -(2**63),
        1.5, -0.1, 1e300, 5e-324, None, True, False,
        "", "a" * 31, "b" * 32, "c" * 255, "d" * 256, "é€😀" * 30, "x" * 70_000,
        [], list(range(15)), list(range(16)), list(range(70_000)),
        {}, {str(i): i for i in range(15)}, {str(i): i for i in range(16)}, {str(i): i for i in range(70_000)},
        {"nested": [{"a": [None, [True, {"b": -1.25}]]}], "ohlc": {"open": 1.05, "close": 2}},
        b"", b"\x00\xff" * 100, b"z" * 70_000,
        msgpack.ExtType(5, b"a"), msgpack.ExtType(6, b"ab"), msgpack.ExtType(7, b"abcd"), msgpack.ExtType(8, b"x" * 8),
        msgpack.ExtType(9, b"y" * 16), msgpack.ExtType(10, b"abc"), msgpack.ExtType(11, b"q" * 300),
        msgpack.Timestamp(1_700_000_000, 0), msgpack.Timestamp(1_700_000_000, 500_000_000),
        msgpack.Timestamp(2**34 + 5, 7_000_000),
    ]
    blobs = [msgpack.packb(v) for v in values]
    blobs.append(b"\xca\x3f\xc0\x00\x00")  # float32 1.5
    values.append(1.5)
    blobs.append(plant_frame)
    values.append(msgpack.unpackb(plant_frame, raw=False))
    bad = [b"\xc1", b"\x92\x01", b"\xcb\x00", b"\x01\x02", b"\x91" * 10_000, b"\xdd\x7f\xff\xff\xff"]
    control = [
        {"op": "subscribe", "symbols": ["NSE:INFY", "NSE:NIFTY 50", 408065]},
        {"op": "unsubscribe", "symbols": ["NSE:M&M", "NSE_EQ|INE009A01021"]},
        {"op": "snapshot"}, {"op": "ping", "id": 42}, {"op": "ping", "id": 2**40},
        [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, -1, -32, -33, -128, -129,
         -32768, -32769, -(2**31), -(2**31) - 1, -(2**53) + 1],
        [1.5, -0.1, 1e300, None, True, False, "", "a" * 31, "b" * 32, "c" * 256, "d" * 70_000, "é€😀"],
        {str(i): list(range(i)) for i in range(20)},
    ]
    driver = browser
    driver.get("about:blank")
    severe(driver)  # drop what the previous test's page logged (its reconnects to a gateway now gone)
    driver.execute_script((STATIC / "msgpack.js").read_text())
    cases = {"decode": [base64.b64encode(b).decode() for b in blobs + bad], "encode": control,
             "bin": base64.b64encode(b"\x00\x01\xfe\xff" * 100).decode()}
    result = driver.execute_script(CODEC_JS, cases)

    decoded = result["decoded"]
    for value, blob, got in zip(values, blobs, decoded[:len(blobs)], strict=True):
        assert got == {"ok": plain(value)}, blob[:40]
    errors = [got.get("error", "") for got in decoded[len(blobs):]]
    assert errors[0].startswith("invalid msgpack type byte 0xc1")
    assert all(e.startswith("truncated msgpack value") for e in (errors[1], errors[2], errors[5])), errors
    assert errors[3].startswith("trailing bytes")
    assert errors[4].startswith("msgpack nesting too deep")

    for value, got in zip(control, result["encoded"], strict=True):
        encoded = base64.b64decode(got)
        assert msgpack.unpackb(encoded, raw=False, strict_map_key=False) == value
        # Byte for byte what msgpack-python makes of it (the same minimal forms; the map
        # order is the page's, which the WebDriver transport does not keep).
        assert msgpack.packb(msgpack.unpackb(encoded, raw=False, strict_map_key=False)) == encoded, value
    assert base64.b64decode(result["bin"]) == msgpack.packb({"data": b"\x00\x01\xfe\xff" * 100})
    assert severe(driver) == []


def _plant_frame() -> bytes:
    """A real frame of the plant's full ticks (``TickBatch.frame()``), depth included."""
    from fastflow.hotpath import KiteDecoder, MarketState
    from fastflow.instruments import Instruments
    from fastflow.sim.market import KiteMarket
    from fastflow.sim.universe import kite_universe

    rows = kite_universe()
    market = KiteMarket.from_rows(rows, seed=3)
    state = MarketState(Instruments.from_kite_rows(rows))
    decoder = KiteDecoder(state)
    decoder.feed(market.step(50, "full"))
    frame: bytes = bytes(state.flush().frame())
    return frame


def test_make_run_shows_live_prices_in_the_browser(browser: webdriver.Chrome, tmp_path: Path) -> None:
    """What `make run` does (`fastflow run`: embedded Redis, simulator, plant and gateway as
    processes), seen from a browser: the dashboard connects, prices its default watchlist and
    they move; then Ctrl-C stops it with status 0."""
    import os
    import signal
    import subprocess
    import sys

    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen([sys.executable, "-m", "fastflow", "run", "--port", "0"], stdout=out,
                               stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        found: list[str] = []

        def dashboard_url() -> bool:
            assert run.poll() is None, log.read_text()
            match = re.search(r"dashboard (http://\S+)", log.read_text())
            if match:
                found.append(match.group(1))
            return bool(match)

        end = time.monotonic() + 60  # a minute, as the README promises
        while not dashboard_url():
            assert time.monotonic() < end, f"no dashboard URL in 60 s:\n{log.read_text()}"
            time.sleep(0.05)  # polling the log file for a condition, with a deadline
        browser.get(found[0])
        wait(browser, lambda d: conn_state(d) == "live", "the connection badge says live")
        first = wait(browser, lambda d: all(c["seq"] for c in cards(d)) and by_symbol(d), "a price on every card")
        assert set(first) == set(DEFAULT_WATCHLIST)
        for card in first.values():
            assert shown_price(card["text"]) > 0
        wait(browser, lambda d: all(int(by_symbol(d)[s]["seq"]) > int(first[s]["seq"]) for s in DEFAULT_WATCHLIST),
             "every card's seq increasing")
        assert not severe(browser)
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(60)
    assert code == 0, log.read_text()
    assert "stopped: every child exited, files removed" in log.read_text()


# Every row of the flow tape, read in one go.
READ_FLOW = """
return Array.from(document.querySelectorAll('#flow-rows tr'), r => ({
  kind: r.dataset.kind, symbol: r.dataset.symbol, score: Number(r.dataset.score), receive: r.dataset.receive,
  key: [r.dataset.symbol, r.dataset.kind, Number(r.dataset.quantity), Number(r.dataset.ts)],
  classes: r.className, cells: Array.from(r.children, c => c.textContent), breakdown: r.lastChild.title}));
"""
FLOW_SETTINGS = FlowSection(premium_floor=0.0, premium_floors=(), z_min_samples=5, voi_min_lots=1, repeat_hits=3,
                            sweep_min_lots=0)


def test_the_flow_tape_shows_the_plants_events_filtered_in_the_browser(redis_server: EmbeddedRedis,
                                                                      browser: webdriver.Chrome) -> None:
    """The tape shows the events the plant published, newest first, each with its figures
    (₹ lakh, price against the touch, the score's breakdown on hover), coloured by its
    sentiment, golden sweeps marked; the filters (kept across a reload) narrow it; the net
    premium per underlying adds up the events the page holds."""
    driver = browser
    with LiveMarket(redis_server, packets=300, flow=FLOW_SETTINGS) as market:
        open_page(driver, page_url(market, ["NSE:INFY"]))
        driver.execute_script("localStorage.removeItem('fastflow.flow');")
        driver.refresh()
        wait(driver, lambda d: conn_state(d) == "live", "the badge says live")
        wait(driver, lambda d: len(d.execute_script(READ_FLOW)) >= 20, "20 rows on the tape")
        # An event's key: contract, kind, quantity and exchange second (receive_time_ns loses its last
        # digits in a JavaScript number).
        rows = driver.execute_script(READ_FLOW)

        def recorded() -> dict[tuple[Any, ...], dict[str, Any]]:
            """The market's events by key, once it has recorded every one the page shows (the
            market records a flush when Redis acknowledged it, maybe after the browser got it)."""
            end = time.monotonic() + DEADLINE
            while True:
                keys = {(e["symbol"], e["kind"], e["quantity"], e["exchange_timestamp"]): e
                        for e in list(market.events)}
                if all(tuple(r["key"]) in keys for r in rows) or time.monotonic() > end:
                    return keys
                time.sleep(0.05)

        by_key = recorded()
        receives = [float(r["receive"]) for r in rows]
        assert receives == sorted(receives, reverse=True)  # newest first
        for row in rows:
            event = by_key[tuple(row["key"])]  # an event the plant published
            assert row["score"] == event["score"]
            assert row["cells"][1] == event["symbol"]
            premium = event["premium"]
            unit = 1e7 if premium >= 1e7 else 1e5
            assert row["cells"][5].endswith(" Cr" if unit == 1e7 else " L")
            assert float(row["cells"][5][1:].split()[0]) == pytest.approx(premium / unit, abs=0.0051)
            shown_prices = [float(x) for x in re.findall(r"[\d.]+", row["cells"][6])]
            assert shown_prices == pytest.approx([event["price"], event["bid"], event["ask"]], abs=0.0051)
            assert event["sentiment"] in row["classes"].split()
            golden = (event["kind"] == "sweep" and event["aggressor"] in ("above_ask", "at_ask")
                      and event["volume"] > event["oi"] and event["score"] >= 70)
            assert ("golden" in row["classes"].split()) == golden
            assert row["breakdown"].startswith("premium ")
        # Filters, in the browser: a kind and a minimum score.
        driver.execute_script("const k = document.getElementById('flow-kind'); k.value = 'sweep';"
                              "k.dispatchEvent(new Event('change'));"
                              "const s = document.getElementById('flow-min-score'); s.value = '20';"
                              "s.dispatchEvent(new Event('input'));")

        def only_sweeps(d: webdriver.Chrome) -> list[dict[str, Any]] | None:
            shown = d.execute_script(READ_FLOW)
            return shown if shown and all(r["kind"] == "sweep" and r["score"] >= 20 for r in shown) else None

        wait(driver, only_sweeps, "only sweeps scoring 20 or more")
        # The rows and the events the page holds, read in one go while the stream goes on: the
        # tape is the newest matching ones, unless a render is still due for the latest frame.
        shown, held_now = driver.execute_script(
            READ_FLOW.replace("return ", "const rows = ", 1).rstrip().rstrip(";")
            + "; return [rows, window.fastflow.flow.map(e => [e.symbol, e.kind, e.quantity, e.exchange_timestamp])];")
        held = [tuple(h) for h in held_now]
        rows = [{"key": list(h)} for h in held]
        by_key = recorded()
        matching = [k for k in reversed(held) if k[1] == "sweep" and by_key[k]["score"] >= 20]
        keys = [tuple(r["key"]) for r in shown]
        assert keys and keys[-1] in matching  # every row shown is a matching event the page holds ...
        first = matching.index(keys[0])
        assert keys == matching[first:first + len(keys)]  # ... in order, none left out
        # The net premium of the top underlying: bullish minus bearish over the events held.
        net = driver.execute_script("const li = document.querySelector('#flow-net li');"
                                    "return li ? [li.dataset.underlying, Number(li.dataset.net)] : null;")
        assert net is not None
        total = sum((1 if by_key[h]["sentiment"] == "bullish" else -1) * by_key[h]["premium"]
                    for h in held if by_key[h]["underlying"] == net[0] and by_key[h]["sentiment"] in ("bullish", "bearish"))
        assert net[1] == pytest.approx(total, rel=1e-9)
        driver.refresh()  # the filter is kept in the browser
        wait(driver, lambda d: d.execute_script("return document.getElementById('flow-kind').value") == "sweep",
             "the kind filter restored")
        wait(driver, only_sweeps, "only sweeps after the reload")
        assert severe(driver) == []
