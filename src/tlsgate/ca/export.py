"""Public CA certificates in the formats endpoints need. Never a private key.

Formats: PEM (one or many certificates), DER (exactly one), PKCS#7 / .p7b
(a certs-only SignedData bundle, DER, as Windows and MDM tools import it).
"""

from __future__ import annotations

import enum
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from tlsgate.ca.authority import CertificateAuthority
from tlsgate.ca.model import CAVersion
from tlsgate.errors import CAError

__all__ = ["ExportFormat", "export_certificates", "exported_versions"]


class ExportFormat(enum.StrEnum):
    PEM = "pem"
    DER = "der"
    P7B = "p7b"


def exported_versions(ca: CertificateAuthority, now: datetime, *, all_versions: bool) -> tuple[CAVersion, ...]:
    """The root versions to hand to endpoints: the current one, or every root version still valid."""
    if not all_versions:
        return (ca.root.current,)
    versions = tuple(v for identity in ca.roots() for v in identity.versions if v.not_after > now)
    return versions or (ca.root.current,)


def export_certificates(certs: tuple[x509.Certificate, ...], fmt: ExportFormat) -> bytes:
    if fmt is ExportFormat.PEM:
        return b"".join(c.public_bytes(Encoding.PEM) for c in certs)
    if fmt is ExportFormat.DER:
        if len(certs) != 1:
            raise CAError("DER holds exactly one certificate; use --format pem or p7b for several versions")
        return certs[0].public_bytes(Encoding.DER)
    return pkcs7.serialize_certificates(list(certs), Encoding.DER)
