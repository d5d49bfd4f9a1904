"""The sans-I/O HTTP/1 layer, as transcripts: bytes in (``>>``), events out (``<<``)."""

from __future__ import annotations

import gc
import itertools
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsgate.errors import RemoteProtocolError
from tlsgate.proxy.events import END, Data, EndOfMessage, Limits, RequestHead, ResponseHead, Upgraded
from tlsgate.proxy.http1 import RequestReader, ResponseReader


class Transcript:
    """``Transcript(reader) >> b"bytes" << [events]``: feed, then expect exactly these events."""

    def __init__(self, reader: RequestReader | ResponseReader) -> None:
        self.reader = reader
        self.got: list[object] = []

    def __rshift__(self, data: bytes) -> Transcript:
        self.got = list(self.reader.feed(data))
        return self

    def __lshift__(self, expected: list[object]) -> Transcript:
        assert self.got == expected
        return self


def test_absolute_form_get_then_keep_alive_post() -> None:
    (
        Transcript(RequestReader())
        >> b"GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\n\r\n"
        << [
            RequestHead(b"GET", b"http://a.test/x?y=1", "1.1", [(b"Host", b"a.test")], True, None, None, b"a.test"),
            END,
        ]
        >> b"POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel"
        << [RequestHead(b"POST", b"/p", "1.1", [(b"Content-Length", b"5")], True, 5, None), Data(b"hel")]
        >> b"lo"
        << [Data(b"lo"), END]
    )


def test_chunked_request_body_is_decoded() -> None:
    (
        Transcript(RequestReader())
        >> b"PUT /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        << [RequestHead(b"PUT", b"/u", "1.1", [(b"Transfer-Encoding", b"chunked")], True, -1, None), Data(b"abcd")]
        >> b"0\r\n\r\n"
        << [END]
    )


def test_connect_hands_over_the_rest() -> None:
    (
        Transcript(RequestReader())
        >> b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n\x16\x03\x01"
        << [
            RequestHead(b"CONNECT", b"a.test:443", "1.1", [(b"Host", b"a.test:443")], True, None, None, b"a.test:443"),
            END,
            Upgraded(b"\x16\x03\x01"),
        ]
    )


