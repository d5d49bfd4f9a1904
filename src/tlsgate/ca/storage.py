"""The CA directory on disk: atomic writes, the manifest, and a lock.

Layout under ``<data-dir>/ca`` (mode 0700)::

    manifest.json                 which identities, versions and cross-certificates make up the CA
    keys/<identity>.key.pem       private keys, 0600, PKCS#8 (encrypted when a passphrase is set)
    certs/<identity>/<serial>.pem one file per version, never rewritten
    cross/<subject>-by-<issuer>.pem

Rules: a file is never changed once written; an operation writes its new
files first (create-exclusive, fsync, rename), then replaces ``manifest.json``
atomically (write, fsync, rename, fsync the directory). A crash at any point
leaves the previous manifest, and with it the previous CA, intact; files that
a crashed operation wrote are unreferenced and harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlsgate.errors import CAError, CANotFoundError

__all__ = ["MANIFEST_FORMAT", "CADirectory", "CrossEntry", "IdentityEntry", "Manifest"]

MANIFEST_FORMAT = 1


@dataclass(frozen=True, slots=True)
class IdentityEntry:
    id: str
    role: str
    key_file: str
    parent: str | None
    versions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CrossEntry:
    subject: str
    issuer: str
    file: str


@dataclass(frozen=True, slots=True)
class Manifest:
    identities: tuple[IdentityEntry, ...]
    crosses: tuple[CrossEntry, ...]
    current_root: str
    issuer: str
    passphrase_env: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "current_root": self.current_root,
            "issuer": self.issuer,
            "passphrase_env": self.passphrase_env,
            "identities": [
                {"id": i.id, "role": i.role, "key_file": i.key_file, "parent": i.parent, "versions": list(i.versions)}
                for i in self.identities
            ],
            "crosses": [{"subject": c.subject, "issuer": c.issuer, "file": c.file} for c in self.crosses],
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        try:
            if data["format"] != MANIFEST_FORMAT:
                raise CAError(f"CA manifest format {data['format']} is not supported by this version of tlsgate")
            return cls(
                identities=tuple(
                    IdentityEntry(
                        id=str(i["id"]),
                        role=str(i["role"]),
                        key_file=str(i["key_file"]),
                        parent=i["parent"],
                        versions=tuple(str(v) for v in i["versions"]),
                    )
                    for i in data["identities"]
                ),
                crosses=tuple(
                    CrossEntry(subject=str(c["subject"]), issuer=str(c["issuer"]), file=str(c["file"]))
                    for c in data["crosses"]
                ),
                current_root=str(data["current_root"]),
                issuer=str(data["issuer"]),
                passphrase_env=data.get("passphrase_env"),
            )
        except (KeyError, TypeError) as exc:
            raise CAError(f"CA manifest is corrupt (missing or bad field {exc})") from None


class CADirectory:
    """File access for one CA directory. Paths given to it are relative to the directory."""

    MANIFEST = "manifest.json"

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return (self.path / self.MANIFEST).is_file()

    def read_manifest(self) -> Manifest:
        try:
            raw = (self.path / self.MANIFEST).read_bytes()
        except FileNotFoundError:
            raise CANotFoundError(f"no CA in {self.path} (create one with 'tlsgate ca init')") from None
        except OSError as exc:
            raise CAError(f"cannot read {self.path / self.MANIFEST}: {exc.strerror}") from None
        try:
            return Manifest.from_json(json.loads(raw))
        except json.JSONDecodeError:
            raise CAError(f"CA manifest {self.path / self.MANIFEST} is corrupt (not JSON)") from None

    def read(self, relative: str) -> bytes:
        target = self._resolve(relative)
        try:
            return target.read_bytes()
        except OSError as exc:
            raise CAError(f"cannot read CA file {target}: {exc.strerror}") from None

    def write_new(self, relative: str, data: bytes, *, private: bool = False) -> None:
        """Write a file that must not exist yet; durable before this returns."""
        target = self._resolve(relative)
        self._make_dirs(target.parent)
        if target.exists():
            raise CAError(f"refusing to overwrite CA file {target}")
        _atomic_write(target, data, 0o600 if private else 0o644)

    def commit(self, manifest: Manifest) -> None:
        """Make ``manifest`` the CA's state: the single atomic step of every operation."""
        self._make_dirs(self.path)
        body = json.dumps(manifest.to_json(), indent=2).encode() + b"\n"
        _atomic_write(self.path / self.MANIFEST, body, 0o644)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock so two operations never interleave on one CA."""
        self._make_dirs(self.path)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _resolve(self, relative: str) -> Path:
        target = (self.path / relative).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise CAError(f"CA manifest points outside the CA directory: {relative!r}")
        return target

    def _make_dirs(self, directory: Path) -> None:
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CAError(f"cannot create {directory}: {exc.strerror}") from None


def _atomic_write(target: Path, data: bytes, mode: int) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CAError(f"cannot write {target}: {exc.strerror}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
