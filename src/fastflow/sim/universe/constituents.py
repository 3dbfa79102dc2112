"""The indices of the synthetic universe and their constituents.

:data:`NIFTY50` lists the NIFTY 50 stocks (the universe's equities),
:data:`INDEX_CONSTITUENTS` each index's constituents with approximate weights,
which :class:`fastflow.sim.market.KiteMarket` uses to derive index levels, and
:data:`UNDERLYING_INDEX` the index row behind each index derivative's ``name``.
"""

from __future__ import annotations

__all__ = ["INDEX_CONSTITUENTS", "NIFTY50", "UNDERLYING_INDEX"]

#: An index derivative's underlying (its ``name``: ``NIFTY``) -> the tradingsymbol of
#: the index row it follows (``NIFTY 50``). A derivative whose ``name`` is not here
#: follows the equity of that tradingsymbol (``RELIANCE``). The one mapping the
#: market model and the Upstox greeks use.
UNDERLYING_INDEX: dict[str, str] = {
    "NIFTY": "NIFTY 50",
    "BANKNIFTY": "NIFTY BANK",
    "FINNIFTY": "NIFTY FIN SERVICE",
    "SENSEX": "SENSEX",
}

#: NIFTY 50 constituents (late 2025 / 2026 composition):
#: (tradingsymbol, name, plausible 2026 price in rupees).
NIFTY50: tuple[tuple[str, str, float], ...] = (
    ("ADANIENT", "ADANI ENTERPRISES", 2400.0),
    ("ADANIPORTS", "ADANI PORT & SEZ", 1480.0),
    ("APOLLOHOSP", "APOLLO HOSPITALS", 7600.0),
    ("ASIANPAINT", "ASIAN PAINTS", 2850.0),
    ("AXISBANK", "AXIS BANK", 1260.0),
    ("BAJAJ-AUTO", "BAJAJ AUTO", 9050.0),
    ("BAJFINANCE", "BAJAJ FINANCE", 1020.0),
    ("BAJAJFINSV", "BAJAJ FINSERV", 2060.0),
    ("BEL", "BHARAT ELECTRONICS", 420.0),
    ("BHARTIARTL", "BHARTI AIRTEL", 2110.0),
    ("CIPLA", "CIPLA", 1530.0),
    ("COALINDIA", "COAL INDIA", 385.0),
    ("DRREDDY", "DR. REDDY'S LABORATORIES", 1260.0),
    ("EICHERMOT", "EICHER MOTORS", 7000.0),
    ("ETERNAL", "ETERNAL", 305.0),
    ("GRASIM", "GRASIM INDUSTRIES", 2780.0),
    ("HCLTECH", "HCL TECHNOLOGIES", 1620.0),
    ("HDFCBANK", "HDFC BANK", 1005.0),
    ("HDFCLIFE", "HDFC LIFE INS CO", 765.0),
    ("HINDALCO", "HINDALCO INDUSTRIES", 820.0),
    ("HINDUNILVR", "HINDUSTAN UNILEVER", 2450.0),
    ("ICICIBANK", "ICICI BANK", 1390.0),
    ("INDIGO", "INTERGLOBE AVIATION", 5800.0),
    ("INFY", "INFOSYS", 1560.0),
    ("ITC", "ITC", 405.0),
    ("JIOFIN", "JIO FIN SERVICES", 305.0),
    ("JSWSTEEL", "JSW STEEL", 1160.0),
    ("KOTAKBANK", "KOTAK MAHINDRA BANK", 2120.0),
    ("LT", "LARSEN & TOUBRO", 4020.0),
    ("M&M", "MAHINDRA & MAHINDRA", 3720.0),
    ("MARUTI", "MARUTI SUZUKI INDIA", 16100.0),
    ("MAXHEALTH", "MAX HEALTHCARE INS", 1140.0),
    ("NESTLEIND", "NESTLE INDIA", 1270.0),
    ("NTPC", "NTPC", 330.0),
    ("ONGC", "OIL AND NATURAL GAS CORP", 248.5),
    ("POWERGRID", "POWER GRID CORP", 272.0),
    ("RELIANCE", "RELIANCE INDUSTRIES", 1540.0),
    ("SBILIFE", "SBI LIFE INSURANCE", 2010.0),
    ("SBIN", "STATE BANK OF INDIA", 960.0),
    ("SHRIRAMFIN", "SHRIRAM FINANCE", 820.0),
    ("SUNPHARMA", "SUN PHARMACEUTICAL IND", 1780.0),
    ("TATACONSUM", "TATA CONSUMER PRODUCTS", 1160.0),
    ("TMPV", "TATA MOTORS PASS VEH", 400.0),
    ("TATASTEEL", "TATA STEEL", 172.3),
    ("TCS", "TATA CONSULTANCY SERV", 3150.0),
    ("TECHM", "TECH MAHINDRA", 1520.0),
    ("TITAN", "TITAN COMPANY", 3850.0),
    ("TRENT", "TRENT", 4450.0),
    ("ULTRACEMCO", "ULTRATECH CEMENT", 11900.0),
    ("WIPRO", "WIPRO", 246.4),
)

