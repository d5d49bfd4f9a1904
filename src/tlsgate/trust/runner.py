"""The one place where tlsgate.trust runs programs (update-ca-certificates, certutil, keytool).

Adapters take a :class:`CommandRunner`, so unit tests pass a fake and
integration tests the real :func:`run_command`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tlsgate.errors import TrustStoreError

__all__ = ["CommandResult", "CommandRunner", "checked", "run_command"]


@dataclass(frozen=True, slots=True)
class CommandResult:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class CommandRunner(Protocol):
    def __call__(
        self, args: Sequence[str], *, input_data: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> CommandResult: ...


def run_command(
    args: Sequence[str], *, input_data: bytes | None = None, env: Mapping[str, str] | None = None
) -> CommandResult:
    """Run a program; a missing program or a time-out is a TrustStoreError, never a traceback."""
    if shutil.which(args[0]) is None:
        raise TrustStoreError(f"{args[0]} is not installed")
    try:
        proc = subprocess.run(
            list(args),
            input=input_data,
            capture_output=True,
            timeout=300,
            check=False,
            env=None if env is None else dict(env),
        )
    except subprocess.TimeoutExpired:
        raise TrustStoreError(f"{args[0]} did not finish within 300 s") from None
    return CommandResult(tuple(args), proc.returncode, proc.stdout, proc.stderr)


def checked(result: CommandResult, what: str) -> CommandResult:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
        raise TrustStoreError(
            f"{what} failed ({result.args[0]} exit {result.returncode}: {detail[-1] if detail else ''})"
        )
    return result
