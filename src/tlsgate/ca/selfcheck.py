"""The CA self-check behind ``tlsgate ca verify``.

It proves the property tlsgate stands on: a freshly minted leaf verifies under
*every* valid version of the root identity on its own (each version alone in
the trust store), under every earlier root identity that cross-signed the
current one, and the CA files are well formed (keys match, one subject and SKI
per identity, AKI = issuer SKI). Verification uses ``cryptography``'s
RFC 5280 / CA-B Forum path builder with a server-name check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tlsgate.ca.authority import CertificateAuthority
from tlsgate.ca.leaf import LeafIssuer
from tlsgate.ca.model import Role
from tlsgate.ca.profiles import ski_of
from tlsgate.errors import TlsgateError

__all__ = ["SELF_CHECK_HOST", "CheckResult", "self_check"]

SELF_CHECK_HOST = "selfcheck.tlsgate.test"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def self_check(ca: CertificateAuthority) -> list[CheckResult]:
    """Every check, in order; the CA is sound when all are ``ok``."""
    now = ca.clock()
    results: list[CheckResult] = []
    for identity in ca.identities:
        try:
            key = ca.key(identity.id)
            ski = ski_of(key.public_key()).digest
            same = all(_ski(v.cert) == ski for v in identity.versions)
            results.append(
                CheckResult(
                    f"{identity.role} {identity.id[:16]} key and versions",
                    same,
                    f"{len(identity.versions)} version(s), key matches, one SKI"
                    if same
                    else "versions disagree on the SKI",
                )
            )
        except TlsgateError as exc:
            results.append(CheckResult(f"{identity.role} {identity.id[:16]} key", False, str(exc)))
    if not all(r.ok for r in results):
        return results
    try:
        leaf = LeafIssuer(ca.issuing_material(), clock=ca.clock).mint((SELF_CHECK_HOST,))
    except TlsgateError as exc:
        return [*results, CheckResult("mint a leaf", False, str(exc))]
    issuer_ok = (
        _aki(leaf.cert) == _ski(ca.issuer.current.cert) and leaf.cert.not_valid_after_utc <= ca.issuer.current.not_after
    )
    results.append(
        CheckResult(
            "leaf AKI and validity",
            issuer_ok,
            "AKI = issuer SKI, notAfter within the issuer's" if issuer_ok else "leaf does not match its issuer",
        )
    )
    for version in ca.root.versions:
        label = f"leaf under root version {version.number} ({version.serial_hex[:16]})"
        if not version.is_valid_at(now):
            results.append(CheckResult(label, True, f"skipped: {version.status(now).value}"))
            continue
        results.append(_verify(label, leaf.cert, list(leaf.chain), version.cert, now))
    for cross in ca.crosses:
        if cross.subject_id != ca.root.id:
            continue
        old = ca.identity(cross.issuer_id)
        for version in old.valid_versions(now):
            label = f"leaf via cross-certificate under old root {old.id[:16]} v{version.number}"
            results.append(_verify(label, leaf.cert, list(leaf.chain), version.cert, now))
    if ca.issuer.role is Role.INTERMEDIATE:
        results.append(
            CheckResult(
                "chain served with the leaf",
                bool(leaf.chain) and leaf.chain[0] == ca.issuer.current.cert,
                "leaf, issuing intermediate" + (", cross-certificate" if len(leaf.chain) > 1 else ""),
            )
        )
    return results


def _verify(
    label: str, leaf: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate, now: datetime
) -> CheckResult:
    verifier = PolicyBuilder().store(Store([root])).time(now).build_server_verifier(DNSName(SELF_CHECK_HOST))
    try:
        path = verifier.verify(leaf, chain)
    except VerificationError as exc:
        return CheckResult(label, False, f"does not verify: {exc}")
    return CheckResult(label, True, f"verified, path of {len(path)}")


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _aki(cert: x509.Certificate) -> bytes | None:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