def _normalised(percent: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    """``(symbol, percent)`` pairs as ``(symbol, weight)`` with the weights summing to 1."""
    total = sum(weight for _, weight in percent)
    return tuple((symbol, weight / total) for symbol, weight in percent)


#: Index tradingsymbol -> ``(constituent tradingsymbol, weight)`` pairs, the
#: weights summing to 1. They are APPROXIMATE free-float market-cap weights
#: (rounded, late 2025) for a synthetic market, not the official ones, and
#: only the constituents listed in :data:`NIFTY50` appear: NIFTY 50 is the
#: whole table; NIFTY BANK keeps the five NIFTY 50 banks (its smaller
#: constituents such as INDUSINDBK or BANKBARODA are not in the universe),
#: re-weighted over them; NIFTY FIN SERVICE (in the full universe only) keeps
#: its eleven NIFTY 50 members the same way; SENSEX is its 30 BSE
#: constituents, all of which are NIFTY 50 stocks. :meth:`fastflow.sim.market.KiteMarket.from_rows`
#: links each index row to these constituents by ``tradingsymbol``.
INDEX_CONSTITUENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "NIFTY 50": _normalised(
        (
            ("HDFCBANK", 12.9),
            ("ICICIBANK", 8.6),
            ("RELIANCE", 8.4),
            ("INFY", 4.9),
            ("BHARTIARTL", 4.7),
            ("LT", 3.9),
            ("ITC", 3.4),
            ("SBIN", 3.2),
            ("AXISBANK", 3.0),
            ("TCS", 2.8),
            ("KOTAKBANK", 2.7),
            ("M&M", 2.5),
            ("BAJFINANCE", 2.3),
            ("HINDUNILVR", 1.9),
            ("MARUTI", 1.8),
            ("SUNPHARMA", 1.6),
            ("HCLTECH", 1.6),
            ("ETERNAL", 1.5),
            ("NTPC", 1.4),
            ("TITAN", 1.3),
            ("ULTRACEMCO", 1.2),
            ("TATASTEEL", 1.2),
            ("BEL", 1.2),
            ("POWERGRID", 1.1),
            ("INDIGO", 1.0),
            ("TRENT", 0.9),
            ("ONGC", 0.9),
            ("ASIANPAINT", 0.9),
            ("BAJAJFINSV", 0.9),
            ("ADANIPORTS", 0.9),
            ("JSWSTEEL", 0.9),
            ("HINDALCO", 0.9),
            ("TMPV", 0.8),
            ("GRASIM", 0.8),
            ("TECHM", 0.8),
            ("SHRIRAMFIN", 0.8),
            ("BAJAJ-AUTO", 0.8),
            ("EICHERMOT", 0.8),
            ("JIOFIN", 0.8),
            ("COALINDIA", 0.7),
            ("CIPLA", 0.7),
            ("SBILIFE", 0.7),
            ("HDFCLIFE", 0.7),
            ("NESTLEIND", 0.7),
            ("TATACONSUM", 0.6),
            ("DRREDDY", 0.6),
            ("APOLLOHOSP", 0.6),
            ("MAXHEALTH", 0.6),
            ("WIPRO", 0.6),
            ("ADANIENT", 0.5),
        )
    ),
    "NIFTY BANK": _normalised(
        (
            ("HDFCBANK", 28.5),
            ("ICICIBANK", 24.5),
            ("SBIN", 9.5),
            ("KOTAKBANK", 8.5),
            ("AXISBANK", 8.5),
        )
    ),
    "NIFTY FIN SERVICE": _normalised(
        (
            ("HDFCBANK", 32.0),
            ("ICICIBANK", 22.0),
            ("SBIN", 8.0),
            ("BAJFINANCE", 7.0),
            ("KOTAKBANK", 7.0),
            ("AXISBANK", 7.0),
            ("BAJAJFINSV", 3.0),
            ("SHRIRAMFIN", 2.5),
            ("JIOFIN", 2.5),
            ("SBILIFE", 2.0),
            ("HDFCLIFE", 2.0),
        )
    ),
    "SENSEX": _normalised(
        (
            ("HDFCBANK", 15.5),
            ("ICICIBANK", 10.5),
            ("RELIANCE", 10.0),
            ("INFY", 5.5),
            ("BHARTIARTL", 5.5),
            ("LT", 4.5),
            ("ITC", 4.0),
            ("SBIN", 3.7),
            ("AXISBANK", 3.5),
            ("TCS", 3.3),
            ("KOTAKBANK", 3.2),
            ("M&M", 3.0),
            ("BAJFINANCE", 2.7),
            ("HINDUNILVR", 2.2),
            ("MARUTI", 2.1),
            ("SUNPHARMA", 1.9),
            ("HCLTECH", 1.9),
            ("ETERNAL", 1.7),
            ("NTPC", 1.6),
            ("TITAN", 1.5),
            ("ULTRACEMCO", 1.4),
            ("TATASTEEL", 1.4),
            ("BEL", 1.4),
            ("POWERGRID", 1.3),
            ("ASIANPAINT", 1.1),
            ("TRENT", 1.0),
            ("BAJAJFINSV", 1.0),
            ("ADANIPORTS", 1.0),
            ("TMPV", 0.9),
            ("TECHM", 0.9),
        )
    ),
}
