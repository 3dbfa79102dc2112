"""The NSE trading calendar: is the market open at a given moment?

Used to tell a quiet feed from a dead one: silence while the market is closed is
expected, so staleness is only raised while it is open (docs/protocol.md,
``status``). Facts (``../shared/reference/indian-market-facts.md``, dated):

- pre-open 09:00-09:15 IST (order entry to 09:08, matching and buffer after);
- the normal session 09:15-15:30 IST; F&O trades until 15:40 from 2026-08-03;
- weekends and the NSE holidays of 2026 closed; the budget special session on
  Sunday 2026-02-01 ran 09:15-15:00.

Years without a holiday list here count weekdays only (a holiday then reads as
open: staleness is raised over a feed that is rightly quiet, never hidden over a
dead one). Times are the wall clock in IST (UTC+05:30, no daylight saving).
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

Phase = Literal["pre_open", "open", "closed"]

IST: Final = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
PRE_OPEN: Final = dt.time(9, 0)
OPEN: Final = dt.time(9, 15)
CLOSE: Final = dt.time(15, 30)
FO_CLOSE: Final = dt.time(15, 40)
FO_CLOSE_FROM: Final = dt.date(2026, 8, 3)

#: NSE trading holidays (equity and F&O), by year.
HOLIDAYS: Final = {
    2026: frozenset(dt.date(2026, m, d) for m, d in (
        (1, 15), (1, 26), (3, 3), (3, 26), (3, 31), (4, 3), (4, 14), (5, 1), (5, 28), (6, 26), (9, 14), (10, 2),
        (10, 20), (11, 10), (11, 24), (12, 25))),
}
#: Sessions on days that are otherwise closed: date -> (open, close).
SPECIAL: Final = {dt.date(2026, 2, 1): (dt.time(9, 15), dt.time(15, 0))}


def phase(now: dt.datetime | float) -> Phase:
    """The market's phase at ``now`` (an aware datetime, or epoch seconds)."""
    moment = (dt.datetime.fromtimestamp(now, IST) if isinstance(now, (int, float)) else now.astimezone(IST))
    day, clock = moment.date(), moment.time()
    if day in SPECIAL:
        opens, closes = SPECIAL[day]
        return "open" if opens <= clock < closes else "closed"
    if day.weekday() >= 5 or day in HOLIDAYS.get(day.year, frozenset()):
        return "closed"
    closes = FO_CLOSE if day >= FO_CLOSE_FROM else CLOSE
    if PRE_OPEN <= clock < OPEN:
        return "pre_open"
    return "open" if OPEN <= clock < closes else "closed"
