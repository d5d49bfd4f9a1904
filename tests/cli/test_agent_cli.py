"""``tlsgate agent install`` and ``status`` as an admin's script runs them, against real stores in a folder."""

from __future__ import annotations

import json
from pathlib import Path

from support.files import tree_digest
from tlsgate.agent.state import AgentFiles, AgentState
from tlsgate.trust import CAIdentityRef, parse_pem_bundle


def stores(tmp_path: Path) -> list[str]:
    return ["--root", str(tmp_path / "root"), "--home", str(tmp_path / "home"), "--store", "debian", "--store", "nss"]


def test_install_then_status(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    root = tmp_path / "root.pem"
    tlsgate("ca", "export", "-o", str(root), check=True)
    dry = json.loads(tlsgate("agent", "install", "--cert", str(root), *stores(tmp_path), "--dry-run", "--json").stdout)
    assert [len(c["install"]) for c in dry["changes"]] == [1, 1]
    assert not (tmp_path / "root/usr/local/share/ca-certificates/tlsgate").exists()  # dry run wrote nothing
    done = tlsgate("agent", "install", "--cert", str(root), *stores(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "install 1" in done.stdout
    status = json.loads(tlsgate("agent", "status", "--cert", str(root), *stores(tmp_path), "--json").stdout)
    assert status["ok"] is True
    assert [s["presence"] for s in status["stores"]] == ["valid", "valid"]
    again = json.loads(tlsgate("agent", "install", "--cert", str(root), *stores(tmp_path), "--json").stdout)
    assert all(not c["install"] and not c["remove"] for c in again["changes"])  # idempotent


def test_status_exit_code_when_absent(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    root = tmp_path / "root.pem"
    tlsgate("ca", "export", "-o", str(root), check=True)
    result = tlsgate("agent", "status", "--cert", str(root), *stores(tmp_path))
    assert result.returncode == 1
    assert "NOT installed" in result.stdout


def test_an_enrolled_agent_refuses_a_foreign_root_and_installs_nothing(tlsgate, tmp_path: Path) -> None:
    tlsgate("ca", "init", check=True)
    ours = parse_pem_bundle(tlsgate("ca", "export").stdout_bytes)[0]
    AgentFiles(tlsgate.data_dir / "agent").save(AgentState("https://portal.test", "ep-1", (CAIdentityRef.of(ours),)))
    foreign = tmp_path / "foreign.pem"
    tlsgate("ca", "init", env={"TLSGATE_DATA_DIR": str(tmp_path / "other")}, check=True)
    tlsgate("ca", "export", "-o", str(foreign), env={"TLSGATE_DATA_DIR": str(tmp_path / "other")}, check=True)
    (tmp_path / "root").mkdir()
    before = tree_digest(tmp_path / "root")
    result = tlsgate("agent", "install", "--cert", str(foreign), *stores(tmp_path))
    assert result.returncode == 1
    assert "not a version of the enrolled CA identity" in result.stderr
    assert "nothing was installed" in result.stderr
    assert tree_digest(tmp_path / "root") == before
    assert not (tmp_path / "home/.pki/nssdb").exists()


def test_bad_certificate_file(tlsgate, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    result = tlsgate("agent", "install", "--cert", str(junk), *stores(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"tlsgate: error: {junk} holds no certificate (PEM or DER)"
