"""Policy: host globs decide inspect / bypass / block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.errors import PolicyError
from tlsgate.policy import Action, Policy

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostname = st.lists(label, min_size=1, max_size=4).map(".".join)


def test_default_is_inspect() -> None:
    assert Policy().decide("example.com", 443).action is Action.INSPECT


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.bank.example", Action.BYPASS),
        ("a.b.bank.example", Action.BYPASS),
        ("WWW.Bank.Example.", Action.BYPASS),
        ("bank.example", Action.INSPECT),
        ("notbank.example", Action.INSPECT),
        ("bank.example.evil", Action.INSPECT),
    ],
)
def test_wildcard_matches_names_below_only(host: str, expected: Action) -> None:
    assert Policy(bypass=["*.bank.example"]).decide(host, 443).action is expected


def test_block_wins_over_bypass_and_names_the_rule() -> None:
    policy = Policy(bypass=["*.example"], block=["ads.example"])
    decision = policy.decide("ads.example", 443)
    assert decision.action is Action.BLOCK
    assert decision.rule == "ads.example"
    assert policy.decide("www.example", 443).action is Action.BYPASS


def test_port_in_pattern() -> None:
    policy = Policy(bypass=["intranet.example:8443", "[::1]:443"])
    assert policy.decide("intranet.example", 8443).action is Action.BYPASS
    assert policy.decide("intranet.example", 443).action is Action.INSPECT
    assert policy.decide("::1", 443).action is Action.BYPASS


def test_star_within_a_label() -> None:
    policy = Policy(block=["tracker-*.example"])
    assert policy.decide("tracker-7.example", 80).action is Action.BLOCK
    assert policy.decide("a.tracker-7.example", 80).action is Action.INSPECT


@pytest.mark.parametrize("bad", ["", "bank example", "a.example:99999", "a.example:x", "[::1"])
def test_invalid_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PolicyError):
        Policy(bypass=[bad])


@given(hostname, hostname)
def test_wildcard_property(base: str, sub: str) -> None:
    policy = Policy(bypass=[f"*.{base}"])
    assert policy.decide(f"{sub}.{base}", 443).action is Action.BYPASS
    assert policy.decide(base, 443).action is Action.INSPECT


@given(hostname, st.integers(1, 65535))
def test_exact_pattern_matches_only_itself(host: str, port: int) -> None:
    policy = Policy(block=[host])
    assert policy.decide(host, port).action is Action.BLOCK
    assert policy.decide(host.upper(), port).action is Action.BLOCK
    assert policy.decide("x" + host, port).action is Action.INSPECT


@given(st.text(max_size=40), st.integers(0, 70000))
def test_decide_never_raises(host: str, port: int) -> None:
    assert Policy(bypass=["*.a.test"], block=["b.test"]).decide(host, port).action in Action
