"""Load profiles as the loader and the generator see them: rates over time, arrival offsets,
named stages, search lengths and worker counts, on numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from chaos.model.load_profile import available_cores, search_seconds, worker_count
from chaos.slo.schedule import RateSchedule, Stage


@pytest.mark.parametrize(("n", "offset"), [(0, 0.0), (1, 0.1), (10, 1.0), (25, 2.5)])
def test_a_constant_rate_spaces_requests_evenly(n: int, offset: float) -> None:
    assert RateSchedule.constant(10.0).offset_of(n) == pytest.approx(offset)


@pytest.mark.parametrize(("n", "offset"), [(0, 0.0), (5, math.sqrt(2)), (10, 2.0), (20, 3.0)])
def test_a_ramp_reaches_its_rate_quadratically(n: int, offset: float) -> None:
    # 0 -> 10/s over 2 s: 10 requests due in the ramp (n = 2.5 t^2), then 10/s
    assert RateSchedule.constant(10.0, ramp=2.0).offset_of(n) == pytest.approx(offset)


@pytest.mark.parametrize(("elapsed", "rate"), [(-1.0, 0.0), (0.0, 0.0), (1.0, 5.0), (2.0, 10.0),
                                               (1000.0, 10.0)])
def test_the_rate_at_any_moment_follows_the_ramp(elapsed: float, rate: float) -> None:
    assert RateSchedule.constant(10.0, ramp=2.0).rate_at(elapsed) == pytest.approx(rate)


def test_stages_are_named_with_their_span_and_rate() -> None:
    schedule = RateSchedule.of_stages([{"rate": 100, "for": 10}, {"rate": 1500, "for": 5,
                                                                   "ramp": 2}])
    assert schedule.stages == (Stage("stage 1 (100/s)", 0.0, 10.0, 100.0),
                               Stage("stage 2 (1,500/s)", 10.0, 5.0, 1500.0))
    assert schedule.peak == 1500.0
    assert schedule.rate_at(11.0) == pytest.approx(800.0)
    assert schedule.rate_at(99.0) == 1500.0  # the last stage's rate holds for ever


def test_the_first_stage_ignores_its_ramp() -> None:
    schedule = RateSchedule.of_stages([{"rate": 10, "for": 5, "ramp": 3}])
    assert schedule.rate_at(0.0) == 10.0
    assert schedule.offset_of(10) == pytest.approx(1.0)


def test_a_spike_names_before_during_and_after() -> None:
    schedule = RateSchedule.of_spike({"base": 10, "peak": 100, "at": 5, "for": 4, "ramp": 1})
    assert [s.name for s in schedule.stages] == [
        "before the spike (10/s)", "spike (100/s)", "after the spike (10/s)"]
    assert [schedule.rate_at(t) for t in (4.0, 5.5, 7.0, 8.5, 20.0)] == pytest.approx(
        [10.0, 55.0, 100.0, 55.0, 10.0])
    # 50 before, 55 up, 200 at the peak, 55 down: request 360 is the first after the spike
    assert schedule.offset_of(360) == pytest.approx(9.0)


def test_a_spike_ramp_is_cut_to_half_its_length() -> None:
    schedule = RateSchedule.of_spike({"base": 0, "peak": 10, "at": 0, "for": 2, "ramp": 5})
    assert schedule.rate_at(1.0) == pytest.approx(10.0)
    assert schedule.peak == 10.0


@pytest.mark.parametrize(("spec", "rates"), [
    ({"from": 100, "step": 100, "max": 300, "every": 5}, [100.0, 200.0, 300.0]),
    ({"from": 100, "step": 150, "max": 500, "every": 5}, [100.0, 250.0, 400.0]),
    ({"from": 50, "step": 10, "max": 50, "every": 1}, [50.0]),
])
def test_a_breaking_point_steps_are_named_in_order(spec: dict[str, float],
                                                   rates: list[float]) -> None:
    schedule = RateSchedule.of_breaking_point(spec)
    assert [s.rate for s in schedule.stages] == rates
    assert [s.name for s in schedule.stages][0] == f"step 1 ({rates[0]:,.0f}/s)"
    assert search_seconds(spec) == len(rates) * spec["every"]


def test_a_zero_last_rate_means_nothing_more_is_due() -> None:
    schedule = RateSchedule.of_stages([{"rate": 10, "for": 1}, {"rate": 0, "for": 1}])
    assert schedule.offset_of(9) == pytest.approx(0.9)
    assert math.isinf(schedule.offset_of(10))


@pytest.mark.parametrize(("workers", "count"), [(None, 1), ({}, 1), ({"count": 4}, 4),
                                                 ({"count": "2"}, 2), ({"count": None}, 1)])
def test_worker_counts_default_to_the_runners_own_loop(workers: dict[str, object] | None,
                                                       count: int) -> None:
    assert worker_count(workers) == count


def test_auto_workers_are_the_cores_this_process_may_use() -> None:
    assert worker_count({"count": "auto"}) == available_cores() >= 1
