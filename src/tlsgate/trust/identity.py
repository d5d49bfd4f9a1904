"""Recognising the interception CA by identity, and deciding what to install and remove.

An endpoint trusts the interception CA when any store it uses holds a
certificate of that CA *identity* — same subject and same public key (SPKI
SHA-256) — that is valid now. Never by the fingerprint of one version: that was
the old agents' bug ("intercept certificate NOT found" after a renewal).

:func:`plan_store` is the pure decision for one store: install every wanted
version that is missing; remove an expired version of the identity only when a
version valid now stays in place; never remove the last valid one.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tlsgate.errors import TrustStoreError

__all__ = [
    "CAIdentityRef",
    "Presence",
    "StorePlan",
    "cert_sha256",
    "is_cross_signed_by",
    "parse_pem_bundle",
    "plan_store",
    "presence",
    "spki_sha256_of",
]

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL)


def spki_sha256_of(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def parse_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; unreadable blocks are skipped (a store may hold odd entries)."""
    certs = []
    for block in _PEM_CERT.findall(data):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            continue
    return certs


@dataclass(frozen=True, slots=True)
class CAIdentityRef:
    """A CA identity as an endpoint knows it: the subject (DER) and the SPKI SHA-256."""

    subject_der: bytes
    spki_sha256: str
    subject: str  # RFC 4514, for people

    @classmethod
    def of(cls, cert: x509.Certificate) -> CAIdentityRef:
        return cls(cert.subject.public_bytes(), spki_sha256_of(cert), cert.subject.rfc4514_string())

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "subject_der": self.subject_der.hex(), "spki_sha256": self.spki_sha256}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> CAIdentityRef:
        try:
            return cls(bytes.fromhex(data["subject_der"]), data["spki_sha256"], data["subject"])
        except (KeyError, ValueError, TypeError):
            raise TrustStoreError("the enrolled CA identity record is corrupt") from None

    def matches(self, cert: x509.Certificate) -> bool:
        return cert.subject.public_bytes() == self.subject_der and spki_sha256_of(cert) == self.spki_sha256

    def is_version(self, cert: x509.Certificate) -> bool:
        """A version of this identity: matches, and is self-signed by that key (so it is a root)."""
        return self.matches(cert) and cert.issuer == cert.subject and _is_ca(cert) and _signed_by(cert, cert)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _is_unconstrained_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE without a path length limit, and keyCertSign (RFC 5280 §4.2.1.3, §4.2.1.9)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and constraints.path_length is None and usage.key_cert_sign


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        else:
            return False
    except Exception:
        return False
    return True


def is_cross_signed_by(
    cross: x509.Certificate, new_root: x509.Certificate, old_version: x509.Certificate, now: datetime
) -> bool:
    """``cross`` is a CA certificate valid now, carrying ``new_root``'s subject and key, signed by ``old_version``.

    A leaf or a path-length-limited CA certificate of the same key is never a cross-certificate:
    otherwise anyone holding the key of any certificate the CA ever issued (a minted leaf, the
    issuing intermediate) could self-sign a "root" for it and have it accepted.
    """
    return (
        cross.subject == new_root.subject
        and spki_sha256_of(cross) == spki_sha256_of(new_root)
        and cross.issuer == old_version.subject
        and _is_unconstrained_ca(cross)
        and cross.not_valid_before_utc <= now <= cross.not_valid_after_utc
        and _signed_by(cross, old_version)
    )


class Presence(enum.StrEnum):
    """What one store holds of the identity, right now."""

    VALID = "valid"  # at least one version valid now
    EXPIRED_ONLY = "expired-only"  # versions present, none valid: clients will fail
    ABSENT = "absent"


def presence(
    identity: CAIdentityRef, certs: Iterable[x509.Certificate], now: datetime
) -> tuple[Presence, list[x509.Certificate]]:
    versions = [c for c in certs if identity.matches(c)]
    if not versions:
        return Presence.ABSENT, []
    if any(_valid(c, now) for c in versions):
        return Presence.VALID, versions
    return Presence.EXPIRED_ONLY, versions


def _valid(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


@dataclass(frozen=True, slots=True)
class StorePlan:
    install: tuple[x509.Certificate, ...]
    remove: tuple[x509.Certificate, ...]
    kept_expired: tuple[x509.Certificate, ...]  # expired versions left because nothing valid would remain

    @property
    def changes(self) -> bool:
        return bool(self.install or self.remove)


def plan_store(
    identities: Sequence[CAIdentityRef],
    wanted: Sequence[x509.Certificate],
    present: Sequence[x509.Certificate],
    now: datetime,
) -> StorePlan:
    """What to change in one store so it holds every wanted version and no needless expired one."""
    for cert in wanted:
        if not any(i.matches(cert) for i in identities):
            raise TrustStoreError(
                f"refusing to install a certificate of an unknown CA ({cert.subject.rfc4514_string()})"
            )
    present_fps = {cert_sha256(c) for c in present}
    install = tuple(c for c in wanted if _valid(c, now) and cert_sha256(c) not in present_fps)
    remove: list[x509.Certificate] = []
    kept: list[x509.Certificate] = []
    for identity in identities:
        mine = [c for c in present if identity.matches(c)]
        will_be_valid = any(_valid(c, now) for c in mine) or any(identity.matches(c) for c in install)
        for cert in mine:
            if cert.not_valid_after_utc < now:
                (remove if will_be_valid else kept).append(cert)
    return StorePlan(install, tuple(remove), tuple(kept))
