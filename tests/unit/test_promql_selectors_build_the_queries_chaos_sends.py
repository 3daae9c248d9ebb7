"""A latency histogram is named once; chaos derives each series it queries from that selector.

The loader refuses selectors chaos cannot take apart at their line; these cases pin what is
accepted, the series built from it, and what each refusal tells the user to write.
"""

from __future__ import annotations

import pytest

from chaos.model.promql import Selector, parse_selector


@pytest.mark.parametrize(("text", "name", "matchers"), [
    ("http_request_duration_seconds", "http_request_duration_seconds", ()),
    ('http_seconds{job="api"}', "http_seconds", ('job="api"',)),
    ("  http_seconds { job = 'api' , env!=\"dev\" }  ", "http_seconds",
     ("job='api'", 'env!="dev"')),
    ('rpc:latency{path=~"/v1/.*",code!~`5..`}', "rpc:latency", ('path=~"/v1/.*"', "code!~`5..`")),
    ('h{job="a\\"b"}', "h", ('job="a\\"b"',)),
    ("h{}", "h", ()),
    ('h{job="api",}', "h", ('job="api"',)),
])
def test_selectors_split_into_name_and_matchers(text: str, name: str,
                                                matchers: tuple[str, ...]) -> None:
    assert parse_selector(text) == Selector(name, matchers)


def test_series_append_the_suffix_and_extra_matchers() -> None:
    selector = parse_selector('http_seconds{job="api", env="prod"}')
    assert selector.series("_bucket", 'le="0.35"') == \
        'http_seconds_bucket{job="api", env="prod", le="0.35"}'
    assert selector.series("_count") == 'http_seconds_count{job="api", env="prod"}'


def test_a_bare_name_builds_bare_series() -> None:
    assert Selector("h").series("_count") == "h_count"
    assert Selector("h").series("_bucket", 'le="+Inf"') == 'h_bucket{le="+Inf"}'


@pytest.mark.parametrize(("text", "message"), [
    ("http_seconds_bucket", "name the histogram without _bucket: 'http_seconds'"),
    ('http_seconds_count{job="api"}', "name the histogram without _count"),
    ("h_sum", "without _sum"),
    ('h{le="0.5"}', "'le' cannot be selected here: each latency check chooses its bucket"),
    ('h{__name__="x"}', "'__name__' cannot be selected here: write the metric name first"),
    ("h{job=api}", "expected a label matcher like job=\"api\""),
    ('h{job="api" env="x"}', "expected `,` or `}`"),
    ('h{job="api"} extra', "expected a histogram's metric name"),
    ("9lives", "expected a histogram's metric name"),
])
def test_selectors_chaos_cannot_use_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector(text)
    assert message in str(caught.value)


def test_a_whole_query_is_refused_with_its_selector_as_the_suggestion() -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector('rate(http_seconds_bucket{job="api"}[5m])')
    assert 'like http_seconds{job="api"}' in str(caught.value)


def test_without_a_selector_inside_the_suggestion_is_the_example() -> None:
    with pytest.raises(ValueError) as caught:
        parse_selector("sum(x)")
    assert 'like http_request_duration_seconds{job="api"}' in str(caught.value)
