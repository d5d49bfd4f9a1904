"""The notifier: each planned message delivered once per (plan item, channel, recipient), across restarts
and across several ``serve`` processes sharing one database.

How "once" is kept:

* **claim** — a delivery starts by INSERTing its row (state ``sending``); the unique key
  (plan item, channel, recipient) lets exactly one process win, the others skip it.
  A retry claims a ``failed`` row by a compare-and-set UPDATE (``WHERE state = 'failed'``).
* **status page and portal** — the post and the row's ``sent`` mark are one transaction: exactly once.
* **e-mail and webhooks** — sent after the claim commits, then marked ``sent``. A process that
  dies between the two leaves ``sending``; after a lease that row becomes ``unknown`` and is
  never sent again (at most once; the portal shows it). Webhooks carry an ``Idempotency-Key``.
* a failed send is retried with back-off until ``max_attempts`` (then ``gave-up``); other
  channels and recipients go on regardless.
* a renewal or rotation changes the plan key: rows of the old plan still waiting are
  ``cancelled``, and one "update completed" post is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tlsgate.ca import CertificateAuthority
from tlsgate.clock import Clock, system_clock
from tlsgate.errors import TlsgateError
from tlsgate.notify.channels import SmtpSettings, WebhookSettings, send_email, send_webhook
from tlsgate.notify.config import NotifySettings
from tlsgate.notify.messages import Fleet, Message, render, render_update_completed
from tlsgate.notify.plan import Channel, PlannedMessage, due_messages, plan_for
from tlsgate.store import Store
from tlsgate.store.models import Notification, StatusPost

__all__ = ["LEASE", "Notifier", "RunReport", "Senders"]

#: a row still ``sending`` after this long belongs to a process that died mid-send
LEASE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Senders:
    """The channels' I/O, replaceable in tests."""

    email: Callable[[SmtpSettings, str, str, str, str], None] = send_email
    webhook: Callable[..., None] = send_webhook


@dataclass(slots=True)
class RunReport:
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    cancelled: int = 0
    update_completed: bool = False


