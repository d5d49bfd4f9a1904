"""Presence by identity and the install/remove plan: the rules that keep an endpoint from losing HTTPS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.errors import TrustStoreError
from tlsgate.trust import CAIdentityRef, Presence, plan_store, presence


@pytest.fixture
def versions(make_ca, clock):
    """An identity with three versions: v1 expires in 10 days, v2 in ~1 year, v3 in 10 years."""
    ca = make_ca(clock=clock, days=10)
    ca.renew(days=365)
    ca.renew(days=3650)
    return ca, [v.cert for v in ca.root.versions]


def test_a_renewed_version_is_recognised_as_the_same_ca(versions, clock) -> None:
    _, (v1, v2, _) = versions
    identity = CAIdentityRef.of(v1)  # what an old agent enrolled for
    state, found = presence(identity, [v2], clock())
    assert state is Presence.VALID
    assert found == [v2]


def test_a_foreign_ca_with_the_same_subject_is_not_ours(versions, make_ca, clock) -> None:
    _, (v1, _, _) = versions
    impostor = make_ca(clock=clock).root.current.cert  # same default subject, other key
    assert impostor.subject == v1.subject
    assert presence(CAIdentityRef.of(v1), [impostor], clock())[0] is Presence.ABSENT


def test_only_expired_versions(versions, clock) -> None:
    _, (v1, _, _) = versions
    clock.advance(days=11)
    assert presence(CAIdentityRef.of(v1), [v1], clock())[0] is Presence.EXPIRED_ONLY


def test_plan_installs_missing_and_removes_expired_once_a_valid_one_is_in(versions, clock) -> None:
    _, (v1, v2, v3) = versions
    identity = CAIdentityRef.of(v1)
    clock.advance(days=11)  # v1 expired
    plan = plan_store([identity], [v2, v3], [v1], clock())
    assert plan.install == (v2, v3)
    assert plan.remove == (v1,)


def test_plan_never_removes_the_last_valid_or_the_only_versions(versions, clock) -> None:
    _, (v1, _, _) = versions
    identity = CAIdentityRef.of(v1)
    clock.advance(days=11)
    plan = plan_store([identity], [], [v1], clock())  # nothing valid to put in its place
    assert plan.remove == ()
    assert plan.kept_expired == (v1,)


def test_plan_is_idempotent(versions, clock) -> None:
    _, (v1, v2, v3) = versions
    plan = plan_store([CAIdentityRef.of(v1)], [v1, v2, v3], [v1, v2, v3], clock())
    assert not plan.changes


def test_plan_refuses_a_certificate_of_another_ca(versions, make_ca, clock) -> None:
    _, (v1, _, _) = versions
    other = make_ca().root.current.cert
    with pytest.raises(TrustStoreError, match="unknown CA"):
        plan_store([CAIdentityRef.of(v1)], [other], [], clock())


# The fixture only builds certificates that no example changes.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    present=st.lists(st.integers(0, 2), max_size=3, unique=True),
    wanted=st.lists(st.integers(0, 2), max_size=3, unique=True),
    days=st.integers(0, 4000),
)
def test_after_any_plan_a_store_that_had_a_valid_version_still_has_one(versions, clock, present, wanted, days) -> None:
    _, certs = versions
    now = clock() + timedelta(days=days)
    identity = CAIdentityRef.of(certs[0])
    have = [certs[i] for i in present]
    plan = plan_store([identity], [certs[i] for i in wanted], have, now)
    after = [c for c in have if c not in plan.remove] + list(plan.install)
    had_valid = presence(identity, have, now)[0] is Presence.VALID
    if had_valid:
        assert presence(identity, after, now)[0] is Presence.VALID
    for removed in plan.remove:  # only expired versions are ever removed
        assert removed.not_valid_after_utc < now
