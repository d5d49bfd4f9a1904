"""The agent's work on one endpoint: report what every store holds, and bring every store up to date.

``status`` reads each store and says, per store, which versions of the CA
identity are present and whether one is valid now; the endpoint is fine when
any store holds a valid version (it warns only when none does). ``apply``
installs every accepted version that a store lacks and removes expired ones
only where a valid version stays (see :func:`tlsgate.trust.plan_store`).
Running it twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from tlsgate.clock import Clock, system_clock
from tlsgate.errors import TrustStoreError
from tlsgate.trust import CAIdentityRef, Presence, StorePlan, TrustStore, cert_sha256, plan_store, presence

__all__ = ["Agent", "EndpointStatus", "StoreChange", "StoreStatus", "describe_cert"]


def describe_cert(cert: x509.Certificate, now: datetime) -> dict[str, object]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "sha256": cert_sha256(cert),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "valid_now": cert.not_valid_before_utc <= now <= cert.not_valid_after_utc,
    }


@dataclass(frozen=True, slots=True)
class StoreStatus:
    store: str
    presence: Presence
    versions: tuple[x509.Certificate, ...]
    error: str | None = None

    def to_json(self, now: datetime) -> dict[str, object]:
        return {
            "store": self.store,
            "presence": self.presence.value,
            "versions": [describe_cert(c, now) for c in self.versions],
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    now: datetime
    stores: tuple[StoreStatus, ...]

    @property
    def ok(self) -> bool:
        return any(s.presence is Presence.VALID for s in self.stores)

    @property
    def trusted_until(self) -> datetime | None:
        """The last moment at which some store still holds a valid version: the day this endpoint breaks."""
        ends = [c.not_valid_after_utc for s in self.stores for c in s.versions if c.not_valid_before_utc <= self.now]
        return max(ends) if ends else None

    @property
    def verdict(self) -> str:
        if self.ok:
            return "ok: a valid version of the interception CA is installed"
        if any(s.presence is Presence.EXPIRED_ONLY for s in self.stores):
            return (
                "WARNING: only expired versions of the interception CA are installed; HTTPS through the gateway fails"
            )
        return "WARNING: the interception CA is NOT installed in any trust store"

    def to_json(self) -> dict[str, object]:
        until = self.trusted_until
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "trusted_until": until.isoformat() if until else None,
            "stores": [s.to_json(self.now) for s in self.stores],
        }


@dataclass(frozen=True, slots=True)
class StoreChange:
    store: str
    plan: StorePlan
    applied: bool
    error: str | None = None
    details: dict[str, object] = field(default_factory=dict)


class Agent:
    def __init__(self, stores: Sequence[TrustStore], identities: Sequence[CAIdentityRef], clock: Clock = system_clock):
        if not identities:
            raise TrustStoreError("no CA identity to look for: enroll first or give a certificate")
        self.stores = list(stores)
        self.identities = list(identities)
        self.clock = clock

    def status(self) -> EndpointStatus:
        now = self.clock()
        results = []
        for store in self.stores:
            try:
                certs = store.certificates()
            except TrustStoreError as exc:
                results.append(StoreStatus(store.name, Presence.ABSENT, (), str(exc)))
                continue
            best = Presence.ABSENT
            versions: list[x509.Certificate] = []
            for identity in self.identities:
                state, found = presence(identity, certs, now)
                versions += found
                if state is Presence.VALID or (state is Presence.EXPIRED_ONLY and best is Presence.ABSENT):
                    best = state
            results.append(StoreStatus(store.name, best, tuple(versions)))
        return EndpointStatus(now, tuple(results))

    def apply(self, wanted: Sequence[x509.Certificate], *, dry_run: bool = False) -> list[StoreChange]:
        """Install what each store lacks, then remove expired versions where safe; a failing store spares the rest."""
        now = self.clock()
        changes = []
        for store in self.stores:
            try:
                plan = plan_store(self.identities, wanted, store.certificates(), now)
                if not dry_run:
                    store.install(plan.install)
                    # Removal only after the install went through, so a valid version is in place first.
                    store.remove(plan.remove)
                changes.append(StoreChange(store.name, plan, applied=not dry_run))
            except TrustStoreError as exc:
                changes.append(StoreChange(store.name, StorePlan((), (), ()), applied=False, error=str(exc)))
        return changes
