"""One certificate builder and the named profiles tlsgate issues.

Profiles: ``root`` (self-signed CA), ``intermediate`` (issuing CA under a root),
``cross`` (a new root identity's key and subject, signed by the previous root),
``leaf`` (a TLS server certificate). All take aware UTC datetimes; every CA
certificate carries an SKI derived from its key (RFC 5280 §4.2.1.2, method 1),
and every issued certificate carries AKI = the issuer's SKI (§4.2.1.1), so that
all versions of one CA identity chain the same leaves.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsgate.ca.keys import PrivateKey, PublicKey, signature_hash
from tlsgate.ca.names import HostName, san_entries

__all__ = ["build_cross", "build_intermediate", "build_leaf", "build_root", "ski_of"]

_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def ski_of(public_key: PublicKey) -> x509.SubjectKeyIdentifier:
    """The SKI of a key: SHA-1 of the subjectPublicKey bit string (RFC 5280 §4.2.1.2 (1))."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
) -> x509.CertificateBuilder:
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise ValueError("certificate validity needs timezone-aware datetimes")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _ca_extensions(
    builder: x509.CertificateBuilder, public_key: PublicKey, path_length: int | None
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski_of(public_key), critical=False)
    )


def _aki(issuer_ski: x509.SubjectKeyIdentifier) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)


def build_root(key: PrivateKey, subject: x509.Name, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """A self-signed root. No path length limit, so a cross-certificate can sit below it."""
    public = key.public_key()
    builder = _ca_extensions(_builder(subject, subject, public, not_before, not_after), public, None)
    return builder.sign(key, signature_hash(key))


def build_intermediate(
    key: PrivateKey,
    subject: x509.Name,
    issuer_key: PrivateKey,
    issuer_cert: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """An issuing CA under ``issuer_cert``; path length 0: it signs leaves only."""
    public = key.public_key()
    builder = _builder(subject, issuer_cert.subject, public, not_before, not_after)
    builder = _ca_extensions(builder, public, 0).add_extension(_aki(ski_of(issuer_key.public_key())), critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def build_cross(
    subject_cert: x509.Certificate,
    issuer_key: PrivateKey,
    issuer_cert: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """The new root's subject and key, signed by the previous root: a path for old trust stores."""
    public = subject_cert.public_key()
    if not isinstance(public, PublicKey):
        raise TypeError("unsupported CA key type")
    builder = _builder(subject_cert.subject, issuer_cert.subject, public, not_before, not_after)
    builder = _ca_extensions(builder, public, None).add_extension(_aki(ski_of(issuer_key.public_key())), critical=False)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def build_leaf(
    public_key: PublicKey,
    hosts: tuple[HostName, ...],
    issuer_key: PrivateKey,
    issuer_name: x509.Name,
    issuer_ski: x509.SubjectKeyIdentifier,
    not_before: datetime,
    not_after: datetime,
    *,
    serial: int | None = None,
) -> x509.Certificate:
    """A TLS server leaf for ``hosts`` (first one is the CN when it fits in 64 characters).

    The profile's definition; the proxy mints the same bytes faster with
    :class:`tlsgate.ca.leafder.LeafEncoder` (the tests hold the two together).
    """
    first = hosts[0]
    common_name = first if isinstance(first, str) else str(first)
    if len(common_name) <= 64:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        san_critical = False
    else:
        # RFC 5280 §4.2.1.6: with an empty subject the SAN extension MUST be critical.
        subject = x509.Name([])
        san_critical = True
    rsa_leaf = not hasattr(public_key, "curve")
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_leaf,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _builder(subject, issuer_name, public_key, not_before, not_after, serial)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=san_critical)
        .add_extension(_aki(issuer_ski), critical=False)
        .add_extension(ski_of(public_key), critical=False)
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))
