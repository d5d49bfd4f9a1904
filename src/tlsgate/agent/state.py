"""What the agent remembers between runs, under ``<data-dir>/agent`` (mode 0700).

``state.json`` — the portal, the endpoint id, and the CA identities it trusts
(the one it enrolled for first, then any it accepted through a cross-certificate);
``credential`` — the per-endpoint secret (0600); ``ca-set.json`` — the last
good CA set from the portal, so a portal outage changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlsgate.errors import TrustStoreError
from tlsgate.trust import CAIdentityRef

__all__ = ["AgentFiles", "AgentState"]


@dataclass(frozen=True, slots=True)
class AgentState:
    portal_url: str | None
    endpoint_id: str | None
    identities: tuple[CAIdentityRef, ...]
    portal_ca: str | None = None  # a private CA file that verifies the portal's certificate

    def to_json(self) -> dict[str, Any]:
        return {
            "portal_url": self.portal_url,
            "endpoint_id": self.endpoint_id,
            "identities": [i.to_json() for i in self.identities],
            "portal_ca": self.portal_ca,
        }

    @classmethod
    def from_json(cls, data: Any) -> AgentState:
        try:
            return cls(
                data.get("portal_url"),
                data.get("endpoint_id"),
                tuple(CAIdentityRef.from_json(i) for i in data["identities"]),
                data.get("portal_ca"),
            )
        except (KeyError, TypeError, AttributeError):
            raise TrustStoreError("the agent state file is corrupt; enroll again") from None


class AgentFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self) -> AgentState | None:
        try:
            raw = (self.directory / "state.json").read_text()
        except FileNotFoundError:
            return None
        try:
            return AgentState.from_json(json.loads(raw))
        except json.JSONDecodeError:
            raise TrustStoreError(f"the agent state file {self.directory / 'state.json'} is corrupt") from None

    def save(self, state: AgentState) -> None:
        self._write("state.json", json.dumps(state.to_json(), indent=2).encode(), 0o600)

    def credential(self) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            return (self.directory / "credential").read_text().strip()
        return None

    def save_credential(self, secret: str) -> None:
        self._write("credential", secret.encode() + b"\n", 0o600)

    def load_ca_set(self) -> Any | None:
        try:
            return json.loads((self.directory / "ca-set.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_ca_set(self, data: Any) -> None:
        self._write("ca-set.json", json.dumps(data, indent=2).encode(), 0o644)

    def _write(self, name: str, data: bytes, mode: int) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.directory / name
        tmp = self.directory / f".{name}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
