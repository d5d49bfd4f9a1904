"""Sans-I/O HTTP/1.1 for the proxy: bytes in, events out, on top of httptools (llhttp).

Two readers, :class:`RequestReader` and :class:`ResponseReader`, turn bytes into a short list
of events (``events.py``) — ``RequestHead`` / ``ResponseHead``, ``Data``, ``END``, ``Upgraded`` —
and raise :class:`RemoteProtocolError` with the status to answer.
They never touch a socket. Rules enforced here:

* request line longer than the limit → 414; header block larger, or more header
  fields, than the limits → 431 (RFC 6585 §5);
* ambiguous framing — Transfer-Encoding together with Content-Length, differing repeated
  Content-Length, a transfer coding other than a final ``chunked``, bad chunk sizes → 400
  (RFC 9112 §6.1, §6.3: request smuggling); the caller closes the connection;
* a response to HEAD, and 1xx/204/304, carries no body (RFC 9110 §6.4.1);
* a response without Content-Length or chunked ends when the connection closes
  (:meth:`ResponseReader.feed_eof`).

Header names are kept as received (bytes); ``lname`` lookups use lower case.
"""

from __future__ import annotations

from typing import cast

import httptools
from mypy_extensions import mypyc_attr

from tlsgate.errors import RemoteProtocolError
from tlsgate.proxy.events import (
    CHUNKED,
    END,
    UNTIL_CLOSE,
    Data,
    Event,
    Headers,
    Limits,
    RequestHead,
    ResponseHead,
    Upgraded,
)
from tlsgate.proxy.headers import HOP_BY_HOP, filter_headers, join_fields

__all__ = ["RequestReader", "ResponseReader"]

# What the readers note about a field as it arrives (see _Reader.on_header).
_LENGTH, _CODING, _HOST, _CONNECTION, _VIA, _UPGRADE, _HOP = range(7)
_FIELD_KIND = {name: _HOP for name in HOP_BY_HOP} | {
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"host": _HOST,
    b"connection": _CONNECTION,
    b"via": _VIA,
    b"upgrade": _UPGRADE,
}
# Connection values that name no field beyond the hop-by-hop ones (nearly every message).
_PLAIN_CONNECTION = frozenset(
    {b"keep-alive", b"close", b"upgrade", b"keep-alive, upgrade", b"upgrade, keep-alive", b"keep-alive,upgrade"}
)


class _NoBody(Exception):
    pass


class _LastMessage(Exception):
    pass


@mypyc_attr(native_class=False)  # compiled classes cannot subclass list
class _Detached(list):  # type: ignore[type-arg]
    """A reader's events between feeds: nothing may be added (callbacks run only inside feed())."""

    def append(self, event: object) -> None:
        raise RuntimeError("an HTTP parser callback ran outside feed()")


_DETACHED: list[Event] = _Detached()


