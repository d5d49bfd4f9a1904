"""Host-glob rules and the decision they give for a ``host:port``.

Rules:

* a pattern is a host name, optionally with ``:port``; ``*.bank.example`` matches any name
  *below* ``bank.example`` (any depth) but not ``bank.example`` itself, as a browser's
  wildcard intuition suggests; a ``*`` inside a label matches within that label only;
* names compare case-insensitively, without a trailing dot;
* ``block`` wins over ``bypass``, which wins over the default (``inspect``).

Decisions are cached per ``(host, port)`` in a bounded dict, because the proxy asks on every
request of every connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from tlsgate.errors import PolicyError

__all__ = ["Action", "Decision", "HostPattern", "Policy"]

_CACHE_LIMIT = 8192
_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9*_.\-\[\]:]+$")


class Action(StrEnum):
    INSPECT = "inspect"
    BYPASS = "bypass"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One glob such as ``*.bank.example`` or ``intranet.example:8443``."""

    text: str
    regex: re.Pattern[str]
    port: int | None

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        raw = text.strip()
        if not raw or not _PATTERN_CHARS.match(raw):
            raise PolicyError(f"invalid host pattern {text!r}")
        host, port = raw, None
        if raw.startswith("["):  # [v6]:port
            end = raw.find("]")
            if end < 0:
                raise PolicyError(f"invalid host pattern {text!r}")
            host, rest = raw[1:end], raw[end + 1 :]
            if rest:
                port = _port(rest.removeprefix(":"), text)
        elif raw.count(":") == 1:
            host, port_text = raw.split(":")
            port = _port(port_text, text)
        host = host.lower().rstrip(".")
        if not host:
            raise PolicyError(f"invalid host pattern {text!r}")
        parts: list[str] = []
        rest = host
        if rest == "*":
            parts.append(r"[^/]+")
            rest = ""
        elif rest.startswith("*."):
            parts.append(r"(?:[^.]+\.)+")
            rest = rest[2:]
        parts.append(".".join(re.escape(label).replace(r"\*", "[^.]*") for label in rest.split(".")) if rest else "")
        return cls(raw, re.compile("".join(parts) + r"\Z"), port)

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return self.regex.match(host) is not None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: the pattern that decided, or None for the default
    rule: str | None = None


class Policy:
    """Inspect, bypass or block a ``host:port``; immutable once built, safe to share."""

    def __init__(
        self,
        *,
        bypass: Iterable[str] = (),
        block: Iterable[str] = (),
        default: Action = Action.INSPECT,
    ) -> None:
        self._block = tuple(HostPattern.parse(p) for p in block)
        self._bypass = tuple(HostPattern.parse(p) for p in bypass)
        self._default = Decision(default)
        self._cache: dict[tuple[str, int], Decision] = {}

    @property
    def bypass_patterns(self) -> tuple[str, ...]:
        return tuple(p.text for p in self._bypass)

    @property
    def block_patterns(self) -> tuple[str, ...]:
        return tuple(p.text for p in self._block)

    def decide(self, host: str, port: int) -> Decision:
        key = (host, port)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(normalise(host), port)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _decide(self, host: str, port: int) -> Decision:
        for action, patterns in ((Action.BLOCK, self._block), (Action.BYPASS, self._bypass)):
            for pattern in patterns:
                if pattern.matches(host, port):
                    return Decision(action, pattern.text)
        return self._default


def normalise(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _port(text: str, pattern: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PolicyError(f"invalid port in host pattern {pattern!r}")
    return int(text)
