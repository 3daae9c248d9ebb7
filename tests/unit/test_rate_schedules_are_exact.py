"""Load profiles as arrival schedules: request n is due where the integral of the declared rate
reaches n, so every stage, ramp and spike sends exactly its share, with no drift."""

from __future__ import annotations

import bisect
import math

import pytest

from chaos.slo.schedule import RateSchedule
from chaos.slo.traffic import Request, offset_of, weighted_cycle


def due_times(schedule: RateSchedule, until: float) -> list[float]:
    times, n = [], 0
    while (t := schedule.offset_of(n)) < until:
        times.append(t)
        n += 1
    return times


def sent_between(times: list[float], start: float, end: float) -> int:
    return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)


def test_a_constant_schedule_is_the_old_ramp_exactly() -> None:
    schedule = RateSchedule.constant(300.0, ramp=2.0)
    for n in (0, 1, 7, 299, 300, 301, 5000):
        assert schedule.offset_of(n) == pytest.approx(offset_of(n, 300.0, 2.0), abs=1e-9)


def test_each_stage_sends_its_rate_times_its_length() -> None:
    schedule = RateSchedule.of_stages([{"rate": 100, "for": 60}, {"rate": 1000, "for": 120},
                                       {"rate": 100, "for": 60}])
    times = due_times(schedule, 300)
    assert sent_between(times, 0, 60) == 6000
    assert sent_between(times, 60, 180) == 120000
    assert sent_between(times, 180, 240) == 6000
    assert sent_between(times, 240, 300) == 6000  # the last stage's rate holds
    assert all(b > a for a, b in zip(times, times[1:]))
    assert [s.rate for s in schedule.stages] == [100, 1000, 100]


def test_a_ramped_stage_rises_linearly_from_the_previous_rate() -> None:
    schedule = RateSchedule.of_stages([{"rate": 100, "for": 10},
                                       {"rate": 500, "for": 20, "ramp": 10}])
    times = due_times(schedule, 30)
    assert sent_between(times, 10, 20) == pytest.approx(3000, abs=1)  # (100 + 500) / 2 x 10
    assert sent_between(times, 20, 30) == pytest.approx(5000, abs=1)
    assert schedule.rate_at(15) == pytest.approx(300)


def test_a_spike_sends_its_peak_for_its_length_then_the_base_again() -> None:
    schedule = RateSchedule.of_spike({"base": 200, "peak": 2000, "at": 60, "for": 30,
                                      "ramp": 5})
    times = due_times(schedule, 120)
    assert sent_between(times, 0, 60) == 12000
    # 5 s up and 5 s down at (200 + 2000) / 2, 20 s at 2000
    assert sent_between(times, 60, 90) == pytest.approx(2 * 5 * 1100 + 20 * 2000, abs=1)
    assert sent_between(times, 90, 120) == pytest.approx(6000, abs=1)
    assert schedule.peak == 2000


def test_a_pause_sends_nothing_and_a_final_zero_rate_ends_the_schedule() -> None:
    schedule = RateSchedule.of_stages([{"rate": 10, "for": 1}, {"rate": 0, "for": 1},
                                       {"rate": 10, "for": 1}, {"rate": 0, "for": 1}])
    times = due_times(schedule, 10)
    assert sent_between(times, 1, 2) == 0 and len(times) == 20
    assert math.isinf(schedule.offset_of(20))


def test_a_mix_keeps_its_proportions_over_any_stretch() -> None:
    a, b = Request("http://h/browse"), Request("http://h/search")
    cycle = weighted_cycle(((8, a), (2, b)))
    assert len(cycle) == 5 and cycle.count(b) == 1  # 8:2 is 4:1
    long = weighted_cycle(((3, a), (7, b)))
    assert long.count(a) == 3 and len(long) == 10
    assert max(len(run) for run in "".join(
        "a" if r is a else " " for r in long).split()) == 1  # spread, not bunched


def test_a_breaking_point_steps_up_to_its_max_and_no_further() -> None:
    schedule = RateSchedule.of_breaking_point({"from": 100, "step": 100, "every": 20,
                                               "max": 450})
    assert [s.rate for s in schedule.stages] == [100, 200, 300, 400]
    assert schedule.peak == 400
    times = due_times(schedule, 100)
    assert sent_between(times, 20, 40) == 4000 and sent_between(times, 80, 100) == 8000
