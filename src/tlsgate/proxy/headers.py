"""Rewriting message heads for forwarding: hop-by-hop removal, Via, framing, target form.

RFC 9110 §7.6.1: a proxy removes Connection, the fields it names, and the other hop-by-hop
fields (Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade, Trailer,
Proxy-Authenticate, Proxy-Authorization), and sets its own framing. RFC 9110 §7.6.3: add Via.
RFC 9112 §3.2.2: for an absolute-form target the proxy replaces Host with the target's authority.
"""

from __future__ import annotations

from tlsgate.proxy.events import CHUNKED, Headers

__all__ = [
    "HOP_BY_HOP",
    "VIA",
    "filter_headers",
    "join_fields",
    "page_response",
    "request_head",
    "response_head",
    "simple_response",
    "status_line",
]

VIA = b"1.1 tlsgate"

#: RFC 9110 §7.6.1: fields for one connection only, never forwarded (Content-Length too: the
#: proxy sets its own framing).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"content-length",
    }
)


def filter_headers(headers: Headers, *, keep_upgrade: bool = False, drop_host: bool = False) -> tuple[Headers, bytes]:
    """End-to-end fields only (also without those Connection names), and the Via value (b"" if none)."""
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b","))
    out: Headers = []
    via = b""
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname in named:
            if keep_upgrade and lname == b"upgrade":
                out.append((name, value))
            continue
        if lname == b"via":
            via = value if not via else via + b", " + value
            continue
        if drop_host and lname == b"host":
            continue
        out.append((name, value))
    return out, via


def join_fields(headers: Headers) -> bytes:
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])


_REASONS = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def _framing(body_length: int | None) -> bytes:
    if body_length is None:
        return b""
    if body_length == CHUNKED or body_length < 0:
        return b"Transfer-Encoding: chunked\r\n"
    return b"Content-Length: %d\r\n" % body_length


def request_head(
    method: bytes,
    path: bytes,
    host_header: bytes | None,
    headers: Headers,
    body_length: int | None,
    *,
    upgrade: bytes | None = None,
    fields: bytes | None = None,
    via: bytes = b"",
) -> bytes:
    """The request head to send upstream (origin-form target).

    ``fields`` and ``via``: the reader's rendering of ``filter_headers(headers)``, used when
    nothing else is asked of the filter (no Upgrade kept, Host not replaced).
    """
    if fields is None or upgrade is not None or host_header is not None:
        kept, via = filter_headers(headers, keep_upgrade=upgrade is not None, drop_host=host_header is not None)
        fields = join_fields(kept)
    parts = [method, b" ", path, b" HTTP/1.1\r\n"]
    if host_header is not None:
        parts.append(b"Host: " + host_header + b"\r\n")
    parts.append(fields)
    parts.append(b"Via: " + (via + b", " + VIA if via else VIA) + b"\r\n")
    if upgrade is not None:
        parts.append(b"Connection: upgrade\r\n")
    elif body_length is None and method in (b"POST", b"PUT", b"PATCH"):
        parts.append(b"Content-Length: 0\r\n")
    parts.append(_framing(body_length))
    parts.append(b"\r\n")
    return b"".join(parts)


def status_line(status: int, reason: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or _REASONS.get(status, b"Unknown"))


def response_head(
    status: int,
    reason: bytes,
    headers: Headers,
    body_length: int | None,
    *,
    keep_alive: bool,
    original_length: bytes | None = None,
    upgrade: bool = False,
    fields: bytes | None = None,
    via: bytes = b"",
) -> bytes:
    """The response head to send to the client.

    ``body_length`` is the framing the proxy will use (None: no body follows); for HEAD and
    304 the origin's Content-Length is informational and passed on as ``original_length``.
    ``fields`` and ``via`` as for :func:`request_head` (not used when Upgrade is kept).
    """
    if fields is None or upgrade:
        kept, via = filter_headers(headers, keep_upgrade=upgrade)
        fields = join_fields(kept)
    parts = [status_line(status, reason), fields]
    parts.append(b"Via: " + (via + b", " + VIA if via else VIA) + b"\r\n")
    if upgrade:
        parts.append(b"Connection: upgrade\r\n")
    elif not keep_alive:
        parts.append(b"Connection: close\r\n")
    if body_length is None:
        if original_length is not None:
            parts.append(b"Content-Length: " + original_length + b"\r\n")
    else:
        parts.append(_framing(body_length))
    parts.append(b"\r\n")
    return b"".join(parts)


def content_length(headers: Headers) -> bytes | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            return value.strip()
    return None


def simple_response(status: int, reason: str) -> bytes:
    """The proxy's own short plain-text answer, closing the connection."""
    body = (reason + "\n").encode("utf-8", "replace")
    return (
        status_line(status)
        + b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )


def page_response(status: int, body: bytes) -> bytes:
    """The proxy's own HTML page (an error page), closing the connection."""
    return (
        status_line(status)
        + b"Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n"
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )
