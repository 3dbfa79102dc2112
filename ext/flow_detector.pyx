# FlowDetector: options flow inferred from snapshot deltas, on every update of
# a tradable derivative, in C (docs/flow.md). The decoders call update() after
# applying a packet to its slot; MarketState.flush() takes the flush's events
# as one msgpack array (TickBatch.flow). No Python object per update: events
# are C structs until the flush encodes them.
#
# Per slot the detector keeps what the previous snapshot said (touch and five
# levels a side, volume, ATP, LTP, OI, exchange time) and a running baseline
# of interval volume; per update it derives the interval's traded quantity dV
# and print price, classifies the aggressor against the previous book, and
# recognises sweeps, blocks, repeated hits and unusual activity.

from libc.math cimport fabs, isnan, log10, sqrt, NAN

cdef enum:
    FLOW_LEVELS = 5          # book levels a side remembered for detection
    FLOW_PARTS = 7           # score components

    FLOW_SWEEP = 1
    FLOW_BLOCK = 2
    FLOW_REPEATED = 3
    FLOW_UNUSUAL = 4

    SIDE_UNKNOWN = 0
    SIDE_BUY = 1
    SIDE_SELL = 2

    BUCKET_UNKNOWN = 0
    BUCKET_ABOVE_ASK = 1
    BUCKET_AT_ASK = 2
    BUCKET_MID = 3
    BUCKET_AT_BID = 4
    BUCKET_BELOW_BID = 5

    REASON_NONE = 0
    REASON_VOLUME_OI = 1
    REASON_ZSCORE = 2

    OPT_NONE = 0
    OPT_CE = 1
    OPT_PE = 2
    OPT_FUT = 3

#: The names the events carry, indexed by the enums above (also the reference's).
FLOW_KINDS = (None, "sweep", "block", "repeated", "unusual")
FLOW_SIDES = ("unknown", "buy", "sell")
FLOW_BUCKETS = ("unknown", "above_ask", "at_ask", "mid", "at_bid", "below_bid")
FLOW_REASONS = (None, "volume_oi", "zscore")
FLOW_PART_NAMES = ("premium", "size_vs_oi", "aggressor", "sweep", "unusualness", "tenor", "moneyness")


ctypedef struct ff_flow_mem:
    int64_t ts
    int64_t volume
    int64_t atp
    int64_t ltp
    int64_t oi
    int64_t bid_p[FLOW_LEVELS]
    int64_t bid_q[FLOW_LEVELS]
    int64_t ask_p[FLOW_LEVELS]
    int64_t ask_q[FLOW_LEVELS]
    int32_t levels
    uint8_t valid
    uint8_t z_armed
    uint8_t voi_fired
    uint8_t chain_side
    uint8_t chain_reported
    uint32_t samples
    double ew_mean
    double ew_var
    int64_t chain_last
    int64_t chain_qty
    int32_t chain_hits
    double chain_premium


ctypedef struct ff_flow_static:
    uint8_t enabled
    uint8_t option_type
    int32_t underlying        # its slot, -1 when the master has none
    int64_t lot
    double tick               # fixed-point units
    double divisor
    double strike
    int64_t expiry_ms         # the expiry's close (15:30 IST), epoch ms; 0 unknown
    double floor              # premium floor in rupees (sweep, block, repeated)


ctypedef struct ff_flow_event:
    uint64_t id
    uint8_t kind
    uint8_t side
    uint8_t bucket
    uint8_t reason
    int32_t slot
    int32_t levels
    int32_t hits
    int64_t quantity
    int64_t oi
    int64_t volume
    int64_t ts
    int64_t recv_ns
    double price
    double premium
    double bid
    double ask
    double underlying_price
    double iv
    double zscore
    double parts[FLOW_PARTS]
    int32_t score


ctypedef struct ff_flow_params:
    int64_t block_lots
    double block_multiple
    int32_t sweep_levels
    int64_t sweep_min_lots
    int64_t repeat_window_ms
    int32_t repeat_hits
    double z_threshold
    double z_alpha
    uint32_t z_min_samples
    int64_t voi_min_lots
    int64_t max_gap_ms
    double atm_pct
    double premium_base
    double premium_full
    double oi_full
    double tenor_days
    double weights[FLOW_PARTS]


cdef inline double clamp01(double x) noexcept nogil:
    if not x > 0.0:   # also NaN
        return 0.0
    return 1.0 if x > 1.0 else x


