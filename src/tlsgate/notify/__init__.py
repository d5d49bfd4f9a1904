"""tlsgate.notify: the expiry communications plan and its delivery, each message exactly once."""

from tlsgate.notify.channels import DeliveryError, SmtpSettings, WebhookSettings, send_email, send_webhook, sign_webhook
from tlsgate.notify.config import NotifySettings, load_notify_settings
from tlsgate.notify.engine import Notifier, RunReport, Senders
from tlsgate.notify.messages import Fleet, Message
from tlsgate.notify.plan import DEFAULT_PLAN, Channel, PlanItem, PlannedMessage, Severity, due_messages, plan_for

__all__ = [
    "DEFAULT_PLAN",
    "Channel",
    "DeliveryError",
    "Fleet",
    "Message",
    "Notifier",
    "NotifySettings",
    "PlanItem",
    "PlannedMessage",
    "RunReport",
    "Senders",
    "Severity",
    "SmtpSettings",
    "WebhookSettings",
    "due_messages",
    "load_notify_settings",
    "plan_for",
    "send_email",
    "send_webhook",
    "sign_webhook",
]
