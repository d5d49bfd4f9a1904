"""Leaf minting and its cache: the one place where tlsgate makes server certificates.

The proxy and ``tlsgate ca mint`` both call :meth:`LeafIssuer.get`. A leaf:

* has its own key (ECDSA P-256 by default), never the CA's;
* carries the names asked for as SANs (DNS names, IP literals as iPAddress);
* starts :data:`LEAF_BACKDATE` in the past for clock skew, and ends no later
  than the issuer version's notAfter and no later than :data:`MAX_LEAF_DAYS`
  after its start (CA/Browser Forum ballot SC-081: 200 days from 2026-03-15);
* has AKI = the issuer's SKI, EKU serverAuth, basicConstraints CA:FALSE;
* is the profile of :func:`tlsgate.ca.profiles.build_leaf`, encoded by
  :class:`tlsgate.ca.leafder.LeafEncoder` (the same bytes in ~60% of the time).

The cache is keyed by the set of names, bounded (LRU), and renews an entry
before it expires. It has two tiers, because the TLS context is the memory: a
context with its certificate and key is ~21 KiB in OpenSSL 3.0, the leaf's PEM
certificate and key ~1.5 KiB. The most recently used leaves keep their context
(:data:`DEFAULT_CONTEXT_CACHE_SIZE`); older ones keep only their PEM, and a
context is built again from it (~0.6 ms) when their name comes back, instead of
minting again (~0.9 ms, and a new certificate). A :class:`LeafIssuer` is bound to
one issuer version, so a renewed or rotated CA gets a new issuer and never serves
stale leaves. It is safe to use from several threads and from an event loop (it
never awaits).
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from tlsgate.ca.authority import IssuingMaterial
from tlsgate.ca.keys import KeyType, PrivateKey, dump_private_key, generate_key
from tlsgate.ca.leafder import LeafEncoder, der_to_pem
from tlsgate.ca.names import HostName, normalize_host
from tlsgate.clock import Clock, system_clock
from tlsgate.errors import CAError, InvalidNameError

__all__ = ["LEAF_BACKDATE", "MAX_LEAF_DAYS", "Leaf", "LeafIssuer", "default_server_context"]

LEAF_BACKDATE = timedelta(days=1)
#: Total lifetime (notAfter - notBefore) stays under the CA/B Forum's 200 days.
MAX_LEAF_DAYS = 199
#: Leaves kept (their PEM, ~1.5 KiB each); a miss costs a mint (~0.9 ms).
DEFAULT_CACHE_SIZE = 4096
#: Leaves kept with a ready TLS context (~21 KiB each); a miss costs a context (~0.6 ms).
DEFAULT_CONTEXT_CACHE_SIZE = 256
#: TLS 1.2 with clients: ECDHE and an AEAD only (TLS 1.3's suites are all of that kind)
_CLIENT_FACING_TLS12_CIPHERS = "@SECLEVEL=2:ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"


def default_server_context() -> ssl.SSLContext:
    """The client-facing TLS settings: TLS 1.2+, ALPN http/1.1, no compression, no renegotiation.

    Only AEAD ciphers with ECDHE key exchange (Mozilla's "intermediate" TLS 1.2 list without its
    DHE suites, which never worked here: no DH parameters are loaded; TLS 1.3 has no other
    kind), and the client's order decides among them, as Mozilla's server guidelines advise
    once every cipher on offer is strong (Python's server default is our order, AES-256-GCM first):
    a client picks what its hardware does fast. Browsers and Go pick AES-128-GCM where AES-NI
    exists (~13% cheaper than AES-256-GCM, for them and for us), phones without it ChaCha20-Poly1305.

    One TLS 1.3 session ticket per connection instead of OpenSSL's two: each connection hands a
    resuming client the ticket for its next one, and every ticket costs the server an encryption
    (~30 µs per handshake measured here with two).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(_CLIENT_FACING_TLS12_CIPHERS)
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.num_tickets = 1
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(frozen=True, slots=True)
class Leaf:
    """A minted leaf, its key, the chain to serve after it, and its ready TLS server context.

    The certificate and key are kept as PEM (what the context was built from); :attr:`cert`
    and :attr:`key` parse them when asked (the proxy never asks).
    """

    hosts: tuple[HostName, ...]
    #: the leaf first, then any intermediate or cross-certificate: what a server sends
    chain_pem: bytes
    #: the key as the TLS context loaded it (SEC1 "EC PRIVATE KEY" for EC keys); key_pem() is PKCS#8
    key_pem_data: bytes = field(repr=False)
    chain: tuple[x509.Certificate, ...]
    context: ssl.SSLContext = field(repr=False)
    refresh_at: datetime

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.chain_pem)

    @property
    def key(self) -> PrivateKey:
        return load_pem_private_key(self.key_pem_data, password=None)  # type: ignore[return-value]

    def key_pem(self) -> bytes:
        """The key as PKCS#8 PEM, the format of every key file tlsgate writes."""
        return dump_private_key(self.key)


