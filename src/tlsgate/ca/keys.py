"""Key types, generation, and (de)serialisation of CA and leaf private keys.

Rules: keys are PKCS#8 PEM; a CA key may be encrypted at rest with a
passphrase; errors from ``cryptography`` are translated to :class:`CAError`
with a message that never contains key material.
"""

from __future__ import annotations

import enum
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tlsgate.errors import CAError, PassphraseError

__all__ = [
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "dump_private_key",
    "generate_key",
    "key_type_of",
    "load_private_key",
    "signature_hash",
    "spki_der",
    "spki_sha256",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class KeyType(enum.StrEnum):
    """The key types tlsgate creates. ECDSA P-256 is the default: fast and universally accepted."""

    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @classmethod
    def parse(cls, text: str) -> KeyType:
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise CAError(f"unknown key type {text!r} (choose one of: {choices})") from None


_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.ECDSA_P256: ec.SECP256R1(),
    KeyType.ECDSA_P384: ec.SECP384R1(),
}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def generate_key(key_type: KeyType) -> PrivateKey:
    """A fresh private key of ``key_type``."""
    curve = _CURVES.get(key_type)
    if curve is not None:
        return ec.generate_private_key(curve)
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """A readable key type such as ``ecdsa-p256`` or ``rsa-2048`` (also for keys we did not make)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}
        return names.get(key.curve.name, f"ecdsa-{key.curve.name}")
    return f"rsa-{key.key_size}"


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The hash to sign with: SHA-384 for P-384 keys, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def spki_der(key: PrivateKey | PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a key (of its public half for a private key)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(key: PrivateKey | PublicKey) -> str:
    """Hex SHA-256 of the SubjectPublicKeyInfo: how tlsgate names a CA key everywhere."""
    return hashlib.sha256(spki_der(key)).hexdigest()


def dump_private_key(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with ``passphrase`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(data: bytes, passphrase: bytes | None, *, where: str) -> PrivateKey:
    """Parse a PEM private key; ``where`` names the file in error messages."""
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise PassphraseError(f"the CA key {where} is encrypted and no passphrase was given")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise PassphraseError(f"wrong passphrase for the CA key {where}") from None
        raise CAError(f"the CA key {where} is not a readable PEM private key ({_short(exc)})") from None
    except TypeError:
        raise CAError(f"the CA key {where} is not a readable PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CAError(f"the CA key {where} is of an unsupported type ({type(key).__name__})")
    return key


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]
