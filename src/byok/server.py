"""HTTP/1.1 server on trio streams with h11: what the proxy and the simulated
upstream both stand on.

Theory of operation
-------------------
One task per connection runs a loop of request cycles.  A cycle reads the
request head (within ``idle_timeout`` for a keep-alive connection, then
``read_timeout`` for the rest), reads the whole body (up to
``max_body_bytes``: LLM requests are small and routing needs the body), and
hands a ``Request`` to the application, which returns a ``Response`` whose body
is bytes or an async iterator of chunks.  The head goes out as soon as the
application returns; chunks go out as they come, with no buffering.

While the application works and while the body streams, a watcher task reads
the socket: if the client hangs up, the cycle's cancel scope is cancelled at
once, so that an upstream request made for it stops too.  Bytes that arrive
early (a pipelined request) are kept for h11.

Why h11 on trio streams: measured against hypercorn's trio worker on the
same fixed reply (`python benchmarks/bench_server.py`: each server pinned to
one core, wrk with 16 connections on the other), it served 2,436 requests/s
against 1,477, with p99 8.1 ms against 11.8 ms; and h11 is sans-I/O, so the
limits and the disconnect watcher below stay ours.  A C parser (httptools)
is issue 4's to measure, on the proxy's whole hot path.  Errors map to responses here, at one edge:
a malformed request gets 400, an oversize head 431, an oversize body 413, a
slow one 408, and an application crash 500; none of them takes the process
down.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Union

import h11
import trio

log = logging.getLogger("byok.server")

Body = Union[bytes, AsyncIterator[bytes]]


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    client: str = ""

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
        self._idle: set[trio.CancelScope] = set()
        self._active = 0
        self._drained = trio.Event()

    def start(self, grace: float) -> None:
        self.grace = grace
        self.requested.set()
        for scope in self._idle:
            scope.cancel()

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
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` until cancelled, or until `shutdown` has drained it.

    task_status gets the bound listeners (port 0 picks a free port)."""
    limits = limits or Limits()
    shutdown = shutdown or Shutdown()
    listeners = await trio.open_tcp_listeners(port, host=host)
    task_status.started(listeners)
    async with trio.open_nursery() as connections:

        async def handle(stream: trio.SocketStream) -> None:
            await _serve_connection(app, limits, stream, shutdown)

        with trio.CancelScope() as accepting:
            connections.start_soon(_stop_accepting, shutdown, accepting)
            await trio.serve_listeners(handle, listeners, handler_nursery=connections)
        for listener in listeners:
            await listener.aclose()
        with trio.move_on_after(shutdown.grace):
            await shutdown._wait_drained()
        connections.cancel_scope.cancel()


async def _stop_accepting(shutdown: Shutdown, accepting: trio.CancelScope) -> None:
    await shutdown.requested.wait()
    accepting.cancel()


def bound_port(listeners: list[trio.SocketListener]) -> int:
    return int(listeners[0].socket.getsockname()[1])


async def _serve_connection(
    app: App, limits: Limits, stream: trio.SocketStream, shutdown: Shutdown
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
    try:
        peer = stream.socket.getpeername()
        client = f"{peer[0]}:{peer[1]}"
    except OSError:
        client = "?"
    try:
        while not shutdown.requested.is_set():
            with trio.CancelScope() as idle:  # waiting for a request: closed on shutdown
                shutdown._idle.add(idle)
                try:
                    request = await _read_request(limits, stream, conn, client)
                except _ClientError as error:
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await _send_simple(stream, conn, error.status, str(error))
                    return
                finally:
                    shutdown._idle.discard(idle)
            if idle.cancelled_caught or request is None:
                return
            shutdown._begin()
            try:
                keep_going = await _serve_cycle(app, stream, conn, request)
            finally:
                shutdown._end()
            if not keep_going:
                break
            conn.start_next_cycle()
    except _GONE:
        pass  # the client went away, or the application dropped the connection
    except Exception:  # a bug here must cost one connection, not the server
        log.exception("connection from %s failed", client)
    finally:
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            await stream.aclose()


async def _serve_cycle(
    app: App, stream: trio.SocketStream, conn: h11.Connection, request: Request
) -> bool:
    """One request's answer; False when the connection must close."""
    disconnected = False
    failure: BaseException | None = None
    with trio.CancelScope() as cycle:

        async def watch_client() -> None:
            nonlocal disconnected
            try:
                while data := await stream.receive_some(65536):
                    conn.receive_data(data)  # pipelined bytes: kept for the next cycle
            except _GONE:
                pass
            disconnected = True
            cycle.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_client)
            try:
                try:
                    response = await app(request)
                except Exception:
                    log.exception("request handler failed: %s %s", request.method, request.path)
                    response = Response(500, [("content-type", "text/plain")], b"internal error\n")
                await _send_response(stream, conn, request, response)
            except _GONE as error:
                # raised outside the nursery, so callers see it bare, not in a group
                failure = error
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if disconnected or cycle.cancelled_caught:
        return False
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


