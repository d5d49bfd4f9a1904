"""Which modules the compiled build turns into C extensions, and whether this process runs them.

The compiled build (``setup.py`` with ``TLSGATE_COMPILE=1``) compiles :data:`MODULES` with mypyc
from the same sources; the rest of tlsgate is interpreted either way. ``tlsgate --version`` says
which build runs, so does the bench, and the test suite's compiled pass checks it. This module
imports nothing but the standard library: ``setup.py`` reads :data:`MODULES` from it.
"""

from __future__ import annotations

import importlib
import importlib.machinery

__all__ = ["MODULES", "build", "compiled"]

#: the proxy's per-request modules: HTTP/1 around llhttp, head rewrites, the exchange, its events
MODULES = (
    "tlsgate.proxy.access",
    "tlsgate.proxy.events",
    "tlsgate.proxy.exchange",
    "tlsgate.proxy.headers",
    "tlsgate.proxy.http1",
)


def _is_extension(name: str) -> bool:
    spec = importlib.import_module(name).__spec__
    origin = (spec.origin if spec else None) or ""
    return origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled() -> bool:
    """True when every module of :data:`MODULES` was loaded from its compiled extension."""
    return build() == "compiled"


def build() -> str:
    """``compiled``, ``interpreted``, or ``partly compiled`` (a broken build: some extensions missing)."""
    flags = [_is_extension(name) for name in MODULES]
    if all(flags):
        return "compiled"
    return "partly compiled" if any(flags) else "interpreted"
