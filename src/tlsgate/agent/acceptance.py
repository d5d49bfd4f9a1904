"""Which offered certificates the agent may install: only what it can tie to the CA identity it enrolled for.

A root certificate is accepted when it is a version of a trusted identity
(same subject and key, self-signed by that key). A new identity (after a
rotation) is accepted when a cross-certificate for it was signed by a valid
version of an identity already trusted. Everything else is refused, with a
reason the agent reports to the portal. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from tlsgate.trust import CAIdentityRef, is_cross_signed_by

__all__ = ["Acceptance", "accept_ca_set"]


@dataclass(frozen=True, slots=True)
class Acceptance:
    identities: tuple[CAIdentityRef, ...]  # trusted identities after this CA set, enrolled one first
    versions: tuple[x509.Certificate, ...]  # root versions to have in every store
    refused: tuple[tuple[x509.Certificate, str], ...]


def accept_ca_set(
    trusted: Sequence[CAIdentityRef],
    roots: Sequence[x509.Certificate],
    crosses: Sequence[x509.Certificate],
    now: datetime,
) -> Acceptance:
    identities = list(trusted)
    accepted: list[x509.Certificate] = []
    pending = list(roots)
    progress = True
    while pending and progress:  # a chain of rotations is accepted link by link
        progress = False
        for cert in list(pending):
            if any(i.is_version(cert) for i in identities):
                accepted.append(cert)
                pending.remove(cert)
                progress = True
            elif _cross_signed(cert, identities, accepted, crosses, now):
                identities.append(CAIdentityRef.of(cert))
                accepted.append(cert)
                pending.remove(cert)
                progress = True
    refused = tuple((cert, _reason(cert)) for cert in pending)
    return Acceptance(tuple(identities), tuple(accepted), refused)


def _cross_signed(
    cert: x509.Certificate,
    identities: list[CAIdentityRef],
    accepted: list[x509.Certificate],
    crosses: Sequence[x509.Certificate],
    now: datetime,
) -> bool:
    if not CAIdentityRef.of(cert).is_version(cert):
        return False  # a root must at least be self-signed by its own key
    signers = [v for v in accepted if v.not_valid_before_utc <= now <= v.not_valid_after_utc]
    return any(
        is_cross_signed_by(cross, cert, signer, now)
        for cross in crosses
        for signer in signers
        if any(i.matches(signer) for i in identities)
    )


def _reason(cert: x509.Certificate) -> str:
    return (
        f"refused {cert.subject.rfc4514_string()}: not a version of the enrolled CA identity and not cross-signed by it"
    )
