"""Trust-store adapters: list, install and remove CA certificates where clients look for them.

Each adapter takes a root prefix or a path, so it works on the real system and
inside a test folder, and a :class:`CommandRunner` for the store's own tool:

* :class:`DebianStore` — ``/usr/local/share/ca-certificates`` + ``update-ca-certificates``
  (its options point it at another tree); clients read ``/etc/ssl/certs``.
* :class:`RhelStore` — ``/etc/pki/ca-trust/source/anchors`` + ``update-ca-trust extract``.
* :class:`NssStore` — an NSS database (Chromium's ``~/.pki/nssdb``, Firefox profiles) via ``certutil``.
* :class:`JavaStore` — a Java keystore (``cacerts``) via ``keytool``.

Files and entries that tlsgate adds are named after the version's identity and
fingerprint (``tlsgate-<spki16>-<sha256 16>``), so a version is found again
exactly; what a store holds is always read back from the store itself.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tlsgate.errors import TrustStoreError
from tlsgate.trust.identity import cert_sha256, parse_pem_bundle, spki_sha256_of
from tlsgate.trust.runner import CommandRunner, checked, run_command

__all__ = ["DebianStore", "JavaStore", "NssStore", "RhelStore", "TrustStore", "entry_name"]


def entry_name(cert: x509.Certificate) -> str:
    """The name tlsgate gives a version in a store: stable, unique, and tied to the identity."""
    return f"tlsgate-{spki_sha256_of(cert)[:16]}-{cert_sha256(cert)[:16]}"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


class TrustStore(abc.ABC):
    kind: ClassVar[str]

    def __init__(self, location: Path, runner: CommandRunner = run_command) -> None:
        self.location = location
        self.runner = runner

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.location}"

    @abc.abstractmethod
    def certificates(self) -> list[x509.Certificate]:
        """Every certificate the store's clients trust (read back from the store)."""

    @abc.abstractmethod
    def install(self, certs: Sequence[x509.Certificate]) -> None: ...

    @abc.abstractmethod
    def remove(self, certs: Sequence[x509.Certificate]) -> None: ...


class _AnchorDirStore(TrustStore):
    """A directory of PEM anchors plus a command that rebuilds the bundle clients read."""

    suffix: ClassVar[str]

    @property
    @abc.abstractmethod
    def anchors(self) -> Path: ...

    @property
    @abc.abstractmethod
    def bundle(self) -> Path: ...

    @abc.abstractmethod
    def _rebuild(self, *, fresh: bool) -> None: ...

    def certificates(self) -> list[x509.Certificate]:
        try:
            return parse_pem_bundle(self.bundle.read_bytes())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TrustStoreError(f"cannot read {self.bundle}: {exc.strerror}") from None

    def install(self, certs: Sequence[x509.Certificate]) -> None:
        if not certs:
            return
        try:
            self.anchors.mkdir(parents=True, exist_ok=True)
            for cert in certs:
                target = self.anchors / f"{entry_name(cert)}{self.suffix}"
                tmp = target.with_suffix(".tmp")
                tmp.write_bytes(_pem(cert))
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
        except OSError as exc:
            raise TrustStoreError(f"cannot write to {self.anchors}: {exc.strerror}") from None
        self._rebuild(fresh=False)

    def remove(self, certs: Sequence[x509.Certificate]) -> None:
        doomed = {cert_sha256(c) for c in certs}
        removed = False
        for path in self._anchor_files():
            try:
                held = parse_pem_bundle(path.read_bytes())
            except OSError:
                continue
            # Only files that hold nothing but doomed certificates go: never someone else's bundle.
            if held and all(cert_sha256(c) in doomed for c in held):
                try:
                    path.unlink()
                except OSError as exc:
                    raise TrustStoreError(f"cannot remove {path}: {exc.strerror}") from None
                removed = True
        if removed:
            self._rebuild(fresh=True)

    def _anchor_files(self) -> Iterator[Path]:
        base = self.anchors.parent if self.anchors.name == "tlsgate" else self.anchors
        if base.is_dir():
            yield from (p for p in base.rglob("*") if p.is_file() and p.suffix in (".crt", ".pem"))


class DebianStore(_AnchorDirStore):
    """Debian/Ubuntu: ``update-ca-certificates`` builds ``/etc/ssl/certs`` from local anchors."""

    kind = "debian"
    suffix = ".crt"

    def __init__(self, root: Path = Path("/"), runner: CommandRunner = run_command) -> None:
        super().__init__(root, runner)
        self.root = root

    @property
    def anchors(self) -> Path:
        return self.root / "usr/local/share/ca-certificates/tlsgate"

    @property
    def certs_dir(self) -> Path:
        """Where OpenSSL clients look (``-CApath``): hashed links and the bundle."""
        return self.root / "etc/ssl/certs"

    @property
    def bundle(self) -> Path:
        return self.certs_dir / "ca-certificates.crt"

    def _rebuild(self, *, fresh: bool) -> None:
        args = ["update-ca-certificates"]
        if fresh:
            args.append("--fresh")
        if self.root != Path("/"):
            r = self.root
            for sub in ("etc/ssl/certs", "usr/share/ca-certificates", "etc/ca-certificates/update.d"):
                (r / sub).mkdir(parents=True, exist_ok=True)
            (r / "etc/ca-certificates.conf").touch()
            args += [
                "--certsconf", str(r / "etc/ca-certificates.conf"),
                "--certsdir", str(r / "usr/share/ca-certificates"),
                "--localcertsdir", str(r / "usr/local/share/ca-certificates"),
                "--etccertsdir", str(r / "etc/ssl/certs"),
                "--hooksdir", str(r / "etc/ca-certificates/update.d"),
            ]  # fmt: skip
        checked(self.runner(args), "update-ca-certificates")