async def _read_request(
    limits: Limits, stream: trio.SocketStream, conn: h11.Connection, client: str
) -> Request | None:
    head_timeout = limits.idle_timeout if conn.their_state is h11.IDLE else limits.read_timeout
    event = await _next_event(stream, conn, head_timeout, idle_ok=True)
    if event is None:
        return None
    if not isinstance(event, h11.Request):
        raise _ClientError(400, "expected a request")
    if len(event.headers) > limits.max_headers:
        raise _ClientError(431, f"too many headers: at most {limits.max_headers}")
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
    length = next((v for k, v in headers if k == "content-length"), None)
    if length is not None and int(length) > limits.max_body_bytes:
        raise _ClientError(413, f"request body over {limits.max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(limits.read_timeout) as body_timer:
        while True:
            part = await _next_event(stream, conn, math.inf, idle_ok=False)
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > limits.max_body_bytes:
                    raise _ClientError(413, f"request body over {limits.max_body_bytes} bytes")
                chunks.append(bytes(part.data))
            elif isinstance(part, h11.EndOfMessage):
                break
    if body_timer.cancelled_caught:
        raise _ClientError(408, "request body did not arrive in time")
    return Request(
        method=event.method.decode("ascii"),
        target=event.target.decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
        client=client,
    )


async def _next_event(
    stream: trio.SocketStream, conn: h11.Connection, timeout: float, *, idle_ok: bool
) -> h11.Event | None:
    with trio.move_on_after(timeout):
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                status = error.error_status_hint
                raise _ClientError(status, f"malformed request: {error}") from None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                try:
                    conn.receive_data(data)
                except h11.RemoteProtocolError as error:
                    raise _ClientError(400, f"malformed request: {error}") from None
                if not data and idle_ok and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.ConnectionClosed):
                if idle_ok and conn.their_state is not h11.SEND_BODY:
                    return None
                raise _ClientError(400, "connection closed mid-request")
            assert isinstance(event, h11.Event)  # NEED_DATA handled above; PAUSED cannot occur
            return event
    if idle_ok and conn.their_state is h11.IDLE:
        return None  # an idle keep-alive connection timed out
    raise _ClientError(408, "request did not arrive in time")


async def _send_response(
    stream: trio.SocketStream, conn: h11.Connection, request: Request, response: Response
) -> None:
    headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP]
    body = response.body
    if isinstance(body, bytes):
        headers.append(("content-length", str(len(body))))
    if request.header("connection").lower() == "close":
        headers.append(("connection", "close"))
    aclose = getattr(body, "aclose", None)
    try:
        head = h11.Response(status_code=response.status, headers=headers)
        await stream.send_all(conn.send(head))
        if request.method != "HEAD":
            if isinstance(body, bytes):
                if body:
                    await stream.send_all(conn.send(h11.Data(data=body)))
            else:
                async for chunk in body:
                    if chunk:
                        await stream.send_all(conn.send(h11.Data(data=chunk)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
    finally:
        if aclose is not None:  # a stream's resources go back even if we never started it
            await aclose()


async def _send_simple(
    stream: trio.SocketStream, conn: h11.Connection, status: int, text: str
) -> None:
    body = (text + "\n").encode("utf-8", "replace")
    headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    with trio.move_on_after(5):
        try:
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
            await stream.send_all(conn.send(h11.Data(data=body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


# The connection is over: the peer left, or the application dropped it.
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, AbortConnection)

# Hop-by-hop headers belong to one connection and are never relayed.
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