class _Reader:
    """What both directions share: header collection, limits and framing checks."""

    __slots__ = (
        "_body_left",
        "_chunked",
        "_content_length",
        "_events",
        "_head_cap",
        "_head_fed",
        "_header_bytes",
        "_headers",
        "_host",
        "_in_body",
        "_limits",
        "_lines",
        "_max_count",
        "_max_field_bytes",
        "_named",
        "_parser",
        "_upgrade",
        "_via",
    )

    # Declared once, here: the compiled build (setup.py) loses an attribute redeclared in a
    # subclass from the garbage collector's view, and every reader <-> parser cycle would leak.
    _parser: httptools.HttpRequestParser | httptools.HttpResponseParser

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._max_field_bytes = limits.max_header_bytes
        self._max_count = limits.max_header_count
        #: bytes still due of a Content-Length body passed on without llhttp (-1: none; see feed)
        self._body_left = -1
        self._events: list[Event] = _DETACHED  # the current feed's events (callbacks add to them)
        # httptools buffers a header line before calling on_header: cap what a head may take.
        self._head_cap = limits.max_header_bytes + limits.max_request_line + 1024
        self._head_fed = 0
        self._in_body = False
        self._reset_head()

    def _reset_head(self) -> None:
        self._headers: Headers = []
        self._header_bytes = 0
        self._content_length: bytes | None = None
        self._chunked = False
        self._host: bytes | None = None
        self._upgrade: bytes | None = None
        #: the end-to-end fields rendered for forwarding as they arrive, and the Via value
        self._lines: list[bytes] = []
        self._via = b""
        #: a Connection field names other fields: the forwarded set is worked out at the end
        self._named = False

    def _end_to_end(self) -> tuple[bytes, bytes]:
        """The forwarded fields and Via: what filter_headers(headers) gives, mostly built on the way."""
        if self._named:
            kept, via = filter_headers(self._headers)
            return join_fields(kept), via
        return b"".join(self._lines), self._via

    # llhttp callbacks --------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        size = self._header_bytes + len(name) + len(value) + 4
        if size > self._max_field_bytes:
            raise RemoteProtocolError("request header fields too large", error_status_hint=431)
        self._header_bytes = size
        headers = self._headers
        if len(headers) >= self._max_count:
            raise RemoteProtocolError("too many header fields", error_status_hint=431)
        headers.append((name, value))
        kind = _FIELD_KIND.get(name.lower())
        if kind is None:
            self._lines += (name, b": ", value, b"\r\n")
        elif kind == _LENGTH:
            value = value.strip()
            if self._content_length is not None and self._content_length != value:
                raise RemoteProtocolError("conflicting Content-Length fields")
            self._content_length = value
        elif kind == _CODING:
            codings = [c.strip().lower() for c in value.split(b",")]
            # RFC 9112 §6.1: chunked must be final and appear once; we accept nothing else.
            if self._chunked or codings != [b"chunked"]:
                raise RemoteProtocolError("unsupported Transfer-Encoding")
            self._chunked = True
        elif kind == _HOST:
            self._host = value
            self._lines += (name, b": ", value, b"\r\n")
        elif kind == _CONNECTION:
            if value.strip().lower() not in _PLAIN_CONNECTION:
                self._named = True
        elif kind == _VIA:
            self._via = value if not self._via else self._via + b", " + value
        elif kind == _UPGRADE:
            self._upgrade = value

    def on_body(self, body: bytes) -> None:
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_fed = 0
        self._events.append(END)

    def _framing(self) -> int | None:
        self._in_body = True
        self._head_fed = 0
        if self._chunked:
            if self._content_length is not None:
                raise RemoteProtocolError("Content-Length together with Transfer-Encoding")
            return CHUNKED
        if self._content_length is not None:
            if not self._content_length.isdigit():
                raise RemoteProtocolError("invalid Content-Length")
            return int(self._content_length)
        return None

    def feed(self, data: bytes | memoryview) -> list[Event]:
        """The events these bytes complete (possibly none); RemoteProtocolError for bad input.

        ``data`` may be a view of a buffer the caller reuses: nothing here keeps a reference to it,
        and the :class:`Data` events of a Content-Length body are views of it too (see ``Data``).
        """
        if self._body_left > 0:
            return self._pass_body(data)
        events: list[Event] = []
        self._events = events
        if not self._in_body:
            self._head_fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            events.append(Upgraded(bytes(data[upgrade.args[0] :])))
            return events
        except httptools.HttpParserCallbackError as exc:
            if not self._callback_stopped(exc, events):
                raise self._error(exc) from None
        except httptools.HttpParserError as exc:
            raise self._error(exc) from None
        finally:
            # The events are the caller's now: kept here, a connection would hold its last
            # response's body (up to a whole read, ~100 KiB) for as long as it lives or idles.
            self._events = _DETACHED
        if not self._in_body and self._head_fed > self._head_cap:
            raise RemoteProtocolError("request header fields too large", error_status_hint=431)
        return events

    def _pass_body(self, data: bytes | memoryview) -> list[Event]:
        """The rest of a Content-Length body, without llhttp (see ResponseReader)."""
        left = self._body_left
        size = len(data)
        if size < left:
            self._body_left = left - size
            return [Data(data)]
        events: list[Event] = [Data(data[:left]), END]
        self._body_left = -1
        self._message_ended_here()
        if size > left:
            events.extend(self.feed(data[left:]))
        return events

    def _message_ended_here(self) -> None:
        """A message ended outside llhttp: a fresh parser takes what follows."""
        self._parser = type(self._parser)(self)
        self._in_body = False
        self._head_fed = 0

    def _callback_stopped(self, exc: httptools.HttpParserCallbackError, events: list[Event]) -> bool:
        """True when a callback stopped the parser on purpose (handled here); False: bad input."""
        return False

    def _error(self, exc: Exception) -> RemoteProtocolError:
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else None
        if isinstance(cause, RemoteProtocolError):
            return cause
        return RemoteProtocolError(f"malformed HTTP/1.1: {exc}")