@cython.final
cdef class FlowDetector:
    """The options-flow detector of one :class:`MarketState` (made by
    ``MarketState.enable_flow``; see docs/flow.md for the rules and fields)."""

    cdef ff_flow_mem *mem
    cdef ff_flow_static *info
    cdef Py_ssize_t n
    cdef ff_flow_params p
    cdef ff_flow_event *events
    cdef Py_ssize_t n_events
    cdef Py_ssize_t cap_events
    cdef uint64_t next_id
    cdef bytes _ident           # per slot: the identity pairs, pre-encoded msgpack
    cdef bytes _ident_off       # n + 1 int64 offsets
    cdef bint keyed
    cdef ff_buf out
    cdef uint64_t counts[5]
    cdef uint64_t stale
    cdef uint64_t resets
    cdef uint64_t gaps
    cdef uint64_t no_book
    cdef uint64_t prints

    def __cinit__(self, Py_ssize_t n, dict params not None, list statics not None, bytes ident not None,
                  bytes ident_off not None, bint keyed, uint64_t first_id):
        if len(statics) != n or len(ident_off) != <Py_ssize_t>((n + 1) * sizeof(int64_t)):
            raise ValueError("flow detector columns have different lengths")
        self.n = n
        self.mem = <ff_flow_mem *>PyMem_Malloc(max(n, 1) * sizeof(ff_flow_mem))
        self.info = <ff_flow_static *>PyMem_Malloc(max(n, 1) * sizeof(ff_flow_static))
        if self.mem == NULL or self.info == NULL:
            raise MemoryError()
        memset(self.mem, 0, max(n, 1) * sizeof(ff_flow_mem))
        memset(self.info, 0, max(n, 1) * sizeof(ff_flow_static))
        cdef Py_ssize_t i
        cdef ff_flow_static *st
        for i in range(n):
            row = statics[i]
            st = &self.info[i]
            st.enabled = row[0]
            st.option_type = row[1]
            st.underlying = row[2]
            st.lot = row[3]
            st.tick = row[4]
            st.divisor = row[5]
            st.strike = row[6]
            st.expiry_ms = row[7]
            st.floor = row[8]
            self.mem[i].z_armed = 1
        p = params
        self.p.block_lots = p["block_lots"]
        self.p.block_multiple = p["block_multiple"]
        self.p.sweep_levels = p["sweep_levels"]
        self.p.sweep_min_lots = p["sweep_min_lots"]
        self.p.repeat_window_ms = p["repeat_window_ms"]
        self.p.repeat_hits = p["repeat_hits"]
        self.p.z_threshold = p["z_threshold"]
        self.p.z_alpha = p["z_alpha"]
        self.p.z_min_samples = p["z_min_samples"]
        self.p.voi_min_lots = p["voi_min_lots"]
        self.p.max_gap_ms = p["max_gap_ms"]
        self.p.atm_pct = p["atm_pct"]
        self.p.premium_base = p["premium_base"]
        self.p.premium_full = p["premium_full"]
        self.p.oi_full = p["oi_full"]
        self.p.tenor_days = p["tenor_days"]
        weights = p["weights"]
        for i in range(FLOW_PARTS):
            self.p.weights[i] = weights[i]
        self._ident = ident
        self._ident_off = ident_off
        self.keyed = keyed
        self.next_id = first_id
        self.cap_events = 64
        self.events = <ff_flow_event *>PyMem_Malloc(self.cap_events * sizeof(ff_flow_event))
        if self.events == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.mem)
        PyMem_Free(self.info)
        PyMem_Free(self.events)
        ff_buf_free(&self.out)

    cdef void reset(self) noexcept nogil:
        """Forget every contract's previous snapshot and baseline (MarketState.clear)."""
        cdef Py_ssize_t i
        memset(self.mem, 0, max(self.n, 1) * sizeof(ff_flow_mem))
        for i in range(self.n):
            self.mem[i].z_armed = 1
        self.n_events = 0

    # -- per update (C only) ---------------------------------------------------------

    cdef int update(self, int32_t slot, ff_slot *s, char *base, Py_ssize_t stride) except -1:
        cdef ff_flow_static *st = &self.info[slot]
        if not st.enabled:
            return 0
        cdef ff_flow_mem *m = &self.mem[slot]
        cdef int64_t dv
        if (s.have & FF_HAVE_DEPTH) == 0 or s.depth_levels == 0 or (s.have & FF_HAVE_VOLUME) == 0:
            m.valid = 0  # no book: nothing to classify against, now or next time
            self.no_book += 1
            return 0
        if m.valid:
            if s.exchange_timestamp < m.ts:
                self.stale += 1  # out of order: keep the newer memory
                return 0
            dv = s.volume - m.volume
            if dv < 0:
                self.resets += 1  # a volume reset (a new day, a replayed feed): start over
                m.samples = 0
                m.voi_fired = 0
                m.chain_hits = 0
            elif s.exchange_timestamp - m.ts > self.p.max_gap_ms:
                self.gaps += 1  # a reconnect or an outage: dV spans it, not one interval
            elif dv > 0:
                if m.bid_p[0] > 0 and m.ask_p[0] > 0:
                    self.prints += 1
                    self._print(slot, s, st, m, dv, base, stride)
                else:
                    self.no_book += 1
        self._remember(m, s)
        return 0

    cdef inline void _remember(self, ff_flow_mem *m, const ff_slot *s) noexcept nogil:
        cdef int i, n = s.depth_levels if s.depth_levels < FLOW_LEVELS else FLOW_LEVELS
        m.ts = s.exchange_timestamp
        m.volume = s.volume
        m.atp = s.average_price
        m.ltp = s.last_price
        m.oi = s.oi
        m.levels = n
        for i in range(FLOW_LEVELS):
            if i < n:
                m.bid_p[i] = s.depth[i].bid_price
                m.bid_q[i] = s.depth[i].bid_quantity
                m.ask_p[i] = s.depth[i].ask_price
                m.ask_q[i] = s.depth[i].ask_quantity
            else:
                m.bid_p[i] = m.bid_q[i] = m.ask_p[i] = m.ask_q[i] = 0
        m.valid = 1

    cdef int _print(self, int32_t slot, const ff_slot *s, const ff_flow_static *st, ff_flow_mem *m, int64_t dv,
                    char *base, Py_ssize_t stride) except -1:
        cdef double price = <double>s.last_price
        cdef double vwap, err, half = st.tick / 2.0
        cdef double ask = <double>m.ask_p[0], bid = <double>m.bid_p[0]
        # The interval VWAP from ATP x volume, when ATP's rounding (half a unit on each
        # cumulative turnover) moves it by less than half a tick; else the LTP.
        if s.average_price > 0 and m.atp > 0:
            vwap = (<double>s.average_price * <double>s.volume - <double>m.atp * <double>m.volume) / <double>dv
            err = 0.5 * (<double>s.volume + <double>m.volume) / <double>dv
            if vwap > 0 and err <= half:
                price = vwap
        cdef int32_t levels = self._sweep(s, m, dv, &price) if dv >= self.p.sweep_min_lots * st.lot else 0
        cdef uint8_t side, bucket
        if levels:
            bucket = BUCKET_ABOVE_ASK if s.last_price > m.ask_p[0] else BUCKET_BELOW_BID
        elif price > ask + half:
            bucket = BUCKET_ABOVE_ASK
        elif price > ask - half:
            bucket = BUCKET_AT_ASK
        elif price < bid - half:
            bucket = BUCKET_BELOW_BID
        elif price < bid + half:
            bucket = BUCKET_AT_BID
        else:
            bucket = BUCKET_MID
        if bucket == BUCKET_ABOVE_ASK or bucket == BUCKET_AT_ASK:
            side = SIDE_BUY
        elif bucket == BUCKET_AT_BID or bucket == BUCKET_BELOW_BID:
            side = SIDE_SELL
        elif price > (ask + bid) / 2.0:  # inside the spread: the nearer touch
            side = SIDE_BUY
        elif price < (ask + bid) / 2.0:
            side = SIDE_SELL
        elif s.last_price > m.ltp:  # at the mid: the tick rule
            side = SIDE_BUY
        elif s.last_price < m.ltp:
            side = SIDE_SELL
        elif m.ask_q[0] > m.bid_q[0]:  # then the depth rule (tclf)
            side = SIDE_BUY
        elif m.ask_q[0] < m.bid_q[0]:
            side = SIDE_SELL
        else:
            side = SIDE_UNKNOWN
        cdef double rupees = price / st.divisor
        cdef double premium = rupees * <double>dv
        cdef double z = 0.0
        cdef bint baseline = m.samples >= self.p.z_min_samples
        if baseline and m.ew_var > 0:
            z = (<double>dv - m.ew_mean) / sqrt(m.ew_var)
        cdef ff_flow_event *e
        if levels and premium >= st.floor:
            e = self._event(FLOW_SWEEP, slot, s, st, m, side, bucket, levels, rupees, dv, premium, z, base, stride)
        if (not levels and dv >= self.p.block_lots * st.lot and premium >= st.floor
                and (not baseline or <double>dv >= self.p.block_multiple * m.ew_mean)):
            e = self._event(FLOW_BLOCK, slot, s, st, m, side, bucket, levels, rupees, dv, premium, z, base, stride)
        # Repeated hits: aggressive same-side prints chained while each follows the last
        # within the window; reported once, when the chain reaches repeat_hits.
        if bucket != BUCKET_MID:
            if m.chain_hits > 0 and m.chain_side == side and s.exchange_timestamp - m.chain_last <= self.p.repeat_window_ms:
                m.chain_hits += 1
                m.chain_qty += dv
                m.chain_premium += premium
            else:
                m.chain_side = side
                m.chain_hits = 1
                m.chain_qty = dv
                m.chain_premium = premium
                m.chain_reported = 0
            m.chain_last = s.exchange_timestamp
            if m.chain_hits >= self.p.repeat_hits and not m.chain_reported and m.chain_premium >= st.floor:
                m.chain_reported = 1
                e = self._event(FLOW_REPEATED, slot, s, st, m, side, bucket, levels,
                                m.chain_premium / <double>m.chain_qty, m.chain_qty, m.chain_premium, z, base, stride)
                e.hits = m.chain_hits
        # Unusual activity: once per crossing of the z-score of interval volume against
        # the contract's running baseline (re-armed below half the threshold), and once
        # a day when the day's volume passes the open interest.
        if baseline:
            if z >= self.p.z_threshold and m.z_armed:
                m.z_armed = 0
                e = self._event(FLOW_UNUSUAL, slot, s, st, m, side, bucket, levels, rupees, dv, premium, z, base,
                                stride)
                e.reason = REASON_ZSCORE
            elif z < self.p.z_threshold / 2.0:
                m.z_armed = 1
        if (not m.voi_fired and s.oi > 0 and s.volume > s.oi and s.volume >= self.p.voi_min_lots * st.lot):
            m.voi_fired = 1
            e = self._event(FLOW_UNUSUAL, slot, s, st, m, side, bucket, levels, rupees, dv, premium, z, base, stride)
            e.reason = REASON_VOLUME_OI
        # The baseline learns from this interval after it was judged against it.
        cdef double d
        if m.samples == 0:
            m.ew_mean = <double>dv
            m.ew_var = 0.0
        else:
            d = <double>dv - m.ew_mean
            m.ew_mean += self.p.z_alpha * d
            m.ew_var = (1.0 - self.p.z_alpha) * (m.ew_var + self.p.z_alpha * d * d)
        m.samples += 1
        return 0

    cdef int32_t _sweep(self, const ff_slot *s, const ff_flow_mem *m, int64_t dv, double *price) noexcept nogil:
        """Levels of the previous book the print took (0: not a sweep). A buy sweep:
        the LTP reached the k-th ask (k >= sweep_levels), the k - 1 levels below it
        are gone from the new book, and dV covers them; ``price`` becomes the VWAP
        of walking dV through those levels. A sell sweep mirrors it on the bids."""
        cdef int i, k = 0
        cdef int64_t consumed = 0, left, take
        cdef double turnover = 0.0
        cdef int64_t ltp = s.last_price
        cdef int64_t new_touch
        if ltp > m.ask_p[0]:
            while k < m.levels and m.ask_p[k] > 0 and m.ask_p[k] <= ltp:
                k += 1
            if k < self.p.sweep_levels:
                return 0
            for i in range(k - 1):
                consumed += m.ask_q[i]
            new_touch = s.depth[0].ask_price
            if dv <= consumed or not (new_touch == 0 or new_touch > m.ask_p[k - 2]):
                return 0
            left = dv
            for i in range(k):
                take = left if i == k - 1 or m.ask_q[i] > left else m.ask_q[i]
                turnover += <double>take * <double>m.ask_p[i]
                left -= take
            price[0] = turnover / <double>dv
            return k
        if ltp < m.bid_p[0]:
            while k < m.levels and m.bid_p[k] > 0 and m.bid_p[k] >= ltp:
                k += 1
            if k < self.p.sweep_levels:
                return 0
            for i in range(k - 1):
                consumed += m.bid_q[i]
            new_touch = s.depth[0].bid_price
            if dv <= consumed or not (new_touch == 0 or new_touch < m.bid_p[k - 2]):
                return 0
            left = dv
            for i in range(k):
                take = left if i == k - 1 or m.bid_q[i] > left else m.bid_q[i]
                turnover += <double>take * <double>m.bid_p[i]
                left -= take
            price[0] = turnover / <double>dv
            return k
        return 0

    cdef ff_flow_event *_event(self, uint8_t kind, int32_t slot, const ff_slot *s, const ff_flow_static *st,
                               const ff_flow_mem *m, uint8_t side, uint8_t bucket, int32_t levels, double price,
                               int64_t quantity, double premium, double z, char *base,
                               Py_ssize_t stride) except NULL:
        cdef ff_flow_event *grown
        if self.n_events == self.cap_events:
            grown = <ff_flow_event *>PyMem_Realloc(self.events, 2 * self.cap_events * sizeof(ff_flow_event))
            if grown == NULL:
                raise MemoryError()
            self.events = grown
            self.cap_events *= 2
        cdef ff_flow_event *e = &self.events[self.n_events]
        self.n_events += 1
        self.counts[kind] += 1
        e.id = self.next_id
        self.next_id += 1
        e.kind = kind
        e.side = side
        e.bucket = bucket
        e.reason = REASON_NONE
        e.slot = slot
        e.levels = levels
        e.hits = 0
        e.quantity = quantity
        e.oi = s.oi
        e.volume = s.volume
        e.ts = s.exchange_timestamp
        e.recv_ns = s.recv_ns
        e.price = price
        e.premium = premium
        e.bid = <double>m.bid_p[0] / st.divisor
        e.ask = <double>m.ask_p[0] / st.divisor
        e.underlying_price = NAN
        cdef const ff_slot *u
        if st.underlying >= 0:
            u = <const ff_slot *>(base + st.underlying * stride)
            if u.last_price > 0:
                e.underlying_price = <double>u.last_price / <double>u.price_divisor
        e.iv = NAN
        if s.has_ext and (s.have & FF_HAVE_IV):
            e.iv = ff_slot_ext(<ff_slot *>s).iv
        e.zscore = z
        self._score(e, st)
        return e

    cdef void _score(self, ff_flow_event *e, const ff_flow_static *st) noexcept nogil:
        """The published score: seven parts in [0, 1] times their weights (docs/flow.md)."""
        cdef double *part = e.parts
        cdef double dte = self._dte(e, st), pct
        part[0] = clamp01(log10(e.premium / self.p.premium_base) / log10(self.p.premium_full / self.p.premium_base)) \
            if e.premium > 0 else 0.0
        part[1] = clamp01(<double>e.quantity / <double>e.oi / self.p.oi_full) if e.oi > 0 else 0.0
        if e.bucket == BUCKET_ABOVE_ASK or e.bucket == BUCKET_BELOW_BID:
            part[2] = 1.0
        elif e.bucket == BUCKET_AT_ASK or e.bucket == BUCKET_AT_BID:
            part[2] = 0.75
        elif e.bucket == BUCKET_MID and e.side != SIDE_UNKNOWN:
            part[2] = 0.25
        else:
            part[2] = 0.0
        part[3] = clamp01((<double>e.levels - 1.0) / 3.0) if e.levels >= 2 else 0.0
        part[4] = clamp01(e.zscore / (2.0 * self.p.z_threshold))
        if e.oi > 0 and clamp01(<double>e.volume / <double>e.oi / 2.0) > part[4]:
            part[4] = clamp01(<double>e.volume / <double>e.oi / 2.0)
        part[5] = clamp01(1.0 - dte / self.p.tenor_days) if not isnan(dte) else 0.0
        pct = self._pct(e, st)
        part[6] = clamp01(1.0 - fabs(pct) / 10.0) if not isnan(pct) else 0.0
        cdef double total = 0.0
        cdef int i
        for i in range(FLOW_PARTS):
            part[i] *= self.p.weights[i]
            total += part[i]
        e.score = <int32_t>llround(total)

    cdef inline double _dte(self, const ff_flow_event *e, const ff_flow_static *st) noexcept nogil:
        if st.expiry_ms <= 0 or e.ts <= 0:
            return NAN
        return <double>(st.expiry_ms - e.ts) / 86400000.0

    cdef inline double _pct(self, const ff_flow_event *e, const ff_flow_static *st) noexcept nogil:
        """Strike against the underlying, % (NaN for a future or an unknown spot)."""
        if st.option_type == OPT_FUT or st.option_type == OPT_NONE or isnan(e.underlying_price):
            return NAN
        return (st.strike / e.underlying_price - 1.0) * 100.0

    # -- per flush ----------------------------------------------------------------------

    cdef tuple take(self):
        """The events since the last take, as (one msgpack array, the n + 1 int64
        offsets of its events in it, count); (b"", b"", 0) when none."""
        cdef Py_ssize_t i, n = self.n_events
        if n == 0:
            return b"", b"", 0
        cdef const int64_t *off = <const int64_t *>PyBytes_AS_STRING(self._ident_off)
        cdef const char *ident = PyBytes_AS_STRING(self._ident)
        cdef ff_flow_event *e
        cdef bytes offsets_b = PyBytes_FromStringAndSize(NULL, (n + 1) * sizeof(int64_t))
        cdef int64_t *offs = <int64_t *>PyBytes_AS_STRING(offsets_b)
        self.out.len = 0
        ff_buf_reserve(&self.out, 5)
        ff_mp_array_header(&self.out, <size_t>n)
        for i in range(n):
            offs[i] = <int64_t>self.out.len
            e = &self.events[i]
            ff_buf_reserve(&self.out, 2048 + <size_t>(off[e.slot + 1] - off[e.slot]))
            self._encode(e, ident + off[e.slot], <size_t>(off[e.slot + 1] - off[e.slot]))
        offs[n] = <int64_t>self.out.len
        self.n_events = 0
        return PyBytes_FromStringAndSize(<char *>self.out.data, <Py_ssize_t>self.out.len), offsets_b, n

    cdef void _encode(self, const ff_flow_event *e, const char *ident, size_t ident_len) noexcept:
        cdef ff_buf *b = &self.out
        cdef const ff_flow_static *st = &self.info[e.slot]
        cdef double pct = self._pct(e, st), dte = self._dte(e, st)
        cdef int i
        ff_mp_map_header(b, 32)
        ff_mp_cstr(b, "id")
        ff_mp_uint(b, e.id)
        ff_mp_cstr(b, "kind")
        ff_mp_cstr(b, _kind_name(e.kind))
        ff_mp_raw(b, ident, ident_len)  # symbol, instrument_token|key, underlying, expiry, strike, option_type
        ff_mp_cstr(b, "side")
        ff_mp_cstr(b, _side_name(e.side))
        ff_mp_cstr(b, "aggressor")
        ff_mp_cstr(b, _bucket_name(e.bucket))
        ff_mp_cstr(b, "sentiment")
        ff_mp_cstr(b, _sentiment(st.option_type, e.side, e.bucket))
        ff_mp_cstr(b, "price")
        ff_mp_double(b, e.price)
        ff_mp_cstr(b, "quantity")
        ff_mp_int(b, e.quantity)
        ff_mp_cstr(b, "lots")
        ff_mp_double(b, <double>e.quantity / <double>st.lot if st.lot > 0 else 0.0)
        ff_mp_cstr(b, "premium")
        ff_mp_double(b, e.premium)
        ff_mp_cstr(b, "levels")
        ff_mp_int(b, e.levels)
        ff_mp_cstr(b, "bid")
        ff_mp_double(b, e.bid)
        ff_mp_cstr(b, "ask")
        ff_mp_double(b, e.ask)
        ff_mp_cstr(b, "underlying_price")
        _double_or_nil(b, e.underlying_price)
        ff_mp_cstr(b, "moneyness")
        if isnan(pct):
            ff_mp_nil(b)
        else:
            ff_mp_cstr(b, _moneyness(st.option_type, pct, self.p.atm_pct))
        ff_mp_cstr(b, "moneyness_pct")
        _double_or_nil(b, pct)
        ff_mp_cstr(b, "days_to_expiry")
        _double_or_nil(b, dte)
        ff_mp_cstr(b, "oi")
        ff_mp_int(b, e.oi)
        ff_mp_cstr(b, "volume")
        ff_mp_int(b, e.volume)
        ff_mp_cstr(b, "iv")
        _double_or_nil(b, e.iv)
        ff_mp_cstr(b, "hits")
        ff_mp_int(b, e.hits)
        ff_mp_cstr(b, "reason")
        if e.reason == REASON_NONE:
            ff_mp_nil(b)
        else:
            ff_mp_cstr(b, "volume_oi" if e.reason == REASON_VOLUME_OI else "zscore")
        ff_mp_cstr(b, "zscore")
        ff_mp_double(b, e.zscore)
        ff_mp_cstr(b, "exchange_timestamp")
        ff_mp_int(b, ms_to_s(e.ts))
        ff_mp_cstr(b, "receive_time_ns")
        ff_mp_int(b, e.recv_ns)
        ff_mp_cstr(b, "score")
        ff_mp_int(b, e.score)
        ff_mp_cstr(b, "score_parts")
        ff_mp_map_header(b, FLOW_PARTS)
        ff_mp_cstr(b, "premium")
        ff_mp_double(b, e.parts[0])
        ff_mp_cstr(b, "size_vs_oi")
        ff_mp_double(b, e.parts[1])
        ff_mp_cstr(b, "aggressor")
        ff_mp_double(b, e.parts[2])
        ff_mp_cstr(b, "sweep")
        ff_mp_double(b, e.parts[3])
        ff_mp_cstr(b, "unusualness")
        ff_mp_double(b, e.parts[4])
        ff_mp_cstr(b, "tenor")
        ff_mp_double(b, e.parts[5])
        ff_mp_cstr(b, "moneyness")
        ff_mp_double(b, e.parts[6])

    def stats(self):
        """Counters (cold): events by kind, prints judged, and the updates that
        could not be judged (out of order, volume resets, gaps, no book)."""
        return {"sweep": self.counts[FLOW_SWEEP], "block": self.counts[FLOW_BLOCK],
                "repeated": self.counts[FLOW_REPEATED], "unusual": self.counts[FLOW_UNUSUAL],
                "prints": self.prints, "stale": self.stale, "resets": self.resets, "gaps": self.gaps,
                "no_book": self.no_book, "pending": self.n_events}


