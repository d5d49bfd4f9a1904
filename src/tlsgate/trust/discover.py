"""Which trust stores this endpoint's software really uses.

Looked for under a root prefix (``/`` on a real system) and a list of home
directories: the Debian or RHEL system store, NSS databases (Chromium's
``~/.pki/nssdb``, the snap Chromium's, every Firefox profile, the system-wide
``/etc/pki/nssdb``), and Java keystores (Debian's ``/etc/ssl/certs/java/cacerts``,
``$JAVA_HOME/lib/security/cacerts`` when it is a file of its own).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from tlsgate.trust.runner import CommandRunner, run_command
from tlsgate.trust.stores import DebianStore, JavaStore, NssStore, RhelStore, TrustStore

__all__ = ["discover_stores"]


def discover_stores(
    root: Path = Path("/"),
    homes: Sequence[Path] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    runner: CommandRunner = run_command,
    create_user_nssdb: bool = False,
) -> list[TrustStore]:
    env = os.environ if env is None else env
    homes = [Path.home()] if homes is None else list(homes)
    stores: list[TrustStore] = []
    if (root / "usr/local/share/ca-certificates").is_dir() and _has(root, "update-ca-certificates"):
        stores.append(DebianStore(root, runner))
    elif (root / "etc/pki/ca-trust/source/anchors").is_dir() and _has(root, "update-ca-trust"):
        stores.append(RhelStore(root, runner))
    nss_dirs: list[Path] = [root / "etc/pki/nssdb"]
    for home in homes:
        nss_dirs += [home / ".pki/nssdb", home / "snap/chromium/current/.pki/nssdb"]
        nss_dirs += sorted(p.parent for p in (home / ".mozilla/firefox").glob("*/cert9.db"))
    for directory in nss_dirs:
        if (directory / "cert9.db").exists():
            stores.append(NssStore(directory, runner))
    if (
        create_user_nssdb
        and homes
        and not any(isinstance(s, NssStore) and s.location == homes[0] / ".pki/nssdb" for s in stores)
    ):
        stores.append(NssStore(homes[0] / ".pki/nssdb", runner))  # Chromium creates it on first start; we may first
    seen: set[Path] = set()
    candidates = [root / "etc/ssl/certs/java/cacerts"]
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]) / "lib/security/cacerts")
    for keystore in candidates:
        if keystore.is_file() and keystore.resolve() not in seen:
            seen.add(keystore.resolve())
            stores.append(JavaStore(keystore, runner))
    return stores


def _has(root: Path, program: str) -> bool:
    if root == Path("/"):
        return shutil.which(program) is not None
    return (
        any((root / d / program).exists() for d in ("usr/sbin", "usr/bin", "sbin", "bin"))
        or shutil.which(program) is not None
    )
