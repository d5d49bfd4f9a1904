"""The HTTP/1 events the proxy's readers give, and their limits: facts about a message, no I/O.

:class:`~tlsgate.proxy.http1.RequestReader` and :class:`~tlsgate.proxy.http1.ResponseReader`
turn bytes into these; the connections act on them. ``body_length`` says how a body is framed:
``None`` no body, :data:`CHUNKED`, :data:`UNTIL_CLOSE` (a response read until the connection
closes), else the Content-Length.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CHUNKED",
    "END",
    "UNTIL_CLOSE",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Limits",
    "RequestHead",
    "ResponseHead",
    "Upgraded",
]

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_line: int = 8192
    max_header_bytes: int = 65536
    max_header_count: int = 100


@dataclass(slots=True)  # events are not frozen: a frozen __init__ costs 5 times as much, per message
class RequestHead:
    method: bytes
    target: bytes
    http_version: str  # "1.1" or "1.0"
    headers: Headers
    keep_alive: bool
    #: None = no body; -1 = chunked; else the Content-Length
    body_length: int | None
    upgrade: bytes | None  # the Upgrade header's value when the request asks to switch protocols
    host: bytes | None = None  # the Host header's value
    #: the end-to-end fields as forwarded (filter_headers(headers), rendered) and the Via value;
    #: None when not computed (events built by hand)
    fields: bytes | None = field(default=None, compare=False)
    via: bytes = field(default=b"", compare=False)


@dataclass(slots=True)
class ResponseHead:
    status: int
    reason: bytes
    http_version: str
    headers: Headers
    keep_alive: bool
    #: None = no body; -1 = chunked; -2 = until the connection closes; else the Content-Length
    body_length: int | None
    #: as for RequestHead
    fields: bytes | None = field(default=None, compare=False)
    via: bytes = field(default=b"", compare=False)


@dataclass(slots=True)
class Data:
    #: a memoryview when the reader was fed one (a TLS origin's read buffer, reused after the
    #: call that delivered it): pass it on at once, or copy it with bytes()
    data: bytes | memoryview


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    pass


@dataclass(slots=True)
class Upgraded:
    """The message switched protocols (CONNECT, or 101): ``rest`` is what followed, for the tunnel."""

    rest: bytes


END = EndOfMessage()
Event = RequestHead | ResponseHead | Data | EndOfMessage | Upgraded

CHUNKED = -1
UNTIL_CLOSE = -2
