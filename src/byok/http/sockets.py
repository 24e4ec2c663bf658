"""A TCP stream for the hot path: trio's waiting, without trio's per-call bookkeeping.

``trio.SocketStream`` makes every call a full checkpoint: a send or receive
that the kernel completes at once still goes through a context manager, a
cancellation check and a trip through the scheduler.  A proxied request
makes four such calls; together they cost about a tenth of byok's CPU per
request.  `FastSocketStream` calls the socket directly and waits (a
checkpoint, cancellable, through ``trio.lowlevel.wait_readable`` /
``wait_writable``) only when the kernel says it would block, which is what
the scheduler is for.

A call that completes at once does not yield to other tasks.  That cannot
starve them: every loop that sends or receives here also waits for the peer
sooner or later (a receive finds the socket drained, a send fills the
buffer), and the server and the upstream client wait between requests.

Errors are trio's: a broken connection raises ``trio.BrokenResourceError``
(with the OSError as its cause), use after `aclose` ``trio.ClosedResourceError``,
and two tasks receiving (or sending) at once ``trio.BusyResourceError``.
"""

from __future__ import annotations

import errno
import socket

import trio

_BUSY = "another task is already {} on this connection"


class FastSocketStream(trio.abc.HalfCloseableStream):
    """A connected TCP socket as a trio stream; see the module docstring."""

    __slots__ = ("_closed", "_receiving", "_sending", "socket")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self._closed = False
        self._receiving = False
        self._sending = False

    @classmethod
    def take(cls, stream: trio.SocketStream) -> FastSocketStream:
        """The connection of `stream`, which must not be used afterwards."""
        trio_socket = stream.socket
        family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
        return cls(socket.socket(family, kind, proto, fileno=trio_socket.detach()))

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._receiving:
            raise trio.BusyResourceError(_BUSY.format("receiving"))
        sock = self.socket
        size = 65536 if max_bytes is None else max_bytes
        try:
            return sock.recv(size)
        except BlockingIOError:
            pass
        except OSError as error:
            raise self._broken(error) from error
        return await self.receive_next(size)

    async def receive_next(self, max_bytes: int) -> bytes:
        """receive_some when the peer is not expected to have sent anything
        yet (it is answering what we just sent, or it just had our answer):
        wait for the socket first, sparing the receive that would only say
        "nothing yet", a system call a request."""
        if self._receiving:
            raise trio.BusyResourceError(_BUSY.format("receiving"))
        sock = self.socket
        self._receiving = True
        try:
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    continue  # a spurious wakeup
                except OSError as error:
                    raise self._broken(error) from error
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError(_BUSY.format("sending"))
        sock = self.socket
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            raise self._broken(error) from error
        if sent == len(data):
            return
        self._sending = True
        try:
            with memoryview(data) as view:
                rest = view[sent:]
                while rest:
                    await trio.lowlevel.wait_writable(sock)
                    try:
                        rest = rest[sock.send(rest) :]
                    except BlockingIOError:
                        continue
                    except OSError as error:
                        raise self._broken(error) from error
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError(_BUSY.format("sending"))
        if self._closed:
            raise trio.ClosedResourceError("the connection was closed")
        self._sending = True
        try:
            await trio.lowlevel.wait_writable(self.socket)
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the connection was closed")
        await trio.lowlevel.checkpoint()
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as error:
            if error.errno != errno.ENOTCONN:  # the peer is gone: nothing to end
                raise self._broken(error) from error

    async def aclose(self) -> None:
        self.abort()
        await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Close at once, from any task: one waiting on this socket gets
        ClosedResourceError (aclose, without the checkpoint)."""
        if not self._closed:
            self._closed = True
            # wakes any task waiting on this socket, before the descriptor goes
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()

    def is_readable(self) -> bool:
        """Whether a receive would not block: data, or the peer's end of the
        connection (for an idle connection, the latter)."""
        sock = self.socket
        try:
            sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True  # an error is something to read too
        return True

    def _broken(self, error: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
        if self._closed:
            return trio.ClosedResourceError("the connection was closed")
        return trio.BrokenResourceError(f"socket connection broken: {error}")
