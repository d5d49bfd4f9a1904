"""The proxy's worker process: ``tlsgate proxy`` checks its options, then becomes this (exec).

The data path then runs in a process image holding only what serving needs — the proxy, the
CA's leaf minting, uvloop — not the CLI with every command's modules (Typer, Rich, the portal
and agent commands): ~15 MiB less resident memory, measured on an idle proxy (56 → 41 MiB).

``python -P -m tlsgate.proxy --settings-fd N HOST:PORT``: the settings are JSON in the
anonymous file open on descriptor N (inherited from ``tlsgate proxy``; never in argv, where a
database URL's password would show in ``ps``); HOST:PORT only names the process for people.
"""

from __future__ import annotations

import os
import sys

from tlsgate.errors import TlsgateError
from tlsgate.proxy.config import ProxySettings
from tlsgate.proxy.workers import run_proxy

USAGE = "tlsgate: error: the proxy worker is started by 'tlsgate proxy', not directly"


def _read_settings(argv: list[str]) -> ProxySettings | None:
    if len(argv) != 3 or argv[0] != "--settings-fd" or not argv[1].isdigit():
        return None
    try:
        with os.fdopen(int(argv[1]), "rb") as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return ProxySettings.from_json(text)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = _read_settings(sys.argv[1:] if argv is None else argv)
        if settings is None:
            print(USAGE, file=sys.stderr)
            return 2
        run_proxy(settings)
    except TlsgateError as exc:
        print(f"tlsgate: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
