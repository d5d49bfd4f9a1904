"""The do-not-inspect host list as people type it: one host or ``*.domain`` per line, ``#`` comments."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from tlsgate.errors import ConfigError

__all__ = ["MAX_HOSTS", "normalize_list_entry", "parse_host_list"]

MAX_HOSTS = 10_000
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_list_entry(text: str) -> str:
    """``Example.COM.`` → ``example.com``; ``*.bank.test`` stays a wildcard; IP literals are canonical."""
    host = text.strip().lower().rstrip(".")
    if not host:
        raise ConfigError("empty host name")
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigError(f"not a host name: {text.strip()!r}") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(f"not a host name: {text.strip()!r}")
    return ("*." if wildcard else "") + name


def parse_host_list(lines: Iterable[str]) -> list[str]:
    out: dict[str, None] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line:
            out[normalize_list_entry(line)] = None
    if len(out) > MAX_HOSTS:
        raise ConfigError(f"at most {MAX_HOSTS} hosts")
    return sorted(out)
