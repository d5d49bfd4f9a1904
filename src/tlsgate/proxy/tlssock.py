"""TLS on OpenSSL's own socket I/O: a non-blocking ``ssl.SSLSocket`` driven by the loop.

asyncio's TLS (uvloop's too) runs OpenSSL over memory BIOs: every byte a peer sends is read
into the loop's 256 KiB per-connection buffer, copied (and zero-filled first: OpenSSL 3.0's
``BUF_MEM_grow_clean``) into the incoming BIO, and decrypted into a fresh 256 KiB bytes object;
every byte we send is encrypted into the outgoing BIO and copied out of it again. Here OpenSSL
reads and writes the socket itself: ``SSL_read`` takes a record from the kernel and decrypts it
into one buffer shared by every connection of the worker, ``SSL_write`` encrypts and sends. On
the bench's 100 KiB figure the BIO copies and zero-fills (memmove, memset) were ~15% of the
worker's samples; both sides of the proxy now run here, and a connection keeps no 256 KiB
buffer and no ever-growing BIOs (an idle origin connection went from ~52 to ~31 KiB).

:class:`TLSSocketTransport` carries an established connection for an ``asyncio.Protocol``:
``data_received``, ``eof_received``, ``connection_lost``, and write flow control with
``pause_writing`` / ``resume_writing`` like any asyncio transport. The handshakes that lead to
it (dialling an origin, accepting a client) are in :mod:`tlsgate.proxy.tlsdial`.

OpenSSL's non-blocking rules kept here: a write that could not finish is retried with the same
bytes (no partial writes are enabled, so it is all or nothing); a read takes one record, so a
readable socket is read record by record, full records gathered, until a short one ends the
burst or OpenSSL wants more; the burst is then handed on as one piece.

No copies on the way through: a protocol that passes data on at once can ask for ``views``
(the origin side does) and gets a view of the read buffer, valid during ``data_received``; a
write goes to ``SSL_write`` from the caller's buffer, and only what the socket cannot take now
is copied to wait. A response body thus goes from the origin's records to the client's without
a copy in Python.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import ssl
import sys
import threading
from collections import deque
from typing import Any

__all__ = ["TLSSocketTransport"]

_FULL_RECORD = 16384  # the largest TLS plaintext record
_RECORD = _FULL_RECORD + 256  # room for one more record, and then some
# Every read lands in one buffer per thread (per worker: one loop each), not per connection. A
# burst is handed on as a copy, or, to a protocol that asked for views, as a view of the buffer
# valid during the call. Sized for a 100 KiB response and its head in one piece: one write, one
# corked push to the client, instead of two or three (+5% on the bench's 100 KiB figure over 64 KiB).
_READ_SIZE = 127 * 1024


class _ReadBuffer:
    __slots__ = ("lent", "view")

    def __init__(self) -> None:
        self.view = memoryview(bytearray(_READ_SIZE))
        self.lent = False  # out in a view (a read from within that call gets a buffer of its own)


# Per thread, not per process: loops in threads of one process (tests, an embedder) would read into
# one buffer at once, OpenSSL releasing the GIL while it fills it.
_buffers = threading.local()


def _read_buffer() -> _ReadBuffer:
    buffer: _ReadBuffer | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = _ReadBuffer()
    return buffer


_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024
_CLOSE_FLUSH_TIMEOUT = 30.0  # seconds a closing connection may take to send what was written
_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux
# Linux SIOCOUTNSD (linux/sockios.h): bytes in the send queue not yet sent (the peer's window is full)
_UNSENT_IOCTL: int | None = 0x894B if sys.platform == "linux" else None
_LINGER_TIMEOUT = 5.0  # seconds a closed connection waits for the peer's end (nginx's lingering_timeout)
_LINGER_RECHECK = 0.25  # a lingering socket is also read on a timer, from this delay on, doubling (see _linger)


class TLSSocketTransport(asyncio.Transport):
    """An established TLS connection on a non-blocking SSLSocket, for one protocol."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tls: ssl.SSLSocket,
        protocol: asyncio.Protocol,
        *,
        linger: bool = False,
        views: bool = False,
    ) -> None:
        super().__init__()
        self._linger_on_close = linger
        # data_received() gets a memoryview of the worker's read buffer, valid only during the
        # call, instead of a bytes copy: for a protocol that passes the data on at once (to
        # write(), which copies only what cannot be sent now) and keeps no reference to it.
        self._views = views
        self._buffer = _read_buffer()  # the loop's thread's (a transport runs on its loop's thread)
        self._loop = loop
        self._tls = tls
        # The connection's OpenSSL object itself (``SSLSocket._sslobj``, which SSLSocket's own
        # read/write/pending call): it answers the same calls without ssl.py's checks around
        # them, two to three Python frames per record that were ~5% of the worker's time on
        # small requests. It raises SSLEOFError on a ragged EOF where ssl.py may say 0 (below).
        self._io: Any = getattr(tls, "_sslobj", None) or tls
        self._ragged_eof_is_eof: bool = getattr(tls, "suppress_ragged_eofs", True)  # ssl.py's rule for it
        self._fd = tls.fileno()
        self._protocol = protocol
        self._backlog: deque[bytes] = deque()
        self._backlog_size = 0
        self._waiting_writable = False
        self._reading = False
        self._read_paused = False
        self._writing_paused = False
        self._closing = False
        self._closed = False
        self._peer_done = False  # the peer's EOF (or close_notify) was read
        self._lingering = False
        self._notify_waits = False  # our close_notify waits for room in the socket
        self._abort_handle: asyncio.TimerHandle | None = None
        self._linger_deadline = 0.0
        self._close_exc: Exception | None = None

    # -- reading -----------------------------------------------------------------------
    def start(self) -> None:
        if not self._closed and not self._read_paused and not self._reading:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)
            if self._io.pending():  # decrypted bytes already in OpenSSL: the socket may stay quiet
                self._loop.call_soon(self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        """Read every record the socket holds, then hand them on as one piece (as a burst arrived)."""
        tls, views = self._io, self._views
        # (the loop calls this, and start() defers it: it never runs inside another connection's
        # data_received; if it ever did while a view is out, it reads into a buffer of its own)
        buffer = self._buffer
        view = buffer.view if not buffer.lent else memoryview(bytearray(_READ_SIZE))
        filled = 0
        while not self._read_paused and not self._closing:
            try:
                size = tls.read(_READ_SIZE - filled, view[filled:])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                break
            except ssl.SSLEOFError as exc:  # a bare FIN, no close_notify
                if not self._ragged_eof_is_eof:
                    self._fail(exc.with_traceback(None))
                    return
                size = 0
            except (OSError, ssl.SSLError) as exc:
                self._fail(exc.with_traceback(None))
                return
            if size == 0:  # the peer closed (close_notify or EOF)
                self._peer_done = True
                if filled and not self._deliver(view[:filled] if views else view[:filled].tobytes()):
                    return
                self._stop_reading()
                if not self._protocol.eof_received():
                    self.close()
                return
            filled += size
            if size < _FULL_RECORD and not tls.pending():
                # A short record ends what the origin wrote at once (a small response, the tail of
                # a large one): pass it on without the read that would only find the socket dry
                # (a syscall and an exception per response). The loop's readiness is level-
                # triggered, so a record already queued behind this one calls us again.
                break
            if filled > _READ_SIZE - _RECORD:  # the buffer may not hold another record: pass this on
                if not self._deliver(view[:filled] if views else view[:filled].tobytes()):
                    return
                filled = 0
        if filled:
            self._deliver(view[:filled] if views else view[:filled].tobytes())

    def _deliver(self, data: bytes | memoryview) -> bool:
        """data_received(); False when the connection ended in it (a bug above us ends it too)."""
        buffer = self._buffer
        lent = type(data) is memoryview and data.obj is buffer.view.obj
        if lent:
            buffer.lent = True
        try:
            self._protocol.data_received(data)  # type: ignore[arg-type]  # a view only if asked for
        except Exception as exc:  # not the worker: this connection only
            self._loop.call_exception_handler(
                {"message": "data_received() failed", "exception": exc, "transport": self, "protocol": self._protocol}
            )
            # logged: its traceback goes now (its frames hold the data, a view of a reused buffer)
            self._fail(exc.with_traceback(None))
            return False
        finally:
            if lent:
                buffer.lent = False
        return not self._closed

    def pause_reading(self) -> None:
        if not self._read_paused:
            self._read_paused = True
            self._stop_reading()

    def resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if not self._closing:
                self.start()

    def is_reading(self) -> bool:
        return self._reading

    # -- writing -----------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._closed or not data:
            return
        if self._backlog:  # behind what waits for room: in turn
            self._queue((data,), 0)
        else:
            self._send((data,))

    def writelines(self, pieces: Any) -> None:
        """Every piece, sent together (a response head and its body leave in one segment)."""
        if self._closing or self._closed:
            return
        pieces = [piece for piece in pieces if piece]
        if self._backlog:
            self._queue(pieces, 0)
        elif pieces:
            self._send(pieces)

    def _send(self, pieces: Any) -> None:
        """Straight to OpenSSL from the caller's buffers; only what the socket cannot take is copied."""
        size = len(pieces[0]) if len(pieces) == 1 else sum(map(len, pieces))
        cork = _CORK if size > _FULL_RECORD else None
        if cork is not None:
            # More than one record: each SSL_write record is its own send(); corked, the kernel
            # sends them as one segment (one trip through the TCP stack, not one per record).
            self._tls.setsockopt(socket.IPPROTO_TCP, cork, 1)
        tls, blocked = self._io, -1
        try:
            for index, piece in enumerate(pieces):
                try:
                    tls.write(piece)  # all of it, or an exception: then retried with the same bytes
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                    blocked = index
                    break
                except (OSError, ssl.SSLError) as exc:
                    self._fail(exc.with_traceback(None))
                    return
        finally:
            if cork is not None and not self._closed:
                self._tls.setsockopt(socket.IPPROTO_TCP, cork, 0)
        if blocked >= 0:  # (uncorked first: pause_writing() may run code of the protocol's)
            self._queue(pieces, blocked)

    def _queue(self, pieces: Any, start: int) -> None:
        """Keep copies of ``pieces[start:]`` until the socket has room (the caller's buffers may be reused)."""
        for piece in pieces[start:]:
            self._backlog.append(bytes(piece))
            self._backlog_size += len(piece)
        if not self._waiting_writable:
            self._waiting_writable = True
            self._loop.add_writer(self._fd, self._flush)
        if self._backlog_size > _HIGH_WATER and not self._writing_paused:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _flush(self) -> None:
        backlog, tls = self._backlog, self._io
        while backlog:
            data = backlog[0]
            try:
                tls.write(data)  # all of it, or an exception: then retried with these same bytes
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                if not self._waiting_writable:
                    self._waiting_writable = True
                    self._loop.add_writer(self._fd, self._flush)
                return
            except (OSError, ssl.SSLError) as exc:
                self._fail(exc.with_traceback(None))
                return
            backlog.popleft()
            self._backlog_size -= len(data)
        if self._waiting_writable:
            self._waiting_writable = False
            self._loop.remove_writer(self._fd)
        if self._writing_paused and self._backlog_size <= _LOW_WATER:
            self._writing_paused = False
            self._protocol.resume_writing()
        if self._closing and not self._closed:
            self._finish_close(None)

    def get_write_buffer_size(self) -> int:
        return self._backlog_size

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close

    # -- closing -----------------------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing or self._closed

    def close(self) -> None:
        """Close after what was written is sent, with a close_notify."""
        if self._closing or self._closed:
            return
        self._closing = True
        self._stop_reading()
        if not self._backlog:
            self._finish_close(None)
        else:  # an origin that stops reading does not keep the connection forever
            self._abort_handle = self._loop.call_later(_CLOSE_FLUSH_TIMEOUT, self.abort)

    def abort(self) -> None:
        if self._lingering:
            self._end_linger()
        elif not self._closed:
            self._closing = True
            self._finish_close(None, notify=False)

    def _fail(self, exc: Exception) -> None:
        """End the connection with ``exc`` for the protocol.

        A network error is passed on without its traceback (``with_traceback(None)`` at the call):
        its frames would hold this transport and OpenSSL's object for the connection in a cycle
        that only the cycle collector frees — ~30 KiB per connection ended by an error, kept.
        """
        self._closing = True
        self._finish_close(exc, notify=False)

    def _finish_close(self, exc: Exception | None, *, notify: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
        if self._waiting_writable:
            self._waiting_writable = False
            self._loop.remove_writer(self._fd)
        self._backlog.clear()
        self._backlog_size = 0
        self._close_exc = exc
        if notify:
            if not self._send_close_notify():
                return  # it waits for room in the socket; _close_notify_sent goes on from there
            if (self._linger_on_close or self._unsent()) and not self._peer_done and self._linger():
                return
            if not self._peer_done:
                self._discard_input()
        self._end_linger()

    def _unsent(self) -> bool:
        """The kernel still holds bytes of ours it could not send yet: the peer is slow to read.

        An origin connection closes at once (a cancelled download must not keep reading the
        origin) unless what we wrote is still on its way: then it lingers like a client's, or a
        slow peer's data arriving after the close (its TLS tickets, say) makes the kernel reset
        the connection and throw away the rest of ours (the close test lost the last 85 KB of
        200 KB in a third of runs with four running at once).
        """
        if _UNSENT_IOCTL is None:
            return True  # cannot tell: linger (bounded by _LINGER_TIMEOUT)
        try:
            queued = fcntl.ioctl(self._fd, _UNSENT_IOCTL, b"\0\0\0\0")
        except OSError:
            return False
        return int.from_bytes(queued, sys.byteorder, signed=True) > 0

    def _discard_input(self) -> None:
        """Read away what the peer already sent (a TLS ticket, say), after our FIN.

        Without lingering (an origin connection), input left unread when the socket closes would
        make the kernel reset the connection and drop what we wrote that was still on its way.
        """
        try:
            self._tls.shutdown(socket.SHUT_WR)
            for _ in range(16):  # bounded: a peer still sending is not waited for
                if not self._tls.recv(65536):
                    return
        except OSError:  # BlockingIOError: nothing more there
            return

    def _send_close_notify(self) -> bool:
        """Our close_notify (the peer's is not waited for); False while it waits for room.

        A client's socket may be full when we close (a response just flushed to a slow reader):
        the record then stays in OpenSSL until the socket drains — a FIN sent before it would cut
        it, and the client would see a truncated stream. Bounded by _LINGER_TIMEOUT. An origin
        connection is closed at once instead (nothing we still owe it matters).
        """
        try:
            self._tls.unwrap()
        except ssl.SSLWantWriteError:
            if not self._linger_on_close:
                return True
            if not self._lingering:
                self._lingering = True
                self._abort_handle = self._loop.call_later(_LINGER_TIMEOUT, self._end_linger)
            if not self._notify_waits:
                self._notify_waits = True
                self._loop.add_writer(self._fd, self._close_notify_room)
            return False
        except (OSError, ValueError, ssl.SSLError):
            pass  # sent (SSLWantReadError: the peer's is not there yet), or the socket is gone
        self._io = self._tls  # OpenSSL is done with this connection: its state goes now (see _end_linger)
        return True

    def _close_notify_room(self) -> None:
        if not self._send_close_notify():
            return
        self._notify_waits = False
        self._loop.remove_writer(self._fd)
        if not self._peer_done and self._linger():
            return
        self._end_linger()

    def _linger(self) -> bool:
        """Half-close, then read and discard until the peer ends too (at most _LINGER_TIMEOUT).

        Closing a socket whose peer sent something we did not read (a pipelined request, a TLS
        ticket, its close_notify) makes the kernel reset the connection, and a reset throws away
        what we wrote and the peer has not read yet: the end of a response. nginx lingers the same
        way; asyncio's TLS waits for the peer's close_notify for the same reason.
        """
        try:
            self._tls.shutdown(socket.SHUT_WR)  # our FIN follows the close_notify; OpenSSL is done
        except OSError:
            return False
        self._lingering = True
        # The reader is added from the loop's next round, not from here: this runs inside an I/O
        # callback, often right after the transport's own reader for this socket was removed,
        # and under uvloop a reader re-added there could stay deaf (libuv applies the removal's
        # queued epoll_ctl(DEL) after it) — the linger then ran to its timeout with the peer long
        # gone: ~70-130 closed connections held at once under hey's new-connection load.
        self._loop.call_soon(self._watch_linger)
        # The reader is not trusted alone: under hey's new-connection load a few in ~4,000 (a peer
        # that reset after our FIN) were never reported readable, and waited out the whole linger.
        # The same timer that bounds the linger reads the socket on the way (_linger_recheck).
        if self._abort_handle is None:  # (one may run since the close_notify waited: it bounds this)
            self._linger_deadline = self._loop.time() + _LINGER_TIMEOUT
            self._abort_handle = self._loop.call_later(_LINGER_RECHECK, self._linger_recheck, _LINGER_RECHECK)
        return True

    def _linger_recheck(self, delay: float) -> None:
        self._abort_handle = None
        if not self._lingering:
            return
        self._linger_read()
        if self._lingering:
            left = self._linger_deadline - self._loop.time()
            if left <= 0:
                self._end_linger()
            else:
                delay = min(delay * 2, left)
                self._abort_handle = self._loop.call_later(delay, self._linger_recheck, delay)

    def _watch_linger(self) -> None:
        if self._lingering:
            self._loop.add_reader(self._fd, self._linger_read)
            self._linger_read()  # the peer's end may be there already

    def _linger_read(self) -> None:
        try:
            data = self._tls.recv(65536)  # plain bytes now: discarded
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._end_linger()

    def _end_linger(self) -> None:
        """Close the socket and tell the protocol, once."""
        if self._lingering:
            self._lingering = False
            self._loop.remove_reader(self._fd)
            if self._notify_waits:
                self._notify_waits = False
                self._loop.remove_writer(self._fd)
            if self._abort_handle is not None:
                self._abort_handle.cancel()
                self._abort_handle = None
        elif self._tls.fileno() == -1:
            return
        self._tls.close()
        # OpenSSL's object for the connection goes now, not when this transport does: a protocol
        # and its transport refer to each other, and only the cycle collector would free them.
        self._io = self._tls
        self._loop.call_soon(self._protocol.connection_lost, self._close_exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("ssl_object", "socket"):
            return self._tls
        if name == "peername":
            return _peername(self._tls)
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol


def _peername(tls: ssl.SSLSocket) -> Any:
    try:
        return tls.getpeername()
    except OSError:
        return None
