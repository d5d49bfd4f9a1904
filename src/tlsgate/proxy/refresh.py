"""Changes that reach a running proxy without a restart: the CA and the do-not-inspect list.

Every ``interval`` seconds a worker checks the CA manifest (a ``stat``; a renewed
or rotated CA gets a fresh :class:`~tlsgate.ca.LeafIssuer`, so no stale leaf is
served) and, when a database is configured, reads the do-not-inspect list in a
thread (so the event loop never waits on SQL) and rebuilds the policy from the
configured globs plus the stored hosts. A failed read keeps what is in force and
is reported once, not every tick.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.errors import TlsgateError
from tlsgate.policy import Policy

__all__ = ["LiveConfig"]


class _Swappable(Protocol):
    issuer: LeafIssuer
    policy: Policy


class LiveConfig:
    def __init__(
        self,
        server: _Swappable,
        *,
        ca_dir: Path,
        bypass: Sequence[str],
        block: Sequence[str],
        stored_bypass: Callable[[], Sequence[str]] | None = None,
        interval: float = 2.0,
    ) -> None:
        self.server = server
        self.ca_dir = ca_dir
        self.bypass = tuple(bypass)
        self.block = tuple(block)
        self.stored_bypass = stored_bypass
        self.interval = interval
        self._ca_stamp = self._stamp()
        self._stored: tuple[str, ...] = ()
        self._failing: str | None = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.ca_dir / "manifest.json")
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        stamp = self._stamp()
        if stamp != self._ca_stamp:
            try:
                ca = await asyncio.to_thread(CertificateAuthority.load, self.ca_dir)
                issuer = LeafIssuer(await asyncio.to_thread(ca.issuing_material), clock=ca.clock)
            except TlsgateError as exc:
                self._report(f"kept the previous CA: {exc}")
            else:
                self.server.issuer = issuer
                self._ca_stamp = stamp
                print(f"tlsgate proxy: CA changed; now issuing under {ca.issuer.current.subject}", file=sys.stderr)
        if self.stored_bypass is not None:
            try:
                stored = tuple(await asyncio.to_thread(self.stored_bypass))
            except Exception as exc:
                self._report(f"kept the previous do-not-inspect list: {exc}")
                return
            self._failing = None
            if stored != self._stored:
                try:
                    policy = Policy(bypass=self.bypass + stored, block=self.block)
                except TlsgateError as exc:
                    self._report(f"kept the previous do-not-inspect list: {exc}")
                    return
                self._stored = stored
                self.server.policy = policy

    def _report(self, message: str) -> None:
        if message != self._failing:
            self._failing = message
            print(f"tlsgate proxy: {message}", file=sys.stderr, flush=True)
