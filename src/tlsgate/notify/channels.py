"""Delivery: e-mail over SMTP and signed webhooks. Each send either returns or raises DeliveryError.

* SMTP: STARTTLS (verified) when the server offers it or when required, optional
  AUTH; implicit TLS on port 465 style with ``ssl=True``.
* Webhook: a JSON POST whose body is signed with HMAC-SHA256 over
  ``<timestamp>.<body>`` (header ``X-Tlsgate-Signature: t=<ts>,v1=<hex>``), with an
  ``Idempotency-Key`` header so a receiver can drop a duplicate; retried with
  back-off on network errors and 5xx.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import httpx

from tlsgate.errors import TlsgateError

__all__ = ["DeliveryError", "SmtpSettings", "WebhookSettings", "send_email", "send_webhook", "sign_webhook"]


class DeliveryError(TlsgateError):
    """A channel could not deliver a message (it will be retried)."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "tlsgate@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = True  # require STARTTLS (verified) before anything is sent
    ssl: bool = False  # implicit TLS (port 465)
    ca_file: str | None = None  # a private CA for the SMTP server's certificate
    timeout: float = 30.0


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def send_email(settings: SmtpSettings, recipient: str, subject: str, body: str, message_id: str) -> None:
    # Subjects run ~90 characters; RFC 5322 allows 998 per line, and an unfolded subject reads the same everywhere.
    message = EmailMessage(policy=email_policy.SMTP.clone(max_line_length=200))
    message["From"] = settings.sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = f"<{hashlib.sha256(message_id.encode()).hexdigest()[:32]}@tlsgate>"
    message.set_content(body)
    try:
        if settings.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=_tls_context(settings.ca_file)
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            client.ehlo()
            if not settings.ssl and settings.starttls:
                if not client.has_extn("starttls"):
                    raise DeliveryError(f"SMTP server {settings.host} does not offer STARTTLS, which is required")
                client.starttls(context=_tls_context(settings.ca_file))
                client.ehlo()
            if settings.username:
                client.login(settings.username, settings.password or "")
            client.send_message(message)
        except BaseException:
            client.close()
            raise
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"e-mail to {recipient} via {settings.host}:{settings.port} failed: {exc}") from None
    # The server accepted the message: it is delivered, whatever the goodbye says (a failing QUIT
    # must not turn into a retry, which would send it twice).
    with contextlib.suppress(smtplib.SMTPException, OSError):
        client.quit()


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    secret: str
    ca_file: str | None = None
    attempts: int = 4
    first_delay: float = 1.0
    timeout: float = 15.0


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def send_webhook(
    settings: WebhookSettings,
    payload: Mapping[str, Any],
    idempotency_key: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> None:
    body = json.dumps(payload, sort_keys=True).encode()
    delay = settings.first_delay
    last = ""
    with httpx.Client(verify=_tls_context(settings.ca_file), timeout=settings.timeout, transport=transport) as client:
        for attempt in range(1, settings.attempts + 1):
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Tlsgate-Signature": sign_webhook(settings.secret, timestamp, body),
                "Idempotency-Key": idempotency_key,
            }
            try:
                response = client.post(settings.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refused it: retrying will not help
            if attempt < settings.attempts:
                sleep(delay)
                delay *= 2
    raise DeliveryError(f"webhook {settings.url} failed: {last}")
