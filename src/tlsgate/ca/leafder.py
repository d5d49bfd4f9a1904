"""The leaf profile written straight to DER: the proxy's first contact with a host mints here.

:func:`tlsgate.ca.profiles.build_leaf` builds a leaf with ``cryptography``'s
``CertificateBuilder``: a dozen Python objects for the name, the validity and six extensions,
then their encoding, ~0.07 ms warm and ~0.17 ms when run as the proxy runs it, between the ``ssl``
module's OpenSSL work with cold caches. A leaf is always the same shape, so here its
TBSCertificate is assembled from the issuer's parts encoded once and the few per-leaf fields
(serial, validity, names, public key), then signed with ``cryptography``: ~0.04 ms warm, ~0.10 ms
cold (``bench/ca/mint.py``; the signature is most of it). Nothing but encoding is done by hand: the key, the hashes and
the signature are ``cryptography``'s.

The bytes are those ``build_leaf`` would produce for the same serial, field for field (the tests
compare the two TBSCertificates byte for byte for every key type tlsgate makes, IP and long names,
and validity on both sides of 2050).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tlsgate.ca.keys import PrivateKey, PublicKey, signature_hash
from tlsgate.ca.names import HostName

__all__ = ["LeafEncoder", "der_to_pem"]

_SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_ECDSA_WITH_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
_VERSION_3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
_COMMON_NAME = bytes.fromhex("0603550403")  # OID 2.5.4.3
_BASIC_CONSTRAINTS_LEAF = bytes.fromhex("300c0603551d130101ff04023000")  # critical, CA:FALSE
_KEY_USAGE_EC = bytes.fromhex("300e0603551d0f0101ff040403020780")  # critical, digitalSignature
_KEY_USAGE_RSA = bytes.fromhex("300e0603551d0f0101ff0404030205a0")  # critical, + keyEncipherment
_SERVER_AUTH = bytes.fromhex("30130603551d25040c300a06082b06010505070301")  # EKU serverAuth
_SAN = bytes.fromhex("0603551d11")
_SAN_CRITICAL = bytes.fromhex("0603551d110101ff")
_AKI_PREFIX = bytes.fromhex("0603551d23")
_SKI = bytes.fromhex("0603551d0e")
_CN_MAX = 64  # ub-common-name (RFC 5280): a longer first name leaves the subject empty


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _sequence(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _time(moment: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), whole seconds."""
    if moment.tzinfo is None:
        raise ValueError("certificate validity needs timezone-aware datetimes")
    moment = moment.astimezone(UTC)
    if moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _skip_header(der: bytes, at: int) -> tuple[int, int]:
    """(where the content starts, where it ends) of the DER element at ``at``."""
    size = der[at + 1]
    start = at + 2
    if size & 0x80:
        count = size & 0x7F
        size = int.from_bytes(der[start : start + count], "big")
        start += count
    return start, start + size


def _subject_key_bits(spki: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's bits, which the SKI hashes (RFC 5280 §4.2.1.2 (1)).

    SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }:
    the bits are what follows the BIT STRING's unused-bits byte (always 0 for a key).
    """
    start, _ = _skip_header(spki, 0)
    _, algorithm_end = _skip_header(spki, start)
    bits_start, bits_end = _skip_header(spki, algorithm_end)
    return spki[bits_start + 1 : bits_end]


def der_to_pem(der: bytes) -> bytes:
    """A DER certificate as PEM (64-character lines)."""
    text = base64.b64encode(der)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


class LeafEncoder:
    """Leaves signed by one issuer key, encoded as DER without a certificate builder."""

    def __init__(self, issuer_key: PrivateKey, issuer_name: x509.Name, issuer_ski: x509.SubjectKeyIdentifier) -> None:
        self._key = issuer_key
        self._hash = signature_hash(issuer_key)
        if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
            self._algorithm = _ECDSA_WITH_SHA384 if isinstance(self._hash, hashes.SHA384) else _ECDSA_WITH_SHA256
        elif isinstance(issuer_key, rsa.RSAPrivateKey):
            self._algorithm = _SHA256_WITH_RSA
        else:  # pragma: no cover - keys are loaded through tlsgate.ca.keys, which refuses others
            raise TypeError(f"unsupported issuer key {type(issuer_key).__name__}")
        self._issuer = issuer_name.public_bytes()
        aki = _sequence(_tlv(0x80, issuer_ski.digest))  # AuthorityKeyIdentifier: keyIdentifier only
        self._aki = _sequence(_AKI_PREFIX, _tlv(0x04, aki))

    def encode(
        self, public_key: PublicKey, hosts: tuple[HostName, ...], not_before: datetime, not_after: datetime
    ) -> bytes:
        """The DER certificate of ``build_leaf``'s profile for these normalised names and key."""
        first = hosts[0]
        common_name = first if isinstance(first, str) else str(first)
        if len(common_name) <= _CN_MAX:
            cn = _tlv(0x0C, common_name.encode())  # UTF8String, as cryptography writes a CN
            subject = _sequence(_tlv(0x31, _sequence(_COMMON_NAME, cn)))
            san_head = _SAN
        else:
            subject = b"\x30\x00"
            san_head = _SAN_CRITICAL  # RFC 5280 §4.2.1.6: with an empty subject the SAN is critical
        names = b"".join(
            _tlv(0x82, host.encode()) if isinstance(host, str) else _tlv(0x87, host.packed) for host in hosts
        )
        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ski = hashlib.sha1(_subject_key_bits(spki), usedforsecurity=False).digest()
        usage = _KEY_USAGE_EC if isinstance(public_key, ec.EllipticCurvePublicKey) else _KEY_USAGE_RSA
        extensions = b"".join(
            (
                _BASIC_CONSTRAINTS_LEAF,
                usage,
                _SERVER_AUTH,
                _sequence(san_head, _tlv(0x04, _sequence(names))),
                self._aki,
                _sequence(_SKI, _tlv(0x04, _tlv(0x04, ski))),
            )
        )
        serial = x509.random_serial_number()
        tbs = _sequence(
            _VERSION_3,
            _tlv(0x02, serial.to_bytes(serial.bit_length() // 8 + 1, "big")),
            self._algorithm,
            self._issuer,
            _sequence(_time(not_before), _time(not_after)),
            subject,
            spki,
            _tlv(0xA3, _sequence(extensions)),
        )
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            signature = self._key.sign(tbs, ec.ECDSA(self._hash))
        else:
            signature = self._key.sign(tbs, padding.PKCS1v15(), self._hash)
        return _sequence(tbs, self._algorithm, _tlv(0x03, b"\x00" + signature))
