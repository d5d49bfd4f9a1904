"""Install artefacts for endpoints without the agent: what an admin hands to GPO, MDM or a shell.

* :func:`windows_powershell` — adds the root version(s) to LocalMachine\\Root after checking
  each thumbprint, and removes expired versions of the same identity once a valid one is in;
* :func:`macos_shell` — ``security add-trusted-cert`` into the System keychain, after an
  SHA-256 fingerprint check;
* :func:`apple_mobileconfig` — a configuration profile with one ``com.apple.security.root``
  payload per version (deterministic UUIDs, so re-issuing the profile replaces it);
* :func:`firefox_policies` — an enterprise ``policies.json`` that makes Firefox import the
  root(s) (and trust the OS store).

Every artefact embeds public certificates only.
"""

from __future__ import annotations

import base64
import json
import plistlib
import uuid
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from tlsgate.trust.identity import cert_sha256, spki_sha256_of

__all__ = [
    "INSTALLERS",
    "apple_mobileconfig",
    "firefox_cert_name",
    "firefox_policies",
    "macos_shell",
    "windows_powershell",
]

_NAMESPACE = uuid.UUID("6f1d7f8e-7c55-4a53-9d55-7c1b1f0f7a11")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def _sha1(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Windows thumbprints are SHA-1 by definition


def windows_powershell(certs: Sequence[x509.Certificate]) -> str:
    entries = "\n".join(
        f"    @{{ Thumbprint = '{_sha1(c)}'; Base64 = '{base64.b64encode(c.public_bytes(Encoding.DER)).decode()}' }}"
        for c in certs
    )
    return f"""#Requires -RunAsAdministrator
# tlsgate: install the interception root CA into the Local Machine Trusted Root store.
# Each certificate is checked against its SHA-1 thumbprint before it is added; expired versions
# of the same CA (same subject and public key) are removed only once a valid version is present.
$ErrorActionPreference = 'Stop'
$certs = @(
{entries}
)
$store = New-Object System.Security.Cryptography.X509Certificates.X509Store('Root', 'LocalMachine')
$store.Open('ReadWrite')
try {{
  foreach ($entry in $certs) {{
    $der = [Convert]::FromBase64String($entry.Base64)
    $cert = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2(,$der)
    if ($cert.Thumbprint -ne $entry.Thumbprint) {{ throw "thumbprint mismatch for $($cert.Subject)" }}
    if (-not ($store.Certificates | Where-Object {{ $_.Thumbprint -eq $cert.Thumbprint }})) {{
      $store.Add($cert)
      Write-Output "installed $($cert.Subject) (valid until $($cert.NotAfter.ToString('yyyy-MM-dd')))"
    }}
    $now = Get-Date
    $key = [Convert]::ToBase64String($cert.PublicKey.EncodedKeyValue.RawData)
    $same = $store.Certificates | Where-Object {{
      $_.Subject -eq $cert.Subject -and [Convert]::ToBase64String($_.PublicKey.EncodedKeyValue.RawData) -eq $key
    }}
    if ($same | Where-Object {{ $_.NotAfter -gt $now -and $_.NotBefore -le $now }}) {{
      $same | Where-Object {{ $_.NotAfter -lt $now }} | ForEach-Object {{
        $store.Remove($_)
        Write-Output "removed expired $($_.Subject) ($($_.Thumbprint))"
      }}
    }}
  }}
}} finally {{
  $store.Close()
}}
"""


def macos_shell(certs: Sequence[x509.Certificate]) -> str:
    blocks = []
    for index, cert in enumerate(certs):
        blocks.append(
            f"""cat > "$tmp/root{index}.pem" <<'TLSGATE_PEM'
{_pem(cert).strip()}
TLSGATE_PEM
check "$tmp/root{index}.pem" {cert_sha256(cert)}"""
        )
    body = "\n".join(blocks)
    return f"""#!/bin/sh
# tlsgate: trust the interception root CA in the macOS System keychain (run with sudo).
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {{
  got=$(openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
  if [ "$got" != "$2" ]; then echo "tlsgate: fingerprint mismatch for $1" >&2; exit 1; fi
  security add-trusted-cert -d -r trustRoot -p ssl -p basic -k /Library/Keychains/System.keychain "$1"
  echo "installed $(openssl x509 -in "$1" -noout -subject) (SHA-256 $2)"
}}
{body}
"""


def apple_mobileconfig(certs: Sequence[x509.Certificate], organization: str = "tlsgate") -> bytes:
    identity = spki_sha256_of(certs[0])
    payloads = [
        {
            "PayloadType": "com.apple.security.root",
            "PayloadVersion": 1,
            "PayloadIdentifier": f"tlsgate.root.{cert_sha256(cert)[:16]}",
            "PayloadUUID": str(uuid.uuid5(_NAMESPACE, cert_sha256(cert))).upper(),
            "PayloadDisplayName": cert.subject.rfc4514_string(),
            "PayloadCertificateFileName": f"tlsgate-root-{cert_sha256(cert)[:12]}.cer",
            "PayloadContent": cert.public_bytes(Encoding.DER),
        }
        for cert in certs
    ]
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"tlsgate.interception-ca.{identity[:16]}",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, identity)).upper(),
        "PayloadDisplayName": "tlsgate interception root CA",
        "PayloadDescription": "Lets this device trust HTTPS inspected by the organisation's tlsgate gateway.",
        "PayloadOrganization": organization,
        "PayloadScope": "System",
        "PayloadContent": payloads,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def firefox_cert_name(cert: x509.Certificate) -> str:
    """The file name to place in Firefox's certificate directories (e.g. /usr/lib/mozilla/certificates)."""
    return f"tlsgate-root-{cert_sha256(cert)[:12]}.pem"


def firefox_policies(certs: Sequence[x509.Certificate]) -> str:
    """``policies.json``: Firefox imports the named files from its standard certificate directories."""
    policy = {
        "policies": {
            "Certificates": {
                "ImportEnterpriseRoots": True,
                "Install": [firefox_cert_name(c) for c in certs],
            }
        }
    }
    return json.dumps(policy, indent=2) + "\n"


#: every installer by its export format name (``tlsgate ca export --format NAME``, the portal's downloads)
INSTALLERS: dict[str, Callable[[Sequence[x509.Certificate]], bytes]] = {
    "ps1": lambda certs: windows_powershell(certs).encode(),
    "macos.sh": lambda certs: macos_shell(certs).encode(),
    "mobileconfig": apple_mobileconfig,
    "firefox-policies.json": lambda certs: firefox_policies(certs).encode(),
}
