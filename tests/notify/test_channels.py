"""Real peers: an SMTP server (aiosmtpd) with STARTTLS and AUTH, and an HTTP webhook receiver, on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.notify import DeliveryError, Fleet, Notifier, NotifySettings, SmtpSettings, WebhookSettings, send_webhook
from tlsgate.store.models import Notification


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.quit_reply = "221 Bye"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return self.quit_reply


def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"tlsgate" and auth_data.password == b"pw"
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real SMTP server that requires STARTTLS (with a certificate from a CA of our own) and AUTH."""
    ca = CertificateAuthority.init(tmp_path / "smtp-ca")
    leaf = LeafIssuer(ca.issuing_material()).get(["127.0.0.1"])
    ca_file = tmp_path / "smtp-ca.pem"
    ca_file.write_bytes(ca.root.current.pem)
    mailbox = Mailbox()
    with socket.socket() as probe:  # aiosmtpd checks its own start by connecting: it needs a real port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, tls_context=leaf.context, require_starttls=True,
        authenticator=authenticator, auth_required=True,
    )  # fmt: skip
    controller.start()
    try:
        yield mailbox, port, str(ca_file)
    finally:
        controller.stop()


class Receiver(BaseHTTPRequestHandler):
    deliveries: list[tuple[dict[str, str], bytes]]
    fail_first: int

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).deliveries.append((dict(self.headers), body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(503)
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_receiver():  # type: ignore[no-untyped-def]
    handler = type("Handler", (Receiver,), {"deliveries": [], "fail_first": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_email_and_webhook_end_to_end_exactly_once(store, clock, tmp_path: Path, smtp_server, webhook_receiver) -> None:
    mailbox, smtp_port, smtp_ca = smtp_server
    handler, hook_url = webhook_receiver
    ca = CertificateAuthority.init(tmp_path / "ca", days=100, clock=clock)
    settings = NotifySettings(
        email=("secops@example.test", "helpdesk@example.test"),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, sender="tlsgate@example.test", username="tlsgate",
                          password="pw", ca_file=smtp_ca),
        webhooks=(WebhookSettings(url=hook_url, secret="hook-secret", first_delay=0.01),),
        portal_url="https://gateway.example.test:8180",
    )  # fmt: skip

    def notifier() -> Notifier:
        return Notifier(
            store, settings, ca_dir=ca.path, fleet=lambda: Fleet(12, 9, 2, 1), clock=clock, agent_version="0.1.0"
        )

    report = notifier().run_once()  # 100 days out: the 6-month reminder is the latest due
    assert not report.failed
    assert len(mailbox.messages) == 2
    sender, _, raw = mailbox.messages[0]
    assert sender == "tlsgate@example.test"
    mail = message_from_bytes(raw, policy=email_policy.default)
    assert (
        mail["Subject"]
        == f"[tlsgate] Reminder: the interception root CA expires in 100 days ({ca.root.current.not_after:%Y-%m-%d})"
    )
    text = mail.get_content()
    assert "9 of 12 endpoints ready, 2 at risk, 1 stale" in text
    assert "https://gateway.example.test:8180/policy/tls" in text
    assert "version 0.1.0 or newer" in text
    assert ca.root.current.subject in text

    (headers, body) = handler.deliveries[0]
    timestamp, signature = (part.split("=", 1)[1] for part in headers["X-Tlsgate-Signature"].split(","))
    expected = hmac.new(b"hook-secret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    payload = json.loads(body)
    assert payload["event"] == "tlsgate.ca.expiry"
    assert headers["Idempotency-Key"] == payload["key"]

    # A restart mid-plan (a new notifier, same database, same day) sends nothing twice.
    assert notifier().run_once().sent == []
    assert len(mailbox.messages) == 2
    assert len(handler.deliveries) == 1
    with store.session() as session:
        rows = session.scalars(select(Notification).where(Notification.channel.in_(("email", "webhook")))).all()
    sent = sorted((r.plan_item.rsplit("/", 1)[1], r.recipient) for r in rows if r.state == "sent")
    assert sent == sorted(
        [("reminder-6-months", "secops@example.test"), ("reminder-6-months", "helpdesk@example.test"),
         ("reminder-6-months", hook_url)]
    )  # fmt: skip
    # Started 100 days out: the older reminders are superseded, not sent in a burst.
    assert {r.plan_item.rsplit("/", 1)[1] for r in rows if r.state == "superseded"} == {
        "announcement",
    }  # fmt: skip
    clock.advance(days=60)  # the 6-week reminder
    assert len(notifier().run_once().sent) >= 3
    assert len(mailbox.messages) == 4


def test_smtp_without_the_right_password_fails_clearly(smtp_server) -> None:
    from tlsgate.notify import send_email

    _, port, ca_file = smtp_server
    settings = SmtpSettings(host="127.0.0.1", port=port, username="tlsgate", password="wrong", ca_file=ca_file)
    with pytest.raises(DeliveryError, match="failed"):
        send_email(settings, "a@example.test", "s", "b", "k")


def test_smtp_refuses_a_server_certificate_it_cannot_verify(smtp_server) -> None:
    from tlsgate.notify import send_email

    _, port, _ = smtp_server
    with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        send_email(
            SmtpSettings(host="127.0.0.1", port=port, username="tlsgate", password="pw"), "a@x.test", "s", "b", "k"
        )


def test_webhook_retries_5xx_then_succeeds(webhook_receiver) -> None:
    handler, url = webhook_receiver
    handler.fail_first = 2
    pauses: list[float] = []
    send_webhook(WebhookSettings(url=url, secret="k", first_delay=1.0), {"subject": "x"}, "key-1", sleep=pauses.append)
    assert len(handler.deliveries) == 3
    assert pauses == [1.0, 2.0]  # back-off doubles
    assert {h["Idempotency-Key"] for h, _ in handler.deliveries} == {"key-1"}


def test_webhook_gives_up_after_its_attempts(webhook_receiver) -> None:
    handler, url = webhook_receiver
    handler.fail_first = 10
    with pytest.raises(DeliveryError, match="HTTP 503"):
        send_webhook(WebhookSettings(url=url, secret="k", attempts=3), {"subject": "x"}, "k", sleep=lambda _: None)
    assert len(handler.deliveries) == 3


def test_a_message_the_server_accepted_is_delivered_even_if_quit_fails(smtp_server) -> None:
    """A rude goodbye after DATA must not become a failure (and so a second copy on retry)."""
    from tlsgate.notify import send_email

    mailbox, port, ca_file = smtp_server
    mailbox.quit_reply = "421 closing"
    settings = SmtpSettings(host="127.0.0.1", port=port, username="tlsgate", password="pw", ca_file=ca_file)
    send_email(settings, "a@example.test", "subject", "body", "key-1")
    assert len(mailbox.messages) == 1
