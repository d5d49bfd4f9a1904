"""What a CA is made of, in memory: identities, their versions, and a version's status.

A CA *identity* is (subject DN, public key), named by the SPKI SHA-256. A
*version* is one certificate of that identity, with its own serial and
validity. Nothing here does I/O; :mod:`tlsgate.ca.authority` builds these from
the files that :mod:`tlsgate.ca.storage` reads.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlsgate.ca.keys import key_type_of, spki_sha256

__all__ = [
    "DEFAULT_EXPIRING_DAYS",
    "CAIdentity",
    "CAVersion",
    "CrossCertificate",
    "Role",
    "VersionStatus",
    "describe_version",
]

#: A version counts as "expiring" when fewer days than this are left.
DEFAULT_EXPIRING_DAYS = 60


class Role(enum.StrEnum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"


class VersionStatus(enum.StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


@dataclass(frozen=True, slots=True)
class CAVersion:
    """One certificate of a CA identity."""

    identity_id: str
    role: Role
    number: int  # 1 for the first version, counting up with each renewal
    cert: x509.Certificate = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    @property
    def serial_hex(self) -> str:
        return format(self.cert.serial_number, "x")

    @property
    def not_before(self) -> datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.cert.not_valid_after_utc

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.der, usedforsecurity=False).hexdigest()

    @property
    def spki_sha256(self) -> str:
        return spki_sha256(self.cert.public_key())  # type: ignore[arg-type]

    @property
    def key_type(self) -> str:
        return key_type_of(self.cert.public_key())  # type: ignore[arg-type]

    def is_valid_at(self, now: datetime) -> bool:
        return self.not_before <= now <= self.not_after

    def status(self, now: datetime, expiring_days: int = DEFAULT_EXPIRING_DAYS) -> VersionStatus:
        if now < self.not_before:
            return VersionStatus.NOT_YET_VALID
        if now > self.not_after:
            return VersionStatus.EXPIRED
        if self.not_after - now < timedelta(days=expiring_days):
            return VersionStatus.EXPIRING
        return VersionStatus.VALID

    def days_left(self, now: datetime) -> int:
        return (self.not_after - now).days


@dataclass(frozen=True, slots=True)
class CAIdentity:
    """A CA identity and all its versions, oldest first; the last one is current."""

    id: str  # SPKI SHA-256, hex
    role: Role
    parent_id: str | None  # the root identity that signs an intermediate
    versions: tuple[CAVersion, ...]

    @property
    def current(self) -> CAVersion:
        return self.versions[-1]

    @property
    def subject(self) -> x509.Name:
        return self.current.cert.subject

    def valid_versions(self, now: datetime) -> tuple[CAVersion, ...]:
        return tuple(v for v in self.versions if v.is_valid_at(now))


@dataclass(frozen=True, slots=True)
class CrossCertificate:
    """The certificate of ``subject_id``'s key and subject, signed by ``issuer_id``."""

    subject_id: str
    issuer_id: str
    cert: x509.Certificate = field(repr=False)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def describe_version(
    version: CAVersion, now: datetime, *, current: bool, expiring_days: int = DEFAULT_EXPIRING_DAYS
) -> dict[str, object]:
    """A version as plain data: what ``ca show --json`` prints and the portal shows."""
    return {
        "identity": version.identity_id,
        "role": version.role.value,
        "version": version.number,
        "current": current,
        "subject": version.subject,
        "key_type": version.key_type,
        "serial": version.serial_hex,
        "not_before": version.not_before.isoformat(),
        "not_after": version.not_after.isoformat(),
        "days_left": version.days_left(now),
        "status": version.status(now, expiring_days).value,
        "sha256": version.sha256,
        "sha1": version.sha1,
        "spki_sha256": version.spki_sha256,
    }
