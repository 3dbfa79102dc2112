/* The fastflow live dashboard: one WebSocket to the gateway (docs/protocol.md),
 * fastflow.msgpack.v1 frames decoded by msgpack.js, a watchlist kept in localStorage.
 *
 * Rendering: messages only update `app.ticks` and mark symbols dirty; the DOM is
 * touched at most once per animation frame, only for the dirty cards, through element
 * references kept per card (nothing is rebuilt per message). The movers panel and the
 * header's counters are recomputed at most four times a second.
 *
 * Test and debugging hooks: `window.fastflow` (state, ticks, received, watchlist,
 * latency, ...); each card is `.card[data-symbol][data-seq][data-ltp]` with a `.ltp`;
 * `#conn-state` (text and data-state: connecting | live | reconnecting);
 * `#latency` (data-p50, data-p99 in ms).
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
  var LATENCY_WINDOW = 1000;     // ticks in the rolling p50/p99
  var SLOW_UPDATE_MS = 250;      // movers, latency and counters: at most 4 times a second
  var FLASH_MS = 450;
  var PING_INTERVAL_MS = 5000;
  var STALL_MS = 20000;          // no frame at all (not even a pong) for this long: reconnect
  var BACKOFF_MIN_MS = 300;
  var BACKOFF_MAX_MS = 10000;
  var RETRY_SUBSCRIBE_MS = 1000; // the gateway had no instrument list yet: subscribe again
  var MOVERS = 5;
  var MAX_SYMBOL_LENGTH = 128;

  var app = {
    state: "connecting",        // connecting | live | reconnecting
    ticks: new Map(),           // symbol -> its latest tick map (watchlist symbols only)
    received: 0,                // ticks received (snapshots included)
    watchlist: [],
    unknown: new Set(),         // watchlist entries the gateway does not know
    latency: { p50: null, p99: null, samples: 0 },
    rtt: null,
    flashes: { up: 0, down: 0 },
    connects: 0,
    server: null,               // the gateway's hello, if it sent one
    lastError: null,
    socket: null,
  };
  window.fastflow = app;

  // -- elements ---------------------------------------------------------------

  var $ = function (id) { return document.getElementById(id); };
  var connBadge = $("conn-state");
  var latencyEl = $("latency");
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

  var priceFormat2 = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var priceFormat4 = new Intl.NumberFormat("en-IN", { minimumFractionDigits: 4, maximumFractionDigits: 4 });
  var intFormat = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });

  function formatPrice(p) {
    if (typeof p !== "number" || !isFinite(p)) return "—";
    // Exchange prices are on a 0.05 (or 0.0025, currency) grid: 2 decimals unless more are needed.
    return Math.abs(p * 100 - Math.round(p * 100)) > 1e-6 ? priceFormat4.format(p) : priceFormat2.format(p);
  }
  function formatChange(c) {
    if (typeof c !== "number" || !isFinite(c)) return "—";
    return (c > 0 ? "+" : "") + c.toFixed(2) + "%";
  }
  function formatMs(ms) {
    if (ms === null || !isFinite(ms)) return "—";
    return (Math.abs(ms) < 10 ? ms.toFixed(1) : ms.toFixed(0)) + " ms";
  }
  function direction(value) {
    return value > 0 ? "up" : value < 0 ? "down" : "flat";
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

  // -- the watchlist (localStorage) ----------------------------------------------

  function loadWatchlist() {
    var stored = null;
    try {
      stored = window.localStorage.getItem(STORAGE_KEY);
    } catch (e) { /* storage disabled: the defaults, not persisted */ }
    if (stored !== null) {
      try {
        var list = JSON.parse(stored);
        if (Array.isArray(list)) {
          var seen = new Set();
          return list.filter(function (s) {
            var ok = typeof s === "string" && s.length > 0 && s.length <= MAX_SYMBOL_LENGTH && !seen.has(s);
            seen.add(s);
            return ok;
          });
        }
      } catch (e) { /* corrupt entry: fall back to the defaults */ }
    }
    return DEFAULT_WATCHLIST.slice();
  }

  function saveWatchlist() {
    try {
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(app.watchlist));
    } catch (e) { /* storage full or disabled: the watchlist lives until the page closes */ }
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
  var flashing = new Map(); // card -> performance.now() when its flash ends
  var renderScheduled = false;

  function createCard(key) {
    var el = template.content.firstElementChild.cloneNode(true);
    var card = {
      key: key,
      el: el,
      sym: el.querySelector(".sym"),
      ltp: el.querySelector(".ltp"),
      chg: el.querySelector(".chg"),
      open: el.querySelector(".open"),
      high: el.querySelector(".high"),
      low: el.querySelector(".low"),
      close: el.querySelector(".close"),
      volume: el.querySelector(".volume"),
      seq: el.querySelector(".seq"),
      remove: el.querySelector(".remove"),
      shown: null,          // the last price on screen (for the flash direction)
      text: {},             // the last text per field (skip no-op DOM writes)
    };
    labelCard(card, key);
    card.remove.addEventListener("click", function () { removeSymbol(card.key); });
    cards.set(key, card);
    cardsEl.appendChild(el);
    emptyEl.hidden = true;
    return card;
  }

  function labelCard(card, key) {
    card.key = key;
    card.el.dataset.symbol = key;
    card.sym.textContent = key;
    card.sym.title = key;
    card.remove.setAttribute("aria-label", "Remove " + key);
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
    card.el.classList.remove(dir === "up" ? "flash-down" : "flash-up");
    card.el.classList.add("flash-" + dir);
    card.el.dataset.tick = dir;
    flashing.set(card, now + FLASH_MS);
    app.flashes[dir]++;
  }

  function renderCard(card, tick, now) {
    var price = tick.last_price;
    if (typeof price === "number") {
      if (card.shown !== null && price !== card.shown) flash(card, price > card.shown ? "up" : "down", now);
      card.shown = price;
      setText(card, "ltp", formatPrice(price));
      card.el.dataset.ltp = String(price);
    }
    var change = tick.change;
    if (typeof change === "number") {
      setText(card, "chg", formatChange(change));
      card.chg.dataset.dir = direction(change);
    }
    var ohlc = tick.ohlc;
    if (ohlc && typeof ohlc === "object") {
      setText(card, "open", formatPrice(ohlc.open));
      setText(card, "high", formatPrice(ohlc.high));
      setText(card, "low", formatPrice(ohlc.low));
      setText(card, "close", formatPrice(ohlc.close));
    }
    setText(card, "volume", typeof tick.volume_traded === "number" ? intFormat.format(tick.volume_traded) : "—");
    if (tick.seq !== undefined) {
      card.el.dataset.seq = String(tick.seq);
      setText(card, "seq", String(tick.seq));
    }
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
    flashing.forEach(function (until, card) {
      if (now >= until) {
        card.el.classList.remove("flash-up", "flash-down");
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

  // -- ticks and latency ---------------------------------------------------------------

  var latencies = new Float64Array(LATENCY_WINDOW);
  var latencyCount = 0;
  var latencyNext = 0;
  var latencyFresh = false;
  var moversDirty = false;

  // The wall clock in ms with sub-ms resolution (Date.now() truncates to whole ms, too
  // coarse for a same-host latency): the monotonic clock from the page's time origin,
  // re-based whenever it drifts from Date.now() (clock steps, a suspended machine).
  var clockBase = performance.timeOrigin || (Date.now() - performance.now());
  function wallMs() {
    return clockBase + performance.now();
  }
  function resyncClock() {
    // Date.now() truncates to whole ms: +0.5 is its unbiased estimate of the true time.
    var drift = Date.now() + 0.5 - wallMs();
    if (drift > 3 || drift < -3) clockBase += drift;
  }

  function onTicks(list, live) {
    if (!Array.isArray(list)) return;
    var nowMs = wallMs();
    for (var i = 0; i < list.length; i++) {
      var tick = list[i];
      if (!tick || typeof tick.symbol !== "string") continue;
      app.received++;
      // End to end: the plant's receive time (wall clock, ns) to now. A snapshot's
      // ticks are old by design, so only live ticks count.
      if (live && typeof tick.receive_time_ns === "number" && tick.receive_time_ns > 0) {
        latencies[latencyNext] = nowMs - tick.receive_time_ns / 1e6;
        latencyNext = (latencyNext + 1) % LATENCY_WINDOW;
        if (latencyCount < LATENCY_WINDOW) latencyCount++;
        latencyFresh = true;
      }
      if (!cards.has(tick.symbol)) continue;  // no longer (or not yet) on the watchlist
      app.ticks.set(tick.symbol, tick);
      dirty.add(tick.symbol);
      moversDirty = true;
    }
    if (dirty.size) scheduleRender();
  }

  function percentile(sorted, q) {
    return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1) + 0.5))];
  }

  function updateLatency() {
    if (!latencyFresh || latencyCount === 0) return;
    latencyFresh = false;
    var sorted = latencies.slice(0, latencyCount).sort();
    app.latency = { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), samples: latencyCount };
    latencyEl.textContent = "p50 " + formatMs(app.latency.p50) + " · p99 " + formatMs(app.latency.p99);
    latencyEl.dataset.p50 = app.latency.p50.toFixed(3);
    latencyEl.dataset.p99 = app.latency.p99.toFixed(3);
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
      row.li.dataset.symbol = mover.symbol;
      row.sym.textContent = mover.symbol;
      row.chg.textContent = formatChange(mover.change);
      row.chg.dataset.dir = direction(mover.change);
    }
  }

  function updateMovers() {
    if (!moversDirty) return;
    moversDirty = false;
    var up = [];
    var down = [];
    app.ticks.forEach(function (tick, symbol) {
      if (typeof tick.change !== "number" || !isFinite(tick.change)) return;
      if (tick.change > 0) up.push({ symbol: symbol, change: tick.change });
      else if (tick.change < 0) down.push({ symbol: symbol, change: tick.change });
    });
    up.sort(function (a, b) { return b.change - a.change; });
    down.sort(function (a, b) { return a.change - b.change; });
    fillMovers(gainerRows, up.slice(0, MOVERS));
    fillMovers(loserRows, down.slice(0, MOVERS));
  }

  var rateSince = performance.now();
  var rateReceived = 0;
  function slowUpdate() {
    resyncClock();
    updateMovers();
    updateLatency();
    var now = performance.now();
    if (now - rateSince >= 1000) {
      var rate = (app.received - rateReceived) * 1000 / (now - rateSince);
      rateEl.textContent = intFormat.format(rate) + "/s";
      rateSince = now;
      rateReceived = app.received;
    }
    receivedEl.textContent = intFormat.format(app.received);
  }
  setInterval(slowUpdate, SLOW_UPDATE_MS);

  // -- the connection ------------------------------------------------------------------------

  var socket = null;
  var attempt = 0;               // connection attempts since the last live one
  var reconnectTimer = 0;
  var pingTimer = 0;
  var pingId = 0;
  var pingsSent = new Map();     // ping id -> performance.now()
  var lastFrameAt = 0;
  var subscribeRequests = [];    // in flight, in order: {symbols, initial}
  var unsubscribeRequests = [];
  var pendingAdds = new Set();   // keys added but not yet confirmed by a `subscribed`

  function setState(state, detail) {
    app.state = state;
    connBadge.textContent = state;
    connBadge.dataset.state = state;
    connBadge.className = "badge conn-" + state;
    connBadge.title = detail || "WebSocket connection";
  }

  function showFeed() {
    var feed = app.feed;
    // Only over an open connection: "live" or a feed state shown before (stale, degraded, down).
    if (!feed || (app.state !== "live" && app.state !== "stale" && app.state !== "degraded" &&
                  app.state !== "down")) return;
    var age = feed.last_tick_age_s === null ? "no tick yet" : "last tick " + feed.last_tick_age_s + " s ago";
    var detail = "feed " + feed.feed + ", market " + feed.market.replace("_", "-") + ", " + age;
    setState(feed.feed === "streaming" ? "live" : feed.feed, detail);
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
    setState(attempt === 0 && app.connects === 0 ? "connecting" : "reconnecting");
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
      lastFrameAt = performance.now();
      subscribeRequests = [];
      unsubscribeRequests = [];
      pingsSent.clear();
      if (app.watchlist.length) subscribe(app.watchlist, true);
      else goLive();
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
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, Math.max(0, attempt - 1)));
    delay = delay * (0.5 + Math.random() * 0.5);  // jitter: clients do not come back in step
    setState("reconnecting", "retrying in " + (delay / 1000).toFixed(1) + " s (" + app.lastError + ")");
    reconnectTimer = setTimeout(connect, delay);
  }

  function goLive() {
    attempt = 0;
    setState("live", "streaming from " + location.host);
    showFeed();
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

  function onMessage(message) {
    switch (message.type) {
      case "ticks":
        onTicks(message.ticks, true);
        break;
      case "snapshot":
        onTicks(message.ticks, false);
        break;
      case "subscribed":
        onSubscribed(message, subscribeRequests.shift());
        break;
      case "unsubscribed":
        unsubscribeRequests.shift();
        break;
      case "pong":
        var sent = pingsSent.get(message.id);
        if (sent !== undefined) {
          pingsSent.delete(message.id);
          app.rtt = performance.now() - sent;
          rttEl.textContent = formatMs(app.rtt);
        }
        break;
      case "error":
        onError(message);
        break;
      case "status":  // the feed behind the gateway: streaming, stale or down (docs/protocol.md)
        app.feed = message;
        showFeed();
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
        notice("Unknown symbol: " + key + " (try EXCHANGE:TRADINGSYMBOL, e.g. NSE:INFY)", "error");
        forget(key);
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
          setState(app.state, "waiting for the gateway: " + text);
          setTimeout(function () {
            if (socket === ws && app.state !== "live") subscribe(app.watchlist, true);
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
      notice(to + " is already on the watchlist", "info");
      return;
    }
    cards.delete(from);
    labelCard(card, to);
    cards.set(to, card);
    var i = app.watchlist.indexOf(from);
    if (i >= 0) app.watchlist[i] = to;
    saveWatchlist();
  }

  /** Drop a key from the page and the stored watchlist (no message to the gateway). */
  function forget(key) {
    var i = app.watchlist.indexOf(key);
    if (i >= 0) app.watchlist.splice(i, 1);
    app.ticks.delete(key);
    app.unknown.delete(key);
    dirty.delete(key);
    dropCard(key);
    moversDirty = true;
    saveWatchlist();
  }

  function addSymbol(text) {
    var key = normalizeSymbol(text);
    if (!key || key.length > MAX_SYMBOL_LENGTH) {
      notice("A symbol is 1 to " + MAX_SYMBOL_LENGTH + " characters, e.g. NSE:INFY", "error");
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
    saveWatchlist();
    pendingAdds.add(key);
    subscribe([key], false);  // when offline, the next connection subscribes the whole list
    return true;
  }

  function removeSymbol(key) {
    if (!cards.has(key)) return false;
    var known = !app.unknown.has(key);
    pendingAdds.delete(key);
    forget(key);
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
    if (persist) saveWatchlist();
  }

  addForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (addSymbol(addInput.value)) addInput.value = "";
    addInput.focus();
  });

  resetButton.addEventListener("click", function () {
    setWatchlist(DEFAULT_WATCHLIST.slice(), true);
  });

  // Another tab edited the watchlist: follow it.
  window.addEventListener("storage", function (event) {
    if (event.key === STORAGE_KEY || event.key === null) setWatchlist(loadWatchlist(), false);
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

  app.watchlist = loadWatchlist();
  app.watchlist.forEach(createCard);
  emptyEl.hidden = app.watchlist.length > 0;
  setState("connecting");
  connect();
})();
