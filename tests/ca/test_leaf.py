"""Leaf minting: what a TLS client and openssl see of a leaf, before and after renew and rotate."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from support.tls import handshake, openssl, openssl_verify, pem
from tlsgate.ca import CertificateAuthority, KeyType, LeafIssuer
from tlsgate.ca.keys import spki_sha256
from tlsgate.ca.leaf import MAX_LEAF_DAYS
from tlsgate.errors import CAError, InvalidNameError


def test_leaf_verifies_with_openssl_under_its_root(make_ca, tmp_path: Path) -> None:
    ca = make_ca()
    leaf = LeafIssuer(ca.issuing_material()).get(["www.example.test"])
    result = openssl_verify(tmp_path, leaf.cert, ca.root.current.cert, host="www.example.test")
    assert result.returncode == 0, result.stderr
    assert b": OK" in result.stdout


def test_leaf_extensions_as_openssl_prints_them(make_ca) -> None:
    ca = make_ca()
    leaf = LeafIssuer(ca.issuing_material()).get(["shop.example.test", "10.1.2.3", "[2001:db8::1]"])
    text = openssl("x509", "-noout", "-text", input_data=pem([leaf.cert])).stdout.decode()
    assert "DNS:shop.example.test, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:1" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    assert "Digital Signature" in text and "Certificate Sign" not in text
    root_ski = ca.root.current.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert root_ski.hex(":").upper() in text.split("Authority Key Identifier")[1]


def test_leaf_key_is_never_the_ca_key(make_ca) -> None:
    ca = make_ca()
    issuer = LeafIssuer(ca.issuing_material())
    a, b = issuer.get(["a.test"]), issuer.get(["b.test"])
    ca_spki = spki_sha256(ca.key(ca.root.id))
    assert spki_sha256(a.key) != ca_spki
    assert spki_sha256(a.key) != spki_sha256(b.key)
    assert a.key.curve.name == "secp256r1"


def test_leaf_validity_is_backdated_and_within_browser_limits(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    cert = LeafIssuer(ca.issuing_material(), clock=clock).get(["a.test"]).cert
    assert cert.not_valid_before_utc < clock.now
    assert cert.not_valid_before_utc >= clock.now - timedelta(days=2)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=MAX_LEAF_DAYS)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < timedelta(days=200)


def test_leaf_never_outlives_the_issuer_version(make_ca, clock) -> None:
    ca = make_ca(clock=clock, days=30)
    cert = LeafIssuer(ca.issuing_material(), clock=clock).get(["a.test"]).cert
    assert cert.not_valid_after_utc <= ca.root.current.not_after


def test_an_expired_issuer_refuses_to_mint(make_ca, clock) -> None:
    ca = make_ca(clock=clock, days=5)
    issuer = LeafIssuer(ca.issuing_material(), clock=clock)
    clock.advance(days=6)
    with pytest.raises(CAError, match="issuing CA expired"):
        issuer.get(["a.test"])


def test_cache_returns_the_same_leaf_and_context_for_the_same_names(make_ca) -> None:
    ca = make_ca()
    issuer = LeafIssuer(ca.issuing_material())
    first = issuer.get(["a.test"])
    assert issuer.get(["a.test"]) is first
    assert issuer.get(["A.TEST."]) is first  # the same name set, written differently
    assert issuer.get(["b.test"]) is not first
    assert isinstance(first.context, ssl.SSLContext)


def test_cache_renews_a_leaf_before_it_expires(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    issuer = LeafIssuer(ca.issuing_material(), clock=clock)
    first = issuer.get(["a.test"])
    clock.advance(days=MAX_LEAF_DAYS - 8)
    second = issuer.get(["a.test"])
    assert second is not first
    assert second.cert.not_valid_after_utc > first.cert.not_valid_after_utc


def test_cache_is_bounded(make_ca) -> None:
    ca = make_ca()
    issuer = LeafIssuer(ca.issuing_material(), cache_size=3)
    for i in range(10):
        issuer.get([f"h{i}.test"])
    assert len(issuer) == 3


def test_older_leaves_keep_their_certificate_without_a_context(make_ca, clock) -> None:
    """Two tiers: the most recent leaves keep a TLS context; older ones only their PEM, and get a
    context again (the same certificate, not a new mint) when their name comes back."""
    ca = make_ca(clock=clock)
    issuer = LeafIssuer(ca.issuing_material(), clock=clock, cache_size=5, context_cache_size=2)
    first = {name: issuer.get([name]) for name in ("a.test", "b.test", "c.test")}
    assert (len(issuer), issuer.contexts) == (3, 2)
    again = issuer.get(["a.test"])  # pushed out of the context tier by b and c
    assert again is not first["a.test"]
    assert again.context is not first["a.test"].context
    assert again.cert.serial_number == first["a.test"].cert.serial_number
    assert again.key_pem() == first["a.test"].key_pem()
    assert handshake(again.context, pem([ca.root.current.cert]), "a.test")
    assert (len(issuer), issuer.contexts) == (3, 2)
    for i in range(10):
        issuer.get([f"h{i}.test"])
    assert (len(issuer), issuer.contexts) == (5, 2)
    assert "BEGIN" not in repr(issuer._stored)  # a stored key never shows in a repr


def test_a_stored_leaf_close_to_expiry_is_minted_again(make_ca, clock) -> None:
    ca = make_ca(clock=clock)
    issuer = LeafIssuer(ca.issuing_material(), clock=clock, cache_size=5, context_cache_size=1)
    old = issuer.get(["a.test"])
    issuer.get(["b.test"])  # a.test now only as PEM
    clock.advance(days=MAX_LEAF_DAYS - 8)
    new = issuer.get(["a.test"])
    assert new.cert.serial_number != old.cert.serial_number
    assert new.cert.not_valid_after_utc > old.cert.not_valid_after_utc


def test_concurrent_first_contacts_mint_once(make_ca) -> None:
    ca = make_ca()
    issuer = LeafIssuer(ca.issuing_material())
    results: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(issuer.get(["same.test"]))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    assert len({id(r) for r in results}) == 1


@pytest.mark.parametrize("bad", ["", "bad host", "-a.test", "a..test", "*.test.example", "x" * 64 + ".test", "1.2.3"])
def test_invalid_names_are_refused(make_ca, bad: str) -> None:
    issuer = LeafIssuer(make_ca().issuing_material())
    with pytest.raises(InvalidNameError):
        issuer.get([bad])


def test_ip_literal_goes_in_ip_san_not_dns(make_ca) -> None:
    cert = LeafIssuer(make_ca().issuing_material()).get(["192.0.2.7"]).cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]
    assert san.get_values_for_type(x509.DNSName) == []
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_tls_handshake_before_and_after_renew_in_place(make_ca, tmp_path: Path) -> None:
    ca = make_ca()
    old_root = ca.root.current.cert
    old_leaf = LeafIssuer(ca.issuing_material()).get(["site.test"])
    ca.renew(days=5000)
    new_root = ca.root.current.cert
    assert new_root.serial_number != old_root.serial_number
    assert new_root.subject == old_root.subject
    assert spki_sha256(new_root.public_key()) == spki_sha256(old_root.public_key())  # type: ignore[arg-type]
    new_leaf = LeafIssuer(ca.issuing_material()).get(["site.test"])
    # Every leaf verifies under every version, each version alone in the trust store.
    for leaf in (old_leaf, new_leaf):
        for root in (old_root, new_root):
            assert handshake(leaf.context, pem([root]), "site.test") in ("TLSv1.2", "TLSv1.3")
            result = openssl_verify(tmp_path / "v", leaf.cert, root, host="site.test")
            assert result.returncode == 0, result.stderr


def test_tls_handshake_after_rotate_through_the_cross_certificate(make_ca, tmp_path: Path) -> None:
    ca = make_ca()
    old_root = ca.root.current.cert
    ca.rotate()
    new_root = ca.root.current.cert
    leaf = LeafIssuer(ca.issuing_material()).get(["site.test"])
    assert len(leaf.chain) == 1  # the cross-certificate rides along with the leaf
    assert handshake(leaf.context, pem([old_root]), "site.test")  # an endpoint that trusts only the old root
    assert handshake(leaf.context, pem([new_root]), "site.test")  # one that already has the new root
    assert openssl_verify(tmp_path / "old", leaf.cert, old_root, leaf.chain, "site.test").returncode == 0
    assert openssl_verify(tmp_path / "new", leaf.cert, new_root, (), "site.test").returncode == 0
    # Without the cross-certificate the old root cannot vouch for the new key.
    assert openssl_verify(tmp_path / "none", leaf.cert, old_root, (), "site.test").returncode != 0


def test_untrusted_root_fails_the_handshake(make_ca) -> None:
    leaf = LeafIssuer(make_ca().issuing_material()).get(["site.test"])
    stranger = make_ca().root.current.cert
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(leaf.context, pem([stranger]), "site.test")


def test_intermediate_chain_is_served_and_verifies(make_ca, tmp_path: Path) -> None:
    ca: CertificateAuthority = make_ca(intermediate=True, key_type=KeyType.ECDSA_P384)
    leaf = LeafIssuer(ca.issuing_material()).get(["deep.test"])
    assert leaf.chain == (ca.issuer.current.cert,)
    assert handshake(leaf.context, pem([ca.root.current.cert]), "deep.test")
    result = openssl_verify(tmp_path, leaf.cert, ca.root.current.cert, leaf.chain, "deep.test")
    assert result.returncode == 0, result.stderr
    # The root did not sign the leaf: without the intermediate there is no path.
    assert openssl_verify(tmp_path / "x", leaf.cert, ca.root.current.cert, (), "deep.test").returncode != 0


def test_rsa_ca_signs_ecdsa_leaves(make_ca, tmp_path: Path) -> None:
    ca = make_ca(key_type=KeyType.RSA_2048)
    leaf = LeafIssuer(ca.issuing_material()).get(["rsa.test"])
    assert leaf.key.curve.name == "secp256r1"
    assert openssl_verify(tmp_path, leaf.cert, ca.root.current.cert, host="rsa.test").returncode == 0
