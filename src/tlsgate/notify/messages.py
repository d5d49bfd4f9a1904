"""What each communication says: what expires when, what admins must do, and how ready the fleet is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tlsgate.notify.plan import PlannedMessage, Severity

__all__ = ["Fleet", "Message", "render", "render_update_completed"]


@dataclass(frozen=True, slots=True)
class Fleet:
    total: int
    ready: int
    at_risk: int
    stale: int


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str
    severity: str

    def as_json(self) -> dict[str, str]:
        return {"subject": self.subject, "body": self.body, "severity": self.severity}


def _days(expires_at: datetime, now: datetime) -> str:
    days = (expires_at - now).days
    return "today" if days <= 0 else f"in {days} day{'s' if days != 1 else ''}"


def render(
    planned: PlannedMessage,
    *,
    now: datetime,
    subject_dn: str,
    fleet: Fleet,
    portal_url: str,
    agent_version: str,
) -> Message:
    when = f"{planned.expires_at:%Y-%m-%d %H:%M} UTC"
    prefix = {Severity.INFO: "Notice", Severity.REMINDER: "Reminder", Severity.CRITICAL: "ACTION REQUIRED"}
    subject = (
        f"[tlsgate] {prefix[planned.item.severity]}: the interception root CA expires {_days(planned.expires_at, now)}"
        f" ({planned.expires_at:%Y-%m-%d})"
    )
    not_ready = fleet.total - fleet.ready
    body = f"""The TLS interception root CA of your tlsgate gateway

    {subject_dn}

expires on {when} ({_days(planned.expires_at, now)}). Every endpoint that does not trust a renewed
version of this CA by then will lose HTTPS through the gateway.

Fleet readiness: {fleet.ready} of {fleet.total} endpoints ready, {fleet.at_risk} at risk, {fleet.stale} stale
(no recent check-in){"." if not_ready == 0 else f" — {not_ready} endpoint(s) still need the renewed root."}

What to do:
  1. Renew the root in place (same key and subject): Policy > TLS/SSL Interception > Renew,
     or 'tlsgate ca renew'. Old and new versions validate the same certificates and can coexist.
  2. Endpoints with the tlsgate agent (version {agent_version} or newer) install the renewed root by
     themselves at their next sync.
  3. Endpoints without the agent: download the root (PEM, DER, PKCS#7) or an installer
     (Windows PowerShell, macOS script, Apple .mobileconfig, Firefox policies.json) from
     {portal_url.rstrip("/")}/policy/tls and deploy it through GPO, MDM or your scripts.
  4. Watch the Endpoints page until every endpoint is ready.
"""
    return Message(subject, body, planned.item.severity.value)


def render_update_completed(subject_dn: str, old_expiry: datetime, new_expiry: datetime) -> Message:
    return Message(
        subject=f"[tlsgate] Update completed: the interception root CA is now valid until {new_expiry:%Y-%m-%d}",
        body=(
            f"The interception root CA {subject_dn}, which was due to expire on {old_expiry:%Y-%m-%d}, has been "
            f"updated and is now valid until {new_expiry:%Y-%m-%d}. Reminders about the old expiry are cancelled.\n"
        ),
        severity="info",
    )
