"""The NSE calendar (fastflow.instruments.calendar) against the dated facts:
sessions in IST, weekends, the 2026 holidays, the F&O close moving to 15:40 on
2026-08-03, the Sunday budget session."""

from __future__ import annotations

import datetime as dt

import pytest

from fastflow.instruments.calendar import IST, phase


@pytest.mark.parametrize(("when", "expected"), [
    ("2026-12-02 09:14:59", "pre_open"), ("2026-12-02 08:59:59", "closed"), ("2026-12-02 09:00:00", "pre_open"),
    ("2026-12-02 09:15:00", "open"), ("2026-12-02 15:35:00", "open"), ("2026-12-02 15:40:00", "closed"),
    ("2026-07-31 15:35:00", "closed"),  # before 2026-08-03 the session ended at 15:30
    ("2026-07-31 15:29:59", "open"),
    ("2026-12-05 11:00:00", "closed"),  # a Saturday
    ("2026-12-25 11:00:00", "closed"),  # Christmas
    ("2026-01-15 11:00:00", "closed"),  # the municipal-election holiday added on 2026-01-12
    ("2026-02-01 11:00:00", "open"), ("2026-02-01 15:00:00", "closed"),  # the Sunday budget session
    ("2027-03-01 11:00:00", "open"),  # no 2027 list: weekdays open
])
def test_the_phase_of_a_moment_in_ist(when: str, expected: str) -> None:
    moment = dt.datetime.fromisoformat(when).replace(tzinfo=IST)
    assert phase(moment) == expected
    assert phase(moment.timestamp()) == expected  # epoch seconds too
    assert phase(moment.astimezone(dt.timezone.utc)) == expected
