"""Notifier helpers: recording senders and a notifier built the way ``tlsgate notify`` builds one."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tlsgate.clock import Clock
from tlsgate.notify import DeliveryError, Fleet, Notifier, NotifySettings, Senders, SmtpSettings, WebhookSettings
from tlsgate.store import Store

DAY = timedelta(days=1)


@dataclass
class Recorder:
    """Stands in for SMTP and webhooks where a test is about the plan, not the wire."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, recipient, subject)
    fail_email: int = 0  # fail the next N e-mails
    lock: threading.Lock = field(default_factory=threading.Lock)

    def email(self, smtp: SmtpSettings, recipient: str, subject: str, body: str, key: str) -> None:
        with self.lock:
            if self.fail_email > 0:
                self.fail_email -= 1
                raise DeliveryError("SMTP server said 451 try later")
            self.sent.append(("email", recipient, subject))

    def webhook(self, hook: WebhookSettings, payload: dict[str, object], key: str) -> None:
        with self.lock:
            self.sent.append(("webhook", hook.url, str(payload["subject"])))


SETTINGS = NotifySettings(
    email=("secops@example.test",),
    smtp=SmtpSettings(host="127.0.0.1", port=2525),
    webhooks=(WebhookSettings(url="https://hooks.example.test/tlsgate", secret="s3cret"),),
)


def make_notifier(
    store: Store, ca_dir: Path, clock: Clock, recorder: Recorder, settings: NotifySettings = SETTINGS
) -> Notifier:
    return Notifier(
        store,
        settings,
        ca_dir=ca_dir,
        fleet=lambda: Fleet(total=10, ready=7, at_risk=2, stale=1),
        clock=clock,
        senders=Senders(email=recorder.email, webhook=recorder.webhook),
        agent_version="0.1.0",
    )