class RhelStore(_AnchorDirStore):
    """RHEL/Fedora: ``update-ca-trust extract`` builds the bundles from ``source/anchors``."""

    kind = "rhel"
    suffix = ".pem"

    def __init__(self, root: Path = Path("/"), runner: CommandRunner = run_command) -> None:
        super().__init__(root, runner)
        self.root = root

    @property
    def anchors(self) -> Path:
        return self.root / "etc/pki/ca-trust/source/anchors"

    @property
    def bundle(self) -> Path:
        return self.root / "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"

    def _rebuild(self, *, fresh: bool) -> None:
        # update-ca-trust has no option for another tree; under a test root it is the fake runner's job.
        checked(self.runner(["update-ca-trust", "extract"]), "update-ca-trust")


_NSS_LINE = re.compile(r"^(?P<nick>.+?)\s{2,}(?P<trust>[a-zA-Z]*,[a-zA-Z]*,[a-zA-Z]*)\s*$")


class NssStore(TrustStore):
    """An NSS database (``cert9.db``): Chromium's ``~/.pki/nssdb`` and Firefox profiles."""

    kind = "nss"

    @property
    def _db(self) -> str:
        return f"sql:{self.location}"

    def nicknames(self) -> list[str]:
        if not (self.location / "cert9.db").exists():
            return []
        out = checked(self.runner(["certutil", "-L", "-d", self._db]), "certutil -L").stdout.decode(errors="replace")
        names = []
        for line in out.splitlines()[3:]:
            match = _NSS_LINE.match(line)
            if match:
                names.append(match["nick"].strip())
        return names

    def certificates(self) -> list[x509.Certificate]:
        seen: dict[str, x509.Certificate] = {}
        for nick in self.nicknames():
            result = self.runner(["certutil", "-L", "-d", self._db, "-n", nick, "-a"])
            for cert in parse_pem_bundle(result.stdout):
                seen.setdefault(cert_sha256(cert), cert)
        return list(seen.values())

    def install(self, certs: Sequence[x509.Certificate]) -> None:
        if not certs:
            return
        if not (self.location / "cert9.db").exists():
            self.location.mkdir(parents=True, exist_ok=True)
            checked(self.runner(["certutil", "-N", "-d", self._db, "--empty-password"]), "certutil -N")
        for cert in certs:
            with _temp_pem(cert) as path:
                # "C,," = trusted CA for TLS server authentication (and nothing else).
                args = ["certutil", "-A", "-d", self._db, "-t", "C,,", "-n", entry_name(cert), "-i", str(path)]
                checked(self.runner(args), "certutil -A")

    def remove(self, certs: Sequence[x509.Certificate]) -> None:
        # NSS groups certificates by subject, so only entries tlsgate named (by fingerprint) are
        # removed one by one; another tool's entry is left for that tool.
        doomed = {entry_name(c) for c in certs}
        for nick in self.nicknames():
            if nick in doomed:
                checked(self.runner(["certutil", "-D", "-d", self._db, "-n", nick]), "certutil -D")


class JavaStore(TrustStore):
    """A Java keystore (``cacerts``), changed with ``keytool``."""

    kind = "java"

    def __init__(self, location: Path, runner: CommandRunner = run_command, storepass: str = "changeit") -> None:
        super().__init__(location, runner)
        self.storepass = storepass

    def _entries(self) -> dict[str, x509.Certificate]:
        if not self.location.exists():
            return {}
        args = ["keytool", "-list", "-rfc", "-keystore", str(self.location), "-storepass", self.storepass]
        out = checked(self.runner(args), "keytool -list").stdout
        entries: dict[str, x509.Certificate] = {}
        for chunk in re.split(rb"^Alias name: ", out, flags=re.MULTILINE)[1:]:
            alias = chunk.split(b"\n", 1)[0].strip().decode(errors="replace")
            certs = parse_pem_bundle(chunk)
            if certs:
                entries[alias] = certs[0]
        return entries

    def certificates(self) -> list[x509.Certificate]:
        return list(self._entries().values())

    def install(self, certs: Sequence[x509.Certificate]) -> None:
        for cert in certs:
            with _temp_pem(cert) as path:
                args = [
                    "keytool", "-importcert", "-noprompt", "-trustcacerts", "-alias", entry_name(cert),
                    "-file", str(path), "-keystore", str(self.location), "-storepass", self.storepass,
                ]  # fmt: skip
                checked(self.runner(args), "keytool -importcert")

    def remove(self, certs: Sequence[x509.Certificate]) -> None:
        doomed = {cert_sha256(c) for c in certs}
        for alias, cert in self._entries().items():
            if cert_sha256(cert) in doomed:
                args = [
                    "keytool",
                    "-delete",
                    "-alias",
                    alias,
                    "-keystore",
                    str(self.location),
                    "-storepass",
                    self.storepass,
                ]
                checked(self.runner(args), "keytool -delete")


@contextlib.contextmanager
def _temp_pem(cert: x509.Certificate) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="tlsgate-", suffix=".pem")
    try:
        os.write(fd, _pem(cert))
        os.close(fd)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
