"""Everything the portal is built from. No import-time settings: the CLI (or a test) makes one and passes it in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tlsgate.clock import Clock, system_clock
from tlsgate.errors import ConfigError
from tlsgate.store import default_database_url

__all__ = ["DEFAULT_LISTEN", "PortalSettings", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:8180"


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True, slots=True)
class PortalSettings:
    data_dir: Path
    database_url: str | None = None  # None: the SQLite file in the data directory
    host: str = "127.0.0.1"
    port: int = 8180
    clock: Clock = system_clock
    expiry_alert_days: int = 60  # the sign-in modal appears when the current root expires within this many days
    stale_hours: int = 24  # an endpoint without a check-in for this long is "stale"
    session_hours: int = 12
    lockout_failures: int = 5  # failed sign-ins in a row before a user name is locked out
    lockout_minutes: int = 15
    secure_cookies: bool = False  # set when the portal is served over HTTPS
    #: the portal's own TLS certificate chain and key (PEM files); None serves plain HTTP
    tls_cert: Path | None = None
    tls_key: Path | None = None
    initial_admin: str = "admin"
    announce: Callable[[str], None] = field(default=_print, repr=False)  # where the first-start password goes

    @property
    def ca_dir(self) -> Path:
        return self.data_dir / "ca"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.data_dir)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) into its parts."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen wants HOST:PORT, got {text!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)
