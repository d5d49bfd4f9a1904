"""The CA lifecycle: create, load, renew in place, rotate with a cross-certificate.

:class:`CertificateAuthority` is the CA as it is on disk. Each operation
builds its new certificates, writes them as new files and then commits a new
manifest in one atomic step (see :mod:`tlsgate.ca.storage`), under a lock. It
never removes a version: renewing adds one, rotating adds an identity.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tlsgate.ca import profiles
from tlsgate.ca.keys import KeyType, PrivateKey, dump_private_key, generate_key, load_private_key, spki_sha256
from tlsgate.ca.model import CAIdentity, CAVersion, CrossCertificate, Role
from tlsgate.ca.storage import CADirectory, CrossEntry, IdentityEntry, Manifest
from tlsgate.clock import Clock, system_clock
from tlsgate.errors import CAError, CAExistsError, PassphraseError

__all__ = ["CA_BACKDATE", "DEFAULT_CA_DAYS", "DEFAULT_SUBJECT", "CertificateAuthority", "IssuingMaterial"]

DEFAULT_SUBJECT = "CN=tlsgate Interception Root CA,O=tlsgate"
DEFAULT_CA_DAYS = 3650
MAX_CA_DAYS = 36500
#: CA certificates start a little in the past so endpoints with a slow clock accept them.
CA_BACKDATE = timedelta(days=1)


class IssuingMaterial:
    """What leaf minting needs: the issuer's key and current certificate, and the chain to serve."""

    __slots__ = ("cert", "chain", "key", "ski")

    def __init__(self, key: PrivateKey, cert: x509.Certificate, chain: tuple[x509.Certificate, ...]) -> None:
        self.key = key
        self.cert = cert
        self.chain = chain  # certificates served after the leaf: intermediate, cross-certificates
        self.ski = profiles.ski_of(key.public_key())


