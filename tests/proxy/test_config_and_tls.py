"""Settings from TOML and flags; TLS failure reasons; the error page; access event JSON."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from tlsgate.errors import ConfigError
from tlsgate.proxy import AccessEvent, ProxySettings, load_settings, parse_listen
from tlsgate.proxy.tlsinfo import client_rejection, error_page, looks_like_tls, upstream_failure_reason


def test_toml_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        'listen = "0.0.0.0:8080"\nbypass = ["*.bank.example"]\n[limits]\nmax_header_count = 50\n'
        "[timeouts]\nidle = 5\nupstream_connect = 2.5\n"
    )
    settings = load_settings(config, listen="127.0.0.1:3129", bypass=("*.health.example",), workers=None)
    assert (settings.host, settings.port) == ("127.0.0.1", 3129)
    assert settings.bypass == ("*.bank.example", "*.health.example")
    assert settings.max_header_count == 50
    assert (settings.idle_timeout, settings.upstream_connect_timeout) == (5.0, 2.5)


def test_settings_survive_the_hand_over_to_the_worker_process(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        listen="127.0.0.1:3129",
        upstream_ca=tmp_path / "extra.pem",
        bypass=("*.bank.example",),
        database_url="postgresql+psycopg://gw:secret@db/gw",
        ca_dir=tmp_path / "ca",
    )
    assert ProxySettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize("text", ["[]", "{", '{"port": 1, "nonsense": 2}', '{"workers": 0}'])
def test_unusable_worker_settings_are_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"unusable proxy settings|workers must be"):
        ProxySettings.from_json(text)


@pytest.mark.parametrize(
    "text",
    [
        "nonsense = 1",
        "[limits]\nmax_nothing = 1",
        "workers = 0",
        "not toml [",
        "workers = true",
        "pool_max_idle = 0",
        'access_log = ["a"]',
        '[limits]\nmax_header_count = "many"',
        '[timeouts]\nidle = "soon"',
        "[timeouts]\nidle = nan",
        "[timeouts]\nupstream_connect = inf",
        "limits = 5",
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(config)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:3128") == ("127.0.0.1", 3128)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ConfigError):
        parse_listen("localhost")


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, message)
    error.verify_code = code
    error.verify_message = message
    return error


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (10, "certificate expired"),
        (9, "not yet valid"),
        (62, "wrong host"),
        (18, "self-signed"),
        (19, "untrusted issuer"),
        (20, "incomplete chain"),
        (66, "weak key"),
    ],
)
def test_upstream_reasons(code: int, reason: str) -> None:
    assert reason in upstream_failure_reason(_verify_error(code, "x"))


def test_other_failures() -> None:
    assert upstream_failure_reason(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert upstream_failure_reason(TimeoutError()) == "upstream connect timeout"
    assert client_rejection(ValueError()) is None


def test_tls_detection() -> None:
    assert looks_like_tls(b"\x16\x03\x01\x02\x00")
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")
    assert not looks_like_tls(b"")


def test_error_page_escapes() -> None:
    page = error_page(502, "Upstream failure", "<script>.test", "a & b").decode()
    assert "&lt;script&gt;.test" in page
    assert "a &amp; b" in page


def test_access_event_json() -> None:
    event = AccessEvent(0.0, "127.0.0.1:1", "GET", "https", "a.test", 443, "/", 200, 0, 5, 1.23456, "inspect")
    data = json.loads(event.to_json())
    assert data["time"] == "1970-01-01T00:00:00.000+00:00"
    assert data["duration_ms"] == 1.235
    assert data["tls_error"] is None
