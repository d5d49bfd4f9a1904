"""A running proxy follows CA renewals and the stored do-not-inspect list without a restart."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tlsgate.ca import CertificateAuthority, LeafIssuer
from tlsgate.policy import Action, Policy
from tlsgate.proxy.refresh import LiveConfig
from tlsgate.store import load_do_not_inspect_hosts, open_store
from tlsgate.store.models import DoNotInspectHost


@dataclass
class Server:
    issuer: LeafIssuer
    policy: Policy


def test_a_renewed_ca_is_picked_up(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", days=30)
    server = Server(LeafIssuer(ca.issuing_material()), Policy())
    live = LiveConfig(server, ca_dir=ca.path, bypass=(), block=())
    first = server.issuer
    asyncio.run(live.check())
    assert server.issuer is first  # nothing changed
    ca.renew(days=3650)
    asyncio.run(live.check())
    assert server.issuer is not first
    assert server.issuer.get(["a.test"]).cert.not_valid_after_utc > first.get(["a.test"]).cert.not_valid_after_utc


def test_a_broken_ca_change_keeps_the_working_issuer(tmp_path: Path, capsys) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    server = Server(LeafIssuer(ca.issuing_material()), Policy())
    live = LiveConfig(server, ca_dir=ca.path, bypass=(), block=())
    working = server.issuer
    manifest = ca.path / "manifest.json"
    manifest.write_text("{not json")
    os.utime(manifest, ns=(1, 1))
    asyncio.run(live.check())
    assert server.issuer is working
    assert "kept the previous CA" in capsys.readouterr().err


def test_the_stored_do_not_inspect_list_is_followed(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    store = open_store(f"sqlite:///{tmp_path / 'tlsgate.db'}")
    server = Server(LeafIssuer(ca.issuing_material()), Policy(bypass=("*.static.example",)))
    live = LiveConfig(
        server,
        ca_dir=ca.path,
        bypass=("*.static.example",),
        block=(),
        stored_bypass=lambda: load_do_not_inspect_hosts(store),
    )
    assert server.policy.decide("bank.example", 443).action is Action.INSPECT
    with store.sessions() as session:
        session.add(DoNotInspectHost(host="bank.example", created_at=datetime.now(UTC), created_by="test"))
        session.commit()
    asyncio.run(live.check())
    assert server.policy.decide("bank.example", 443).action is Action.BYPASS
    assert server.policy.decide("cdn.static.example", 443).action is Action.BYPASS  # configured globs stay


def test_a_database_outage_keeps_the_list_in_force(tmp_path: Path, capsys) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    server = Server(LeafIssuer(ca.issuing_material()), Policy())
    answers: list[object] = [["bank.example"], OSError("database is down")]

    def stored() -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    live = LiveConfig(server, ca_dir=ca.path, bypass=(), block=(), stored_bypass=stored)
    asyncio.run(live.check())
    asyncio.run(live.check())
    assert server.policy.decide("bank.example", 443).action is Action.BYPASS
    assert "database is down" in capsys.readouterr().err
