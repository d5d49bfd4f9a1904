"""The [notify] settings: a plan, recipients and secrets from the environment; clear errors for bad ones."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tlsgate.errors import ConfigError
from tlsgate.notify import Channel, NotifySettings, load_notify_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tlsgate.toml"
    path.write_text(text)
    return path


def test_defaults_raise_the_portal_alert_seven_weeks_ahead() -> None:
    assert NotifySettings().portal_alert_days == 49


def test_a_full_configuration(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[notify]
portal_url = "https://gw.example.test:8180"
email = ["secops@example.test"]
[notify.smtp]
host = "smtp.example.test"
username = "tlsgate"
password_env = "SMTP_PW"
[[notify.webhook]]
url = "https://hooks.example.test/x"
secret_env = "HOOK_KEY"
[[notify.plan]]
name = "heads-up"
days_before = 90
channels = ["email", "portal"]
""",
    )
    settings = load_notify_settings(path, env={"SMTP_PW": "pw", "HOOK_KEY": "k"})
    assert settings.smtp is not None
    assert settings.smtp.password == "pw"
    assert settings.webhooks[0].secret == "k"
    assert [item.name for item in settings.plan] == ["heads-up"]
    assert settings.portal_alert_days == 90
    assert settings.recipients(Channel.EMAIL) == ("secops@example.test",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[notify]\nemail = ["a@example.test"]\n', "has no [notify.smtp] server"),
        ('[[notify.webhook]]\nurl = "http://hooks.example.test/"\nsecret_env = "K"\n', "must be https://"),
        ('[[notify.webhook]]\nurl = "https://hooks.example.test/"\n', "needs secret_env"),
        ('[notify.smtp]\nhost = "smtp"\npassword_env = "UNSET_VAR"\n', "UNSET_VAR (from password_env) is not set"),
        ('[[notify.plan]]\nname = "x"\ndays_before = 3\nchannels = ["pigeon"]\n', "bad [notify] settings"),
        ("[notify\n", "is not valid TOML"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_notify_settings(write(tmp_path, text), env={"K": "k"})
