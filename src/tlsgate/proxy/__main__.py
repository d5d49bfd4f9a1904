"""The proxy's worker process: ``tlsgate proxy`` checks its options, then becomes this (exec).

The data path then runs in a process image holding only what serving needs — the proxy, the
CA's leaf minting, uvloop — not the CLI with every command's modules (Typer, Rich, the portal
and agent commands): ~15 MiB less resident memory, measured on an idle proxy (56 → 41 MiB).
The settings come as JSON in ``TLSGATE_PROXY_SETTINGS`` (not argv: a database URL may carry a
password, and argv is world-readable in ``ps``); the argument only names the address for ``ps``.
"""

from __future__ import annotations

import os
import sys

from tlsgate.errors import TlsgateError
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.workers import run_proxy

SETTINGS_ENV = "TLSGATE_PROXY_SETTINGS"


def main() -> int:
    text = os.environ.pop(SETTINGS_ENV, None)
    if text is None:
        print(f"tlsgate: error: {SETTINGS_ENV} is not set (start the proxy with 'tlsgate proxy')", file=sys.stderr)
        return 2
    try:
        run_proxy(ProxySettings.from_json(text))
    except TlsgateError as exc:
        print(f"tlsgate: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
