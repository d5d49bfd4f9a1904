"""Host-name normalisation: every input gets a name or a clear InvalidNameError, never another exception."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.ca.names import _normalize, normalize_host
from tlsgate.errors import InvalidNameError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("127.0.0.1", ipaddress.ip_address("127.0.0.1")),
        ("[::1]", ipaddress.ip_address("::1")),
        ("under_score.example", "under_score.example"),
        ("*.wild.example", "*.wild.example"),
    ],
)
def test_normalised(raw: str, expected: object) -> None:
    assert normalize_host(raw) == expected


@given(st.text(max_size=300))
def test_any_text_is_a_name_or_a_clear_error(text: str) -> None:
    try:
        result = normalize_host(text)
    except InvalidNameError as exc:
        message = str(exc)
        if not message:
            raise AssertionError("an InvalidNameError without a message") from exc
        return
    if isinstance(result, str):
        assert result.isascii() and result == result.lower() and len(result) <= 253
        assert normalize_host(result) == result  # idempotent


labels = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z", fullmatch=True)


@given(st.lists(labels, min_size=2, max_size=5).filter(lambda ls: not ls[-1].isdigit()))
def test_valid_dns_names_round_trip(parts: list[str]) -> None:
    name = ".".join(parts)
    assert normalize_host(name.upper()) == name


def _outcome(function, text: str) -> object:  # type: ignore[no-untyped-def]
    try:
        return function(text)
    except InvalidNameError as exc:
        return ("refused", str(exc))


host_like = st.text(alphabet="abcxyz0189-_.:*[] ", max_size=80) | st.from_regex(
    r"\A([a-z0-9_-]{1,70}\.){0,5}[a-z0-9_-]{0,70}\.?\Z", fullmatch=True
)


@given(host_like)
def test_the_fast_path_for_normal_names_answers_as_the_full_rules(text: str) -> None:
    """Names already in normal form skip the IP parse and the per-label checks: same answers."""
    assert _outcome(normalize_host, text) == _outcome(_normalize, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", ipaddress.ip_address("1.2.3.4")),
        ("10.0.0.1", ipaddress.ip_address("10.0.0.1")),
        ("123", "refused"),
        ("1.2.3", "refused"),
        ("a" * 64 + ".test", "refused"),
        ("-a.test", "refused"),
        ("a-.test", "refused"),
        ("a.b-c.test", "a.b-c.test"),
    ],
)
def test_ip_literals_and_bad_labels_are_not_taken_for_normal_names(text: str, expected: object) -> None:
    outcome = _outcome(normalize_host, text)
    assert outcome == _outcome(_normalize, text)
    assert (outcome[0] if isinstance(outcome, tuple) else outcome) == expected
