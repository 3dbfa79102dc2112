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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback as traceback_module
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack
import pytest

from fastflow.gateway.server import Gateway
from fastflow.sim.universe import kite_universe
from fastflow.store.embedded import EmbeddedRedis

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
    publishes is recorded in ``published[(symbol, seq)] = last_price``."""

    def __init__(self, server: EmbeddedRedis, hz: float = 20.0, packets: int = 100) -> None:
        self.target = target_of(server)
        self.hz = hz
        self.packets = packets
        self.published: dict[tuple[str, int], float] = {}
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
        self._stop = asyncio.Event()
        feed = MarketFeed(self.target)
        await feed.start()

        def record(batch: Any) -> None:
            for symbol in batch.symbols():
                tick = feed.tick(symbol)
                self.published[(symbol, int(tick["seq"]))] = float(tick["last_price"])

        feed.run(self.hz, self.packets, on_batch=record)
        try:
            await self.start_gateway()
            self.url = self.gateway.http_url if self.gateway else ""
            self._ready.set()
            await self._stop.wait()
        finally:
            await self.stop_gateway()
            await feed.stop()

    async def start_gateway(self) -> None:
        """A gateway on ``self.port`` (the first one: any free port)."""
        gateway = make_gateway(self.target, host="127.0.0.1", port=self.port)
        await gateway.start()
        self.gateway = gateway
        self.port = gateway.port
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
    published = market.published[(symbol, seq)]
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

        # The latency readout: rolling p50/p99 of live ticks, in ms.
        wait(driver, lambda d: d.find_element(By.ID, "latency").get_attribute("data-p50"), "a latency readout")
        latency = driver.find_element(By.ID, "latency")
        assert re.fullmatch(r"p50 -?[\d.]+ ms · p99 -?[\d.]+ ms", latency.text), latency.text
        assert math.isfinite(float(latency.get_attribute("data-p50") or "nan"))
        assert math.isfinite(float(latency.get_attribute("data-p99") or "nan"))
        assert driver.execute_script("return window.fastflow.latency.samples;") > 0

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
        driver.refresh()
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
