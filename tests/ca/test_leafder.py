"""The proxy's leaf encoder writes exactly the certificate the leaf profile defines.

``LeafEncoder`` assembles a leaf's DER by hand for speed; ``profiles.build_leaf`` defines the
profile with cryptography's builder. For the same serial their TBSCertificates must be the same
bytes, for every key type tlsgate makes on either side, for IP and long names, and for validity
on both sides of 2050 (UTCTime / GeneralizedTime). openssl must read and verify what we wrote.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from support.tls import openssl, openssl_verify
from tlsgate.ca import KeyType, LeafIssuer, profiles
from tlsgate.ca.keys import generate_key
from tlsgate.ca.leafder import LeafEncoder, der_to_pem
from tlsgate.ca.names import HostName

HOST_SETS: list[tuple[HostName, ...]] = [
    ("a.test",),
    ("shop.example.test", ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("2001:db8::1")),
    (ipaddress.ip_address("192.0.2.7"),),
    ("xn--bcher-kva.example", "www.xn--bcher-kva.example"),
    ("a" * 60 + ".example.test", "short.test"),  # 73 characters: no CN, critical SAN
    ("b" * 51 + ".test.example",),  # exactly 64: still the CN
    tuple(f"host{i}.many-names.example.test" for i in range(40)),  # SAN longer than 255 bytes
]


def _same_as_profile(encoder: LeafEncoder, issuer, key_type: KeyType, hosts, not_before, not_after) -> x509.Certificate:  # type: ignore[no-untyped-def]
    key = generate_key(key_type)
    der = encoder.encode(key.public_key(), hosts, not_before, not_after)
    ours = x509.load_der_x509_certificate(der)  # strict DER: a non-minimal length or integer fails here
    reference = profiles.build_leaf(
        key.public_key(),
        hosts,
        issuer.key,
        issuer.cert.subject,
        issuer.ski,
        not_before,
        not_after,
        serial=ours.serial_number,
    )
    assert ours.tbs_certificate_bytes == reference.tbs_certificate_bytes
    assert ours.signature_algorithm_oid == reference.signature_algorithm_oid
    ours.verify_directly_issued_by(issuer.cert)
    assert der_to_pem(der) == ours.public_bytes(Encoding.PEM)
    return ours


@pytest.mark.parametrize("ca_key", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA_2048])
@pytest.mark.parametrize("leaf_key", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA_2048])
def test_encoded_leaf_is_the_profile_byte_for_byte(make_ca, ca_key: KeyType, leaf_key: KeyType) -> None:
    issuer = make_ca(key_type=ca_key).issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    now = datetime.now(UTC).replace(microsecond=123456)  # fractions of a second are dropped by both
    for hosts in HOST_SETS:
        _same_as_profile(encoder, issuer, leaf_key, hosts, now - timedelta(days=1), now + timedelta(days=198))


def test_validity_across_2050_switches_to_generalized_time(make_ca) -> None:
    issuer = make_ca().issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    start = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)
    cert = _same_as_profile(encoder, issuer, KeyType.ECDSA_P256, ("late.test",), start, start + timedelta(days=30))
    text = openssl("x509", "-noout", "-dates", input_data=cert.public_bytes(Encoding.PEM))
    assert "notBefore=Dec 31 23:59:59 2049 GMT" in text.stdout.decode()
    assert "notAfter=Jan 30 23:59:59 2050 GMT" in text.stdout.decode()


def test_serials_are_positive_minimal_and_distinct(make_ca) -> None:
    issuer = make_ca().issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    key = generate_key(KeyType.ECDSA_P256).public_key()
    now = datetime.now(UTC)
    serials = set()
    for _ in range(300):  # ~1 in 256 serials has a leading zero byte or a high bit that needs one
        cert = x509.load_der_x509_certificate(encoder.encode(key, ("s.test",), now, now + timedelta(days=1)))
        assert 0 < cert.serial_number < 2**159
        serials.add(cert.serial_number)
    assert len(serials) == 300


def test_leaf_through_an_intermediate_verifies_with_openssl(make_ca, tmp_path: Path) -> None:
    ca = make_ca(intermediate=True)
    issuer = ca.issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    now = datetime.now(UTC)
    cert = _same_as_profile(
        encoder, issuer, KeyType.ECDSA_P256, ("deep.test",), now - timedelta(hours=1), now + timedelta(days=5)
    )
    result = openssl_verify(tmp_path, cert, ca.root.current.cert, issuer.chain, "deep.test")
    assert result.returncode == 0, result.stderr


def test_issuer_mints_with_the_encoder_and_exports_pkcs8(make_ca) -> None:
    ca = make_ca()
    leaf = LeafIssuer(ca.issuing_material()).get(["mint.test"])
    assert leaf.key_pem().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # the key file format we write
    assert leaf.cert.public_key().public_numbers() == leaf.key.public_key().public_numbers()
    text = openssl("x509", "-noout", "-subject", "-ext", "subjectAltName", input_data=leaf.chain_pem).stdout.decode()
    assert "CN=mint.test" in text.replace(" ", "") and "DNS:mint.test" in text


def test_naive_datetimes_are_refused_as_by_the_profile(make_ca) -> None:
    issuer = make_ca().issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    key = generate_key(KeyType.ECDSA_P256).public_key()
    with pytest.raises(ValueError, match="timezone-aware"):
        encoder.encode(key, ("n.test",), datetime(2030, 1, 1), datetime(2030, 2, 1))


def test_a_leaf_larger_than_64_kib_is_encoded_like_the_profile(make_ca) -> None:
    issuer = make_ca().issuing_material()
    encoder = LeafEncoder(issuer.key, issuer.cert.subject, issuer.ski)
    now = datetime.now(UTC)
    hosts = tuple(f"host-{i:05d}.a-rather-long-name.example.test" for i in range(1800))  # ~73 KiB of SAN
    cert = _same_as_profile(encoder, issuer, KeyType.ECDSA_P256, hosts, now, now + timedelta(days=1))
    assert len(cert.tbs_certificate_bytes) > 65_536
