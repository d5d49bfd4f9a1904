"""The rollover drill: an endpoint that trusts only the old root version breaks at its expiry; the agent prevents it.

Time is moved with ``openssl``'s own ``-attime`` (the real tool's verification clock) and the
agent's injected clock; stores are real (``update-ca-certificates`` in a folder, NSS via certutil).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from support.tls import openssl, pem
from tlsgate.agent import Agent
from tlsgate.ca import LeafIssuer
from tlsgate.trust import CAIdentityRef, DebianStore, NssStore


def verify_at(store: DebianStore, leaf: Path, when) -> bool:  # type: ignore[no-untyped-def]
    args = ["verify", "-no-CAfile", "-CApath", str(store.certs_dir), "-attime", str(int(when.timestamp())), str(leaf)]
    return openssl(*args).returncode == 0


def test_rollover_drill(make_ca, clock, tmp_path: Path) -> None:
    ca = make_ca(clock=clock, days=30)
    old = ca.root.current.cert
    identity = CAIdentityRef.of(old)
    store = DebianStore(tmp_path / "root")
    nss = NssStore(tmp_path / "home/.pki/nssdb")
    agent = Agent([store, nss], [identity], clock)
    agent.apply([old])  # the endpoint got the root when it was rolled out
    assert agent.status().ok

    ca.renew(days=3650)  # renewed in place at the gateway
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pem([LeafIssuer(ca.issuing_material(), clock=clock).get(["intranet.test"]).cert]))

    after_expiry = old.not_valid_after_utc + timedelta(days=1)
    assert verify_at(store, leaf, clock())  # today the old version still vouches for the new leaf
    assert not verify_at(store, leaf, after_expiry)  # the day after its expiry the endpoint loses HTTPS

    # The agent syncs the CA set it got from the portal: both versions.
    changes = agent.apply([v.cert for v in ca.root.versions])
    assert all(c.error is None for c in changes)
    assert verify_at(store, leaf, after_expiry)
    status = agent.status()
    assert status.ok
    assert status.trusted_until == ca.root.current.not_after

    # A second run changes nothing.
    assert not any(c.plan.changes for c in agent.apply([v.cert for v in ca.root.versions]))

    # Past the old expiry the agent removes the expired version, since a valid one is in place...
    clock.now = after_expiry
    changes = agent.apply([v.cert for v in ca.root.versions])
    assert [len(c.plan.remove) for c in changes] == [1, 1]
    assert [c.serial_number for c in store.certificates()] == [ca.root.current.cert.serial_number]
    assert agent.status().ok
    assert "ok" in agent.status().verdict


def test_status_warns_only_when_no_store_holds_a_valid_version(make_ca, clock, tmp_path: Path) -> None:
    ca = make_ca(clock=clock, days=10)
    old = ca.root.current.cert
    store = DebianStore(tmp_path / "root")
    nss = NssStore(tmp_path / "home/.pki/nssdb")
    agent = Agent([store, nss], [CAIdentityRef.of(old)], clock)
    assert not agent.status().ok
    assert "NOT installed" in agent.status().verdict
    store.install([old])  # only the system store has it: that is enough
    assert agent.status().ok
    clock.advance(days=11)
    status = agent.status()
    assert not status.ok
    assert "only expired versions" in status.verdict
    # The last (expired) version is never removed when nothing valid replaces it.
    changes = agent.apply([])
    assert changes[0].plan.kept_expired == (old,)
    assert len(store.certificates()) == 1
