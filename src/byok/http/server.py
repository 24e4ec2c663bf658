"""HTTP/1.1 server on trio streams with llhttp (through httptools, a C
parser): what the proxy and the simulated upstream both stand on.

Theory of operation
-------------------
Each connection has two tasks.  The reader receives bytes and feeds them to
the parser, whose callbacks assemble requests (head and whole body: LLM
requests are small and routing needs the body) into a queue; the server
takes requests off the queue one at a time, hands each ``Request`` to the
application, and writes the ``Response``: a bytes body in the same write as
the head, an async iterator's chunks as they come (chunked encoding; the head
goes out with the first chunk), with no buffering.

Because the reader always reads, it is also the disconnect watcher: when the
client hangs up, the cancel scope of the request being served is cancelled at
once, so that an upstream request made for it stops too.  Requests pipelined
behind the current one wait in the queue (a few at most: then the reader
pauses) and are answered in order.

Limits and timeouts: a head must arrive within ``read_timeout`` of its first
byte and hold at most ``max_headers`` headers and ``max_header_bytes`` bytes
(else 431), the body at most ``max_body_bytes`` (else 413, as soon as the
content-length says so), and the whole request within ``read_timeout``
(else 408); an idle keep-alive connection is closed after ``idle_timeout``.
Errors map to responses here, at one edge: a malformed request gets 400, an
application crash 500; none of them takes the process down.

Why llhttp on trio streams: h11 (pure Python) was the first choice and beat
hypercorn's trio worker; on the proxy's hot path its parsing and event
objects were still a third of the time per request, and llhttp does the same
work in C (figures in docs/upstream-client.md and benchmarks/README.md).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Union

import httptools
import trio

from .sockets import FastSocketStream

log = logging.getLogger("byok.http.server")

Body = Union[bytes, AsyncIterator[bytes]]
RECEIVE_SIZE = 65536
ONE_WRITE_LIMIT = 65536  # bodies under this go out with the head, in one write
MAX_PIPELINED = 8  # requests queued behind the one being served


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    client: str = ""
    keep_alive: bool = True  # what the client asked for (HTTP version, Connection)
    http_10: bool = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return default


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""


App = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 32 * 1024 * 1024
    read_timeout: float = 60.0
    idle_timeout: float = 75.0


class AbortConnection(Exception):
    """Raised by a response body to drop the connection on the spot, as a
    crashing server would (the simulated upstream uses it)."""


class _ClientError(Exception):
    """The request cannot be served; answer `status` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Shutdown:
    """Tells a running server to drain: stop accepting, close idle keep-alive
    connections, let requests in flight finish for up to `grace` seconds."""

    def __init__(self) -> None:
        self.requested = trio.Event()
        self.grace = 30.0
        # connections waiting for their next request: closed at once by start()
        self._idle: set[_Connection] = set()
        self._active = 0
        self._drained = trio.Event()

    def start(self, grace: float) -> None:
        self.grace = grace
        self.requested.set()
        for connection in self._idle:
            connection._changed.set()

    def _begin(self) -> None:
        self._active += 1

    def _end(self) -> None:
        self._active -= 1
        if self._active == 0 and self.requested.is_set():
            self._drained.set()

    async def _wait_drained(self) -> None:
        if self._active:
            await self._drained.wait()