class RequestReader(_Reader):
    """Requests from a client. After :class:`Upgraded` (CONNECT) the reader is done.

    After a request that closes the connection (``Connection: close``, or HTTP/1.0 without
    keep-alive) the reader is done too: RFC 9112 §9.6 — the client sends nothing more, and the
    server closes after its response, so whatever follows is ignored (not a 400 that would cut
    the response short).
    """

    __slots__ = ("_last", "_target")

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits or Limits())
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._last = False

    def feed(self, data: bytes | memoryview) -> list[Event]:
        if self._last:
            return []
        return super().feed(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        parser = self._parser
        if not parser.should_keep_alive() and not parser.should_upgrade():
            self._last = True
            raise _LastMessage  # stops llhttp here: the bytes after this message are not parsed

    def _callback_stopped(self, exc: httptools.HttpParserCallbackError, events: list[Event]) -> bool:
        return isinstance(exc.__context__, _LastMessage)

    def on_message_begin(self) -> None:
        self._reset_head()
        self._target = b""

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > self._limits.max_request_line:
            raise RemoteProtocolError("request line too long", error_status_hint=414)

    def on_headers_complete(self) -> None:
        parser = cast(httptools.HttpRequestParser, self._parser)
        method = parser.get_method()
        body_length = self._framing()
        upgrade = self._upgrade if parser.should_upgrade() and method != b"CONNECT" else None
        fields, via = self._end_to_end()
        self._events.append(
            RequestHead(
                method,
                self._target,
                parser.get_http_version(),
                self._headers,
                parser.should_keep_alive(),
                body_length or None,
                upgrade,
                self._host,
                fields,
                via,
            )
        )


class ResponseReader(_Reader):
    """Responses from an origin, one per request: call :meth:`expect` before each."""

    __slots__ = ("_head_request", "_in_message", "_reason", "_until_close")

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits or Limits())
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = False
        self._until_close = False
        self._in_message = False
        self._reason = b""

    # The rest of a Content-Length body is passed on without llhttp: once a body's first bytes
    # went through the parser, the bytes after them are counted (``_body_left``) and handed on as
    # they are (llhttp would copy them once more, and call back into Python for each piece); at
    # the body's end the message ends and a fresh parser takes whatever follows.
    def _message_ended_here(self) -> None:
        super()._message_ended_here()
        self._in_message = False

    def expect(self, *, head_request: bool) -> None:
        """The next response answers a HEAD request (no body whatever the headers say) or not."""
        self._head_request = head_request

    @property
    def in_message(self) -> bool:
        return self._in_message

    def _callback_stopped(self, exc: httptools.HttpParserCallbackError, events: list[Event]) -> bool:
        if not isinstance(exc.__context__, _NoBody):
            return False
        # llhttp cannot be told "no body" from Python: end the message, fresh parser.
        self._body_left = -1
        self._message_ended_here()
        events.append(END)
        return True

    def feed_eof(self) -> list[Event]:
        """The origin closed: this ends a read-until-close body, or truncates a message."""
        if not self._in_message:
            return []
        if self._until_close:
            self._in_message = False
            return [END]
        raise RemoteProtocolError("the origin closed the connection in the middle of a response", error_status_hint=502)

    def on_message_begin(self) -> None:
        self._reset_head()
        self._in_message = True
        self._until_close = False
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_headers_complete(self) -> None:
        parser = cast(httptools.HttpResponseParser, self._parser)
        status = parser.get_status_code()
        body_length = self._framing()
        no_body = self._head_request or status < 200 or status in (204, 304)
        if no_body:
            length: int | None = None
        elif body_length is None:
            length = UNTIL_CLOSE
            self._until_close = True
        else:
            length = body_length or None
            if length:
                self._body_left = length
        fields, via = self._end_to_end()
        self._events.append(
            ResponseHead(
                status,
                self._reason,
                parser.get_http_version(),
                self._headers,
                parser.should_keep_alive() and not self._until_close,
                length,
                fields,
                via,
            )
        )
        if self._head_request and status >= 200 and status != 101:
            raise _NoBody

    def on_body(self, body: bytes) -> None:
        if self._body_left > 0:
            self._body_left -= len(body)
        self._events.append(Data(body))

    def on_message_complete(self) -> None:
        self._in_message = False
        self._body_left = -1
        super().on_message_complete()
