"""tlsgate.ca: the interception CA — identities, versions, renew in place, rotate, leaves, exports.

A pure library: it reads and writes only its own key and certificate files.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tlsgate.ca.authority import DEFAULT_CA_DAYS, DEFAULT_SUBJECT, CertificateAuthority, IssuingMaterial
from tlsgate.ca.keys import KeyType
from tlsgate.ca.leaf import Leaf, LeafIssuer, default_server_context
from tlsgate.ca.model import CAIdentity, CAVersion, CrossCertificate, Role, VersionStatus, describe_version
from tlsgate.ca.names import normalize_host

if TYPE_CHECKING:
    from tlsgate.ca.export import ExportFormat, export_certificates, exported_versions
    from tlsgate.ca.selfcheck import CheckResult, self_check

# Exports and the self-check are imported on first use: the proxy's worker mints leaves but
# never exports, and PKCS#7 alone pulls in Python's whole email package (~1.2 MiB per worker).
_LAZY = {
    "ExportFormat": "tlsgate.ca.export",
    "export_certificates": "tlsgate.ca.export",
    "exported_versions": "tlsgate.ca.export",
    "CheckResult": "tlsgate.ca.selfcheck",
    "self_check": "tlsgate.ca.selfcheck",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tlsgate.ca' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_CA_DAYS",
    "DEFAULT_SUBJECT",
    "CAIdentity",
    "CAVersion",
    "CertificateAuthority",
    "CheckResult",
    "CrossCertificate",
    "ExportFormat",
    "IssuingMaterial",
    "KeyType",
    "Leaf",
    "LeafIssuer",
    "Role",
    "VersionStatus",
    "default_server_context",
    "describe_version",
    "export_certificates",
    "exported_versions",
    "normalize_host",
    "self_check",
]
