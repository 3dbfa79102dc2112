/* The fastflow live dashboard: one WebSocket to the gateway (docs/protocol.md),
 * fastflow.msgpack.v1 frames decoded by msgpack.js, a watchlist kept in the page's URL
 * (?symbols=NSE:INFY,NSE:TCS) and in localStorage.
 *
 * Rendering: messages only update `app.ticks` and mark symbols dirty; the DOM is
 * touched at most once per animation frame, only for the dirty cards, through element
 * references kept per card (nothing is rebuilt per message). The movers panel is
 * recomputed in the same pass, from the values just put on the cards, so the two never
 * disagree. The header's counters and the cards' age markers are updated four times a
 * second.
 *
 * What the page tells, and from what:
 * - the badge (`#conn-state`): the connection (connecting | reconnecting), then the
 *   gateway's feed status (the `status` message): live | degraded | stale | feed down;
 *   `#market-state`: the market's session (open | pre-open | closed);
 * - a card's colour: the day's change (LTP against the previous close), never the last
 *   tick's direction; a brief flash on a price change, at most one a second per card;
 * - a card goes dim with "stale N s" when its instrument had no update for
 *   CARD_STALE_MS (or CARD_STALE_GAPS of its own usual gaps, if longer: an illiquid
 *   contract's silence is normal) while the market is open (timed on this page's monotonic clock);
 * - prices with the instrument's decimals: 4 for currency derivatives (Kite's CDS and
 *   BCD, Upstox's NCD_FO and BCD_FO), 2 for everything else (the ticks carry no tick
 *   size);
 * - the latency readout is the round trip of a ping to the gateway, on this browser's
 *   clock only: a difference between this clock and another machine's means nothing.
 *
 * Test and debugging hooks: `window.fastflow` (state, ticks, received, watchlist, rtt,
 * flashes, ...); each card is `.card[data-symbol][data-seq][data-ltp][data-day]` with
 * a `.ltp`, and `.stale` when stale; `#conn-state` (text, and data-state: connecting |
 * reconnecting | live | degraded | stale | down); `#rtt` (data-rtt in ms).
 */