class Notifier:
    def __init__(
        self,
        store: Store,
        settings: NotifySettings,
        *,
        ca_dir: object,
        fleet: Callable[[], Fleet],
        clock: Clock = system_clock,
        senders: Senders | None = None,
        agent_version: str = "",
    ) -> None:
        self.store = store
        self.settings = settings
        self.ca_dir = ca_dir
        self.fleet = fleet
        self.clock = clock
        self.senders = senders or Senders()
        self.agent_version = agent_version

    def _current(self) -> tuple[CertificateAuthority, list[PlannedMessage]]:
        ca = CertificateAuthority.load(self.ca_dir, clock=self.clock)  # type: ignore[arg-type]
        return ca, plan_for(ca.root.id, ca.root.current.not_after, self.settings.plan)

    def planned(self) -> list[tuple[PlannedMessage, str, Notification | None]]:
        """Every (message, recipient) of the current plan with its delivery row, if any."""
        _, planned = self._current()
        with self.store.sessions() as session:
            rows = {(r.plan_item, r.channel, r.recipient): r for r in session.scalars(select(Notification))}
        return [
            (m, recipient, rows.get((_item_key(m), m.channel.value, recipient)))
            for m in planned
            for recipient in self.settings.recipients(m.channel)
        ]

    def run_once(self) -> RunReport:
        report = RunReport()
        ca, planned = self._current()
        now = self.clock()
        plan_key = planned[0].plan_key if planned else ""
        with self.store.sessions() as session:
            report.cancelled = self._cancel_old_plans(session, plan_key)
            session.commit()
            report.update_completed = self._update_completed(session, ca, plan_key, now)
            self._expire_leases(session, now)
            existing = {(r.plan_item, r.channel, r.recipient) for r in session.scalars(select(Notification))}
        pending = [
            (m, r)
            for m in planned
            for r in self.settings.recipients(m.channel)
            if (_item_key(m), m.channel.value, r) not in existing
        ]
        send, superseded = due_messages(sorted({m for m, _ in pending}, key=lambda m: m.due_at), now)
        for message in superseded:
            for recipient in self.settings.recipients(message.channel):
                if self._record(message, recipient, "superseded", now):
                    report.superseded.append(f"{message.key} → {recipient}")
        subject_dn = ca.root.current.subject
        fleet = self.fleet() if send else Fleet(0, 0, 0, 0)
        for message in send:
            text = render(
                message, now=now, subject_dn=subject_dn, fleet=fleet,
                portal_url=self.settings.portal_url, agent_version=self.agent_version,
            )  # fmt: skip
            for recipient in self.settings.recipients(message.channel):
                self._deliver_new(message, recipient, text, now, report)
        self._retry_failed(plan_key, planned, subject_dn, now, report)
        return report

    # ------------------------------------------------------------------ steps

    def _cancel_old_plans(self, session: Session, plan_key: str) -> int:
        result = session.execute(
            update(Notification)
            .where(Notification.plan_key != plan_key, Notification.state.in_(("failed",)))
            .values(state="cancelled", next_attempt_at=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _update_completed(self, session: Session, ca: CertificateAuthority, plan_key: str, now: datetime) -> bool:
        """One "update completed" post when the root was renewed or rotated after reminders went out."""
        older = session.scalars(
            select(Notification).where(Notification.plan_key != plan_key, Notification.state == "sent")
        ).first()
        if older is None:
            return False
        key = f"{plan_key}/update-completed"
        if session.scalars(select(Notification).where(Notification.plan_item == key)).first() is not None:
            return False
        old_expiry = older.due_at or now
        text = render_update_completed(
            ca.root.current.subject, _expiry_of(older.plan_key) or old_expiry, ca.root.current.not_after
        )
        session.add(
            _row(key, Channel.STATUS, "status-page", plan_key, now, now, text.subject, state="sent", sent_at=now)
        )
        session.add(
            StatusPost(kind="announcement", title=text.subject, body=text.body, published_at=now, created_by="notifier")
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False  # another process made it
        return True

    def _expire_leases(self, session: Session, now: datetime) -> None:
        session.execute(
            update(Notification)
            .where(Notification.state == "sending", Notification.last_attempt_at < now - LEASE)
            .values(state="unknown", last_error="the sender stopped before confirming; not sent again")
        )
        session.commit()

    def _record(self, message: PlannedMessage, recipient: str, state: str, now: datetime) -> bool:
        try:
            with self.store.sessions() as session:
                session.add(
                    _message_row(
                        message,
                        recipient,
                        now,
                        "",
                        state=state,
                    )
                )
                session.commit()
        except IntegrityError:
            return False
        return True

    def _deliver_new(
        self, message: PlannedMessage, recipient: str, text: Message, now: datetime, report: RunReport
    ) -> None:
        label = f"{message.key} → {recipient}"
        if message.channel in (Channel.STATUS, Channel.PORTAL):
            # The post and its record commit together: exactly once, even across a crash.
            try:
                with self.store.sessions() as session:
                    session.add(
                        _message_row(
                            message,
                            recipient,
                            now,
                            text.subject,
                            state="sent",
                            sent_at=now,
                            attempts=1,
                        )
                    )
                    if message.channel is Channel.STATUS:
                        kind = "incident" if text.severity == "critical" else "reminder"
                        session.add(
                            StatusPost(
                                kind=kind, title=text.subject, body=text.body, published_at=now, created_by="notifier"
                            )
                        )
                    session.commit()
            except IntegrityError:
                return  # another process delivered it
            report.sent.append(label)
            return
        try:  # claim first, in its own transaction
            with self.store.sessions() as session:
                row = _message_row(
                    message,
                    recipient,
                    now,
                    text.subject,
                    state="sending",
                    attempts=1,
                )
                session.add(row)
                session.commit()
                row_id = row.id
        except IntegrityError:
            return
        self._send_and_mark(row_id, message.channel, recipient, text, message.key, now, report, label)

    def _retry_failed(
        self, plan_key: str, planned: Sequence[PlannedMessage], subject_dn: str, now: datetime, report: RunReport
    ) -> None:
        by_item = {(_item_key(m), m.channel.value): m for m in planned}
        with self.store.sessions() as session:
            rows = session.scalars(
                select(Notification).where(
                    Notification.plan_key == plan_key,
                    Notification.state == "failed",
                    Notification.next_attempt_at <= now,
                )
            ).all()
        if not rows:
            return
        fleet = self.fleet()
        for row in rows:
            message = by_item.get((row.plan_item, row.channel))
            if message is None:
                continue
            with self.store.sessions() as session:  # compare-and-set: one process wins the retry
                claimed = session.execute(
                    update(Notification)
                    .where(Notification.id == row.id, Notification.state == "failed")
                    .values(state="sending", attempts=Notification.attempts + 1, last_attempt_at=now)
                ).rowcount  # type: ignore[attr-defined]
                session.commit()
            if claimed != 1:
                continue
            text = render(
                message,
                now=now,
                subject_dn=subject_dn,
                fleet=fleet,
                portal_url=self.settings.portal_url,
                agent_version=self.agent_version,
            )
            self._send_and_mark(
                row.id,
                message.channel,
                row.recipient,
                text,
                message.key,
                now,
                report,
                f"{message.key} → {row.recipient} (retry)",
            )

    def _send_and_mark(
        self,
        row_id: int,
        channel: Channel,
        recipient: str,
        text: Message,
        key: str,
        now: datetime,
        report: RunReport,
        label: str,
    ) -> None:
        error = None
        try:
            if channel is Channel.EMAIL:
                if self.settings.smtp is None:
                    raise TlsgateError("no SMTP server is configured")
                self.senders.email(self.settings.smtp, recipient, text.subject, text.body, key)
            else:
                hook = _webhook_for(self.settings.webhooks, recipient)
                payload = {"event": "tlsgate.ca.expiry", "key": key, **text.as_json()}
                self.senders.webhook(hook, payload, key)
        except TlsgateError as exc:
            error = str(exc)
        with self.store.sessions() as session:
            row = session.get(Notification, row_id)
            if row is None:
                return
            if error is None:
                row.state, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, None, None
                report.sent.append(label)
            else:
                gave_up = row.attempts >= self.settings.max_attempts
                row.state = "gave-up" if gave_up else "failed"
                row.last_error = error[:2000]
                row.next_attempt_at = None if gave_up else now + _backoff(row.attempts)
                report.failed.append(f"{label}: {error}")
            session.commit()


def _item_key(message: PlannedMessage) -> str:
    return f"{message.plan_key}/{message.item.name}"


def _expiry_of(plan_key: str) -> datetime | None:
    try:
        return datetime.strptime(plan_key.split("@", 1)[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (IndexError, ValueError):
        return None


def _backoff(attempts: int) -> timedelta:
    """5 min, 10, 20, … capped at 6 h."""
    return min(timedelta(minutes=5) * (1 << max(0, attempts - 1)), timedelta(hours=6))


def _webhook_for(hooks: Sequence[WebhookSettings], url: str) -> WebhookSettings:
    for hook in hooks:
        if hook.url == url:
            return hook
    raise TlsgateError(f"webhook {url} is no longer configured")


def _message_row(message: PlannedMessage, recipient: str, now: datetime, subject: str, **fields: Any) -> Notification:
    return _row(
        _item_key(message), message.channel, recipient, message.plan_key, message.due_at, now, subject, **fields
    )


def _row(
    item: str, channel: Channel, recipient: str, plan_key: str, due_at: datetime, now: datetime, subject: str,
    *, state: str, sent_at: datetime | None = None, attempts: int = 0,
) -> Notification:  # fmt: skip
    return Notification(
        plan_item=item, channel=channel.value, recipient=recipient, plan_key=plan_key, due_at=due_at,
        created_at=now, last_attempt_at=now, state=state, sent_at=sent_at, attempts=attempts, subject=subject[:300],
    )  # fmt: skip
