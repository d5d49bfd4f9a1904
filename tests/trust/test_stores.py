"""Each adapter against the real store tool, in a temporary folder, proven with the store's own clients."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from support.tls import openssl, pem
from support.tools import require_tool
from tlsgate.ca import LeafIssuer
from tlsgate.errors import TrustStoreError
from tlsgate.trust import CAIdentityRef, DebianStore, JavaStore, NssStore, RhelStore, entry_name
from tlsgate.trust.runner import CommandResult


@pytest.fixture
def renewed(make_ca):
    ca = make_ca(days=30)
    v1 = ca.root.current.cert
    ca.renew(days=3650)
    return ca, v1, ca.root.current.cert


def leaf_file(ca, tmp_path: Path, host: str = "site.test") -> Path:
    path = tmp_path / "leaf.pem"
    path.write_bytes(pem([LeafIssuer(ca.issuing_material()).get([host]).cert]))
    return path


def debian_root(tmp_path: Path, make_ca) -> Path:
    """A Debian tree with one distribution CA already trusted, as every real system has."""
    root = tmp_path / "root"
    shipped = root / "usr/share/ca-certificates/mozilla/Some_Public_Root.crt"
    shipped.parent.mkdir(parents=True)
    shipped.write_bytes(pem([make_ca(subject="CN=Some Public Root,O=Elsewhere").root.current.cert]))
    (root / "etc").mkdir()
    (root / "etc/ca-certificates.conf").write_text("mozilla/Some_Public_Root.crt\n")
    return root


def ours(store) -> list[int]:
    return sorted(c.serial_number for c in store.certificates() if "tlsgate" in c.subject.rfc4514_string())


def test_debian_store_with_update_ca_certificates_and_openssl(renewed, make_ca, tmp_path: Path) -> None:
    require_tool("update-ca-certificates")
    ca, v1, v2 = renewed
    store = DebianStore(debian_root(tmp_path, make_ca))
    leaf = leaf_file(ca, tmp_path)
    capath = str(store.certs_dir)
    store.install([v1])
    assert openssl("verify", "-no-CAfile", "-CApath", capath, str(leaf)).returncode == 0
    store.install([v2])
    assert ours(store) == sorted([v1.serial_number, v2.serial_number])
    assert len(store.certificates()) == 3  # the distribution's CA is still there
    store.remove([v1])
    assert ours(store) == [v2.serial_number]
    result = openssl("verify", "-no-CAfile", "-CApath", capath, str(leaf))
    assert result.returncode == 0, result.stderr  # the renewed version alone vouches for the same leaf
    store.remove([v2])
    assert ours(store) == []
    assert len(store.certificates()) == 1
    assert openssl("verify", "-no-CAfile", "-CApath", capath, str(leaf)).returncode != 0


def test_debian_store_leaves_other_files_alone(renewed, make_ca, tmp_path: Path) -> None:
    _, v1, _ = renewed
    store = DebianStore(debian_root(tmp_path, make_ca))
    other = make_ca().root.current.cert
    foreign = tmp_path / "root/usr/local/share/ca-certificates/corp-bundle.crt"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(pem([v1, other]))  # someone else's bundle holding our cert too
    store.install([])
    store.remove([v1])
    assert foreign.exists()


def test_nss_store_with_certutil_and_vfychain(renewed, tmp_path: Path) -> None:
    require_tool("certutil")
    require_tool("vfychain")
    ca, v1, v2 = renewed
    db = tmp_path / "nssdb"
    store = NssStore(db)
    leaf = leaf_file(ca, tmp_path)

    def vfychain(when: str | None = None) -> str:
        """NSS's own chain builder, as Chromium uses it, for TLS server usage (-u 1)."""
        args = ["vfychain", "-d", f"sql:{db}", "-u", "1", "-a", str(leaf)]
        if when:
            args[1:1] = ["-b", when]
        result = subprocess.run(args, capture_output=True, timeout=60, check=False)
        return (result.stdout + result.stderr).decode()

    db.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    assert "Chain is bad" in vfychain()
    store.install([v1])
    assert "Chain is good" in vfychain()
    store.install([v2])
    assert len(store.certificates()) == 2
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{db}"], capture_output=True, check=True).stdout.decode()
    assert entry_name(v1) in listed
    assert entry_name(v2) in listed
    store.remove([v1])
    assert [c.serial_number for c in store.certificates()] == [v2.serial_number]
    assert "Chain is good" in vfychain()
    # After v1's expiry the renewed version still carries the leaf (which is valid ~199 days).
    later = (v1.not_valid_after_utc + timedelta(days=1)).strftime("%y%m%d%H%MZ")
    assert "Chain is good" in vfychain(later)


def test_java_keystore_with_keytool(renewed, tmp_path: Path) -> None:
    require_tool("keytool")
    _, v1, v2 = renewed
    keystore = tmp_path / "cacerts"
    store = JavaStore(keystore)
    store.install([v1, v2])
    listing = subprocess.run(
        ["keytool", "-list", "-keystore", str(keystore), "-storepass", "changeit"], capture_output=True, check=True
    ).stdout.decode()
    assert entry_name(v1) in listing
    assert "trustedCertEntry" in listing
    store.remove([v1])
    assert [c.serial_number for c in store.certificates()] == [v2.serial_number]


def test_rhel_store_runs_update_ca_trust(renewed, tmp_path: Path) -> None:
    """Debian has no update-ca-trust: a fake runner plays it and builds the bundle the way p11-kit would."""
    _, v1, _ = renewed
    calls: list[tuple[str, ...]] = []
    root = tmp_path / "root"

    def fake(args, *, input_data=None, env=None) -> CommandResult:
        calls.append(tuple(args))
        bundle = root / "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"
        bundle.parent.mkdir(parents=True, exist_ok=True)
        bundle.write_bytes(
            b"".join(p.read_bytes() for p in sorted((root / "etc/pki/ca-trust/source/anchors").glob("*")))
        )
        return CommandResult(tuple(args), 0, b"", b"")

    store = RhelStore(root, fake)
    store.install([v1])
    assert calls == [("update-ca-trust", "extract")]
    assert (root / f"etc/pki/ca-trust/source/anchors/{entry_name(v1)}.pem").exists()
    assert CAIdentityRef.of(v1).matches(store.certificates()[0])


def test_a_failing_store_tool_is_a_clear_error(renewed, tmp_path: Path) -> None:
    _, v1, _ = renewed

    def broken(args, *, input_data=None, env=None) -> CommandResult:
        return CommandResult(tuple(args), 1, b"", b"update-ca-certificates: permission denied\n")

    with pytest.raises(TrustStoreError, match=r"update-ca-certificates failed .*permission denied"):
        DebianStore(tmp_path / "root", broken).install([v1])
