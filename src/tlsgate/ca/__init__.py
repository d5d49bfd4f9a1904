"""tlsgate.ca: the interception CA — identities, versions, renew in place, rotate, leaves, exports.

A pure library: it reads and writes only its own key and certificate files.
"""

from tlsgate.ca.authority import DEFAULT_CA_DAYS, DEFAULT_SUBJECT, CertificateAuthority, IssuingMaterial
from tlsgate.ca.export import ExportFormat, export_certificates, exported_versions
from tlsgate.ca.keys import KeyType
from tlsgate.ca.leaf import Leaf, LeafIssuer, default_server_context
from tlsgate.ca.model import CAIdentity, CAVersion, CrossCertificate, Role, VersionStatus, describe_version
from tlsgate.ca.names import normalize_host
from tlsgate.ca.selfcheck import CheckResult, self_check

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