def test_websocket_upgrade_request() -> None:
    events = RequestReader().feed(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.upgrade == b"websocket"
    assert events[1:] == [END, Upgraded(b"")]


def test_http10_is_not_keep_alive() -> None:
    head = RequestReader().feed(b"GET http://a/ HTTP/1.0\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    assert (head.http_version, head.keep_alive) == ("1.0", False)


@pytest.mark.parametrize(
    "closing",
    [
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"POST http://a/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        b"GET http://a/ HTTP/1.0\r\n\r\n",
    ],
    ids=["connection-close", "close-with-body", "http10"],
)
def test_nothing_after_a_closing_request_is_parsed(closing: bytes) -> None:
    """RFC 9112 §9.6: after a request that closes the connection, more bytes (even garbage) are
    ignored — not a 400 that would cut the response to that request short."""
    reader = RequestReader()
    events = reader.feed(closing + b"GET http://a/again HTTP/1.1\r\nHost: a\r\n\r\n")
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"http://a/"]
    assert events[-1] is END
    assert reader.feed(b"\x00garbage\r\n\r\n") == []
    split = RequestReader()  # the same when the next bytes come in a later read
    assert split.feed(closing)[-1] is END
    assert split.feed(b"GET http://a/again HTTP/1.1\r\n\r\n") == []


def test_keep_alive_requests_and_connect_still_go_on() -> None:
    reader = RequestReader()
    events = reader.feed(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [e.target for e in events if isinstance(e, RequestHead)] == [b"http://a/", b"http://a/2"]
    connect = RequestReader().feed(b"CONNECT a:443 HTTP/1.0\r\n\r\n\x16\x03\x01")
    assert isinstance(connect[-1], Upgraded)
    assert connect[-1].rest == b"\x16\x03\x01"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 100000, 431),
    ],
)
def test_rejections_carry_their_status(raw: bytes, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        RequestReader(Limits()).feed(raw)
    assert info.value.error_status_hint == status


def test_limits_are_configurable() -> None:
    reader = RequestReader(Limits(max_request_line=10, max_header_bytes=100, max_header_count=2))
    with pytest.raises(RemoteProtocolError) as info:
        reader.feed(b"GET /0123456789 HTTP/1.1\r\n\r\n")
    assert info.value.error_status_hint == 414


def test_response_framings() -> None:
    reader = ResponseReader()
    (
        Transcript(reader)
        >> b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        << [
            ResponseHead(100, b"Continue", "1.1", [], True, None),
            END,
            ResponseHead(200, b"OK", "1.1", [(b"Content-Length", b"2")], True, 2),
            Data(b"hi"),
            END,
        ]
        >> b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        << [ResponseHead(200, b"OK", "1.1", [(b"Transfer-Encoding", b"chunked")], True, -1), Data(b"ok"), END]
        >> b"HTTP/1.1 204 No Content\r\n\r\n"
        << [ResponseHead(204, b"No Content", "1.1", [], True, None), END]
    )


def test_head_response_has_no_body_whatever_content_length_says() -> None:
    reader = ResponseReader()
    reader.expect(head_request=True)
    (
        Transcript(reader)
        >> b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        << [ResponseHead(200, b"OK", "1.1", [(b"Content-Length", b"1000")], True, None), END]
    )
    reader.expect(head_request=False)
    (
        Transcript(reader)
        >> b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
        << [
            ResponseHead(304, b"Not Modified", "1.1", [(b"Content-Length", b"5")], True, None),
            END,
        ]
    )


def test_close_delimited_response_ends_at_eof() -> None:
    reader = ResponseReader()
    events = reader.feed(b"HTTP/1.1 200 OK\r\n\r\nsome")
    assert events == [ResponseHead(200, b"OK", "1.1", [], False, -2), Data(b"some")]
    assert reader.feed_eof() == [END]


def test_truncated_response_is_an_error() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(RemoteProtocolError):
        reader.feed_eof()


def test_switching_protocols_response() -> None:
    events = ResponseReader().feed(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxy"
    )
    assert events == [
        ResponseHead(
            101, b"Switching Protocols", "1.1", [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")], True, None
        ),
        END,
        Upgraded(b"xy"),
    ]


def test_a_large_read_gives_the_events_of_the_same_bytes_fed_in_pieces() -> None:
    """Heads and large bodies in one read (the proxy reads up to 127 KiB at once)."""
    whole = ResponseReader().feed(memoryview(RESPONSES))
    assert [type(event) for event in whole][:2] == [ResponseHead, Data]
    pieces = ResponseReader()
    small = [event for at in range(0, len(RESPONSES), 1000) for event in pieces.feed(RESPONSES[at : at + 1000])]

    def merged(events: list[object]) -> list[object]:
        out: list[object] = []
        for event in events:
            if isinstance(event, Data) and out and isinstance(out[-1], Data):
                out[-1] = Data(bytes(out[-1].data) + bytes(event.data))
            else:
                out.append(Data(bytes(event.data)) if isinstance(event, Data) else event)
        return out

    assert merged(whole) == merged(small)


def test_an_upgrade_in_a_large_read_keeps_every_byte_after_the_head() -> None:
    tunnel = bytes(range(256)) * 100  # the new protocol's first 25 KiB, read with the 101
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    events = ResponseReader().feed(memoryview(head + tunnel))
    assert events[-1] == Upgraded(tunnel)
    assert [type(event) for event in events] == [ResponseHead, EndOfMessage, Upgraded]


def test_a_head_response_in_a_large_read_has_no_body() -> None:
    reader = ResponseReader()
    reader.expect(head_request=True)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n" + b"x" * 20_000)
    assert events == [ResponseHead(200, b"OK", "1.1", [(b"Content-Length", b"50000")], True, None), END]
    assert not reader.in_message


def test_a_read_of_many_small_responses_is_parsed_without_deep_recursion() -> None:
    """An origin that answers one request with thousands of tiny responses gets them parsed
    (or refused), never a RecursionError."""
    one = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    events = ResponseReader().feed(memoryview(one * 3000))
    assert sum(1 for event in events if isinstance(event, ResponseHead)) == 3000


REQUEST = (
    b"POST http://a.test/p HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    b"GET http://a.test/q HTTP/1.1\r\nHost: a.test\r\n\r\n"
)


def _collect(reader: RequestReader, pieces: list[bytes]) -> tuple[list[object], bytes]:
    events: list[object] = []
    body = b""
    for piece in pieces:
        for event in reader.feed(piece):
            if isinstance(event, Data):
                body += event.data
            else:
                events.append(event)
    return events, body


@given(st.lists(st.integers(1, len(REQUEST) - 1), max_size=20))
def test_any_split_gives_the_same_messages(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(REQUEST)]
    pieces = [REQUEST[a:b] for a, b in itertools.pairwise(bounds)]
    events, body = _collect(RequestReader(), pieces)
    assert body == b"hello world"
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"http://a.test/p", b"http://a.test/q"]
    assert events.count(END) == 2


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_garbage_gives_events_or_a_protocol_error(data: bytes) -> None:
    status = 0
    try:
        RequestReader().feed(data)
    except RemoteProtocolError as exc:
        status = exc.error_status_hint
    assert status in (0, 400, 414, 431)


BODY = bytes(range(256)) * 160  # 40,960 bytes: reads of more than 16 KiB give llhttp the head alone
RESPONSES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
    + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    + b"HTTP/1.1 204 No Content\r\n\r\n"
    + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
    + b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
)


