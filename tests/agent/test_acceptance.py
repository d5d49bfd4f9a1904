"""The agent installs nothing it cannot tie to the CA identity it enrolled for."""

from __future__ import annotations

from tlsgate.agent import accept_ca_set
from tlsgate.trust import CAIdentityRef


def test_renewed_versions_of_the_enrolled_identity_are_accepted(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    enrolled = CAIdentityRef.of(ca.root.current.cert)
    ca.renew()
    result = accept_ca_set([enrolled], [v.cert for v in ca.root.versions], [], clock())
    assert len(result.versions) == 2
    assert result.refused == ()


def test_a_foreign_root_is_refused_even_with_the_same_subject(make_ca, clock) -> None:
    ours = make_ca(clock=clock)
    impostor = make_ca(clock=clock).root.current.cert
    assert impostor.subject == ours.root.current.cert.subject
    result = accept_ca_set([CAIdentityRef.of(ours.root.current.cert)], [impostor], [], clock())
    assert result.versions == ()
    assert "not a version of the enrolled CA identity" in result.refused[0][1]


def test_a_rotated_root_is_accepted_through_its_cross_certificate(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    enrolled = CAIdentityRef.of(ca.root.current.cert)
    old = ca.root.current.cert
    ca.rotate()
    new = ca.root.current.cert
    crosses = [c.cert for c in ca.crosses]
    result = accept_ca_set([enrolled], [old, new], crosses, clock())
    assert set(result.versions) == {old, new}
    assert CAIdentityRef.of(new) in result.identities
    # Without the cross-certificate the new key is a stranger.
    refused = accept_ca_set([enrolled], [old, new], [], clock())
    assert new in [c for c, _ in refused.refused]


def test_a_cross_certificate_signed_by_someone_else_does_not_help(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    enrolled = CAIdentityRef.of(ca.root.current.cert)
    attacker = make_ca(clock=clock, subject="CN=Evil Root,O=Evil")
    attacker.rotate(subject="CN=tlsgate Interception Root CA G2,O=tlsgate")  # a look-alike new root
    result = accept_ca_set([enrolled], [attacker.root.current.cert], [c.cert for c in attacker.crosses], clock())
    assert result.versions == ()
    assert len(result.refused) == 1
