"""Proxy settings: one frozen dataclass, built from a TOML file and command-line overrides.

Nothing here reads the environment or opens sockets; ``tlsgate.cli.proxy`` builds the
settings and passes them in.

TOML keys (all optional), e.g.::

    listen = "127.0.0.1:3128"
    workers = 1
    upstream_ca = "/etc/tlsgate/extra-roots.pem"
    bypass = ["*.bank.example"]
    block = ["ads.example"]
    access_log = "-"
    connect_without_tls = "http"        # or "refuse"
    [limits]
    max_request_line = 8192
    max_header_bytes = 65536
    max_header_count = 100
    max_connections = 10000
    [timeouts]                          # seconds
    handshake = 10.0
    idle = 60.0
    upstream_connect = 10.0
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlsgate.errors import ConfigError

__all__ = ["DEFAULT_WORKERS", "ProxySettings", "load_settings", "parse_listen"]

#: Measured on the 2-core reference machine: 1 worker beat 2 (the load client and origin need a core).
DEFAULT_WORKERS = 1


@dataclass(frozen=True, slots=True)
class ProxySettings:
    #: where the CA lives (``<data dir>/ca``); needed by :func:`tlsgate.proxy.run_proxy`
    ca_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 3128
    workers: int = DEFAULT_WORKERS
    upstream_ca: Path | None = None
    bypass: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    #: "-" for stdout, a path, or None for no access events
    access_log: str | None = None
    #: what to do with a CONNECT whose first bytes are not TLS: "http" (serve as plain HTTP) or "refuse"
    connect_without_tls: str = "http"
    max_request_line: int = 8192
    max_header_bytes: int = 65536
    max_header_count: int = 100
    max_connections: int = 10000
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0
    upstream_connect_timeout: float = 10.0
    #: idle upstream connections kept per origin, and for how long
    pool_per_origin: int = 64
    pool_idle_timeout: float = 30.0
    #: idle upstream connections kept across all origins: each idle TLS connection holds ~30 KiB
    #: (OpenSSL's state and record buffers) and a socket, so browsing many hosts must not pool them all
    pool_max_idle: int = 64
    drain_timeout: float = 30.0
    #: the store whose do-not-inspect list the proxy follows (polled; None: only ``bypass``)
    database_url: str | None = None
    #: how often the CA and the stored do-not-inspect list are checked for changes, in seconds
    refresh_interval: float = 2.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.connect_without_tls not in ("http", "refuse"):
            raise ConfigError("connect_without_tls must be 'http' or 'refuse'")
        for name in (
            "max_request_line",
            "max_header_bytes",
            "max_header_count",
            "max_connections",
            "pool_per_origin",
            "pool_max_idle",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive")
        for name in (
            "handshake_timeout",
            "idle_timeout",
            "upstream_connect_timeout",
            "drain_timeout",
            "refresh_interval",
            "pool_idle_timeout",
        ):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):  # NaN fails both
                raise ConfigError(f"{name} must be a positive number of seconds")

    def replace(self, **changes: Any) -> ProxySettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The settings as JSON, for the worker process ``tlsgate proxy`` hands over to."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _PATH_FIELDS:
            if values[name] is not None:
                values[name] = str(values[name])
        try:
            return json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"unusable proxy settings: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ProxySettings:
        try:
            values = json.loads(text)
            if not isinstance(values, dict):
                raise TypeError("not an object")
            for name in _PATH_FIELDS:
                if values.get(name) is not None:
                    values[name] = Path(values[name])
            for name in ("bypass", "block"):
                values[name] = tuple(values.get(name, ()))
            return cls(**values)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"unusable proxy settings: {exc}") from exc


_PATH_FIELDS = ("ca_dir", "upstream_ca")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` or ``:PORT`` (all interfaces)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--listen wants HOST:PORT, got {text!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":PORT" asks for every interface
    return host, int(port)


_LIMIT_KEYS = {"max_request_line", "max_header_bytes", "max_header_count", "max_connections"}
_TIMEOUT_KEYS = {
    "handshake": "handshake_timeout",
    "idle": "idle_timeout",
    "upstream_connect": "upstream_connect_timeout",
    "drain": "drain_timeout",
    "pool_idle": "pool_idle_timeout",
}


def load_settings(path: Path | None, **overrides: Any) -> ProxySettings:
    """Settings from an optional TOML file, then the given overrides (None values are ignored)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        values.update(_from_toml(data, path))
    for key, value in overrides.items():
        if value is None or (key in ("bypass", "block") and not value):
            continue
        if key in ("bypass", "block"):
            value = tuple(values.get(key, ())) + tuple(value)
        if key == "listen":
            values["host"], values["port"] = parse_listen(value)
            continue
        values[key] = value
    try:
        return ProxySettings(**values)
    except TypeError as exc:
        raise ConfigError(f"unknown proxy setting: {exc}") from exc


def _from_toml(data: dict[str, Any], path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "listen":
            values["host"], values["port"] = parse_listen(str(value))
        elif key in ("bypass", "block"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: {key} must be a list of host globs")
            values[key] = tuple(value)
        elif key == "upstream_ca":
            if not isinstance(value, str):
                raise ConfigError(f"{path}: upstream_ca must be a file path")
            values[key] = Path(value)
        elif key in ("workers", "pool_per_origin", "pool_max_idle"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{path}: {key} must be a whole number")
            values[key] = value
        elif key in ("access_log", "connect_without_tls", "database_url"):
            if not isinstance(value, str):
                raise ConfigError(f"{path}: {key} must be a string")
            values[key] = value
        elif key in ("limits", "timeouts") and not isinstance(value, dict):
            raise ConfigError(f"{path}: {key} must be a table ([{key}])")
        elif key == "limits" and isinstance(value, dict):
            for name, number in value.items():
                if name not in _LIMIT_KEYS:
                    raise ConfigError(f"{path}: unknown limit {name!r}")
                if not isinstance(number, int) or isinstance(number, bool):
                    raise ConfigError(f"{path}: limit {name} must be a whole number")
                values[name] = number
        elif key == "timeouts" and isinstance(value, dict):
            for name, seconds in value.items():
                if name not in _TIMEOUT_KEYS:
                    raise ConfigError(f"{path}: unknown timeout {name!r}")
                if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                    raise ConfigError(f"{path}: timeout {name} must be a number of seconds")
                values[_TIMEOUT_KEYS[name]] = float(seconds)
        else:
            raise ConfigError(f"{path}: unknown setting {key!r}")
    return values
