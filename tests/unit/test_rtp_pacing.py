"""Frame pacing without drift: deadlines from the start, catch-up after a stall, bounded bursts."""

from __future__ import annotations

import random

import pytest

from rtpmedia.pacing import Due, Pacer


def test_deadlines_are_counted_from_the_start_not_from_the_last_wakeup() -> None:
    p = Pacer(100.0, 0.020)
    rng = random.Random(7)
    sent = 0
    for _ in range(180_000):   # an hour of 20 ms frames, every wake-up 0-3 ms late
        deadline = p.next_deadline()
        due = p.due(deadline + rng.uniform(0.0, 0.003))
        assert due.frames >= 1 and due.skipped == 0 and due.lateness <= 0.003 + 1e-9
        sent += due.frames
    assert sent == 180_000
    assert p.next_deadline() == pytest.approx(100.0 + 3600.0)   # no drift after an hour


def test_early_wakeups_send_nothing() -> None:
    p = Pacer(0.0, 0.020)
    assert p.due(0.0) == Due(1, 0, 0.0)
    assert p.due(0.010) == Due(0, 0, 0.0)
    assert p.due(0.0199) == Due(0, 0, 0.0)
    assert p.due(0.020).frames == 1


def test_a_stall_is_caught_up_in_a_bounded_burst() -> None:
    p = Pacer(0.0, 0.020, max_burst=5)
    p.due(0.0)
    due = p.due(0.045)          # frames 1 and 2 are due (20 ms, 40 ms)
    assert (due.frames, due.skipped) == (2, 0) and due.lateness == pytest.approx(0.025)
    due = p.due(1.0)            # a one-second stall: 48 frames due, 5 sent, the rest skipped
    assert (due.frames, due.skipped) == (5, 43)
    assert p.next_deadline() == pytest.approx(1.02)


def test_bad_parameters() -> None:
    for kw in ({"ptime": 0.0}, {"ptime": 2.0}, {"max_burst": 0}):
        with pytest.raises(ValueError):
            Pacer(0.0, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Pacer(float("nan"))
