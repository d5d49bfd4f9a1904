"""The exception tree of tlsgate.

Every error that tlsgate raises on purpose derives from :class:`TlsgateError`;
third-party exceptions are translated at the boundary of the package that
meets them. The CLI turns any ``TlsgateError`` into one line on stderr and a
non-zero exit; the API turns it into a 4xx JSON body.

    TlsgateError
    ├── ConfigError            bad settings or command-line input
    │   ├── SchemaTooNewError      (tlsgate.store) the database was migrated by a newer tlsgate
    │   └── StoreUnavailableError  (tlsgate.store) the database cannot be reached
    ├── CAError                CA material missing, corrupt, or an operation refused
    │   ├── CANotFoundError    no CA in the data directory
    │   ├── CAExistsError      init over an existing CA
    │   ├── PassphraseError    passphrase missing or wrong
    │   └── InvalidNameError   a host name or IP literal that cannot go in a SAN
    ├── PolicyError
    ├── TrustStoreError        a trust store or its tool refused
    ├── PortalError            (tlsgate.agent.portal) the portal is unreachable or refused
    ├── DeliveryError          (tlsgate.notify) a channel could not deliver (it is retried)
    └── ProtocolError
        ├── LocalProtocolError   we were asked to send something invalid
        └── RemoteProtocolError  the peer sent something invalid (carries a status hint)
"""

from __future__ import annotations

__all__ = [
    "CAError",
    "CAExistsError",
    "CANotFoundError",
    "ConfigError",
    "InvalidNameError",
    "LocalProtocolError",
    "PassphraseError",
    "PolicyError",
    "ProtocolError",
    "RemoteProtocolError",
    "TlsgateError",
    "TrustStoreError",
]


class TlsgateError(Exception):
    """Root of every error tlsgate raises on purpose. ``str(err)`` is one line for a person."""


class ConfigError(TlsgateError):
    """Settings or command-line input that cannot be used."""


class CAError(TlsgateError):
    """CA material is missing or corrupt, or a CA operation was refused."""


class CANotFoundError(CAError):
    """There is no CA in the data directory."""


class CAExistsError(CAError):
    """A CA already exists where a new one was to be created."""


class PassphraseError(CAError):
    """The passphrase for an encrypted CA key is missing or wrong."""


class InvalidNameError(CAError):
    """A host name or IP literal that cannot be put in a certificate."""


class PolicyError(TlsgateError):
    """A policy rule that cannot be parsed or applied."""


class TrustStoreError(TlsgateError):
    """A trust store that cannot be read or changed."""


class ProtocolError(TlsgateError):
    """A protocol rule was broken."""

    def __init__(self, message: str, *, error_status_hint: int = 400) -> None:
        super().__init__(message)
        self.error_status_hint = error_status_hint


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
