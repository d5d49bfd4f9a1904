"""The CA lifecycle on disk: init, renew in place, rotate, encryption at rest, and crash safety."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from support.files import tree_digest
from tlsgate.ca import CertificateAuthority, KeyType, LeafIssuer, Role, self_check
from tlsgate.ca import storage as storage_module
from tlsgate.ca.keys import dump_private_key, generate_key
from tlsgate.errors import CAError, CAExistsError, CANotFoundError, PassphraseError


def test_init_creates_a_self_signed_root_with_ca_extensions(make_ca) -> None:
    ca = make_ca()
    cert = ca.root.current.cert
    assert cert.issuer == cert.subject
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.root.current.key_type == "ecdsa-p256"
    assert ca.issuer is ca.root


@pytest.mark.parametrize("key_type", list(KeyType))
def test_every_key_type(make_ca, key_type: KeyType) -> None:
    ca = make_ca(key_type=key_type)
    assert ca.root.current.key_type == key_type.value
    assert all(r.ok for r in self_check(ca))


def test_keys_are_private_files(make_ca) -> None:
    ca = make_ca(intermediate=True)
    keys = list((ca.path / "keys").iterdir())
    assert len(keys) == 2
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.path.stat().st_mode) == 0o700
    for cert in (ca.path / "certs").rglob("*.pem"):
        assert b"PRIVATE KEY" not in cert.read_bytes()


def test_init_refuses_to_overwrite(make_ca, tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    before = tree_digest(ca.path)
    with pytest.raises(CAExistsError):
        CertificateAuthority.init(tmp_path / "ca", key_type=KeyType.RSA_2048)
    assert tree_digest(ca.path) == before


def test_renew_keeps_key_subject_ski_and_every_earlier_version(make_ca, clock) -> None:
    ca = make_ca(clock=clock, days=30)
    first = ca.root.current
    clock.advance(days=10)
    (new,) = ca.renew(days=3650)
    assert [v.number for v in ca.root.versions] == [1, 2]
    assert ca.root.versions[0].sha256 == first.sha256
    assert new.spki_sha256 == first.spki_sha256 and new.subject == first.subject
    ski = x509.SubjectKeyIdentifier
    assert new.cert.extensions.get_extension_for_class(ski) == first.cert.extensions.get_extension_for_class(ski)
    assert new.serial_hex != first.serial_hex
    assert new.not_after > first.not_after
    reloaded = CertificateAuthority.load(ca.path, clock=clock)
    assert reloaded.root.current.sha256 == new.sha256
    assert len(reloaded.root.versions) == 2


def test_renew_with_intermediate_renews_both_in_place(make_ca) -> None:
    ca = make_ca(intermediate=True)
    root_key, inter_key = ca.root.id, ca.issuer.id
    renewed = ca.renew(days=4000)
    assert {v.role for v in renewed} == {Role.ROOT, Role.INTERMEDIATE}
    assert ca.root.id == root_key and ca.issuer.id == inter_key
    assert ca.issuer.current.not_after <= ca.root.current.not_after
    assert all(r.ok for r in self_check(ca))


def test_rotate_makes_a_new_identity_cross_signed_by_the_old(make_ca) -> None:
    ca = make_ca()
    old = ca.root
    new = ca.rotate()
    assert new.id != old.id
    assert new.current.subject == "CN=tlsgate Interception Root CA G2,O=tlsgate"
    (cross,) = ca.crosses
    assert cross.subject_id == new.id and cross.issuer_id == old.id
    assert cross.cert.issuer == old.current.cert.subject
    assert cross.cert.subject == new.current.cert.subject
    assert cross.cert.not_valid_after_utc <= old.current.not_after
    assert len(ca.roots()) == 2
    assert all(r.ok for r in self_check(ca))


def test_rotate_with_explicit_subject_and_key(make_ca) -> None:
    ca = make_ca()
    new = ca.rotate(KeyType.RSA_3072, "CN=Example Interception CA 2027,O=Example")
    assert new.current.key_type == "rsa-3072"
    assert new.current.subject == "CN=Example Interception CA 2027,O=Example"


def test_passphrase_encrypts_keys_at_rest(tmp_path: Path) -> None:
    env = {"CA_PASS": "correct horse battery staple"}
    ca = CertificateAuthority.init(tmp_path / "ca", passphrase_env="CA_PASS", env=env)
    key_file = next((ca.path / "keys").iterdir())
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    loaded = CertificateAuthority.load(ca.path, env=env)
    assert loaded.renew(days=100)
    assert all(r.ok for r in self_check(loaded))


def test_wrong_or_missing_passphrase_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", passphrase_env="CA_PASS", env={"CA_PASS": "right"})
    before = tree_digest(ca.path)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        CertificateAuthority.load(ca.path, env={"CA_PASS": "wrong"}).renew(days=10)
    with pytest.raises(PassphraseError, match="CA_PASS is not set"):
        CertificateAuthority.load(ca.path, env={}).renew(days=10)
    assert tree_digest(ca.path) == before


def test_init_with_unset_passphrase_variable_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError):
        CertificateAuthority.init(tmp_path / "ca", passphrase_env="NOPE", env={})
    assert not (tmp_path / "ca").exists()


def test_corrupt_key_is_reported(make_ca) -> None:
    ca = make_ca()
    key_file = next((ca.path / "keys").iterdir())
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CAError, match="not a readable PEM private key"):
        CertificateAuthority.load(ca.path).issuing_material()


def test_key_that_does_not_match_the_certificate_is_refused(make_ca) -> None:
    ca = make_ca()
    key_file = next((ca.path / "keys").iterdir())
    os.chmod(key_file, 0o600)
    key_file.write_bytes(dump_private_key(generate_key(KeyType.ECDSA_P256)))
    with pytest.raises(CAError, match="does not match its certificate"):
        CertificateAuthority.load(ca.path).issuing_material()


def test_missing_ca(tmp_path: Path) -> None:
    with pytest.raises(CANotFoundError, match="tlsgate ca init"):
        CertificateAuthority.load(tmp_path / "nothing")


@pytest.mark.parametrize("days", [0, -5, 40000])
def test_bad_days(make_ca, days: int) -> None:
    ca = make_ca()
    before = tree_digest(ca.path)
    with pytest.raises(CAError, match="--days"):
        ca.renew(days=days)
    assert tree_digest(ca.path) == before


@pytest.mark.parametrize("subject", ["not a dn", "O=No Common Name"])
def test_bad_subject(tmp_path: Path, subject: str) -> None:
    with pytest.raises(CAError, match="invalid subject"):
        CertificateAuthority.init(tmp_path / "ca", subject=subject)
    assert not (tmp_path / "ca" / "manifest.json").exists()


class Crash(Exception):
    pass


@pytest.mark.parametrize("operation", ["renew", "rotate"])
def test_a_crash_midway_leaves_the_previous_ca_usable(make_ca, monkeypatch, tmp_path: Path, operation: str) -> None:
    """The new certificate files are written, then the process dies before the manifest is replaced."""
    ca = make_ca(intermediate=True)
    before_manifest = (ca.path / "manifest.json").read_bytes()
    root_before = ca.root.current.sha256

    def die(self: object, manifest: object) -> None:
        raise Crash

    monkeypatch.setattr(storage_module.CADirectory, "commit", die)
    with pytest.raises(Crash):
        getattr(ca, operation)()
    monkeypatch.undo()
    assert (ca.path / "manifest.json").read_bytes() == before_manifest
    survivor = CertificateAuthority.load(ca.path)
    assert survivor.root.current.sha256 == root_before
    assert all(r.ok for r in self_check(survivor))
    assert LeafIssuer(survivor.issuing_material()).get(["after-crash.test"])
    # ...and the operation can simply be run again.
    getattr(survivor, operation)()
    assert all(r.ok for r in self_check(CertificateAuthority.load(ca.path)))


def test_a_crash_while_writing_the_manifest_keeps_the_old_one(make_ca, monkeypatch) -> None:
    ca = make_ca()
    before = (ca.path / "manifest.json").read_bytes()

    def fail_replace(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage_module.os, "replace", fail_replace)
    with pytest.raises(CAError, match="cannot write"):
        ca.renew()
    monkeypatch.undo()
    assert (ca.path / "manifest.json").read_bytes() == before
    assert not [p for p in ca.path.iterdir() if p.name.endswith(".tmp")]
    assert len(CertificateAuthority.load(ca.path).root.versions) == 1


def test_a_crashed_init_leaves_no_ca_and_can_be_retried(tmp_path: Path, monkeypatch) -> None:
    def die(self: object, manifest: object) -> None:
        raise Crash

    monkeypatch.setattr(storage_module.CADirectory, "commit", die)
    with pytest.raises(Crash):
        CertificateAuthority.init(tmp_path / "ca")
    monkeypatch.undo()
    with pytest.raises(CANotFoundError):
        CertificateAuthority.load(tmp_path / "ca")
    assert CertificateAuthority.init(tmp_path / "ca").root.current


def test_concurrent_change_is_detected(make_ca) -> None:
    ca = make_ca()
    other = CertificateAuthority.load(ca.path)
    other.renew()
    with pytest.raises(CAError, match="changed by another process"):
        ca.renew()