(function () {
  "use strict";

  var msgpack = window.FastflowMsgpack;
  var MSGPACK = "fastflow.msgpack.v1";
  var JSON_PROTOCOL = "fastflow.json.v1";
  var STORAGE_KEY = "fastflow.watchlist";
  var DEFAULT_WATCHLIST = [
    "NSE:NIFTY 50", "NSE:NIFTY BANK", "NSE:INFY", "NSE:RELIANCE",
    "NSE:TCS", "NSE:HDFCBANK", "NSE:ICICIBANK", "NSE:SBIN",
  ];
  var SLOW_UPDATE_MS = 250;      // counters and card ages: 4 times a second
  var FLASH_HOLD_MS = 50;        // the flash colour is held this long, then fades (style.css: 300 ms)
  var FLASH_GAP_MS = 1000;       // at most one flash per card per second, whatever the tick rate
  var CARD_STALE_MS = 5000;      // a card with no update for this long (market open) is marked stale ...
  var CARD_STALE_GAPS = 5;       // ... or for this many of its own usual gaps, if longer (a far strike
                                 // updates every 10-20 s: its silence is normal, not a stale feed)
  var PING_INTERVAL_MS = 5000;
  var STALL_MS = 20000;          // no frame at all (not even a pong) for this long: reconnect
  var BACKOFF_MIN_MS = 300;
  var BACKOFF_MAX_MS = 10000;
  var RETRY_SUBSCRIBE_MS = 1000; // the gateway had no instrument list yet: subscribe again
  var MOVERS = 5;
  var MAX_SYMBOL_LENGTH = 128;
  var CURRENCY = /^(CDS|BCD):|^(NCD|BCD)_/;  // 4 decimals: Kite's currency exchanges, Upstox's segments
  var MARKET_TEXT = { open: "market open", pre_open: "pre-open", closed: "market closed" };
  var FLOW_KEY = "fastflow.flow";    // the tape's filter, kept in localStorage
  var FLOW_KEPT = 500;               // events the page keeps (the gateway's recent ones first)
  var FLOW_SHOWN = 200;              // rows the tape shows
  var FLOW_NET_ROWS = 8;
  var GOLDEN_SCORE = 70;             // golden sweep: a sweep on the ask side, volume over OI, this score
  var INDEX_OF = { NIFTY: "NSE:NIFTY 50", BANKNIFTY: "NSE:NIFTY BANK", FINNIFTY: "NSE:NIFTY FIN SERVICE",
                   MIDCPNIFTY: "NSE:NIFTY MID SELECT", SENSEX: "BSE:SENSEX" };

  var app = {
    state: "connecting",        // what the badge says: connecting | reconnecting | live | degraded | stale | down
    feed: null,                 // the gateway's latest `status` on this connection
    subscribed: false,          // the watchlist's first subscribe on this connection was answered
    ticks: new Map(),           // symbol -> its latest tick map (watchlist symbols only)
    received: 0,                // ticks received (snapshots included)
    watchlist: [],
    unknown: new Set(),         // watchlist entries the gateway does not know
    rtt: null,                  // ms, the last ping's round trip
    flashes: { up: 0, down: 0, skipped: 0 },
    connects: 0,
    server: null,               // the gateway's hello, if it sent one
    lastError: null,
    socket: null,
    flow: [],                   // options-flow events, oldest first (at most FLOW_KEPT)
    flowReceived: 0,
    flowFilter: { underlying: "", kind: "", minScore: 0, minPremiumLakh: 0 },
  };
  window.fastflow = app;

  // -- elements ---------------------------------------------------------------

  var $ = function (id) { return document.getElementById(id); };
  var connBadge = $("conn-state");
  var marketEl = $("market-state");
  var rateEl = $("tick-rate");
  var rttEl = $("rtt");
  var receivedEl = $("received");
  var serverInfoEl = $("server-info");
  var cardsEl = $("cards");
  var emptyEl = $("empty");
  var noticeEl = $("notice");
  var addForm = $("add-form");
  var addInput = $("add-symbol");
  var resetButton = $("reset-watchlist");
  var template = $("card-template");
  var gainersEl = $("gainers");
  var losersEl = $("losers");
  var flowRowsEl = $("flow-rows");
  var flowEmptyEl = $("flow-empty");
  var flowCountEl = $("flow-count");
  var flowNetEl = $("flow-net");
  var flowInputs = { underlying: $("flow-underlying"), kind: $("flow-kind"), minScore: $("flow-min-score"),
                     minPremiumLakh: $("flow-min-premium") };

  // -- formatting ---------------------------------------------------------------

  var priceFormats = {};
  var intFormat = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });
  var timeFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Kolkata", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  function isNumber(v) {
    return typeof v === "number" && isFinite(v);
  }
  /** Decimals of an instrument's prices (the ticks carry no tick size): 4 for currency
   * derivatives, else 2. */
  function decimalsOf(symbol, tick) {
    return CURRENCY.test(symbol) || (tick && CURRENCY.test(String(tick.instrument_key || ""))) ? 4 : 2;
  }
  function formatPrice(p, decimals) {
    if (!isNumber(p)) return "—";
    var format = priceFormats[decimals];
    if (!format) {
      format = priceFormats[decimals] = new Intl.NumberFormat(
        "en-IN", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    }
    return format.format(p);
  }
  function formatSigned(value, decimals) {
    return isNumber(value) ? (value > 0 ? "+" : "") + formatPrice(value, decimals) : "—";
  }
  function formatPct(pct) {
    return isNumber(pct) ? (pct > 0 ? "+" : "") + pct.toFixed(2) + "%" : "—";
  }
  function formatMs(ms) {
    if (!isNumber(ms)) return "—";
    return (Math.abs(ms) < 10 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
  }
  function formatAge(ms) {
    var s = Math.floor(ms / 1000);
    return s < 120 ? s + " s" : s < 7200 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h";
  }
  /** Epoch seconds (the exchange's time) as HH:MM:SS in IST. */
  function formatTime(epochSeconds) {
    return isNumber(epochSeconds) && epochSeconds > 0 ? timeFormat.format(new Date(epochSeconds * 1000)) + " IST" : "—";
  }
  function direction(value) {
    return value > 0 ? "up" : value < 0 ? "down" : "flat";
  }

  /** The day's change of a tick: {abs (₹, null when the previous close is unknown), pct, dir}.
   * The cards and the movers both read it, so they agree. */
  function dayChange(tick) {
    var price = tick.last_price;
    var close = tick.ohlc && tick.ohlc.close;
    if (isNumber(price) && isNumber(close) && close > 0) {
      var abs = price - close;
      return { abs: abs, pct: isNumber(tick.change) ? tick.change : abs / close * 100, dir: direction(abs) };
    }
    if (isNumber(tick.change)) return { abs: null, pct: tick.change, dir: direction(tick.change) };
    return null;
  }

  // -- notices ------------------------------------------------------------------

  var noticeTimer = 0;
  function notice(text, kind) {
    noticeEl.textContent = text;
    noticeEl.dataset.kind = kind || "info";
    noticeEl.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { noticeEl.hidden = true; }, 8000);
  }

  // -- examples from the live universe ----------------------------------------------

  /** The first watchlist symbol the gateway knows and priced (its tick), or null. */
  function exampleTick() {
    for (var i = 0; i < app.watchlist.length; i++) {
      var tick = app.ticks.get(app.watchlist[i]);
      if (tick) return tick;
    }
    return null;
  }

  function example() {
    var tick = exampleTick();
    return tick ? ", e.g. " + tick.symbol : "";
  }

  function updatePlaceholder() {
    var tick = exampleTick();
    var forms = ["EXCHANGE:TRADINGSYMBOL or a Kite token"];
    if (tick) {
      forms = [tick.symbol];
      if (tick.symbol.indexOf("NSE:") === 0) forms.push(tick.symbol.slice(4));  // NSE is the default exchange
      if (isNumber(tick.instrument_token)) forms.push(String(tick.instrument_token));
    }
    var text = "Add a symbol: " + forms.join(", ");
    if (addInput.placeholder !== text) addInput.placeholder = text;
  }

  // -- the watchlist (the URL, localStorage) ----------------------------------------

  function cleanList(list) {
    var seen = new Set();
    return list.filter(function (s) {
      var ok = typeof s === "string" && s.length > 0 && s.length <= MAX_SYMBOL_LENGTH && !seen.has(s);
      seen.add(s);
      return ok;
    });
  }

  /** The page URL's watchlist (?symbols=NSE:INFY,TCS), or null without one. */
  function urlWatchlist() {
    var param = new URLSearchParams(location.search).get("symbols");
    if (param === null) return null;
    return cleanList(param.split(",").map(normalizeSymbol));
  }

  function storedWatchlist() {
    var stored = null;
    try {
      stored = window.localStorage.getItem(STORAGE_KEY);
    } catch (e) { /* storage disabled: the defaults, not persisted */ }
    if (stored !== null) {
      try {
        var list = JSON.parse(stored);
        if (Array.isArray(list)) return cleanList(list);
      } catch (e) { /* corrupt entry: fall back to the defaults */ }
    }
    return DEFAULT_WATCHLIST.slice();
  }

  function saveWatchlist() {
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(app.watchlist));
    } catch (e) { /* storage full or disabled: the watchlist lives in the URL */ }
  }

  /** The watchlist into the URL (other parameters kept), readable: ?symbols=NSE:INFY,NSE:NIFTY%2050 */
  function writeUrl() {
    var params = new URLSearchParams(location.search);
    params.delete("symbols");
    var rest = params.toString();
    var symbols = app.watchlist.map(function (s) { return encodeURIComponent(s).replace(/%3A/gi, ":"); });
    var url = location.pathname + "?" + (rest ? rest + "&" : "") + "symbols=" + symbols.join(",") + location.hash;
    try {
      history.replaceState(history.state, "", url);
    } catch (e) { /* too long for this browser's URL limit: localStorage still has it */ }
  }

  /** The watchlist was edited: keep it (localStorage for the next visit, the URL for this tab). */
  function watchlistEdited(persist) {
    if (persist) saveWatchlist();
    writeUrl();
    updatePlaceholder();
  }

  /** What the user typed, as a watchlist key: "infy" -> "NSE:INFY"; Kite tokens and
   * Upstox instrument keys ("NSE_EQ|INE009A01021") are kept as typed. */
  function normalizeSymbol(text) {
    var s = String(text).trim().replace(/\s+/g, " ");
    if (!s || /^\d+$/.test(s) || s.indexOf("|") >= 0) return s;
    s = s.toUpperCase();
    if (s.indexOf(":") < 0) s = "NSE:" + s;
    return s.replace(/\s*:\s*/, ":");
  }

  /** A watchlist key as it goes on the wire: Kite tokens as ints. */
  function wire(key) {
    return /^\d+$/.test(key) && key.length < 16 ? Number(key) : key;
  }

  // -- cards ------------------------------------------------------------------------

  var cards = new Map();    // watchlist key -> card (element references, last shown values)
  var dirty = new Set();    // symbols whose card needs a render
  var flashing = new Map(); // card -> performance.now() when its flash colour starts to fade
  var renderScheduled = false;
  var moversDirty = false;

  function createCard(key) {
    var el = template.content.firstElementChild.cloneNode(true);
    var card = { key: key, el: el, text: {} };
    ["sym", "sym-exchange", "sym-name", "remove", "ltp", "chg", "chg-abs", "chg-pct", "quote", "bid", "bid-qty",
     "ask", "ask-qty", "spread", "open", "high", "low", "close", "volume", "ltt", "age"].forEach(function (name) {
      card[name] = el.querySelector("." + name);
    });
    card.shown = null;      // the last price on screen (a change flashes)
    card.flashedAt = -Infinity;
    card.updatedAt = null;  // performance.now() of the last tick with a new seq
    card.gap = 0;           // its usual time between updates (a moving average, ms)
    card.day = null;        // the dayChange() on screen
    card.stale = false;
    labelCard(card, key);
    card.remove.addEventListener("click", function () { removeSymbol(card.key); });
    cards.set(key, card);
    cardsEl.appendChild(el);
    emptyEl.hidden = true;
    return card;
  }

  function labelCard(card, key) {
    card.key = key;
    card.decimals = decimalsOf(key, null);
    card.el.dataset.symbol = key;
    var colon = key.indexOf(":");
    card["sym-exchange"].textContent = colon > 0 ? key.slice(0, colon + 1) : "";
    showName(card["sym-name"], colon > 0 ? key.slice(colon + 1) : key);
    card.sym.classList.toggle("long", key.length > 16);
    card.el.title = key;
    card.remove.setAttribute("aria-label", "Remove " + key);
  }

  /** A trading symbol with line-break opportunities where a derivative's name has its
   * parts: NIFTY26D08|26000|CE, USDINR26DEC|FUT (the text stays the symbol itself). */
  function showName(el, name, prefix) {
    // An option: NAME, YY and a month (DEC) or a weekly expiry's month and day (D08), strike, CE/PE.
    var parts = /^([A-Z][A-Z0-9&-]*?\d{2}(?:[A-Z]{3}|[1-9OND]\d{2}))(\d+(?:\.\d+)?)(CE|PE)$/.exec(name) ||
      /^(.+?)(FUT)$/.exec(name);
    el.textContent = "";
    parts = parts ? parts.slice(1) : [name];
    if (prefix) parts.unshift(prefix);
    parts.forEach(function (part, i) {
      if (i) el.appendChild(document.createElement("wbr"));
      el.appendChild(document.createTextNode(part));
    });
  }

  function dropCard(key) {
    var card = cards.get(key);
    if (!card) return;
    cards.delete(key);
    flashing.delete(card);
    card.el.remove();
    emptyEl.hidden = cards.size > 0;
  }

  function setText(card, field, text) {
    if (card.text[field] !== text) {
      card.text[field] = text;
      card[field].textContent = text;
    }
  }

  function flash(card, dir, now) {
    if (now - card.flashedAt < FLASH_GAP_MS) {
      app.flashes.skipped++;  // a fast-moving instrument: its card does not strobe
      return;
    }
    card.flashedAt = now;
    card.el.classList.remove(dir === "up" ? "flash-down" : "flash-up");
    card.el.classList.add("flash-" + dir);
    flashing.set(card, now + FLASH_HOLD_MS);
    app.flashes[dir]++;
  }

  function renderQuote(card, tick) {
    var depth = tick.depth;
    var bid = depth && Array.isArray(depth.buy) ? depth.buy[0] : null;
    var ask = depth && Array.isArray(depth.sell) ? depth.sell[0] : null;
    card.quote.hidden = !bid && !ask;
    if (card.quote.hidden) return;
    // Kite sends an empty level as price 0, quantity 0.
    var bidPrice = bid && bid.price > 0 ? bid.price : null;
    var askPrice = ask && ask.price > 0 ? ask.price : null;
    setText(card, "bid", formatPrice(bidPrice, card.decimals));
    setText(card, "bid-qty", bidPrice !== null && isNumber(bid.quantity) ? " ×" + intFormat.format(bid.quantity) : "");
    setText(card, "ask", formatPrice(askPrice, card.decimals));
    setText(card, "ask-qty", askPrice !== null && isNumber(ask.quantity) ? " ×" + intFormat.format(ask.quantity) : "");
    setText(card, "spread", bidPrice !== null && askPrice !== null ? formatPrice(askPrice - bidPrice, card.decimals) : "—");
  }

  function renderCard(card, tick, now) {
    card.decimals = decimalsOf(card.key, tick);
    var d = card.decimals;
    var price = tick.last_price;
    if (isNumber(price)) {
      if (card.shown !== null && price !== card.shown) flash(card, price > card.shown ? "up" : "down", now);
      card.shown = price;
      setText(card, "ltp", formatPrice(price, d));
      card.el.dataset.ltp = String(price);
    }
    var day = card.day = dayChange(tick);
    setText(card, "chg-abs", day && day.abs !== null ? formatSigned(day.abs, d) : day ? "" : "—");
    setText(card, "chg-pct", day ? formatPct(day.pct) : "");
    card.el.dataset.day = day ? day.dir : "";
    var ohlc = tick.ohlc;
    if (ohlc && typeof ohlc === "object") {
      setText(card, "open", formatPrice(ohlc.open, d));
      setText(card, "high", formatPrice(ohlc.high, d));
      setText(card, "low", formatPrice(ohlc.low, d));
      setText(card, "close", formatPrice(ohlc.close, d));
    }
    renderQuote(card, tick);
    setText(card, "volume", isNumber(tick.volume_traded) ? intFormat.format(tick.volume_traded) : "—");
    // The last trade's time; an index has none, only the exchange's timestamp.
    var traded = isNumber(tick.last_trade_time) && tick.last_trade_time > 0;
    setText(card, "ltt", formatTime(traded ? tick.last_trade_time : tick.exchange_timestamp));
    card.ltt.title = traded ? "Last trade time (exchange time, IST)" : "Exchange time of the last update (IST)";
    if (tick.seq !== undefined) {
      card.el.dataset.seq = String(tick.seq);
      card.el.title = card.key + " · seq " + tick.seq +
        (isNumber(tick.instrument_token) ? " · token " + tick.instrument_token : "");
    }
  }

  /** Dim the cards with no update for CARD_STALE_MS, with their age; only while the market
   * is open (or not known to be closed): a closed market's silence is expected. */
  function updateAges(now) {
    var market = app.feed && app.feed.market;
    var expectTicks = !market || market === "open";
    cards.forEach(function (card) {
      var age = card.updatedAt === null ? null : now - card.updatedAt;
      var stale = expectTicks && age !== null && age >= Math.max(CARD_STALE_MS, CARD_STALE_GAPS * card.gap);
      if (stale) setText(card, "age", "stale " + formatAge(age));
      if (stale !== card.stale) {
        card.stale = stale;
        card.el.classList.toggle("stale", stale);
        card.age.hidden = !stale;
        card.age.title = stale ? "No update for this instrument since then (this page's clock)" : "";
      }
    });
  }

  function render() {
    renderScheduled = false;
    var now = performance.now();
    dirty.forEach(function (key) {
      var card = cards.get(key);
      var tick = app.ticks.get(key);
      if (card && tick) renderCard(card, tick, now);
    });
    dirty.clear();
    if (moversDirty) updateMovers();  // in the same pass as the cards: they agree
    flashing.forEach(function (until, card) {
      if (now >= until) {
        card.el.classList.remove("flash-up", "flash-down");  // the background fades (style.css)
        flashing.delete(card);
      }
    });
    if (flashing.size) scheduleRender();
  }

  function scheduleRender() {
    if (renderScheduled) return;
    renderScheduled = true;
    // A hidden tab gets no animation frames: keep its DOM roughly current anyway.
    if (document.hidden) setTimeout(render, SLOW_UPDATE_MS);
    else requestAnimationFrame(render);
  }

  // -- ticks -------------------------------------------------------------------------

  function onTicks(list) {
    if (!Array.isArray(list)) return;
    var now = performance.now();
    var first = false;
    for (var i = 0; i < list.length; i++) {
      var tick = list[i];
      if (!tick || typeof tick.symbol !== "string") continue;
      app.received++;
      var card = cards.get(tick.symbol);
      if (!card) continue;  // no longer (or not yet) on the watchlist
      var before = app.ticks.get(tick.symbol);
      if (!before) first = true;
      // A snapshot after a reconnect repeats what the card shows: no update, unless it moved.
      if (!before || before.seq !== tick.seq) {
        if (before && card.updatedAt !== null && !card.stale) {  // a stale spell is not a usual gap
          var gap = now - card.updatedAt;
          card.gap = card.gap ? 0.8 * card.gap + 0.2 * gap : gap;
        }
        card.updatedAt = now;
      }
      app.ticks.set(tick.symbol, tick);
      dirty.add(tick.symbol);
      moversDirty = true;
    }
    if (first) updatePlaceholder();
    if (dirty.size) scheduleRender();
  }

  // -- top gainers and losers ------------------------------------------------------------

  function moverRows(listEl) {
    var rows = [];
    for (var i = 0; i < MOVERS; i++) {
      var li = document.createElement("li");
      var sym = document.createElement("span");
      var chg = document.createElement("span");
      sym.className = "mover-sym";
      chg.className = "mover-chg";
      li.appendChild(sym);
      li.appendChild(chg);
      li.hidden = true;
      li.addEventListener("click", function () {
        var card = cards.get(this.dataset.symbol);
        if (card) card.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
      });
      listEl.appendChild(li);
      rows.push({ li: li, sym: sym, chg: chg });
    }
    return rows;
  }
  var gainerRows = moverRows(gainersEl);
  var loserRows = moverRows(losersEl);

  function fillMovers(rows, movers) {
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var mover = movers[i];
      row.li.hidden = !mover;
      if (!mover) continue;
      if (row.li.dataset.symbol !== mover.symbol) {
        var colon = mover.symbol.indexOf(":");
        row.li.dataset.symbol = row.li.title = mover.symbol;
        if (colon > 0) showName(row.sym, mover.symbol.slice(colon + 1), mover.symbol.slice(0, colon + 1));
        else showName(row.sym, mover.symbol);
      }
      row.chg.textContent = formatPct(mover.pct);
      row.chg.dataset.dir = mover.dir;
    }
  }

  /** From the day's change on the cards (card.day, set by renderCard): the same numbers. */
  function updateMovers() {
    moversDirty = false;
    var up = [];
    var down = [];
    cards.forEach(function (card, symbol) {
      var day = card.day;
      if (!day || !isNumber(day.pct)) return;
      if (Math.abs(day.pct) < 0.005) return;  // shown as 0.00%: neither a gainer nor a loser
      var mover = { symbol: symbol, pct: day.pct, dir: day.dir };
      if (day.dir === "up") up.push(mover);
      else if (day.dir === "down") down.push(mover);
    });
    up.sort(function (a, b) { return b.pct - a.pct; });
    down.sort(function (a, b) { return a.pct - b.pct; });
    fillMovers(gainerRows, up.slice(0, MOVERS));
    fillMovers(loserRows, down.slice(0, MOVERS));
  }

  var rateSince = performance.now();
  var rateReceived = 0;
  function slowUpdate() {
    var now = performance.now();
    updateAges(now);
    if (now - rateSince >= 1000) {
      var rate = (app.received - rateReceived) * 1000 / (now - rateSince);
      rateEl.textContent = intFormat.format(rate) + "/s";
      rateSince = now;
      rateReceived = app.received;
    }
    receivedEl.textContent = intFormat.format(app.received);
  }
  setInterval(slowUpdate, SLOW_UPDATE_MS);

  // -- the connection and the feed's state -----------------------------------------------------

  var socket = null;
  var conn = "connecting";       // connecting | open | reconnecting
  var connDetail = "";
  var attempt = 0;               // connection attempts since the last live one
  var reconnectTimer = 0;
  var pingTimer = 0;
  var pingId = 0;
  var pingsSent = new Map();     // ping id -> performance.now()
  var lastFrameAt = 0;
  var subscribeRequests = [];    // in flight, in order: {symbols, initial}
  var unsubscribeRequests = [];
  var pendingAdds = new Set();   // keys added but not yet confirmed by a `subscribed`

  function feedDetail(feed) {
    var age = feed.last_tick_age_s === null || feed.last_tick_age_s === undefined ? "no frame from the plant yet"
      : "the plant's last frame " + feed.last_tick_age_s + " s before this state began";
    var why = {
      streaming: "the plant is streaming",
      degraded: "the plant streams on some of its broker connections, not all",
      stale: "no frame from the plant for a while although the market is open",
      down: "the gateway has no Redis or no instrument list, or the plant streams on none of its connections",
    }[feed.feed] || "";
    return "feed " + feed.feed + (why ? " (" + why + ")" : "") + "; market " +
      String(feed.market).replace("_", "-") + "; " + age;
  }

  /** The badge: the connection first, then the gateway's word on the feed. Green only
   * for an open connection, a subscribed watchlist and a streaming feed. */
  function showState() {
    var feed = app.feed;
    var state = "live";
    var detail = "streaming from " + location.host;
    if (conn !== "open") {
      state = conn;
      detail = connDetail || "WebSocket connection";
    } else if (feed && feed.feed !== "streaming") {
      state = feed.feed;  // degraded | stale | down
      detail = feedDetail(feed);
    } else if (!app.subscribed) {
      state = "connecting";
      detail = connDetail || "subscribing";
    } else if (feed) {
      detail = feedDetail(feed);
    }
    app.state = state;
    connBadge.textContent = state === "down" ? "feed down" : state;
    connBadge.dataset.state = state;
    connBadge.className = "badge conn-" + state;
    connBadge.title = detail;
    var market = conn === "open" && feed ? feed.market : null;
    marketEl.hidden = !market;
    if (market) {
      marketEl.textContent = MARKET_TEXT[market] || String(market);
      marketEl.dataset.market = market;
    }
  }

  // -- the options-flow tape (docs/flow.md): filtered here, in the browser ----------------------

  /** ₹ as lakh or crore. */
  function formatRupees(value) {
    if (!isNumber(value)) return "—";
    if (Math.abs(value) >= 1e7) return "₹" + (value / 1e7).toFixed(2) + " Cr";
    return "₹" + (value / 1e5).toFixed(2) + " L";
  }

  /** What the underlying box names, as the events do: NIFTY -> NSE:NIFTY 50, INFY -> NSE:INFY. */
  function underlyingOf(text) {
    var t = String(text || "").trim().toUpperCase();
    if (!t) return "";
    if (t.indexOf(":") >= 0) return t.replace(/\s*:\s*/, ":");
    return INDEX_OF[t] || "NSE:" + t;
  }

  function flowMatches(e, f, underlying) {
    return (!f.kind || e.kind === f.kind) && (!underlying || e.underlying === underlying)
      && (e.score || 0) >= f.minScore && (e.premium || 0) >= f.minPremiumLakh * 1e5;
  }

  function isGolden(e) {
    return e.kind === "sweep" && (e.aggressor === "above_ask" || e.aggressor === "at_ask")
      && isNumber(e.volume) && isNumber(e.oi) && e.volume > e.oi && (e.score || 0) >= GOLDEN_SCORE;
  }

  function flowRow(e) {
    var tr = document.createElement("tr");
    tr.className = (e.sentiment || "neutral") + (isGolden(e) ? " golden" : "");
    tr.dataset.kind = e.kind;
    tr.dataset.symbol = e.symbol;
    tr.dataset.score = String(e.score);
    tr.dataset.receive = String(e.receive_time_ns);
    tr.dataset.ts = String(e.exchange_timestamp);
    tr.dataset.quantity = String(e.quantity);
    var parts = e.score_parts || {};
    var breakdown = Object.keys(parts).map(function (k) { return k + " " + Number(parts[k]).toFixed(1); }).join(", ");
    var kind = e.kind === "sweep" ? "sweep ×" + e.levels : e.kind === "repeated" ? "repeated ×" + e.hits
      : e.kind === "unusual" ? "unusual (" + (e.reason === "volume_oi" ? "vol > OI" : "z " + Number(e.zscore).toFixed(1)) + ")"
      : e.kind;
    var cells = [
      ["time", formatTime(e.exchange_timestamp)],
      ["contract", e.symbol],
      ["kind", kind],
      ["side", (e.side || "") + " · " + String(e.aggressor || "").replace("_", " ")],
      ["num lots", isNumber(e.lots) ? intFormat.format(Math.round(e.lots)) : "—"],
      ["num premium", formatRupees(e.premium)],
      ["num price", (isNumber(e.price) ? e.price.toFixed(2) : "—") + " (" + (isNumber(e.bid) ? e.bid.toFixed(2) : "—")
        + "/" + (isNumber(e.ask) ? e.ask.toFixed(2) : "—") + ")"],
      ["num iv", isNumber(e.iv) ? (e.iv * (e.iv < 5 ? 100 : 1)).toFixed(1) + "%" : "—"],
      ["num score", String(e.score)],
    ];
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      td.className = cell[0];
      td.textContent = cell[1];
      tr.appendChild(td);
    });
    tr.lastChild.title = breakdown;
    tr.children[1].title = (e.underlying || "") + (isNumber(e.underlying_price) ? " at " + e.underlying_price.toFixed(2) : "")
      + (e.moneyness ? ", " + e.moneyness : "") + (isNumber(e.days_to_expiry) ? ", " + e.days_to_expiry.toFixed(1) + " days to expiry" : "");
    return tr;
  }

  var flowScheduled = false;
  function scheduleFlow() {
    if (flowScheduled) return;
    flowScheduled = true;
    requestAnimationFrame(function () { flowScheduled = false; renderFlow(); });
  }

  function renderFlow() {
    var f = app.flowFilter;
    var underlying = underlyingOf(f.underlying);
    var shown = [];
    for (var i = app.flow.length - 1; i >= 0 && shown.length < FLOW_SHOWN; i--) {
      if (flowMatches(app.flow[i], f, underlying)) shown.push(app.flow[i]);
    }
    var rows = document.createDocumentFragment();
    shown.forEach(function (e) { rows.appendChild(flowRow(e)); });
    flowRowsEl.replaceChildren(rows);
    flowEmptyEl.hidden = shown.length > 0;
    flowCountEl.textContent = intFormat.format(app.flowReceived);
    // Net premium by underlying over every event kept (not only those shown).
    var net = new Map();
    app.flow.forEach(function (e) {
      if (e.sentiment !== "bullish" && e.sentiment !== "bearish") return;
      var sign = e.sentiment === "bullish" ? 1 : -1;
      net.set(e.underlying, (net.get(e.underlying) || 0) + sign * (e.premium || 0));
    });
    var items = Array.from(net.entries()).sort(function (a, b) { return Math.abs(b[1]) - Math.abs(a[1]); });
    var list = document.createDocumentFragment();
    items.slice(0, FLOW_NET_ROWS).forEach(function (item) {
      var li = document.createElement("li");
      li.dataset.underlying = item[0];
      li.dataset.net = String(item[1]);
      var name = document.createElement("span");
      name.className = "mover-sym";
      name.textContent = item[0];
      var value = document.createElement("span");
      value.className = "mover-chg " + (item[1] >= 0 ? "up" : "down");
      value.textContent = (item[1] >= 0 ? "+" : "−") + formatRupees(Math.abs(item[1]));
      li.appendChild(name);
      li.appendChild(value);
      list.appendChild(li);
    });
    flowNetEl.replaceChildren(list);
  }

  function onFlow(message) {
    var events = Array.isArray(message.events) ? message.events : [];
    if (message.snapshot) app.flow = [];  // the gateway's recent events: this connection's start
    events.forEach(function (e) { if (e && typeof e === "object") app.flow.push(e); });
    if (app.flow.length > FLOW_KEPT) app.flow.splice(0, app.flow.length - FLOW_KEPT);
    app.flowReceived += events.length;
    scheduleFlow();
  }

  function readFlowFilter() {
    var f = app.flowFilter;
    f.underlying = flowInputs.underlying.value.trim();
    f.kind = flowInputs.kind.value;
    f.minScore = Math.max(0, Number(flowInputs.minScore.value) || 0);
    f.minPremiumLakh = Math.max(0, Number(flowInputs.minPremiumLakh.value) || 0);
    try { localStorage.setItem(FLOW_KEY, JSON.stringify(f)); } catch (e) { /* private mode: not kept */ }
    renderFlow();
  }

  function restoreFlowFilter() {
    var stored = null;
    try { stored = JSON.parse(localStorage.getItem(FLOW_KEY) || "null"); } catch (e) { stored = null; }
    if (stored && typeof stored === "object") {
      app.flowFilter.underlying = typeof stored.underlying === "string" ? stored.underlying : "";
      app.flowFilter.kind = typeof stored.kind === "string" ? stored.kind : "";
      app.flowFilter.minScore = isNumber(stored.minScore) ? stored.minScore : 0;
      app.flowFilter.minPremiumLakh = isNumber(stored.minPremiumLakh) ? stored.minPremiumLakh : 0;
    }
    flowInputs.underlying.value = app.flowFilter.underlying;
    flowInputs.kind.value = app.flowFilter.kind;
    flowInputs.minScore.value = String(app.flowFilter.minScore);
    flowInputs.minPremiumLakh.value = String(app.flowFilter.minPremiumLakh);
  }

  function socketUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var token = new URLSearchParams(location.search).get("token");
    return scheme + "//" + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    // Text frames only if a gateway ever answers with the JSON subprotocol.
    if (socket.protocol === JSON_PROTOCOL) socket.send(JSON.stringify(message));
    else socket.send(msgpack.encode(message));
    return true;
  }

  function subscribe(keys, initial) {
    var symbols = keys.map(wire);
    if (send({ op: "subscribe", symbols: symbols })) subscribeRequests.push({ symbols: symbols, initial: initial });
  }

  function unsubscribe(keys) {
    var symbols = keys.map(wire);
    if (send({ op: "unsubscribe", symbols: symbols })) unsubscribeRequests.push({ symbols: symbols });
  }

  function connect() {
    reconnectTimer = 0;
    conn = attempt === 0 && app.connects === 0 ? "connecting" : "reconnecting";
    showState();
    attempt++;
    var ws;
    try {
      ws = new WebSocket(socketUrl(), MSGPACK);
    } catch (e) {
      app.lastError = String(e);
      scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    socket = app.socket = ws;
    ws.onopen = function () {
      if (socket !== ws) return;
      app.connects++;
      conn = "open";
      connDetail = "";
      app.feed = null;  // this gateway's word comes in its `status`
      app.subscribed = false;
      lastFrameAt = performance.now();
      subscribeRequests = [];
      unsubscribeRequests = [];
      pingsSent.clear();
      if (app.watchlist.length) subscribe(app.watchlist, true);
      else goLive();
      send({ op: "subscribe_flow" });  // every event: the tape filters in the browser
      showState();
      clearInterval(pingTimer);
      pingTimer = setInterval(heartbeat, PING_INTERVAL_MS);
      heartbeat();
    };
    ws.onmessage = function (event) {
      if (socket !== ws) return;
      lastFrameAt = performance.now();
      var message;
      try {
        message = typeof event.data === "string" ? JSON.parse(event.data) : msgpack.decode(event.data);
      } catch (e) {
        app.lastError = "undecodable frame: " + e.message;
        console.error("fastflow: " + app.lastError);
        return;
      }
      if (message && typeof message === "object") onMessage(message);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      lost(event.code + (event.reason ? " " + event.reason : ""));
    };
    ws.onerror = function () { /* a close event follows */ };
  }

  function lost(why) {
    socket = app.socket = null;
    clearInterval(pingTimer);
    app.lastError = "connection closed: " + why;
    app.feed = null;
    app.subscribed = false;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.max(0, attempt - 1)));
    delay = delay * (0.5 + Math.random() * 0.5);  // jitter: clients do not come back in step
    conn = "reconnecting";
    connDetail = "retrying in " + (delay / 1000).toFixed(1) + " s (" + app.lastError + ")";
    showState();
    reconnectTimer = setTimeout(connect, delay);
  }

  function goLive() {
    attempt = 0;
    app.subscribed = true;
    connDetail = "";
    showState();
  }

  function heartbeat() {
    if (!socket) return;
    var now = performance.now();
    if (now - lastFrameAt > STALL_MS) {
      // Nothing at all, not even a pong: the connection is dead without a close.
      var ws = socket;
      socket = null;
      try { ws.close(4000, "stalled"); } catch (e) { /* already closing */ }
      lost("no frames for " + (STALL_MS / 1000) + " s");
      return;
    }
    pingId++;
    pingsSent.set(pingId, now);
    if (pingsSent.size > 16) pingsSent.delete(pingsSent.keys().next().value);
    send({ op: "ping", id: pingId });
  }

  function onPong(message) {
    var sent = pingsSent.get(message.id);
    if (sent === undefined) return;
    pingsSent.delete(message.id);
    app.rtt = performance.now() - sent;  // both ends on this page's monotonic clock
    rttEl.textContent = formatMs(app.rtt);
    rttEl.dataset.rtt = app.rtt.toFixed(3);
  }

  function onMessage(message) {
    switch (message.type) {
      case "ticks":
      case "snapshot":
        onTicks(message.ticks);
        break;
      case "subscribed":
        onSubscribed(message, subscribeRequests.shift());
        break;
      case "unsubscribed":
        unsubscribeRequests.shift();
        break;
      case "pong":
        onPong(message);
        break;
      case "flow":
        onFlow(message);
        break;
      case "flow_subscribed":
        break;
      case "error":
        onError(message);
        break;
      case "status":  // the feed behind the gateway (docs/protocol.md)
        app.feed = message;
        showState();
        updateAges(performance.now());
        break;
      case "hello":
        app.server = message;
        serverInfoEl.textContent = [
          message.server || "gateway",
          message.version ? "v" + message.version : "",
          message.partition ? "partition " + message.partition : "",
          typeof message.symbols === "number" ? intFormat.format(message.symbols) + " instruments" : "",
          message.client ? "as " + message.client : "",
        ].filter(Boolean).join(" · ");
        break;
      default:
        break;  // a message type this page does not know: ignored
    }
  }

  function onSubscribed(message, request) {
    var resolved = Array.isArray(message.symbols) ? message.symbols : [];
    var unknown = Array.isArray(message.unknown) ? message.unknown : [];
    // One symbol added as a token or an instrument key: its card takes the symbol's name.
    if (request && request.symbols.length === 1 && unknown.length === 0 && resolved.length === 1 &&
        String(request.symbols[0]) !== resolved[0]) {
      rename(String(request.symbols[0]), String(resolved[0]));
    }
    resolved.forEach(function (symbol) {
      pendingAdds.delete(String(symbol));
      if (app.unknown.delete(String(symbol))) {
        var card = cards.get(String(symbol));
        if (card) card.el.classList.remove("unknown");
      }
    });
    unknown.forEach(function (symbol) {
      var key = String(symbol);
      if (!cards.has(key)) return;
      if (pendingAdds.has(key)) {
        // Just added and refused: it never joins the watchlist.
        pendingAdds.delete(key);
        notice("Unknown symbol: " + key + " (try EXCHANGE:TRADINGSYMBOL" + example() + ")", "error");
        forget(key);
        watchlistEdited(true);
      } else {
        // From the stored watchlist: keep it, marked, for the user to remove.
        app.unknown.add(key);
        var card = cards.get(key);
        card.el.classList.add("unknown");
        setText(card, "ltp", "unknown");
      }
    });
    if (request && request.initial) goLive();
  }

  function onError(message) {
    var text = (message.code || "error") + ": " + (message.message || "");
    app.lastError = text;
    if (message.op === "subscribe") {
      var request = subscribeRequests.shift();
      if (request && request.initial) {
        if (message.code === "unavailable" || message.code === "rate_limited") {
          // The gateway has no instrument list yet (the plant is starting), or we were
          // too quick: ask again shortly on the same connection, still not live.
          var ws = socket;
          connDetail = "waiting for the gateway: " + text;
          showState();
          setTimeout(function () {
            if (socket === ws && !app.subscribed) subscribe(app.watchlist, true);
          }, RETRY_SUBSCRIBE_MS);
          return;
        }
        goLive();  // connected all the same (e.g. too_many_symbols): the notice says why
      }
      if (request && !request.initial) {
        request.symbols.forEach(function (symbol) {
          var key = String(symbol);
          if (pendingAdds.delete(key)) forget(key);
        });
        watchlistEdited(true);
      }
    } else if (message.op === "unsubscribe") {
      unsubscribeRequests.shift();
    }
    notice("Gateway: " + text, "error");
  }

  // -- editing the watchlist ---------------------------------------------------------------------

  function rename(from, to) {
    var card = cards.get(from);
    if (!card) return;
    pendingAdds.delete(from);
    if (cards.has(to)) {  // already watched under its name
      forget(from);
      watchlistEdited(true);
      notice(to + " is already on the watchlist", "info");
      return;
    }
    cards.delete(from);
    labelCard(card, to);
    cards.set(to, card);
    var i = app.watchlist.indexOf(from);
    if (i >= 0) app.watchlist[i] = to;
    watchlistEdited(true);
  }

  /** Drop a key from the page and the watchlist (no message to the gateway; the caller
   * stores the edit). */
  function forget(key) {
    var i = app.watchlist.indexOf(key);
    if (i >= 0) app.watchlist.splice(i, 1);
    app.ticks.delete(key);
    app.unknown.delete(key);
    dirty.delete(key);
    dropCard(key);
    moversDirty = true;
    scheduleRender();
  }

  function addSymbol(text) {
    var key = normalizeSymbol(text);
    if (!key || key.length > MAX_SYMBOL_LENGTH) {
      notice("A symbol is 1 to " + MAX_SYMBOL_LENGTH + " characters" + example(), "error");
      return false;
    }
    if (cards.has(key)) {
      notice(key + " is already on the watchlist", "info");
      var card = cards.get(key);
      card.el.scrollIntoView({ block: "nearest" });
      return false;
    }
    app.watchlist.push(key);
    createCard(key);
    watchlistEdited(true);
    pendingAdds.add(key);
    subscribe([key], false);  // when offline, the next connection subscribes the whole list
    return true;
  }

  function removeSymbol(key) {
    if (!cards.has(key)) return false;
    var known = !app.unknown.has(key);
    pendingAdds.delete(key);
    forget(key);
    watchlistEdited(true);
    if (known) unsubscribe([key]);
    return true;
  }

  /** Make the watchlist `list`: unsubscribe what left it, subscribe what joined. */
  function setWatchlist(list, persist) {
    var wanted = new Set(list);
    var removed = app.watchlist.filter(function (key) { return !wanted.has(key); });
    var added = list.filter(function (key) { return !cards.has(key); });
    removed.forEach(function (key) {
      var known = !app.unknown.has(key);
      pendingAdds.delete(key);
      forget(key);
      if (known) unsubscribe([key]);
    });
    added.forEach(function (key) {
      app.watchlist.push(key);
      createCard(key);
      pendingAdds.add(key);
    });
    if (added.length) subscribe(added, false);
    // The order of `list`, for the cards too.
    app.watchlist = list.slice();
    app.watchlist.forEach(function (key) { cardsEl.appendChild(cards.get(key).el); });
    watchlistEdited(persist);
  }

  addForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (addSymbol(addInput.value)) addInput.value = "";
    addInput.focus();
  });

  Object.keys(flowInputs).forEach(function (name) {
    flowInputs[name].addEventListener("input", readFlowFilter);
    flowInputs[name].addEventListener("change", readFlowFilter);
  });
  $("flow-filter").addEventListener("submit", function (event) { event.preventDefault(); });

  resetButton.addEventListener("click", function () {
    setWatchlist(DEFAULT_WATCHLIST.slice(), true);
  });

  // Another tab edited the watchlist: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === STORAGE_KEY || event.key === null) setWatchlist(storedWatchlist(), false);
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && dirty.size) {
      renderScheduled = false;
      scheduleRender();
    }
  });

  // -- start --------------------------------------------------------------------------------------

  app.add = addSymbol;
  app.remove = removeSymbol;
  app.reset = function () { setWatchlist(DEFAULT_WATCHLIST.slice(), true); };

  // The URL's watchlist (a shared link) for this tab, else the one kept in localStorage.
  // A link's list is stored only once it is edited: opening one leaves other tabs alone.
  app.watchlist = urlWatchlist() || storedWatchlist();
  app.watchlist.forEach(createCard);
  emptyEl.hidden = app.watchlist.length > 0;
  restoreFlowFilter();
  renderFlow();
  showState();
  connect();
})();
