"""tlsgate.trust: trust-store adapters and identity-based presence of the interception CA.

It knows nothing of HTTP or the portal; programs run through one runner.
"""

from tlsgate.trust.discover import discover_stores
from tlsgate.trust.identity import (
    CAIdentityRef,
    Presence,
    StorePlan,
    cert_sha256,
    is_cross_signed_by,
    parse_pem_bundle,
    plan_store,
    presence,
    spki_sha256_of,
)
from tlsgate.trust.runner import CommandResult, CommandRunner, run_command
from tlsgate.trust.stores import DebianStore, JavaStore, NssStore, RhelStore, TrustStore, entry_name

__all__ = [
    "CAIdentityRef",
    "CommandResult",
    "CommandRunner",
    "DebianStore",
    "JavaStore",
    "NssStore",
    "Presence",
    "RhelStore",
    "StorePlan",
    "TrustStore",
    "cert_sha256",
    "discover_stores",
    "entry_name",
    "is_cross_signed_by",
    "parse_pem_bundle",
    "plan_store",
    "presence",
    "run_command",
    "spki_sha256_of",
]
