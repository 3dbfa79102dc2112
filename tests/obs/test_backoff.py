"""The one reconnect backoff (fastflow.obs.backoff): capped exponential, full jitter, seeded."""

from __future__ import annotations

import random

from fastflow.obs.backoff import Backoff


def test_the_nth_delay_is_uniform_up_to_base_times_two_to_the_n_capped() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7))
    reference = random.Random(7)
    for n in range(12):
        assert backoff.attempt == n and backoff.ceiling() == min(30.0, 0.5 * 2**n)
        assert backoff.next_delay() == reference.uniform(0.0, min(30.0, 0.5 * 2**n))
    assert backoff.ceiling() == 30.0


def test_delays_stay_within_the_ceiling_and_reach_near_the_cap() -> None:
    backoff = Backoff(0.05, 5.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(500)]
    assert all(0.0 <= d <= 5.0 for d in delays)
    assert max(delays) > 4.0  # jitter spreads over the whole range once capped


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(0.25, 10.0, random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    assert backoff.ceiling() == 10.0
    backoff.reset()
    assert backoff.attempt == 0 and backoff.ceiling() == 0.25
    assert backoff.next_delay() <= 0.25


def test_the_same_seed_gives_the_same_delays() -> None:
    first, second = Backoff(0.1, 2.0, random.Random(42)), Backoff(0.1, 2.0, random.Random(42))
    assert [first.next_delay() for _ in range(20)] == [second.next_delay() for _ in range(20)]


def test_no_overflow_after_very_many_attempts() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(0))
    backoff.attempt = 5000  # days of failures: base * 2**n is no longer a float
    assert backoff.ceiling() == 30.0 and 0.0 <= backoff.next_delay() <= 30.0


def test_an_unseeded_backoff_has_its_own_generator() -> None:
    backoff = Backoff(1.0, 1.0)
    assert 0.0 <= backoff.next_delay() <= 1.0
    assert repr(backoff) == "Backoff(base=1.0, cap=1.0, attempt=1)"


def test_a_connection_up_for_reset_after_seconds_starts_the_count_again() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(5), reset_after=5.0)
    for _ in range(4):
        backoff.next_delay(0.0)
    backoff.up(100.0)
    assert backoff.next_delay(105.0) <= 0.5 and backoff.attempt == 1  # up 5 s: a good connection
    backoff.up(200.0)
    backoff.next_delay(204.9)  # up 4.9 s: not long enough
    assert backoff.attempt == 2 and backoff.ceiling() == 2.0
    backoff.next_delay(1000.0)  # no connection came up in between: the count goes on
    assert backoff.attempt == 3


def test_without_reset_after_or_a_time_only_reset_starts_again() -> None:
    never = Backoff(0.5, 30.0, random.Random(5))
    never.up(0.0)
    never.next_delay(1e9)
    untimed = Backoff(0.5, 30.0, random.Random(5), reset_after=0.0)
    untimed.up(0.0)
    untimed.next_delay()
    assert never.attempt == 1 and untimed.attempt == 1
    never.up(0.0)
    never.next_delay(1e9)
    untimed.up(0.0)
    untimed.next_delay()
    assert never.attempt == 2 and untimed.attempt == 2
