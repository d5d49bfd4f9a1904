"""Forwarded heads: hop-by-hop fields go, Via is added, framing is the proxy's own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tlsgate.proxy.events import RequestHead, ResponseHead
from tlsgate.proxy.headers import filter_headers, join_fields, request_head, response_head
from tlsgate.proxy.http1 import RequestReader, ResponseReader


def test_request_head_drops_hop_by_hop_and_connection_named_fields() -> None:
    head = request_head(
        b"POST",
        b"/p?q=1",
        b"a.test",
        [
            (b"Host", b"evil.test"),
            (b"Connection", b"keep-alive, X-Private"),
            (b"X-Private", b"secret"),
            (b"Proxy-Authorization", b"Basic Zm9v"),
            (b"Keep-Alive", b"timeout=5"),
            (b"TE", b"trailers"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Via", b"1.0 other"),
            (b"Accept", b"*/*"),
        ],
        -1,
    )
    assert head == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nVia: 1.0 other, 1.1 tlsgate\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


def test_request_head_keeps_upgrade_for_websocket() -> None:
    head = request_head(
        b"GET",
        b"/ws",
        None,
        [(b"Host", b"a"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
        None,
        upgrade=b"websocket",
    )
    assert b"Upgrade: websocket\r\n" in head
    assert b"Connection: upgrade\r\n" in head
    assert b"Host: a\r\n" in head


def test_response_head_for_head_request_keeps_the_informational_length() -> None:
    head = response_head(
        200, b"OK", [(b"Content-Length", b"1000"), (b"ETag", b'"x"')], None, keep_alive=True, original_length=b"1000"
    )
    assert head == b'HTTP/1.1 200 OK\r\nETag: "x"\r\nVia: 1.1 tlsgate\r\nContent-Length: 1000\r\n\r\n'


def test_response_head_rechunks_and_closes() -> None:
    head = response_head(200, b"OK", [(b"Connection", b"close")], -1, keep_alive=False)
    assert head == b"HTTP/1.1 200 OK\r\nVia: 1.1 tlsgate\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"


_NAMES = [
    b"Accept", b"X-Trace", b"x-trace", b"Via", b"VIA", b"Connection", b"connection", b"Keep-Alive",
    b"Upgrade", b"TE", b"Trailer", b"Proxy-Authorization", b"Proxy-Connection", b"Host", b"Cookie",
]  # fmt: skip
_VALUES = [b"keep-alive", b"close", b"upgrade", b"Keep-Alive, Upgrade", b"x-trace", b"cookie, accept", b"1.0 a", b"v"]


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), max_size=12))
def test_the_readers_forwarded_fields_are_exactly_the_end_to_end_filter(headers: list[tuple[bytes, bytes]]) -> None:
    """What the readers build while parsing equals filter_headers() on the whole field list."""
    block = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    kept, via = filter_headers(headers)
    request = RequestReader().feed(b"GET /x HTTP/1.1\r\n" + block + b"\r\n")[0]
    response = ResponseReader().feed(b"HTTP/1.1 204 No Content\r\n" + block + b"\r\n")[0]
    for head in (request, response):
        assert isinstance(head, RequestHead | ResponseHead)
        assert (head.fields, head.via) == (join_fields(kept), via)