class LeafIssuer:
    """Mints leaves under one issuer version and caches them with their TLS contexts."""

    def __init__(
        self,
        material: IssuingMaterial,
        *,
        clock: Clock = system_clock,
        leaf_key_type: KeyType = KeyType.ECDSA_P256,
        cache_size: int = DEFAULT_CACHE_SIZE,
        context_cache_size: int = DEFAULT_CONTEXT_CACHE_SIZE,
        context_factory: Callable[[], ssl.SSLContext] = default_server_context,
    ) -> None:
        self._material = material
        self._issuer_name = material.cert.subject
        self._issuer_not_after = material.cert.not_valid_after_utc
        self._chain_pem = b"".join(c.public_bytes(Encoding.PEM) for c in material.chain)
        self._encoder = LeafEncoder(material.key, material.cert.subject, material.ski)
        self._clock = clock
        self._leaf_key_type = leaf_key_type
        total = max(1, cache_size)
        self._hot_size = max(1, min(context_cache_size, total))
        self._stored_size = total - self._hot_size
        self._context_factory = context_factory
        self._lock = threading.Lock()
        # Two LRU maps of leaves with their context: the names exactly as asked (the fast path:
        # no parsing on a hit) and the normalised name set (so "A.test" and "a.test" share a
        # leaf). Leaves pushed out of the second keep their PEM in a third.
        self._by_request: OrderedDict[tuple[str, ...], Leaf] = OrderedDict()
        self._by_names: OrderedDict[frozenset[HostName], Leaf] = OrderedDict()
        self._stored: OrderedDict[frozenset[HostName], _Stored] = OrderedDict()
        self._minting: dict[frozenset[HostName], threading.Lock] = {}

    @property
    def issuer_cert(self) -> x509.Certificate:
        return self._material.cert

    def __len__(self) -> int:
        """Leaves kept, with a context or as PEM."""
        return len(self._by_names) + len(self._stored)

    @property
    def contexts(self) -> int:
        """Leaves kept with a ready TLS context."""
        return len(self._by_names)

    def cached(self, hosts: Sequence[str]) -> Leaf | None:
        """The cached leaf for exactly these names if it is still fresh; never mints (no parsing)."""
        request = tuple(hosts)
        with self._lock:
            leaf = self._by_request.get(request)
            if leaf is not None and self._clock() < leaf.refresh_at:
                self._by_request.move_to_end(request)
                return leaf
        return None

    def get(self, hosts: Sequence[str]) -> Leaf:
        """The cached leaf for these names, minted on first contact or when close to expiry."""
        request = tuple(hosts)
        now = self._clock()
        with self._lock:
            leaf = self._by_request.get(request)
            if leaf is not None and now < leaf.refresh_at:
                self._by_request.move_to_end(request)
                return leaf
        names = _normalise(request)
        key = frozenset(names)
        with self._lock:
            leaf = self._by_names.get(key)
            stale = leaf is None or now >= leaf.refresh_at
            gate = self._minting.setdefault(key, threading.Lock()) if stale else None
        if gate is not None:
            with gate:  # one mint per name set, however many connections ask at once
                with self._lock:
                    leaf = self._by_names.get(key)
                    stored = self._stored.pop(key, None) if leaf is None else None
                if stored is not None and now < stored.refresh_at:
                    leaf = self._revive(stored)  # a context again, for the same certificate
                if leaf is None or now >= leaf.refresh_at:
                    leaf = self.mint(names)
                with self._lock:
                    for old_key, old in self._remember(self._by_names, key, leaf, self._hot_size):
                        self._stored[old_key] = _Stored(old.hosts, old.chain_pem, old.key_pem_data, old.refresh_at)
                        self._stored.move_to_end(old_key)
                    while len(self._stored) > self._stored_size:
                        self._stored.popitem(last=False)
                    self._minting.pop(key, None)
        if leaf is None:  # unreachable: the gate above always leaves a leaf
            raise CAError("leaf minting failed")
        with self._lock:
            self._remember(self._by_request, request, leaf, self._hot_size)
        return leaf

    def mint(self, hosts: Sequence[HostName]) -> Leaf:
        """A new leaf for normalised names, bypassing the cache."""
        now = self._clock()
        if now >= self._issuer_not_after:
            raise CAError(
                f"the issuing CA expired on {self._issuer_not_after:%Y-%m-%d}; renew it with 'tlsgate ca renew'"
            )
        not_before = now - LEAF_BACKDATE
        not_after = min(not_before + timedelta(days=MAX_LEAF_DAYS), self._issuer_not_after)
        key = generate_key(self._leaf_key_type)
        der = self._encoder.encode(key.public_key(), tuple(hosts), not_before, not_after)
        lifetime = not_after - now
        refresh_at = not_after - min(timedelta(days=7), lifetime / 4)
        chain_pem = der_to_pem(der) + self._chain_pem
        return self._revive(_Stored(tuple(hosts), chain_pem, _context_key_pem(key), refresh_at))

    def _revive(self, stored: _Stored) -> Leaf:
        """The leaf with a new TLS context built from its PEM."""
        context = self._context_factory()
        # The names this context vouches for, so a server's SNI check needs no cache lookup.
        context.tlsgate_hosts = frozenset(stored.hosts)  # type: ignore[attr-defined]
        _load_chain(context, stored.chain_pem, stored.key_pem)
        return Leaf(stored.hosts, stored.chain_pem, stored.key_pem, self._material.chain, context, stored.refresh_at)

    @staticmethod
    def _remember(cache: OrderedDict, key: object, leaf: Leaf, size: int) -> list[tuple[Any, Leaf]]:  # type: ignore[type-arg]
        """Put ``leaf`` first in ``cache``; the entries pushed out, oldest first."""
        cache[key] = leaf
        cache.move_to_end(key)
        evicted = []
        while len(cache) > size:
            evicted.append(cache.popitem(last=False))
        return evicted


