"""``tlsgate ca`` as a person runs it: real processes, real files, real openssl."""

from __future__ import annotations

import json
import plistlib
import stat
from pathlib import Path

import pytest
from cryptography import x509

from support.files import tree_digest
from support.tls import openssl, openssl_verify


def test_init_show_and_json(tlsgate) -> None:
    created = tlsgate("ca", "init", check=True)
    assert "Created the interception CA" in created.stdout
    shown = json.loads(tlsgate("ca", "show", "--json", check=True).stdout)
    (version,) = shown["versions"]
    assert version["current"] is True and version["status"] == "valid"
    assert version["key_type"] == "ecdsa-p256"
    assert version["subject"] == "CN=tlsgate Interception Root CA,O=tlsgate"
    assert version["days_left"] in (3649, 3650)
    assert len(version["sha256"]) == 64 and len(version["sha1"]) == 40 and len(version["spki_sha256"]) == 64
    human = tlsgate("ca", "show", check=True).stdout
    assert version["sha256"] in human and version["spki_sha256"] in human and "valid" in human


def test_expiring_status(tlsgate) -> None:
    tlsgate("ca", "init", "--days", "10", check=True)
    (version,) = json.loads(tlsgate("ca", "show", "--json").stdout)["versions"]
    assert version["status"] == "expiring"


def test_renew_keeps_old_version_and_both_verify_a_leaf(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", "--days", "30", check=True)
    old_root = tmp_path / "old.pem"
    tlsgate("ca", "export", "-o", str(old_root), check=True)
    tlsgate("ca", "renew", "--days", "3650", check=True)
    new_root = tmp_path / "new.pem"
    tlsgate("ca", "export", "-o", str(new_root), check=True)
    versions = json.loads(tlsgate("ca", "show", "--json").stdout)["versions"]
    assert [v["current"] for v in versions] == [False, True]
    assert versions[0]["spki_sha256"] == versions[1]["spki_sha256"]
    leaf = tmp_path / "leaf.pem"
    tlsgate("ca", "mint", "portal.example.test", "-o", str(leaf), check=True)
    leaf_cert = x509.load_pem_x509_certificate(leaf.read_bytes())
    for root in (old_root, new_root):
        root_cert = x509.load_pem_x509_certificate(root.read_bytes())
        result = openssl_verify(tmp_path / root.stem, leaf_cert, root_cert, host="portal.example.test")
        assert result.returncode == 0, result.stderr
    bundle = tlsgate("ca", "export", "--all-versions").stdout
    assert bundle.count("BEGIN CERTIFICATE") == 2
    verify = tlsgate("ca", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "leaf under root version 1" in verify.stdout and "leaf under root version 2" in verify.stdout


def test_rotate_and_verify_through_cross_certificate(tlsgate) -> None:
    tlsgate("ca", "init", check=True)
    rotated = tlsgate("ca", "rotate", "--key", "ecdsa-p384", check=True)
    assert "cross-signed" in rotated.stdout
    checks = json.loads(tlsgate("ca", "verify", "--json", check=True).stdout)
    assert checks["ok"] is True
    assert any("cross-certificate" in c["name"] for c in checks["checks"])


def test_export_formats_with_openssl(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    tlsgate("ca", "export", "--format", "der", "-o", str(tmp_path / "root.der"), check=True)
    tlsgate("ca", "export", "--format", "p7b", "-o", str(tmp_path / "root.p7b"), check=True)
    text = openssl("x509", "-inform", "DER", "-in", str(tmp_path / "root.der"), "-noout", "-text").stdout.decode()
    assert "CA:TRUE" in text and "Certificate Sign, CRL Sign" in text
    p7 = openssl("pkcs7", "-inform", "DER", "-in", str(tmp_path / "root.p7b"), "-print_certs").stdout.decode()
    assert "tlsgate Interception Root CA" in p7


def test_export_installers_for_endpoints_without_the_agent(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    tlsgate("ca", "renew", check=True)
    tlsgate(
        "ca", "export", "--all-versions", "--format", "mobileconfig", "-o", str(tmp_path / "p.mobileconfig"), check=True
    )
    profile = plistlib.loads((tmp_path / "p.mobileconfig").read_bytes())
    assert len(profile["PayloadContent"]) == 2
    script = tlsgate("ca", "export", "--format", "ps1", check=True).stdout
    assert script.count("Thumbprint = ") == 1
    policies = json.loads(tlsgate("ca", "export", "--format", "firefox-policies.json", check=True).stdout)
    assert policies["policies"]["Certificates"]["ImportEnterpriseRoots"] is True


def test_mint_writes_chain_and_private_key(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", "--intermediate", check=True)
    cert, key = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    tlsgate("ca", "mint", "a.example.test", "192.0.2.1", "-o", str(cert), "--key-out", str(key), check=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cert.read_bytes().count(b"BEGIN CERTIFICATE") == 2  # leaf, then the intermediate
    check = openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName").stdout.decode()
    assert "DNS:a.example.test" in check and "IP Address:192.0.2.1" in check
    match = openssl("x509", "-in", str(cert), "-noout", "-pubkey").stdout
    assert match == openssl("pkey", "-in", str(key), "-pubout").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ca", "init"), "already exists"),
        (("ca", "renew", "--days", "0"), "--days must be a positive"),
        (("ca", "renew", "--days", "-3"), "--days must be a positive"),
        (("ca", "rotate", "--key", "dsa-1024"), "unknown key type"),
        (("ca", "mint", "not a host"), "invalid host name"),
        (("ca", "export", "--all-versions", "--format", "der", "-o", "/tmp/x.der"), "DER holds exactly one"),
        (("ca", "export", "--format", "jks"), "unknown export format 'jks'"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(tlsgate, args: tuple[str, ...], message: str) -> None:
    tlsgate("ca", "init", check=True)
    tlsgate("ca", "renew", check=True)
    ca_dir = tlsgate.data_dir / "ca"
    before = tree_digest(ca_dir)
    result = tlsgate(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert tree_digest(ca_dir) == before


def test_init_with_unknown_key_type_writes_nothing(tlsgate) -> None:
    result = tlsgate("ca", "init", "--key", "ed448")
    assert result.returncode == 1 and "unknown key type" in result.stderr
    assert not (tlsgate.data_dir / "ca" / "manifest.json").exists()


def test_no_ca_yet(tlsgate) -> None:
    result = tlsgate("ca", "show")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"tlsgate: error: no CA in {tlsgate.data_dir / 'ca'} (create one with 'tlsgate ca init')"
    )


def test_encrypted_ca_needs_its_passphrase(tlsgate) -> None:
    env = {"TG_PASS": "s3cret-passphrase"}
    tlsgate("ca", "init", "--passphrase-env", "TG_PASS", env=env, check=True)
    assert tlsgate("ca", "verify", env=env).returncode == 0
    wrong = tlsgate("ca", "renew", env={"TG_PASS": "nope"})
    assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
    assert "s3cret" not in wrong.stderr + wrong.stdout


def test_verify_fails_with_the_reason_when_a_key_is_swapped(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    other = tmp_path / "other"
    tlsgate("ca", "init", env={"TLSGATE_DATA_DIR": str(other)}, check=True)
    (key_file,) = (tlsgate.data_dir / "ca" / "keys").iterdir()
    (other_key,) = (other / "ca" / "keys").iterdir()
    key_file.write_bytes(other_key.read_bytes())
    result = tlsgate("ca", "verify")
    assert result.returncode == 1
    assert "does not match its certificate" in result.stderr
