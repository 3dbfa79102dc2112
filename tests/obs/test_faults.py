"""Contained failures (fastflow.obs.faults): counted by reason, the latest kept,
one log line per reason per interval, the traceback only the first time."""

from __future__ import annotations

import logging

import pytest

from fastflow.obs.faults import Faults


def test_counts_by_reason_and_logs_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    faults = Faults("kite", logging.getLogger("test.faults"), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, "test.faults"):
        for i in range(1000):
            faults.record("text", RecursionError(f"deep {i}"))
        faults.record("flush", RuntimeError("bug"))
        now[0] = 10.0
        faults.record("text", ValueError("not JSON"))
    assert faults.counts == {"text": 1001, "flush": 1} and faults.total == 1002
    assert faults.last == {"text": "ValueError: not JSON", "flush": "RuntimeError: bug"}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "kite: text failed, contained: RecursionError: deep 0",
        "kite: flush failed, contained: RuntimeError: bug",
        "kite: text failed, contained (1001 so far, 999 not logged since the last line): ValueError: not JSON",
    ]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 2  # the first of each reason only
    assert faults.health() == {"counts": faults.counts, "last": faults.last}


def test_a_long_message_is_cut() -> None:
    faults = Faults("x", logging.getLogger("test.faults"))
    faults.record("text", ValueError("y" * 10_000))
    assert len(faults.last["text"]) == 300
