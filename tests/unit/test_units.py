"""Units are parsed strictly and explained kindly: no guessed units, a fix in every message."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.units import (
    format_duration,
    format_percent,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
    shown,
)

PARSERS = [parse_duration, parse_percent, parse_size, parse_rate]


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h30m", 5400.0), ("1d", 86400.0),
    ("10us", 1e-5), ("0s", 0.0), (" 5s ", 5.0), ("5S", 5.0), ("1m30s500ms", 90.5),
])
def test_durations_read_like_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("value", "fix"), [
    (30, "add a unit, e.g. 30s or 30ms"),
    (1.5, "add a unit, e.g. 1.5s"),
    ("30", "add a unit, e.g. 30s"),
    ("-5s", "durations cannot be negative"),
    ("30s1m", "largest first, like 1h30m"),
    ("1m1m", "write each unit once"),
    ("9" * 400 + "h", "is too large"),
])
def test_durations_that_are_refused_say_how_to_fix_them(value: object, fix: str) -> None:
    with pytest.raises(ValueError, match="duration") as caught:
        parse_duration(value)
    assert fix in str(caught.value)


@pytest.mark.parametrize("value", [
    "fast", "", "s", "5 s", "1e3s", "5sec", "½s", "٣s", True, None, [1], "5s fast", "1m30",
])
def test_durations_without_a_known_unit_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 200ms, 5s or 2m"):
        parse_duration(value)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.floats(min_value=0.001, max_value=10_000_000))
def test_formatted_durations_parse_back_to_nearly_the_same_value(seconds: float) -> None:
    back = parse_duration(format_duration(seconds))
    assert back == pytest.approx(seconds, abs=0.5, rel=0.001)


@pytest.mark.parametrize(("text", "fraction"), [
    ("99.5%", 0.995), ("0%", 0.0), ("100%", 1.0), (" 50 %", 0.5), ("+5%", 0.05), ("50%", 0.5),
])
def test_percentages_become_fractions(text: str, fraction: float) -> None:
    assert parse_percent(text) == pytest.approx(fraction)


@pytest.mark.parametrize(("value", "message"), [
    (50, "write it with a % sign, e.g. 50%"),
    (0.995, "write it with a % sign"),
    ("99.5", "write it with a % sign, e.g. 99.5%"),
    ("101%", "between 0% and 100%"),
    ("150%", "between 0% and 100%"),
    ("-1%", "expected a percentage like 99.5%"),
    ("nan%", "expected a percentage like 99.5%"),
    ("inf%", "expected a percentage like 99.5%"),
    ("1e5%", "expected a percentage like 99.5%"),
    ("1_0%", "expected a percentage like 99.5%"),
    ("٥٠%", "expected a percentage like 99.5%"),
    (True, "expected a percentage like 99.5%"),
    ("%", "expected a percentage like 99.5%"),
])
def test_percentages_out_of_range_or_without_a_sign_are_refused(value: object,
                                                                message: str) -> None:
    with pytest.raises(ValueError, match="percentage") as caught:
        parse_percent(value)
    assert message in str(caught.value)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.floats(min_value=0, max_value=1))
def test_formatted_percentages_parse_back(fraction: float) -> None:
    assert parse_percent(format_percent(fraction)) == pytest.approx(fraction, abs=1e-4)


@pytest.mark.parametrize(("value", "size"), [
    ("512MiB", 512 * 1024**2), ("1G", 10**9), ("2 GB", 2 * 10**9), ("4096", 4096), (4096, 4096),
    ("1.5KiB", 1536), ("0", 0), ("10b", 10), ("1tib", 1024**4),
])
def test_sizes_accept_decimal_and_binary_units(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [-1, 1.5, True, None, "", "1XB", "MiB", "-5MB", "9" * 400 + "GB"])
def test_sizes_that_make_no_sense_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@pytest.mark.parametrize(("text", "per_second"), [
    ("200/s", 200.0), ("30/m", 0.5), ("1/h", 1 / 3600), ("10 / sec", 10.0), ("60/min", 1.0),
    ("5/S", 5.0),
])
def test_rates_are_events_per_second(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize(("value", "message"), [
    (200, "add a unit, e.g. 200/s"), ("200", "expected a rate like 200/s"),
    ("1/d", "expected a rate"), ("fast", "expected a rate"), ("9" * 400 + "/s", "too large"),
])
def test_rates_without_a_time_unit_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="rate") as caught:
        parse_rate(value)
    assert message in str(caught.value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=2)))
def test_parsers_only_ever_raise_value_error(value: object) -> None:
    for parse in PARSERS:
        try:
            result = parse(value)
        except ValueError as exc:
            assert str(exc)
        else:
            assert math.isfinite(result) and result >= 0


def test_long_values_are_cut_short_in_messages() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("x" * 10_000)
    assert len(str(caught.value)) < 200
    assert shown("short") == "'short'"
