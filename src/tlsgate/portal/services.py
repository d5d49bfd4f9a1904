"""What the pages and the API both need: the CA from its directory (mirrored into the store), downloads,
endpoint readiness and fleet numbers, the expiry alert. No HTTP here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tlsgate.ca import CertificateAuthority, ExportFormat, export_certificates, exported_versions
from tlsgate.errors import CANotFoundError
from tlsgate.portal.readiness import Assessment, Readiness, RootFacts, TrustedCert, assess, parse_trusted, same_identity
from tlsgate.portal.settings import PortalSettings
from tlsgate.store import CAVersionRecord, Endpoint, sync_ca_versions
from tlsgate.trust.artifacts import INSTALLERS

__all__ = [
    "DOWNLOADS",
    "Download",
    "EndpointView",
    "ExpiryAlert",
    "FleetSummary",
    "download",
    "endpoint_view",
    "expiry_alert",
    "fleet",
    "load_ca",
    "require_ca",
    "root_facts",
    "synced_ca",
]


@dataclass(frozen=True, slots=True)
class Download:
    name: str
    label: str
    fmt: str  # an ExportFormat value, or an installer name from tlsgate.trust.artifacts.INSTALLERS
    all_versions: bool
    filename: str
    media_type: str

    @property
    def cli(self) -> str:
        return f"tlsgate ca export --format {self.fmt}{' --all-versions' if self.all_versions else ''}"

    @property
    def installer(self) -> bool:
        return self.fmt in INSTALLERS


DOWNLOADS: dict[str, Download] = {
    d.name: d
    for d in (
        Download("root.pem", "Root (PEM)", ExportFormat.PEM, False, "tlsgate-root.pem", "application/x-pem-file"),
        Download("root.der", "Root (DER)", ExportFormat.DER, False, "tlsgate-root.der", "application/x-x509-ca-cert"),
        Download(
            "bundle.pem",
            "All valid versions (PEM bundle)",
            ExportFormat.PEM,
            True,
            "tlsgate-roots.pem",
            "application/x-pem-file",
        ),
        Download(
            "bundle.p7b",
            "All valid versions (PKCS#7)",
            ExportFormat.P7B,
            True,
            "tlsgate-roots.p7b",
            "application/x-pkcs7-certificates",
        ),
        # Installers for endpoints without the agent (GPO, MDM, scripts): every valid version.
        Download("install.ps1", "Windows (PowerShell)", "ps1", True, "install-tlsgate-root.ps1", "text/plain"),
        Download(
            "install-macos.sh", "macOS (shell)", "macos.sh", True, "install-tlsgate-root.sh", "text/x-shellscript"
        ),
        Download(
            "tlsgate.mobileconfig",
            "Apple profile (.mobileconfig)",
            "mobileconfig",
            True,
            "tlsgate.mobileconfig",
            "application/x-apple-aspen-config",
        ),
        Download(
            "policies.json", "Firefox policies.json", "firefox-policies.json", True, "policies.json", "application/json"
        ),
    )
}


def load_ca(settings: PortalSettings) -> CertificateAuthority | None:
    try:
        return CertificateAuthority.load(settings.ca_dir, clock=settings.clock)
    except CANotFoundError:
        return None


def require_ca(settings: PortalSettings) -> CertificateAuthority:
    """The CA, for operations that need one: a clear error (404) when there is none yet."""
    ca = load_ca(settings)
    if ca is None:  # the message names no server path: the CA set is public
        raise CANotFoundError("there is no CA yet: create it with tlsgate ca init")
    return ca


def synced_ca(session: Session, settings: PortalSettings) -> CertificateAuthority | None:
    """The CA from its directory (the source of truth), its versions mirrored into the store."""
    ca = load_ca(settings)
    if ca is not None:
        sync_ca_versions(session, ca, settings.clock())
    return ca


def download(ca: CertificateAuthority, item: Download, now: datetime) -> bytes:
    """Byte for byte what ``tlsgate ca export`` writes for the same options."""
    certs = tuple(v.cert for v in exported_versions(ca, now, all_versions=item.all_versions))
    if item.fmt in INSTALLERS:
        return INSTALLERS[item.fmt](certs)
    return export_certificates(certs, ExportFormat(item.fmt))


def root_facts(ca: CertificateAuthority | None) -> RootFacts | None:
    if ca is None:
        return None
    current = ca.root.current
    return RootFacts(current.subject, current.spki_sha256, current.not_after)


@dataclass(frozen=True, slots=True)
class EndpointView:
    endpoint: Endpoint
    assessment: Assessment
    trusts: tuple[str, ...]  # human descriptions of the CA versions it trusts


def describe_trust(trusted: Sequence[TrustedCert], records: Sequence[CAVersionRecord]) -> tuple[str, ...]:
    out: list[str] = []
    for cert in trusted:
        same = [r for r in records if same_identity(cert, r.subject, r.spki_sha256)]
        exact = [r for r in same if (cert.sha256 and cert.sha256.lower() == r.sha256) or r.not_after == cert.not_after]
        if exact:
            r = exact[0]
            out.append(f"{r.role} v{r.number} · {r.subject} · until {r.not_after:%Y-%m-%d}")
        elif same:
            out.append(f"{same[0].subject} (same key, other issue) · until {cert.not_after:%Y-%m-%d}")
    return tuple(dict.fromkeys(out))


def endpoint_view(
    endpoint: Endpoint, root: RootFacts | None, records: Sequence[CAVersionRecord], settings: PortalSettings
) -> EndpointView:
    trusted = parse_trusted(endpoint.trusted or [])
    state = assess(trusted, root, endpoint.last_checkin_at, settings.clock(), timedelta(hours=settings.stale_hours))
    return EndpointView(endpoint, state, describe_trust(trusted, records))


@dataclass(frozen=True, slots=True)
class FleetSummary:
    views: tuple[EndpointView, ...]

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(v.assessment.state for v in self.views)
        return {state.value: counted.get(state, 0) for state in Readiness}

    @property
    def total(self) -> int:
        return len(self.views)

    @property
    def ready_percent(self) -> int:
        return round(100 * self.counts[Readiness.READY.value] / self.total) if self.views else 0


def fleet(session: Session, settings: PortalSettings, ca: CertificateAuthority | None) -> FleetSummary:
    records = list(session.scalars(select(CAVersionRecord)))
    root = root_facts(ca)
    endpoints = session.scalars(select(Endpoint).order_by(Endpoint.hostname, Endpoint.id))
    return FleetSummary(tuple(endpoint_view(e, root, records, settings) for e in endpoints))


@dataclass(frozen=True, slots=True)
class ExpiryAlert:
    days_left: int
    expired: bool
    not_after: datetime
    subject: str


def expiry_alert(ca: CertificateAuthority | None, settings: PortalSettings) -> ExpiryAlert | None:
    """The alert to show when the current root expires within the configured window, or has expired."""
    if ca is None:
        return None
    now = settings.clock()
    current = ca.root.current
    if current.not_after - now > timedelta(days=settings.expiry_alert_days):
        return None
    return ExpiryAlert(current.days_left(now), current.not_after <= now, current.not_after, current.subject)