@settings(max_examples=300)
@given(st.lists(st.integers(1, len(RESPONSES) - 1), max_size=30))
def test_responses_split_anywhere_and_fed_from_a_reused_buffer_give_the_same_messages(cuts: list[int]) -> None:
    """As the upstream side reads: each piece is a view of one buffer overwritten by the next read.

    A body piece may be a view of that buffer (it is passed on during the call, as the exchange
    does, and copied only when it must wait); everything else must survive the overwrite.
    """
    bounds = [0, *sorted(set(cuts)), len(RESPONSES)]
    shared = bytearray(len(RESPONSES))
    reader = ResponseReader()
    events: list[object] = []
    bodies: list[bytes] = [b""]
    for a, b in itertools.pairwise(bounds):
        shared[: b - a] = RESPONSES[a:b]
        fed = reader.feed(memoryview(shared)[: b - a])
        for event in fed:  # the body as the exchange takes it: during the call
            if isinstance(event, Data):
                bodies[-1] += event.data
            elif event is END:
                bodies.append(b"")
        events += fed
        shared[:] = b"\xff" * len(shared)  # the next read overwrites what the last one held
    statuses = [event.status for event in events if isinstance(event, ResponseHead)]
    heads = [event for event in events if isinstance(event, ResponseHead)]
    assert statuses == [200, 200, 204, 200, 200]  # looked at only now: a head holding a view would show 0xff
    assert all(b"\xff" not in bytes(name) + bytes(value) for head in heads for name, value in head.headers)
    assert all(b"\xff" not in head.reason for head in heads)
    assert bodies == [BODY, b"abc", b"", b"final", BODY, b""]
    assert not reader.in_message


def test_a_content_length_body_cut_short_by_the_origin_is_an_error_after_any_number_of_reads() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab")
    assert reader.feed(b"c" * 50) == [Data(b"c" * 50)]
    with pytest.raises(RemoteProtocolError):
        reader.feed_eof()


def test_a_reader_keeps_nothing_of_a_response_once_its_events_are_handed_on() -> None:
    """A pooled or idle origin connection must not hold its last response's body (50 of them held
    ~5 MiB under the bench's 100 KiB load)."""
    reader = ResponseReader()
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        events = reader.feed(wire)
        assert sum(len(event.data) for event in events if isinstance(event, Data)) == 100_000
        assert events[-1] is END
        del events
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 10_000


@pytest.mark.parametrize("reader_class", [RequestReader, ResponseReader])
def test_readers_are_freed_once_dropped(reader_class: type[RequestReader | ResponseReader]) -> None:
    """A reader and its llhttp parser point at each other (the parser calls the reader back): the
    garbage collector must free the pair, or each connection leaks them. (The compiled build leaked
    ~600 bytes per connection when a subclass redeclared the parser attribute: +30 MiB in the bench.)"""
    gc.collect()
    alive_before = sum(type(o) is reader_class for o in gc.get_objects())
    for _ in range(200):
        reader_class().feed(
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
            if reader_class is RequestReader
            else b"HTTP/1.1 204 No Content\r\n\r\n"
        )
    gc.collect()
    assert sum(type(o) is reader_class for o in gc.get_objects()) == alive_before
