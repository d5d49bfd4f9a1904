"""TLS handshakes on non-blocking sockets, each step run from the socket's readiness callbacks.

:func:`open_tls` dials an origin and handshakes as a client (verification as the context says:
the caller's browser-grade client context); :class:`TLSAccept` handshakes as a server on an
accepted client socket whose ClientHello is still unread. Both end in a
:class:`~tlsgate.proxy.tlssock.TLSSocketTransport`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from collections.abc import Callable
from typing import Any

from tlsgate.proxy.tlssock import TLSSocketTransport

__all__ = ["TLSAccept", "open_tls"]


async def open_tls(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.Protocol,
    context: ssl.SSLContext,
    address: tuple[str, int],
    server_hostname: str,
    session: ssl.SSLSession | None = None,
    on_hello: Callable[[], None] | None = None,
    *,
    views: bool = False,
) -> TLSSocketTransport:
    """Connect to ``address``, complete the TLS handshake for ``server_hostname``, and start reading.

    ``on_hello()`` is called once our ClientHello is on the wire (or the dial failed before):
    a caller with other work to do can let the origin's handshake start first. With ``views``
    the protocol's ``data_received`` gets views valid during the call (see TLSSocketTransport).

    Raises what connecting or the handshake raised (OSError, ssl.SSLError, and
    ssl.SSLCertVerificationError for a certificate the context refuses); the socket is closed then.
    Each address the name resolves to is tried in turn, as asyncio's create_connection does.
    """
    infos = await loop.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    if not infos:
        raise OSError(f"cannot resolve {address[0]}")
    error: OSError = OSError(f"cannot connect to {address[0]}")
    for family, kind, proto, _, sockaddr in infos:
        dial = _Dial(loop, socket.socket(family, kind, proto), sockaddr, context, server_hostname, session, on_hello)
        try:
            await dial.done
        except OSError as exc:  # connection refused or unreachable: the next address
            dial.stop()
            if isinstance(exc, ssl.SSLError):  # the TLS handshake failed: no other address is tried
                raise
            error = exc
            continue
        except BaseException:
            dial.stop()
            raise
        tls = dial.tls
        if tls is None:  # pragma: no cover - done() succeeds only after the handshake
            raise OSError("handshake finished without a TLS socket")
        transport = TLSSocketTransport(loop, tls, protocol, views=views)
        protocol.connection_made(transport)
        transport.start()
        return transport
    raise error


class _Handshake:
    """A TLS handshake on a non-blocking socket, each step run from the socket's readiness callbacks.

    Each step runs as soon as the socket is ready (each peer flight is answered as it arrives)
    instead of on a task's next turn, behind whatever else the loop has queued (a first
    contact's leaf mint). ``on_done(None)`` or ``on_done(exc)`` ends it, once; ``stop()`` stops
    watching and closes the socket.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, on_done: Callable[[Exception | None], None]
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.on_done = on_done
        self.tls: ssl.SSLSocket | None = None
        self.finished = False
        self.reading = self.writing = False

    def watch(self, reader: bool, writer: bool, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the socket is readable (``reader``) or writable (``writer``)."""
        self.unwatch()
        self.reading, self.writing = reader, writer
        if reader:
            self.loop.add_reader(self.fd, callback)
        if writer:
            self.loop.add_writer(self.fd, callback)

    def unwatch(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
        if self.writing:
            self.loop.remove_writer(self.fd)
        self.reading = self.writing = False

    def stop(self) -> None:
        """Stop (if still running, ``on_done`` is not called) and close the socket."""
        self.finished = True
        self.unwatch()
        (self.tls or self.sock).close()

    def _finish(self, exc: Exception | None) -> None:
        self.unwatch()
        if not self.finished:
            self.finished = True
            self.on_done(exc)

    def start(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.step()

    def step(self) -> None:
        if self.finished or self.tls is None:
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            if not self.reading:
                self.watch(True, False, self.step)
            return
        except ssl.SSLWantWriteError:
            if not self.writing:
                self.watch(False, True, self.step)
            return
        except Exception as exc:  # verification and handshake failures go to on_done
            self._finish(exc)
            return
        self._finish(None)


class _Dial(_Handshake):
    """TCP connect, then the client handshake; ``done`` is the outcome.

    The ClientHello leaves in the callback that sees the TCP connection up.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        sockaddr: Any,
        context: ssl.SSLContext,
        server_hostname: str,
        session: ssl.SSLSession | None,
        on_hello: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(loop, sock, self._settle)
        self.on_hello = on_hello
        self.context = context
        self.server_hostname = server_hostname
        self.session = session
        self.done: asyncio.Future[None] = loop.create_future()
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(sockaddr)
        except OSError as exc:
            self._finish(exc)
            return
        if code in (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
            self.watch(False, True, self._connected)
        elif code:
            self._finish(OSError(code, os.strerror(code)))
        else:
            self._start_tls()

    def _hello_sent(self) -> None:
        callback, self.on_hello = self.on_hello, None
        if callback is not None:
            callback()

    def step(self) -> None:
        super().step()
        if self.reading or self.finished:  # the ClientHello went out (we wait for the server), or no dial
            self._hello_sent()

    def _settle(self, exc: Exception | None) -> None:
        self._hello_sent()
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    def _connected(self) -> None:
        if self.finished:
            return
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._finish(OSError(code, os.strerror(code)))
            return
        self._start_tls()

    def _start_tls(self) -> None:
        try:
            # An EOF without close_notify raises (SSLEOFError) instead of reading as a clean end:
            # it may be a truncation (RFC 9112 §9.8), and the protocol must be able to tell.
            tls = self.context.wrap_socket(
                self.sock,
                server_hostname=self.server_hostname,
                do_handshake_on_connect=False,
                session=self.session,
                suppress_ragged_eofs=False,
            )
        except (OSError, ValueError) as exc:
            self._finish(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        self.start(tls)


class TLSAccept(_Handshake):
    """The server side of a handshake on an accepted socket whose ClientHello is still unread.

    ``on_done(None)`` once the handshake is complete (then :meth:`transport` carries the
    connection), ``on_done(exc)`` when it failed (the client's alert, if it sent one, is in
    ``exc``); :meth:`abort` ends it early and closes the socket, without ``on_done``.
    :meth:`begin` runs the first step (``on_done`` may be called in it).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        context: ssl.SSLContext,
        on_done: Callable[[Exception | None], None],
        *,
        timeout: float,
    ) -> None:
        super().__init__(loop, sock, on_done)
        self.context = context
        self.timeout = timeout
        self.timer: asyncio.TimerHandle | None = None
        try:
            self.peername = sock.getpeername()
        except OSError:
            self.peername = None

    def _finish(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super()._finish(exc)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().stop()

    def _timed_out(self) -> None:
        self.timer = None
        self._finish(TimeoutError(f"the TLS handshake took longer than {self.timeout:g} s"))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peername if name == "peername" else default

    def begin(self) -> None:
        self.timer = self.loop.call_later(self.timeout, self._timed_out)
        try:
            tls = self.context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            self._finish(exc if isinstance(exc, OSError) else OSError(str(exc)))
            return
        self.start(tls)

    def transport(self, protocol: asyncio.Protocol) -> TLSSocketTransport:
        """The established connection for ``protocol`` (``connection_made`` is called, reading starts)."""
        if self.tls is None:  # pragma: no cover - on_done(None) comes only after the handshake
            raise OSError("handshake finished without a TLS socket")
        # Our peer is a client: a closed connection lingers (see TLSSocketTransport._linger).
        transport = TLSSocketTransport(self.loop, self.tls, protocol, linger=True)
        protocol.connection_made(transport)
        transport.start()
        return transport

    def abort(self) -> None:
        self.stop()
