"""One masking rule for every record: a secret variable's value never reaches an output.

The journal, the ledger, the event stream and the watchdog's log all go through Redactor; these
cases pin which variables count as secrets and how cut and nested occurrences are masked.
"""

from __future__ import annotations

import pytest

from chaos.model.redaction import MASK, NOTHING, Redactor


@pytest.mark.parametrize("name", ["API_TOKEN", "db_password", "client_secret", "AUTH_HEADER",
                                  "aws_credentials", "apikey", "api_key", "PRIVATE_KEY"])
def test_variables_named_like_secrets_are_masked(name: str) -> None:
    redactor = Redactor.of({name: "s3cr3t-value"})
    assert redactor.text("curl -H s3cr3t-value host") == "curl -H *** host"
    assert redactor.variables({name: "s3cr3t-value", "port": 8080}) == {name: MASK, "port": 8080}


@pytest.mark.parametrize("name", ["port", "user", "host", "tokyo"])
def test_ordinary_variables_are_left_alone(name: str) -> None:
    redactor = Redactor.of({name: "visible-value"})
    assert not redactor
    assert redactor.text("visible-value") == "visible-value"


def test_short_secrets_do_not_mask_ordinary_text_but_their_variable_is_masked() -> None:
    redactor = Redactor.of({"TOKEN": "abc"})
    assert redactor.text("abcdef") == "abcdef"
    assert redactor.variables({"TOKEN": "abc"}) == {"TOKEN": MASK}


def test_every_occurrence_is_masked() -> None:
    redactor = Redactor.of({"TOKEN": "hunter22"})
    assert redactor.text("hunter22:hunter22 hunter22") == "***:*** ***"


def test_a_secret_cut_short_by_a_label_is_still_masked() -> None:
    redactor = Redactor.of({"TOKEN": "s3cr3t-very-long-value"})
    assert redactor.text("run --token=s3cr3t-ve") == "run --token=***"
    assert redactor.text("run --token=s3cr3") == "run --token=s3cr3"  # under PREFIX: ordinary


def test_a_secret_containing_another_is_masked_whole() -> None:
    redactor = Redactor.of({"TOKEN": "abcdefgh", "SECRET": "abcdefgh-and-more"})
    assert redactor.text("x abcdefgh-and-more y") == "x *** y"


def test_data_is_masked_in_keys_values_and_nested_lists() -> None:
    redactor = Redactor.of({"PASSWORD": "pa55word!"})
    data = {"cmd": ["login", "--pw", "pa55word!"], "pa55word!": {"n": 1, "t": ("pa55word!",)}}
    assert redactor.data(data) == {"cmd": ["login", "--pw", MASK], MASK: {"n": 1, "t": [MASK]}}


def test_without_secrets_data_is_returned_as_is() -> None:
    data = {"a": ("tuple",)}
    assert NOTHING.data(data) is data
    assert NOTHING.text("anything") == "anything"


def test_non_string_values_are_masked_by_their_text() -> None:
    redactor = Redactor.of({"API_KEY": 12345678})
    assert redactor.text("key=12345678") == "key=***"