class CertificateAuthority:
    """A CA directory loaded into memory. Build it with :meth:`init` or :meth:`load`."""

    def __init__(
        self,
        directory: CADirectory,
        manifest: Manifest,
        identities: dict[str, CAIdentity],
        crosses: tuple[CrossCertificate, ...],
        *,
        env: Mapping[str, str],
        clock: Clock,
    ) -> None:
        self._dir = directory
        self._manifest = manifest
        self._identities = identities
        self.crosses = crosses
        self._env = env
        self.clock = clock
        self._keys: dict[str, PrivateKey] = {}

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(
        cls, path: Path, *, env: Mapping[str, str] | None = None, clock: Clock = system_clock
    ) -> CertificateAuthority:
        directory = CADirectory(path)
        manifest = directory.read_manifest()
        identities: dict[str, CAIdentity] = {}
        for entry in manifest.identities:
            role = Role(entry.role) if entry.role in Role.__members__.values() else None
            if role is None:
                raise CAError(f"CA manifest names an unknown role {entry.role!r}")
            versions = tuple(
                CAVersion(entry.id, role, number, _read_cert(directory, rel))
                for number, rel in enumerate(entry.versions, start=1)
            )
            if not versions:
                raise CAError(f"CA identity {entry.id[:16]} has no certificate")
            for version in versions:
                if version.spki_sha256 != entry.id or version.cert.subject != versions[0].cert.subject:
                    raise CAError(f"CA certificate version {version.number} of {entry.id[:16]} is not of that identity")
            identities[entry.id] = CAIdentity(entry.id, role, entry.parent, versions)
        crosses = tuple(CrossCertificate(c.subject, c.issuer, _read_cert(directory, c.file)) for c in manifest.crosses)
        for needed in (manifest.current_root, manifest.issuer):
            if needed not in identities:
                raise CAError("CA manifest is corrupt (current root or issuer missing)")
        return cls(directory, manifest, identities, crosses, env=os.environ if env is None else env, clock=clock)

    @classmethod
    def exists(cls, path: Path) -> bool:
        return CADirectory(path).exists()

    # ---------------------------------------------------------------- creating

    @classmethod
    def init(
        cls,
        path: Path,
        *,
        key_type: KeyType = KeyType.ECDSA_P256,
        subject: str = DEFAULT_SUBJECT,
        days: int = DEFAULT_CA_DAYS,
        intermediate: bool = False,
        passphrase_env: str | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
    ) -> CertificateAuthority:
        """Create a root (and an issuing intermediate); refuses to touch an existing CA."""
        env = os.environ if env is None else env
        directory = CADirectory(path)
        name = parse_subject(subject)
        _check_days(days)
        passphrase = _passphrase(passphrase_env, env) if passphrase_env else None
        with directory.locked():
            if directory.exists():
                raise CAExistsError(f"a CA already exists in {path}; refusing to overwrite it")
            now = clock()
            root_key = generate_key(key_type)
            root_cert = profiles.build_root(root_key, name, now - CA_BACKDATE, _not_after(now, days))
            entries = [_write_identity(directory, root_key, root_cert, Role.ROOT, None, passphrase)]
            issuer = entries[0].id
            if intermediate:
                inter_key = generate_key(key_type)
                inter_cert = profiles.build_intermediate(
                    inter_key,
                    _issuing_subject(name),
                    root_key,
                    root_cert,
                    now - CA_BACKDATE,
                    root_cert.not_valid_after_utc,
                )
                entries.append(_write_identity(directory, inter_key, inter_cert, Role.INTERMEDIATE, issuer, passphrase))
                issuer = entries[1].id
            directory.commit(Manifest(tuple(entries), (), entries[0].id, issuer, passphrase_env))
        return cls.load(path, env=env, clock=clock)

    # --------------------------------------------------------------- accessors

    @property
    def path(self) -> Path:
        return self._dir.path

    @property
    def identities(self) -> tuple[CAIdentity, ...]:
        return tuple(self._identities.values())

    @property
    def root(self) -> CAIdentity:
        """The current root identity (the one endpoints must trust)."""
        return self._identities[self._manifest.current_root]

    @property
    def issuer(self) -> CAIdentity:
        """The identity that signs leaves: the root, or its intermediate."""
        return self._identities[self._manifest.issuer]

    def identity(self, identity_id: str) -> CAIdentity:
        return self._identities[identity_id]

    def roots(self) -> tuple[CAIdentity, ...]:
        return tuple(i for i in self._identities.values() if i.role is Role.ROOT)

    def is_current(self, version: CAVersion) -> bool:
        ident = self._identities[version.identity_id]
        return ident.id in (self._manifest.current_root, self._manifest.issuer) and version is ident.current

    def key(self, identity_id: str) -> PrivateKey:
        """The private key of an identity, checked against its certificate."""
        cached = self._keys.get(identity_id)
        if cached is not None:
            return cached
        entry = next(e for e in self._manifest.identities if e.id == identity_id)
        data = self._dir.read(entry.key_file)
        passphrase = _passphrase(self._manifest.passphrase_env, self._env) if b"ENCRYPTED" in data[:64] else None
        key = load_private_key(data, passphrase, where=entry.key_file)
        if spki_sha256(key) != identity_id:
            raise CAError(f"the CA key {entry.key_file} does not match its certificate")
        self._keys[identity_id] = key
        return key

    def issuing_material(self) -> IssuingMaterial:
        """The issuer's key, its current certificate and the chain that leaves are served with."""
        issuer = self.issuer
        chain: list[x509.Certificate] = []
        if issuer.role is Role.INTERMEDIATE:
            chain.append(issuer.current.cert)
        now = self.clock()
        chain.extend(c.cert for c in self.crosses if c.subject_id == self.root.id and c.cert.not_valid_after_utc > now)
        return IssuingMaterial(self.key(issuer.id), issuer.current.cert, tuple(chain))

    # -------------------------------------------------------------- operations

    def renew(self, days: int = DEFAULT_CA_DAYS) -> tuple[CAVersion, ...]:
        """Renew in place: a new version of the current root (and of its intermediate), same key and subject."""
        _check_days(days)
        with self._dir.locked():
            self._ensure_unchanged()
            now = self.clock()
            root = self.root
            root_key = self.key(root.id)
            new_root = profiles.build_root(root_key, root.subject, now - CA_BACKDATE, _not_after(now, days))
            new_files = {root.id: _write_cert(self._dir, root.id, new_root)}
            if self.issuer.role is Role.INTERMEDIATE:
                inter = self.issuer
                inter_key = self.key(inter.id)
                inter_cert = profiles.build_intermediate(
                    inter_key, inter.subject, root_key, new_root, now - CA_BACKDATE, new_root.not_valid_after_utc
                )
                new_files[inter.id] = _write_cert(self._dir, inter.id, inter_cert)
            entries = tuple(
                IdentityEntry(e.id, e.role, e.key_file, e.parent, (*e.versions, new_files[e.id]))
                if e.id in new_files
                else e
                for e in self._manifest.identities
            )
            self._commit(
                Manifest(entries, self._manifest.crosses, root.id, self._manifest.issuer, self._manifest.passphrase_env)
            )
        return tuple(self._identities[i].current for i in new_files)

    def rotate(
        self, key_type: KeyType | None = None, subject: str | None = None, days: int = DEFAULT_CA_DAYS
    ) -> CAIdentity:
        """A new root identity (new key), cross-signed by the current one; leaves move to it."""
        _check_days(days)
        with self._dir.locked():
            self._ensure_unchanged()
            now = self.clock()
            old = self.root
            old_key = self.key(old.id)
            new_type = key_type or _key_type_like(old.current)
            name = parse_subject(subject) if subject else _next_generation(old.subject, len(self.roots()) + 1)
            if name == old.subject:
                raise CAError("the new root needs a subject different from the current root's")
            passphrase = (
                _passphrase(self._manifest.passphrase_env, self._env) if self._manifest.passphrase_env else None
            )
            new_key = generate_key(new_type)
            new_cert = profiles.build_root(new_key, name, now - CA_BACKDATE, _not_after(now, days))
            entries = [
                *self._manifest.identities,
                _write_identity(self._dir, new_key, new_cert, Role.ROOT, None, passphrase),
            ]
            issuer_id = entries[-1].id
            if self.issuer.role is Role.INTERMEDIATE:
                inter_key = generate_key(new_type)
                inter_cert = profiles.build_intermediate(
                    inter_key,
                    _issuing_subject(name),
                    new_key,
                    new_cert,
                    now - CA_BACKDATE,
                    new_cert.not_valid_after_utc,
                )
                entries.append(
                    _write_identity(self._dir, inter_key, inter_cert, Role.INTERMEDIATE, issuer_id, passphrase)
                )
                issuer_id = entries[-1].id
            cross_end = min(old.current.not_after, new_cert.not_valid_after_utc)
            cross = profiles.build_cross(new_cert, old_key, old.current.cert, now - CA_BACKDATE, cross_end)
            cross_file = f"cross/{spki_sha256(new_key)}-by-{old.id}.pem"
            self._dir.write_new(cross_file, _pem(cross))
            crosses = (*self._manifest.crosses, CrossEntry(spki_sha256(new_key), old.id, cross_file))
            self._commit(
                Manifest(tuple(entries), crosses, spki_sha256(new_key), issuer_id, self._manifest.passphrase_env)
            )
        return self.root

    def _ensure_unchanged(self) -> None:
        if self._dir.read_manifest() != self._manifest:
            raise CAError("the CA was changed by another process; load it again and retry")

    def _commit(self, manifest: Manifest) -> None:
        self._dir.commit(manifest)
        fresh = CertificateAuthority.load(self._dir.path, env=self._env, clock=self.clock)
        self._manifest, self._identities, self.crosses = fresh._manifest, fresh._identities, fresh.crosses


# ------------------------------------------------------------------- helpers


def parse_subject(text: str) -> x509.Name:
    """An RFC 4514 DN with a common name, e.g. ``CN=Example Interception CA,O=Example``."""
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise CAError(f"invalid subject {text!r}: {exc}") from None
    if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise CAError(f"invalid subject {text!r}: it needs a common name (CN=...)")
    return name


def _check_days(days: int) -> None:
    if days <= 0:
        raise CAError(f"--days must be a positive number of days (got {days})")
    if days > MAX_CA_DAYS:
        raise CAError(f"--days must be at most {MAX_CA_DAYS} (got {days})")


def _key_type_like(version: CAVersion) -> KeyType:
    try:
        return KeyType(version.key_type)
    except ValueError:
        return KeyType.ECDSA_P256


def _not_after(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)


def _passphrase(env_name: str | None, env: Mapping[str, str]) -> bytes:
    if not env_name:
        raise PassphraseError("the CA key is encrypted but no passphrase variable is configured")
    value = env.get(env_name)
    if not value:
        raise PassphraseError(f"the CA key passphrase variable {env_name} is not set")
    return value.encode()


def _with_common_name(name: x509.Name, common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name) if a.oid == NameOID.COMMON_NAME else a for a in name]
    )


def _common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _issuing_subject(root_name: x509.Name) -> x509.Name:
    cn = _common_name(root_name)
    return _with_common_name(root_name, cn.replace("Root CA", "Issuing CA") if "Root CA" in cn else f"{cn} Issuing CA")


def _next_generation(name: x509.Name, generation: int) -> x509.Name:
    base = re.sub(r" G\d+$", "", _common_name(name))
    return _with_common_name(name, f"{base} G{generation}")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def _read_cert(directory: CADirectory, relative: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(directory.read(relative))
    except ValueError:
        raise CAError(f"CA certificate {relative} is corrupt (not a PEM certificate)") from None


def _write_cert(directory: CADirectory, identity_id: str, cert: x509.Certificate) -> str:
    relative = f"certs/{identity_id}/{cert.serial_number:x}.pem"
    directory.write_new(relative, _pem(cert))
    return relative


def _write_identity(
    directory: CADirectory,
    key: PrivateKey,
    cert: x509.Certificate,
    role: Role,
    parent: str | None,
    passphrase: bytes | None,
) -> IdentityEntry:
    identity_id = spki_sha256(key)
    key_file = f"keys/{identity_id}.key.pem"
    directory.write_new(key_file, dump_private_key(key, passphrase), private=True)
    return IdentityEntry(identity_id, role.value, key_file, parent, (_write_cert(directory, identity_id, cert),))
