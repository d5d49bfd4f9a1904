"""Host-name normalisation: every input gets a name or a clear InvalidNameError, never another exception."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.ca.names import normalize_host
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