class _Stored(NamedTuple):
    """A leaf without its context: what it takes to build one again."""

    hosts: tuple[HostName, ...]
    chain_pem: bytes
    key_pem: bytes
    refresh_at: datetime

    def __repr__(self) -> str:  # never the key
        return f"_Stored(hosts={self.hosts!r}, refresh_at={self.refresh_at!r})"


def _normalise(hosts: tuple[str, ...]) -> tuple[HostName, ...]:
    if not hosts:
        raise InvalidNameError("a leaf needs at least one host name")
    names: list[HostName] = []
    for host in hosts:
        name = normalize_host(host)
        if isinstance(name, str) and name.startswith("*."):
            raise InvalidNameError(f"invalid host name {host!r}: leaves are minted for exact names")
        if name not in names:
            names.append(name)
    return tuple(names)


def _context_key_pem(key: PrivateKey) -> bytes:
    """The leaf key in the PEM form OpenSSL 3.0 loads fastest.

    A context's ``load_cert_chain`` decodes the key through OpenSSL 3.0's decoder chain; SEC1's
    "EC PRIVATE KEY" skips the PKCS#8 wrapper's extra decoder step (~25 µs of ~0.5 ms).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_bytes(Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    return dump_private_key(key)


def _load_chain(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """Load a certificate chain and key from memory (``ssl`` only reads files).

    The key goes to an anonymous in-memory file (memfd), so a leaf key never
    touches a disk; where memfd is missing, to a 0600 temporary file removed at once.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("tlsgate-leaf", os.MFD_CLOEXEC)
        try:
            os.write(fd, chain_pem + key_pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    import tempfile  # only where memfd is missing: not worth its imports in every worker

    handle, path = tempfile.mkstemp(prefix="tlsgate-leaf-")
    try:
        os.write(handle, chain_pem + key_pem)
        os.close(handle)
        context.load_cert_chain(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
