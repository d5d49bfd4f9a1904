"""Host names and IP literals as they go into a leaf's subjectAltName.

A name the client asked for (SNI, CONNECT host, ``tlsgate ca mint`` argument) is
normalised here once: lower case, no trailing dot, IDNA A-labels, IPv6 without
brackets. Anything that is not a valid DNS name or IP literal is refused with
:class:`InvalidNameError` (RFC 5280 §4.2.1.6: dNSName is an IA5String in
"preferred name syntax"; an IP literal goes in iPAddress, never in dNSName).
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from tlsgate.errors import InvalidNameError

__all__ = ["HostName", "normalize_host", "san_entries"]

HostName = str | ipaddress.IPv4Address | ipaddress.IPv6Address

# One DNS label: letters, digits, hyphen; underscore is tolerated because real
# hosts use it (browsers accept it in SNI). No leading or trailing hyphen.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# A name already in its normal form: lower-case ASCII labels, no trailing dot (the proxy's case).
_NORMAL_NAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")


def normalize_host(text: str) -> HostName:
    """A DNS name (lower-case A-labels) or an IP address; raises InvalidNameError."""
    if len(text) <= 253 and _NORMAL_NAME.fullmatch(text) and not text.replace(".", "").isdigit():
        # Already normal and not an IP literal (that needs a ':' or only digits): itself, as below
        # — without the two parse failures of ipaddress and a match per label (first contact).
        return text
    return _normalize(text)


def _normalize(text: str) -> HostName:
    raw = text.strip()
    if not raw:
        raise InvalidNameError("empty host name")
    candidate = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        pass
    name = raw.rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidNameError(f"invalid host name {text!r}: not a valid internationalised name") from None
    if len(name) > 253:
        raise InvalidNameError(f"invalid host name {text!r}: longer than 253 characters")
    labels = name.split(".")
    for index, label in enumerate(labels):
        if index == 0 and label == "*" and len(labels) > 2:
            continue
        if not _LABEL.match(label):
            raise InvalidNameError(f"invalid host name {text!r}")
    if name.replace(".", "").isdigit():
        raise InvalidNameError(f"invalid host name {text!r}: looks like a malformed IP address")
    return name


def san_entries(hosts: tuple[HostName, ...]) -> list[x509.GeneralName]:
    """subjectAltName entries for normalised hosts, in the order given."""
    entries: list[x509.GeneralName] = []
    for host in hosts:
        if isinstance(host, str):
            entries.append(x509.DNSName(host))
        else:
            entries.append(x509.IPAddress(host))
    return entries
