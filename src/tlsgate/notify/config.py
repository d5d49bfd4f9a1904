"""Notifier settings: who gets what, over which channels, on which plan. From a TOML file.

[notify]
portal_url = "https://gateway.example.com:8180"
email = ["secops@example.com", "helpdesk@example.com"]

[notify.smtp]
host = "smtp.example.com"
port = 587
sender = "tlsgate@example.com"
username = "tlsgate"
password_env = "TLSGATE_SMTP_PASSWORD"   # secrets come from the environment, never the file
starttls = true
ca_file = "/etc/tlsgate/smtp-ca.pem"     # optional

[[notify.webhook]]
url = "https://hooks.example.com/tlsgate"
secret_env = "TLSGATE_WEBHOOK_SECRET"

[[notify.plan]]                          # optional: replaces the default plan
name = "announcement"
days_before = 335
channels = ["email", "status", "webhook"]
severity = "info"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tlsgate.errors import ConfigError
from tlsgate.notify.channels import SmtpSettings, WebhookSettings
from tlsgate.notify.plan import DEFAULT_PLAN, Channel, PlanItem, Severity

__all__ = ["NotifySettings", "load_notify_settings"]


@dataclass(frozen=True, slots=True)
class NotifySettings:
    plan: tuple[PlanItem, ...] = DEFAULT_PLAN
    email: tuple[str, ...] = ()
    smtp: SmtpSettings | None = None
    webhooks: tuple[WebhookSettings, ...] = ()
    portal_url: str = "http://127.0.0.1:8180"
    max_attempts: int = 8

    @property
    def portal_alert_days(self) -> int | None:
        """How many days before expiry the plan raises the portal's alert (None: the plan has none)."""
        days = [item.before_expiry.days for item in self.plan if Channel.PORTAL in item.channels]
        return max(days) if days else None

    def recipients(self, channel: Channel) -> tuple[str, ...]:
        if channel is Channel.EMAIL:
            return self.email if self.smtp is not None else ()
        if channel is Channel.WEBHOOK:
            return tuple(w.url for w in self.webhooks)
        return ("status-page",) if channel is Channel.STATUS else ("portal",)


def load_notify_settings(path: Path | None, env: Mapping[str, str] | None = None) -> NotifySettings:
    if path is None:
        return NotifySettings()
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")).get("notify", {})
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return _parse(data, env)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: bad [notify] settings ({exc})") from None


def _secret(table: Mapping[str, Any], key: str, env: Mapping[str, str]) -> str | None:
    name = table.get(key)
    if name is None:
        return None
    value = env.get(str(name))
    if not value:
        raise ConfigError(f"the environment variable {name} (from {key}) is not set")
    return value


def _parse(data: Mapping[str, Any], env: Mapping[str, str]) -> NotifySettings:
    smtp = None
    if "smtp" in data:
        s = data["smtp"]
        smtp = SmtpSettings(
            host=str(s["host"]),
            port=int(s.get("port", 587)),
            sender=str(s.get("sender", "tlsgate@localhost")),
            username=s.get("username"),
            password=_secret(s, "password_env", env),
            starttls=bool(s.get("starttls", True)),
            ssl=bool(s.get("ssl", False)),
            ca_file=s.get("ca_file"),
        )
    webhooks = tuple(
        WebhookSettings(url=str(w["url"]), secret=_secret(w, "secret_env", env) or "", ca_file=w.get("ca_file"))
        for w in data.get("webhook", [])
    )
    for hook in webhooks:
        if not hook.url.startswith("https://") and not hook.url.startswith("http://127.0.0.1"):
            raise ConfigError(f"webhook URL {hook.url!r} must be https:// (payloads are signed, not encrypted)")
        if not hook.secret:
            raise ConfigError(f"webhook {hook.url!r} needs secret_env (its signature key)")
    plan = DEFAULT_PLAN
    if "plan" in data:
        plan = tuple(
            PlanItem(
                str(p["name"]),
                timedelta(days=float(p["days_before"])),
                tuple(Channel(c) for c in p["channels"]),
                Severity(p.get("severity", "reminder")),
            )
            for p in data["plan"]
        )
    email = tuple(str(a) for a in data.get("email", []))
    if email and smtp is None:
        raise ConfigError("[notify] lists e-mail recipients but has no [notify.smtp] server")
    return NotifySettings(
        plan=plan,
        email=email,
        smtp=smtp,
        webhooks=webhooks,
        portal_url=str(data.get("portal_url", "http://127.0.0.1:8180")),
    )
