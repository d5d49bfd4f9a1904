"""Is an endpoint ready for the root's expiry? A pure decision from what the endpoint last reported.

An endpoint trusts a CA *identity* when one of its trust stores holds a certificate with the same
subject and the same public key (SPKI SHA-256) — never by one version's fingerprint, which was the
old agents' bug. States:

- ``stale``: no check-in for longer than the stale window (or never), so we do not know;
- ``ready``: it trusts a certificate of the current root's identity valid at least as long as the
  current root version (so nothing breaks before the root itself expires);
- ``at-risk``: it checked in, but trusts no such certificate (only an older version, or nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Assessment", "Readiness", "RootFacts", "TrustedCert", "assess", "normalize_subject", "parse_trusted"]


class Readiness(enum.StrEnum):
    READY = "ready"
    AT_RISK = "at-risk"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class TrustedCert:
    subject: str
    spki_sha256: str
    not_after: datetime
    sha256: str | None = None
    store: str = ""


@dataclass(frozen=True, slots=True)
class RootFacts:
    subject: str
    spki_sha256: str
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Assessment:
    state: Readiness
    reason: str


def normalize_subject(subject: str) -> str:
    """Compare DNs the way people write them: case and spaces around ``,`` and ``=`` do not matter."""
    parts = [p.strip() for p in subject.split(",")]
    return ",".join("=".join(s.strip() for s in p.split("=", 1)) for p in parts).casefold()


def same_identity(cert: TrustedCert, subject: str, spki_sha256: str) -> bool:
    return cert.spki_sha256.lower() == spki_sha256.lower() and normalize_subject(cert.subject) == normalize_subject(
        subject
    )


def assess(
    trusted: Sequence[TrustedCert],
    root: RootFacts | None,
    last_checkin: datetime | None,
    now: datetime,
    stale_after: timedelta,
) -> Assessment:
    if last_checkin is None:
        return Assessment(Readiness.STALE, "never checked in")
    if now - last_checkin > stale_after:
        hours = int((now - last_checkin).total_seconds() // 3600)
        return Assessment(Readiness.STALE, f"no check-in for {hours} h")
    if root is None:
        return Assessment(Readiness.AT_RISK, "there is no CA yet")
    same = [t for t in trusted if same_identity(t, root.subject, root.spki_sha256)]
    if any(t.not_after >= root.not_after for t in same):
        return Assessment(Readiness.READY, "trusts the current root")
    if same:
        latest = max(t.not_after for t in same)
        return Assessment(Readiness.AT_RISK, f"trusts only a version of the root expiring {latest:%Y-%m-%d}")
    return Assessment(Readiness.AT_RISK, "does not trust the current root")


def parse_trusted(items: Iterable[Mapping[str, Any]]) -> list[TrustedCert]:
    """Stored check-in JSON back into :class:`TrustedCert`; malformed entries are skipped."""
    out: list[TrustedCert] = []
    for item in items:
        try:
            not_after = datetime.fromisoformat(str(item["not_after"]))
            if not_after.tzinfo is None:
                continue
            out.append(
                TrustedCert(
                    subject=str(item["subject"]),
                    spki_sha256=str(item["spki_sha256"]),
                    not_after=not_after,
                    sha256=str(item["sha256"]) if item.get("sha256") else None,
                    store=str(item.get("store") or ""),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out
