"""Units read the way people write them and print the way the summary shows them.

chaos/units.py is the one parser behind every duration, percentage, size and rate in an
experiment file; these cases pin its arithmetic and its refusals without starting the CLI.
"""

from __future__ import annotations

import pytest

from chaos.units import (format_duration, format_percent, parse_duration, parse_percent,
                         parse_rate, parse_size, shown)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0ms"), (0.25, "250ms"), (0.9994, "999ms"), (1.0, "1s"), (1.5, "1.5s"),
    (59.0, "59s"), (119.0, "119s"), (120.0, "2m"), (150.0, "2m30s"), (3600.0, "60m"),
])
def test_durations_are_printed_in_the_largest_sensible_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["250ms", "1.5s", "2m", "2m30s", "59s"])
def test_a_printed_duration_reads_back_to_the_same_seconds(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(("text", "fraction"), [
    ("99.5%", 0.995), ("0%", 0.0), ("100%", 1.0), (" 50 % ", 0.5), ("+1%", 0.01),
])
def test_percentages_become_fractions(text: str, fraction: float) -> None:
    assert parse_percent(text) == pytest.approx(fraction)


@pytest.mark.parametrize(("value", "hint"), [
    (0.5, "write it with a % sign, e.g. 0.5%"),
    ("99", "write it with a % sign, e.g. 99%"),
    ("101%", "between 0% and 100%"),
    ("ninety%", "expected a percentage like 99.5%"),
])
def test_percentages_without_a_sign_or_out_of_range_are_refused(value: object,
                                                                  hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_percent(value)
    assert hint in str(caught.value)


@pytest.mark.parametrize(("fraction", "text"), [
    (0.995, "99.5%"), (1.0, "100%"), (0.0, "0%"), (0.12345, "12.35%"), (3e-15, "0%"),
])
def test_percentages_print_without_exponents(fraction: float, text: str) -> None:
    assert format_percent(fraction) == text
    assert "e" not in text


@pytest.mark.parametrize(("value", "size"), [
    (4096, 4096), ("4096", 4096), ("1k", 1000), ("1KB", 1000), ("1KiB", 1024), ("512MiB", 512 * 2**20),
    ("2G", 2 * 10**9), ("1.5 GiB", int(1.5 * 2**30)), ("0", 0),
])
def test_sizes_are_bytes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [-1, True, "1 XB", "lots", "1.5.2MB", None, 3.5])
def test_sizes_that_are_not_sizes_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size like 512MiB"):
        parse_size(value)


@pytest.mark.parametrize(("text", "per_second"), [
    ("200/s", 200.0), ("30/m", 0.5), ("3600/h", 1.0), ("10 / sec", 10.0), ("60/min", 1.0),
    ("0.5/s", 0.5),
])
def test_rates_are_per_second(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


def test_a_bare_number_as_a_rate_is_told_its_unit() -> None:
    with pytest.raises(ValueError, match=r"add a unit, e\.g\. 200/s"):
        parse_rate(200)


@pytest.mark.parametrize("value", ["200", "200/d", "fast/s", "/s", ""])
def test_rates_without_a_known_unit_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="expected a rate like 200/s"):
        parse_rate(value)


def test_values_shown_in_errors_are_cut_to_the_limit() -> None:
    long = "x" * 1000
    assert len(shown(long)) == 60
    assert shown(long).endswith("...'")
    assert shown("short") == "'short'"

