"""TLS facts the proxy needs, without sockets: why an upstream failed, why a client refused us,
whether bytes start a TLS ClientHello, and the error page a client sees.

Upstream reasons come from OpenSSL's X509 verify codes (``x509_vfy.h``) carried by
:class:`ssl.SSLCertVerificationError`, and from the library reason of other :class:`ssl.SSLError`.
"""

from __future__ import annotations

import html
import ssl

__all__ = [
    "CLIENT_REJECTION_ALERTS",
    "client_rejection",
    "error_page",
    "looks_like_tls",
    "upstream_failure_reason",
]

# X509_V_ERR_* codes (OpenSSL include/openssl/x509_vfy.h)
_VERIFY_REASONS = {
    2: "incomplete chain",  # UNABLE_TO_GET_ISSUER_CERT
    9: "certificate not yet valid",
    10: "certificate expired",
    13: "certificate not yet valid",  # ERROR_IN_CERT_NOT_BEFORE_FIELD
    14: "certificate expired",  # ERROR_IN_CERT_NOT_AFTER_FIELD
    18: "self-signed certificate",
    19: "untrusted issuer (root not trusted)",
    20: "untrusted issuer or incomplete chain",
    21: "incomplete chain",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    23: "certificate revoked",
    62: "wrong host (name mismatch)",
    64: "wrong host (IP address mismatch)",
    66: "weak key",  # EE_KEY_TOO_SMALL
    67: "weak key",  # CA_KEY_TOO_SMALL
    68: "weak signature algorithm",  # CA_MD_TOO_WEAK
}

_PROTOCOL_REASONS = (
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION",
    "VERSION_TOO_LOW",
)

#: OpenSSL reasons for the alerts a client sends when it does not trust our leaf.
CLIENT_REJECTION_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate_unknown",
}


def upstream_failure_reason(exc: BaseException) -> str:
    """A short reason for the error page and the access event."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = _VERIFY_REASONS.get(exc.verify_code)
        if reason is None:
            reason = f"certificate verification failed ({exc.verify_message})"
        return reason
    if isinstance(exc, ssl.SSLError):
        lib_reason = getattr(exc, "reason", None) or ""
        if lib_reason in ("EE_KEY_TOO_SMALL", "CA_KEY_TOO_SMALL", "KEY_TOO_SMALL"):
            return "weak key"
        if lib_reason in _PROTOCOL_REASONS:
            return "handshake failure: protocol version not accepted"
        return f"handshake failure ({lib_reason or exc.__class__.__name__})"
    if isinstance(exc, TimeoutError):
        return "upstream connect timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect: {exc.strerror.lower()}"
    return f"cannot connect: {exc.__class__.__name__}"


def client_rejection(exc: BaseException) -> str | None:
    """The TLS alert name when a client aborted our handshake because it does not trust our leaf."""
    if isinstance(exc, ssl.SSLError):
        return CLIENT_REJECTION_ALERTS.get(getattr(exc, "reason", None) or "")
    return None


def looks_like_tls(first: bytes) -> bool:
    """A TLS handshake record (content type 22, major version 3) — as opposed to plain HTTP."""
    return len(first) >= 1 and first[0] == 0x16 and (len(first) < 2 or first[1] == 0x03)


def error_page(status: int, title: str, host: str, reason: str) -> bytes:
    """A small HTML page that names the reason; every value is escaped."""
    body = (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body><h1>{html.escape(title)}</h1>\n<p>tlsgate could not give you <b>{html.escape(host)}</b> safely.</p>\n"
        f'<p>Reason: <code class="reason">{html.escape(reason)}</code></p>\n</body></html>\n'
    )
    return body.encode()