cdef inline void _double_or_nil(ff_buf *b, double v) noexcept:
    if isnan(v):
        ff_mp_nil(b)
    else:
        ff_mp_double(b, v)


cdef inline const char *_kind_name(uint8_t kind) noexcept nogil:
    if kind == FLOW_SWEEP:
        return "sweep"
    if kind == FLOW_BLOCK:
        return "block"
    if kind == FLOW_REPEATED:
        return "repeated"
    return "unusual"


cdef inline const char *_side_name(uint8_t side) noexcept nogil:
    if side == SIDE_BUY:
        return "buy"
    if side == SIDE_SELL:
        return "sell"
    return "unknown"


cdef inline const char *_bucket_name(uint8_t bucket) noexcept nogil:
    if bucket == BUCKET_ABOVE_ASK:
        return "above_ask"
    if bucket == BUCKET_AT_ASK:
        return "at_ask"
    if bucket == BUCKET_MID:
        return "mid"
    if bucket == BUCKET_AT_BID:
        return "at_bid"
    if bucket == BUCKET_BELOW_BID:
        return "below_bid"
    return "unknown"


cdef inline const char *_sentiment(uint8_t option_type, uint8_t side, uint8_t bucket) noexcept nogil:
    """Ask-side calls (and futures) and bid-side puts are bullish; mid prints neutral."""
    if bucket == BUCKET_MID or side == SIDE_UNKNOWN:
        return "neutral"
    if option_type == OPT_PE:
        return "bearish" if side == SIDE_BUY else "bullish"
    return "bullish" if side == SIDE_BUY else "bearish"


cdef inline const char *_moneyness(uint8_t option_type, double pct, double atm) noexcept nogil:
    """ATM within ``atm`` % of spot; a call below spot (a put above) is ITM."""
    if fabs(pct) <= atm:
        return "ATM"
    if option_type == OPT_CE:
        return "ITM" if pct < 0 else "OTM"
    return "ITM" if pct > 0 else "OTM"
