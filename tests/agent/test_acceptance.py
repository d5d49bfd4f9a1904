"""The agent installs nothing it cannot tie to the CA identity it enrolled for."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from tlsgate.agent import accept_ca_set
from tlsgate.ca import LeafIssuer, profiles
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


def _self_signed_root(subject: x509.Name, key, clock) -> x509.Certificate:  # type: ignore[no-untyped-def]
    """What an attacker who holds some key of the CA's tree can make: a 'root' for that key."""
    return profiles.build_root(key, subject, clock() - timedelta(days=1), clock() + timedelta(days=7300))


def test_a_leaf_is_not_a_cross_certificate(make_ca, clock) -> None:
    """Whoever holds a minted leaf's key must not get a root of that key installed, offering the leaf as 'cross'."""
    ca = make_ca(clock=clock)
    enrolled = CAIdentityRef.of(ca.root.current.cert)
    leaf = LeafIssuer(ca.issuing_material(), clock=clock).get(["intranet.example"])
    fake_root = _self_signed_root(leaf.cert.subject, leaf.key, clock)
    result = accept_ca_set([enrolled], [ca.root.current.cert, fake_root], [leaf.cert], clock())
    assert result.versions == (ca.root.current.cert,)
    assert [c for c, _ in result.refused] == [fake_root]


def test_the_issuing_intermediate_is_not_a_cross_certificate(make_ca, clock) -> None:
    """The online intermediate's key (path length 0) must not become an unconstrained root."""
    ca = make_ca(clock=clock, intermediate=True)
    enrolled = CAIdentityRef.of(ca.root.current.cert)
    intermediate = ca.issuer.current.cert
    fake_root = _self_signed_root(intermediate.subject, ca.key(ca.issuer.id), clock)
    result = accept_ca_set([enrolled], [fake_root], [intermediate], clock())
    assert result.versions == ()


def test_an_expired_cross_certificate_does_not_help(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    old = ca.root
    enrolled = CAIdentityRef.of(old.current.cert)
    ca.rotate()
    new = ca.root.current.cert
    expired = profiles.build_cross(
        new, ca.key(old.id), old.current.cert, clock() - timedelta(days=10), clock() - timedelta(days=1)
    )
    result = accept_ca_set([enrolled], [old.current.cert, new], [expired], clock())
    assert [c for c, _ in result.refused] == [new]
    valid = accept_ca_set([enrolled], [old.current.cert, new], [c.cert for c in ca.crosses], clock())
    assert valid.refused == ()
