"""The expiry communications plan, computed from the current root's notAfter. Pure: no I/O.

The default plan is the one the incident this project learns from used, a year
long: an announcement ~11 months ahead (e-mail, status page, webhook), e-mail
reminders 6, 3 and 2 months ahead, the portal modal from 7 weeks ahead,
reminders 6 weeks and 1 week ahead, and a critical status-page post in the last
days. Every item is keyed by the root identity *and* its notAfter, so a renewed
or rotated root gets a new plan and the old one's unsent items are cancelled.

When tlsgate starts late (the root is already close to expiry), only the
latest due item of each channel is sent; older ones are superseded, not
delivered in a burst.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["DEFAULT_PLAN", "Channel", "PlanItem", "PlannedMessage", "Severity", "due_messages", "plan_for"]


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    STATUS = "status"  # a post on the public status page
    PORTAL = "portal"  # the sign-in modal in the portal


class Severity(enum.StrEnum):
    INFO = "info"
    REMINDER = "reminder"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class PlanItem:
    name: str
    before_expiry: timedelta
    channels: tuple[Channel, ...]
    severity: Severity


E, W, S, P = Channel.EMAIL, Channel.WEBHOOK, Channel.STATUS, Channel.PORTAL
DEFAULT_PLAN: tuple[PlanItem, ...] = (
    PlanItem("announcement", timedelta(days=335), (E, S, W), Severity.INFO),
    PlanItem("reminder-6-months", timedelta(days=182), (E, W), Severity.REMINDER),
    PlanItem("reminder-3-months", timedelta(days=91), (E, W), Severity.REMINDER),
    PlanItem("reminder-2-months", timedelta(days=61), (E, W), Severity.REMINDER),
    PlanItem("portal-modal", timedelta(days=49), (P,), Severity.REMINDER),
    PlanItem("reminder-6-weeks", timedelta(days=42), (E, W), Severity.REMINDER),
    PlanItem("reminder-1-week", timedelta(days=7), (E, W), Severity.CRITICAL),
    PlanItem("critical-last-days", timedelta(days=3), (S, E, W), Severity.CRITICAL),
)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One plan item on one channel, for one root version's expiry."""

    plan_key: str  # identity + expiry: changes when the root is renewed or rotated
    item: PlanItem
    channel: Channel
    due_at: datetime
    expires_at: datetime

    @property
    def key(self) -> str:
        return f"{self.plan_key}/{self.item.name}/{self.channel.value}"


def plan_for(identity: str, expires_at: datetime, plan: Sequence[PlanItem] = DEFAULT_PLAN) -> list[PlannedMessage]:
    plan_key = f"{identity[:16]}@{expires_at:%Y%m%dT%H%M%SZ}"
    messages = [
        PlannedMessage(plan_key, item, channel, expires_at - item.before_expiry, expires_at)
        for item in plan
        for channel in item.channels
    ]
    return sorted(messages, key=lambda m: (m.due_at, m.channel.value))


def due_messages(planned: Sequence[PlannedMessage], now: datetime) -> tuple[list[PlannedMessage], list[PlannedMessage]]:
    """(to send, superseded): of the due messages, only the latest per channel is sent."""
    due = [m for m in planned if m.due_at <= now]
    latest: dict[Channel, PlannedMessage] = {}
    for message in due:
        if message.channel not in latest or message.due_at >= latest[message.channel].due_at:
            latest[message.channel] = message
    send = [m for m in due if latest[m.channel] is m]
    superseded = [m for m in due if latest[m.channel] is not m]
    return send, superseded
