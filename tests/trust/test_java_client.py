"""A real Java TLS client trusts our leaves through the keystore the agent's Java adapter filled —
under either version of a renewed root, because it chains by subject and key."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.tools import require_tool
from tlsgate.ca import LeafIssuer
from tlsgate.trust import JavaStore

PROBE = Path(__file__).parent / "java" / "TlsProbe.java"


@pytest.fixture
def tls_server(make_ca) -> Iterator[tuple[object, int]]:  # type: ignore[no-untyped-def]
    """A TLS server on 127.0.0.1 with a leaf for ``app.test`` from a CA renewed once."""
    ca = make_ca(days=30)
    ca.renew(days=3650)
    leaf = LeafIssuer(ca.issuing_material()).get(["app.test"])
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with leaf.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield ca, listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def java_probe(keystore: Path, port: int) -> subprocess.CompletedProcess[str]:
    java = require_tool("java")
    return subprocess.run(
        [java, f"-Djavax.net.ssl.trustStore={keystore}", "-Djavax.net.ssl.trustStorePassword=changeit",
         str(PROBE), "127.0.0.1", str(port), "app.test"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_java_trusts_the_leaf_through_each_root_version_alone(tls_server, tmp_path: Path) -> None:
    ca, port = tls_server
    v1, v2 = (v.cert for v in ca.root.versions)
    empty = tmp_path / "none.p12"
    JavaStore(empty).install([v1])
    JavaStore(empty).remove([v1])  # an existing keystore with nothing of ours in it
    refused = java_probe(empty, port)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused" in refused.stdout
    for name, version in (("old", v1), ("new", v2)):
        keystore = tmp_path / f"{name}.p12"
        JavaStore(keystore).install([version])
        result = java_probe(keystore, port)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "verified CN=app.test" in result.stdout
