"""Real TLS peers and real tools for certificate tests: openssl, and a Python ssl server/client pair."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def openssl(*args: str, input_data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    import shutil

    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed; run scripts/test")
    return subprocess.run(["openssl", *args], capture_output=True, input=input_data, timeout=60, check=False)


def openssl_verify(
    tmp: Path,
    leaf: x509.Certificate,
    root: x509.Certificate,
    untrusted: Iterable[x509.Certificate] = (),
    host: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``openssl verify`` of ``leaf`` with ``root`` as the only trust anchor (no system store)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "root.pem").write_bytes(pem([root]))
    (tmp / "leaf.pem").write_bytes(pem([leaf]))
    args = ["verify", "-no-CApath", "-no-CAfile", "-CAfile", str(tmp / "root.pem"), "-purpose", "sslserver"]
    chain = list(untrusted)
    if chain:
        (tmp / "untrusted.pem").write_bytes(pem(chain))
        args += ["-untrusted", str(tmp / "untrusted.pem")]
    if host:
        args += ["-verify_hostname", host]
    return openssl(*args, str(tmp / "leaf.pem"))


def handshake(server_context: ssl.SSLContext, trusted_root_pem: bytes, server_name: str) -> str:
    """A real TLS 1.2+/1.3 handshake over loopback; the client trusts only ``trusted_root_pem``.

    Returns the negotiated protocol version; raises ``ssl.SSLCertVerificationError`` on a trust failure.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # With cadata, create_default_context loads only that root, not the system store.
    client_context = ssl.create_default_context(cadata=trusted_root_pem.decode())
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            assert tls.recv(5) == b"hello"
            version = tls.version() or ""
            tls.sendall(b"x")
            return version
    finally:
        thread.join(timeout=10)
        listener.close()
