"""A local "badssl": a test public PKI and origins with broken certificates, all on 127.0.0.1.

Built with ``cryptography`` (like badssl.com's ``certs/`` but in memory). The "public" root
stands for the system trust store: the proxy gets it with ``--upstream-ca``. Every origin is
a threaded HTTP/1.1 server wrapped in TLS; names are ``<case>.test`` and the proxy resolves
``*.test`` to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def make_ca(cn: str, issuer: Issued | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 30 * DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer = issuer.key if issuer else key
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_leaf(
    names: list[str],
    issuer: Issued,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    rsa_bits: int | None = None,
) -> Issued:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    key = rsa.generate_private_key(65537, rsa_bits) if rsa_bits else ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def self_signed_leaf(name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 90 * DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def big_body(start: int, size: int) -> bytes:
    """Bytes ``start`` to ``start + size`` of /big: each 8-byte word is its own offset, so a
    piece lost, repeated or moved shows in a comparison (unlike a run of one byte)."""
    first = start - start % 8
    words = b"".join((offset).to_bytes(8, "big") for offset in range(first, start + size + 8, 8))
    return words[start - first : start - first + size]


class OriginHandler(BaseHTTPRequestHandler):
    """The origin's routes: /hello, /echo (POST: length and sha256 of the body), /chunked, /big?n=."""

    protocol_version = "HTTP/1.1"
    server_version = "origin"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Origin", self.server.origin_name)  # type: ignore[attr-defined]
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                piece = f"chunk-{i};".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.startswith("/big"):
            size = int(path.partition("n=")[2] or "1048576")
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            while sent < size:  # in 64 KiB writes, so the proxy reads the body in many pieces
                piece = big_body(sent, min(65536, size - sent))
                self.wfile.write(piece)
                sent += len(piece)
            return
        if path.startswith("/slow"):
            time.sleep(1.0)
            self._send(200, b"slow but done")
            return
        if path.startswith("/nocontent"):
            self.send_response(204)
            self.end_headers()
            return
        if path.startswith("/until-close"):
            # A body read until the close: ended with close_notify (``clean``), or with a bare
            # TCP close — what an injected FIN looks like (RFC 9112 §9.8: incomplete).
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
            self.wfile.write(b"first half;")
            self.wfile.flush()
            time.sleep(0.1)
            self.wfile.write(b"second half")
            self.wfile.flush()
            self.close_connection = True
            if "clean" in path and isinstance(self.connection, ssl.SSLSocket):
                self.connection.unwrap()  # close_notify (and the proxy's back)
            else:
                self.connection.close()
            return
        if path.startswith("/headers"):
            text = "".join(f"{k.lower()}: {v}\n" for k, v in self.headers.items())
            self._send(200, text.encode())
            return
        self._send(200, f"hello from {self.server.origin_name} {path}".encode(), "text/html")  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        digest = hashlib.sha256()
        total = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(size)
                digest.update(data)
                total += len(data)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                data = self.rfile.read(min(left, 65536))
                digest.update(data)
                total += len(data)
                left -= len(data)
        self._send(200, f"{total} {digest.hexdigest()}".encode())


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed handshakes are what these origins are for


class Origin:
    """A threaded HTTP(S) origin on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, name: str, context: ssl.SSLContext | None) -> None:
        self.name = name
        self.httpd = _QuietServer(("127.0.0.1", 0), OriginHandler)
        self.httpd.origin_name = name  # type: ignore[attr-defined]
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def server_context(chain: list[x509.Certificate], key: object, *, tls10_only: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls10_only:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():  # the origin is *meant* to be obsolete
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1
    else:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # the origin offers weak things; the proxy must refuse
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        os.write(fd, b"".join(_pem(c) for c in chain) + _key_pem(key))  # type: ignore[arg-type]
        os.close(fd)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


#: case name → the reason the error page must show
BAD_CASES = {
    "expired": "certificate expired",
    "not-yet-valid": "certificate not yet valid",
    "wrong-host": "wrong host",
    "self-signed": "self-signed certificate",
    "untrusted-root": "untrusted issuer",
    "incomplete-chain": "incomplete chain",
    "rsa1024": "weak key",
    "tls-v1-0": "protocol version",
}


class BadSSL:
    """The whole suite: a public root (to trust upstream) and one origin per case, plus ``good``."""

    def __init__(self, directory: Path) -> None:
        self.root = make_ca("tlsgate test public root")
        self.intermediate = make_ca("tlsgate test public intermediate", self.root)
        self.other_root = make_ca("untrusted test root")
        self.root_file = directory / "public-root.pem"
        self.root_file.write_bytes(_pem(self.root.cert))
        self.origins: dict[str, Origin] = {}
        r, i = self.root, self.intermediate

        def chain_of(leaf: Issued, *rest: Issued) -> ssl.SSLContext:
            return server_context([leaf.cert, *(x.cert for x in rest)], leaf.key)

        good = make_leaf(["good.test"], i)
        self._add("good", chain_of(good, i))
        self._add(
            "expired", chain_of(make_leaf(["expired.test"], i, not_before=NOW - 60 * DAY, not_after=NOW - DAY), i)
        )
        self._add("not-yet-valid", chain_of(make_leaf(["not-yet-valid.test"], i, not_before=NOW + 10 * DAY), i))
        self._add("wrong-host", chain_of(make_leaf(["someone-else.test"], i), i))
        self._add("self-signed", chain_of(self_signed_leaf("self-signed.test")))
        self._add("untrusted-root", chain_of(make_leaf(["untrusted-root.test"], self.other_root), self.other_root))
        self._add("incomplete-chain", chain_of(make_leaf(["incomplete-chain.test"], i)))
        self._add("rsa1024", chain_of(make_leaf(["rsa1024.test"], r, rsa_bits=1024)))
        tls10 = make_leaf(["tls-v1-0.test"], i)
        self._add("tls-v1-0", server_context([tls10.cert, i.cert], tls10.key, tls10_only=True))
        bypass = make_leaf(["bypassed.test"], self.other_root)
        self._add("bypassed", chain_of(bypass, self.other_root))
        self.bypass_cert = bypass.cert
        self.ports = {name: origin.port for name, origin in self.origins.items()}

    def _add(self, name: str, context: ssl.SSLContext) -> None:
        self.origins[name] = Origin(name, context)

    def url(self, name: str, path: str = "/") -> str:
        return f"https://{name}.test:{self.ports[name]}{path}"

    def close(self) -> None:
        for origin in self.origins.values():
            with contextlib.suppress(Exception):
                origin.close()


@contextlib.contextmanager
def plain_origin(name: str = "plain") -> Iterator[Origin]:
    origin = Origin(name, None)
    try:
        yield origin
    finally:
        origin.close()