async def serve_http(
    app: App,
    host: str,
    port: int,
    limits: Limits | None = None,
    shutdown: Shutdown | None = None,
    *,
    listeners: list[trio.SocketListener] | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until cancelled, or until `shutdown` has drained it.

    task_status gets the bound listeners (port 0 picks a free port);
    `listeners` already open (such as ones that share their port with other
    processes) are served instead of opening host:port."""
    limits = limits or Limits()
    shutdown = shutdown or Shutdown()
    if listeners is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    async with trio.open_nursery() as connections:

        async def handle(stream: trio.SocketStream) -> None:
            await _Connection(app, limits, FastSocketStream.take(stream), shutdown).run()

        connections.start_soon(_expire_waits, shutdown, limits)
        with trio.CancelScope() as accepting:
            connections.start_soon(_stop_accepting, shutdown, accepting)
            await trio.serve_listeners(handle, listeners, handler_nursery=connections)
        for listener in listeners:
            await listener.aclose()
        with trio.move_on_after(shutdown.grace):
            await shutdown._wait_drained()
        connections.cancel_scope.cancel()


async def _expire_waits(shutdown: Shutdown, limits: Limits) -> None:
    """Wake the connections whose wait for a request passed its deadline.

    One task for all connections instead of a cancel scope with a deadline
    around every wait: entering and leaving a scope costs a trio request
    more than the rest of the wait.  A timeout fires up to one tick late."""
    tick = min(1.0, max(0.01, min(limits.read_timeout, limits.idle_timeout) / 8))
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        for connection in shutdown._idle:
            if now >= connection.deadline:
                connection._changed.set()


async def _stop_accepting(shutdown: Shutdown, accepting: trio.CancelScope) -> None:
    await shutdown.requested.wait()
    accepting.cancel()


def bound_port(listeners: list[trio.SocketListener]) -> int:
    return int(listeners[0].socket.getsockname()[1])


class _StopParsing(Exception):
    """Raised in a parser callback once `_Connection.error` is set."""


class _Connection:
    """One client connection: its reader, its parser (and the parser's
    callbacks), and the loop that serves its requests in order."""

    def __init__(self, app: App, limits: Limits, stream: FastSocketStream, shutdown: Shutdown):
        self.app, self.limits, self.stream, self.shutdown = app, limits, stream, shutdown
        try:
            peer = stream.socket.getpeername()
            self.client = f"{peer[0]}:{peer[1]}"
        except OSError:
            self.client = "?"
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[Request] = deque()
        self.error: _ClientError | None = None  # the request stream is broken: answer, close
        self.gone = False  # the client hung up
        self.began: float | None = None  # when the request now arriving began
        self.idle_since = trio.current_time()
        self.serving = False  # the server loop is answering a request
        self._scope: trio.CancelScope | None = None  # the connection's: cancelled, all ends
        self._changed = trio.Event()  # the reader has news for the server loop
        self.deadline = math.inf  # of the wait for a request, while there is one
        self._room = trio.Event()  # the server loop took a request off a full queue
        self._continue = False  # the client waits for "100 Continue"

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                nursery.start_soon(self._read)
                try:
                    await self._serve()
                except _GONE:
                    pass  # the client went away, or the application dropped the connection
                except Exception:  # a bug here must cost one connection, not the server
                    log.exception("connection from %s failed", self.client)
                nursery.cancel_scope.cancel()
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await self.stream.aclose()

    # ---- the reader ------------------------------------------------------------

    async def _read(self) -> None:
        unfinished_head = 0  # bytes received while a head is incomplete
        try:
            while True:
                while len(self.ready) >= MAX_PIPELINED:
                    self._room = trio.Event()
                    await self._room.wait()
                # the client sends its next request once it has our answer:
                # waiting first spares a receive that finds nothing
                data = await self.stream.receive_next(RECEIVE_SIZE)
                if not data:
                    break
                try:
                    self.parser.feed_data(data)
                except _StopParsing:
                    pass
                except httptools.HttpParserCallbackError as error:
                    if self.error is None:  # a callback choked on a value llhttp let through
                        self.error = _ClientError(400, f"malformed request: {error}")
                except httptools.HttpParserUpgrade:
                    pass  # an upgrade is not offered: the request is served, then we close
                except httptools.HttpParserError as error:
                    self.error = _ClientError(400, f"malformed request: {error}")
                if self.error is None and self.began is not None and self._head is not None:
                    unfinished_head += len(data)
                    if unfinished_head > self.limits.max_header_bytes:
                        self.error = _ClientError(431, "request head too large")
                else:
                    unfinished_head = 0
                self._changed.set()
                if self.error is not None:
                    return  # nothing after a broken request can be trusted
                if self._continue:
                    self._continue = False
                    if not self.serving:  # the server loop is not writing
                        await self.stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        except (*_GONE, trio.BusyResourceError):
            pass
        except Exception:  # a bug here must cost one connection, not the server
            log.exception("reading from %s failed", self.client)
        self.gone = True
        if self.serving and self._scope is not None:
            # the request's work is for nobody now: end it (and the
            # connection) at its next checkpoint
            self._scope.cancel()
        self._changed.set()

    # httptools callbacks, for the request arriving now
    def on_message_begin(self) -> None:
        self.began = trio.current_time()
        self._url: list[bytes] = []
        self._head: list[tuple[str, str]] | None = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._head is not None
        if len(self._head) >= self.limits.max_headers:
            self._fail(431, f"too many headers: at most {self.limits.max_headers}")
        self._head_bytes += len(name) + len(value) + 4
        self._head.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._head is not None
        if self._head_bytes > self.limits.max_header_bytes:
            self._fail(431, f"request head over {self.limits.max_header_bytes} bytes")
        for name, value in self._head:
            if name == "content-length" and int(value) > self.limits.max_body_bytes:
                self._fail(413, f"request body over {self.limits.max_body_bytes} bytes")
            elif name == "expect" and value.lower() == "100-continue":
                self._continue = True
        self._headers, self._head = self._head, None

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.limits.max_body_bytes:
            self._fail(413, f"request body over {self.limits.max_body_bytes} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        self.ready.append(
            Request(
                method=parser.get_method().decode("ascii"),
                target=b"".join(self._url).decode("latin-1"),
                headers=self._headers,
                body=self._body[0] if len(self._body) == 1 else b"".join(self._body),
                client=self.client,
                keep_alive=parser.should_keep_alive(),
                http_10=parser.get_http_version() == "1.0",
            )
        )
        self.began = None
        self._continue = False

    def _fail(self, status: int, message: str) -> None:
        self.error = _ClientError(status, message)
        raise _StopParsing

    # ---- the server loop -----------------------------------------------------------

    async def _serve(self) -> None:
        shutdown = self.shutdown
        while not shutdown.requested.is_set():
            request = await self._next_request()
            if request is None:
                return
            shutdown._begin()
            try:
                keep_going = await self._serve_cycle(request)
            finally:
                shutdown._end()
            if not keep_going:
                return
            self.idle_since = trio.current_time()

    async def _next_request(self) -> Request | None:
        limits = self.limits
        while not self.ready:
            if self.error is not None:
                await self._send_simple(self.error.status, str(self.error))
                return None
            if self.gone:
                return None
            if self.shutdown.requested.is_set():
                return None  # draining: a request not yet in is not served
            if self.began is None:
                deadline = self.idle_since + limits.idle_timeout
            else:
                deadline = self.began + limits.read_timeout
            if trio.current_time() >= deadline:  # _expire_waits woke us
                if self.began is not None:
                    await self._send_simple(408, "request did not arrive in time")
                return None
            self.deadline = deadline
            self._changed = trio.Event()
            idle = self.shutdown._idle
            idle.add(self)
            try:
                await self._changed.wait()
            finally:
                idle.discard(self)
        request = self.ready.popleft()
        self._room.set()
        return request

    async def _serve_cycle(self, request: Request) -> bool:
        """One request's answer; False when the connection must close.

        A client that leaves meanwhile cancels the whole connection (the
        reader does: see _read), not a scope of this request's own, because
        a cancel scope per request costs more than most of its work."""
        if self.gone:
            return False  # nobody to answer
        self.serving = True
        try:
            try:
                response = await self.app(request)
            except AbortConnection:
                raise  # the application drops the connection, unanswered
            except Exception:
                log.exception("request handler failed: %s %s", request.method, request.path)
                response = Response(500, [("content-type", "text/plain")], b"internal error\n")
            keep_alive = await self._send_response(request, response)
        finally:
            self.serving = False
        return keep_alive and not self.gone

    async def _send_response(self, request: Request, response: Response) -> bool:
        """Write the response; True when the connection can carry another."""
        body = response.body
        aclose = getattr(body, "aclose", None)
        try:
            keep_alive = request.keep_alive and self.error is None
            lines = [_status_line(response.status)]
            for name, value in response.headers:
                if name.lower() in _HOP_BY_HOP:
                    continue
                if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                    log.warning("dropped response header %r: it holds a line break", name)
                    continue
                lines.append(f"{name}: {value}\r\n")
            chunked = False
            if isinstance(body, bytes):
                lines.append(f"content-length: {len(body)}\r\n")
            elif request.http_10:
                keep_alive = False  # an HTTP/1.0 client reads a stream to the end of the connection
            else:
                chunked = True
                lines.append("transfer-encoding: chunked\r\n")
            if not keep_alive:
                lines.append("connection: close\r\n")
            elif request.http_10:
                lines.append("connection: keep-alive\r\n")
            lines.append("\r\n")
            head = "".join(lines).encode("latin-1", "replace")
            send_all = self.stream.send_all
            if request.method == "HEAD":
                await send_all(head)
            elif isinstance(body, bytes):
                if len(body) < ONE_WRITE_LIMIT:  # head and body in one write
                    await send_all(head + body)
                else:
                    await send_all(head)
                    await send_all(body)
            else:
                # the head waits for the first chunk and goes out with it: one
                # write, and a proxy that fails before its first byte can still
                # answer with another status
                # (an empty chunk before the first sends the head alone)
                pending = head
                async for chunk in body:
                    if chunk:
                        framed = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
                        await send_all(pending + framed if pending else framed)
                        pending = b""
                    elif pending:
                        await send_all(pending)
                        pending = b""
                end = b"0\r\n\r\n" if chunked else b""
                if pending or end:
                    await send_all(pending + end)
            return keep_alive
        finally:
            if aclose is not None:  # a stream's resources go back even if we never started it
                await aclose()

    async def _send_simple(self, status: int, text: str) -> None:
        body = (text + "\n").encode("utf-8", "replace")
        head = (
            f"{_status_line(status)}content-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        with trio.move_on_after(5):
            try:
                await self.stream.send_all(head.encode("latin-1") + body)
            except (*_GONE, trio.BusyResourceError):
                pass


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n"
    return line


_STATUS_LINES: dict[int, str] = {}

# The connection is over: the peer left, or the application dropped it.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, AbortConnection)

# Hop-by-hop headers belong to one connection and are never relayed; the
# framing headers are the server's own.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
