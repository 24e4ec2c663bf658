"""The HTTP client that talks to upstream providers: one module, so that the
choice of client can change in one place.

Theory of operation
-------------------
HTTP/1.1 over trio streams (TCP, or TLS through ``trio.SSLStream``), with
llhttp (through httptools, a C parser) reading responses, and a pool of
keep-alive connections per origin (scheme, host, port).

A request takes a connection from its origin's pool: the most recently used
idle one (LIFO keeps few connections warm), after dropping any that sat idle
past ``keepalive_expiry`` or that the server has closed meanwhile (an idle
socket that reads as ready holds an EOF or garbage); else a new one, up to
``max_connections`` per origin (10,000 by default: a cap against runaway
growth, not a throttle; each connection is a file descriptor), after which
requests wait for a connection to come back.  The request goes out in one
write (head and body; the body always has a content-length), and then the
caller's ``on_written`` is called: the caller's first-byte deadline starts
there, never while a request waits for a slot or a connect.  ``send``
returns once the response head is in; the body is read as it arrives,
whatever the parser has so far handed out in one piece, so a stream that
piles up is relayed in fewer, larger writes.

``sweep_idle``, run in a nursery of the caller's, closes idle connections
that expired or that the server closed, without waiting for the next
request to the origin: no socket sits in CLOSE-WAIT for long.

A connection goes back to the pool only when its response was read to the
end and both sides allow keep-alive; a response abandoned midway, cancelled,
broken, or answered with ``Connection: close`` closes its connection.  When a
reused connection fails before a single byte of the response arrives (the
server closed it as we wrote: the keep-alive race), the request is sent once
more on a new connection; a failure on a new connection is the upstream's.

Nothing from the upstream is buffered without bound: a response head (status
line, headers, trailers) over ``max_head_bytes`` or ``max_headers`` fails,
and so does a body over the limit given to ``read``; either way the
connection closes.

Timeouts are the caller's cancel scopes: this module has none of its own but
the limit on a connect, and cancellation at any point closes the connection
in use.  Network and protocol failures of every kind become ``UpstreamError``
here, at the edge, with a message that names the host and never a secret,
and a ``kind``: "refused" (no connection: refused, unreachable, DNS, TLS,
connect limit), "reset" (the connection broke or closed before or while
answering), "malformed" (not HTTP, or over a limit), "invalid" (the
request itself cannot be sent; nothing went out) or "local" (this process
ran out of file descriptors or memory).

Why our own client: on the proxy's hot path it costs a fraction of httpx's,
httpx2's or httpcore's (the figures are in docs/upstream-client.md, from
``python benchmarks/bench_upstream_client.py``).  httpx remains the client for
everything off that path.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import Literal
from urllib.parse import urlsplit

import httptools
import trio

RECEIVE_SIZE = 65536
CONNECT_TIMEOUT = 30.0  # the one limit of this module's own: the caller's is usually far shorter

Kind = Literal["refused", "reset", "malformed", "invalid", "local"]


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; the message is safe to log.

    `kind`: "refused" (no connection was made: refused, unreachable, DNS,
    TLS handshake, connect limit), "reset" (the connection broke or was closed
    before or while answering), "malformed" (a response that is not HTTP, or
    a head or body over its limit), "invalid" (the request cannot be sent as
    given; nothing went out), "local" (this process ran out of file
    descriptors or memory: no fault of the upstream's).  Timeouts are the
    caller's and never appear here.
    """

    def __init__(self, message: str, kind: Kind = "reset") -> None:
        super().__init__(message)
        self.kind: Kind = kind


class Origin:
    """Where connections go: scheme, host and port, and the pool for them."""

    def __init__(self, scheme: str, host: str, port: int, max_connections: int) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        default_port = 443 if scheme == "https" else 80
        self.host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            self.host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        self.idle: list[_Connection] = []
        self.slots = trio.Semaphore(max_connections)

    def __repr__(self) -> str:
        return f"Origin({self.scheme}://{self.host_header})"


class _Connection:
    """One HTTP/1.1 connection; also the parser's callback target."""

    def __init__(
        self, stream: trio.abc.Stream, origin: Origin, max_head_bytes: int, max_headers: int
    ) -> None:
        self.stream = stream
        self.origin = origin
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.used = False  # has served a response before: may be stale
        self._start()

    def _start(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.headed = False
        self.interim = False
        self.complete = False
        self.keep_alive = False
        self.framed = False  # content-length or chunked: the body has a known end
        self.received = 0  # bytes of this response so far
        self.head_bytes = 0  # of trailers parsed so far
        self.header_count = 0
        self.progressed = False  # the parser handed something out during this feed
        self.quiet = 0  # bytes fed since the parser last handed anything out

    # -- httptools callbacks --
    def _counted(self, size: int) -> None:
        self.progressed = True
        self.head_bytes += size
        if self.head_bytes > self.max_head_bytes:
            raise self._head_too_large()

    def _head_too_large(self) -> UpstreamError:
        return UpstreamError(
            f"{self.origin.host} sent a response head over {self.max_head_bytes} bytes",
            "malformed",
        )

    def on_header(self, name: bytes, value: bytes) -> None:
        # The head's size is bounded in fill() by the bytes received before it
        # ends (no count per header on the hot path); trailers are counted here.
        self.header_count += 1
        if self.header_count > self.max_headers:
            raise UpstreamError(
                f"{self.origin.host} sent a response head over {self.max_headers} headers",
                "malformed",
            )
        if self.headed:  # a trailer (after a chunked body): counted, not kept
            self._counted(len(name) + len(value) + 4)  # ": " and the line break
            return
        key = name.decode("latin-1").lower()
        if key == "content-length" or key == "transfer-encoding":
            self.framed = True
        self.headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.progressed = True
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.interim = True
            self.headers = []
            return
        self.headed = True
        if status == 204 or status == 304:
            self.framed = True  # no body, by definition

    def on_body(self, body: bytes) -> None:
        self.progressed = True
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.progressed = True
        if self.interim:
            self.interim = False
            return
        self.complete = True
        # asked here: llhttp forgets the message's flags once it is done
        self.keep_alive = self.parser.should_keep_alive()

    # -- I/O --
    async def fill(self) -> None:
        """Read once from the socket into the parser."""
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            raise _transport_error(self.origin.host, "receive", error) from None
        if not data:
            if self.headed and not self.framed:
                self.complete = True  # a body that runs to the end of the connection
                return
            where = "mid-response" if self.received else "without answering"
            raise UpstreamError(f"{self.origin.host} closed the connection {where}", "reset")
        self.received += len(data)
        self.progressed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, UpstreamError):  # raised by a callback: a limit
                raise error.__context__ from None
            raise _transport_error(self.origin.host, "receive", error) from None
        # httptools gathers a header, a status line or a trailer until it ends:
        # bytes that produced nothing are such a piece in the making.
        self.quiet = 0 if self.progressed else self.quiet + len(data)
        if self.quiet > self.max_head_bytes or (
            not self.headed and self.received > self.max_head_bytes
        ):
            raise self._head_too_large()

    def reusable(self) -> bool:
        return self.complete and self.framed and self.keep_alive

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await trio.aclose_forcefully(self.stream)


class UpstreamResponse:
    """A response whose head is in; read or stream its body, then aclose()."""

    def __init__(self, connection: _Connection, upstream: Upstream) -> None:
        self._connection: _Connection | None = connection
        self._upstream = upstream
        self.host = connection.origin.host
        self.status = connection.parser.get_status_code()
        self.headers = connection.headers  # lower-cased names, in order

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, undecoded (content-encoding passes through)."""
        connection = self._connection
        if connection is None:
            return
        try:
            while True:
                if connection.body:
                    body = connection.body
                    piece = body[0] if len(body) == 1 else b"".join(body)
                    body.clear()
                    yield piece
                if connection.complete:
                    break
                await connection.fill()
        except BaseException:
            await self.aclose()  # broken or cancelled midway: the connection closes
            raise
        await self.aclose()  # read to the end: the connection goes back to the pool

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; over `limit` bytes (undecoded) is an UpstreamError,
        and the connection closes.  (A loop of its own rather than chunks():
        this is the hot path of every answer read whole.)"""
        connection = self._connection
        if connection is None:
            return b""
        if limit is not None:
            length = self.header("content-length")
            if length is not None and length.strip().isdigit() and int(length) > limit:
                await self.aclose()  # announced: refused before a byte of it is read
                raise self._too_large(limit)
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                body = connection.body
                if body:
                    for piece in body:
                        size += len(piece)
                    parts += body
                    body.clear()
                    if limit is not None and size > limit:
                        connection.keep_alive = False  # closed even if it was all in
                        raise self._too_large(limit)
                if connection.complete:
                    break
                await connection.fill()
        except BaseException:
            await self.aclose()  # broken, too large or cancelled: the connection closes
            raise
        await self.aclose()  # read to the end: the connection goes back to the pool
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _too_large(self, limit: int) -> UpstreamError:
        return UpstreamError(f"{self.host} sent a body over {limit} bytes", "malformed")

    @property
    def closed(self) -> bool:
        return self._connection is None

    async def aclose(self) -> None:
        """Give the connection back if the response was read to its end, else close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._upstream._release(connection)


class Upstream:
    """Pooled keep-alive connections, one pool per origin."""

    def __init__(
        self,
        max_connections: int = 10_000,
        keepalive_expiry: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        max_head_bytes: int = 64 * 1024,
        max_headers: int = 1000,
    ) -> None:
        """`max_connections` per origin is a cap against runaway growth, not
        a throttle: a gateway relaying thousands of concurrent streams holds a
        connection for each.  Every connection is a file descriptor, so the
        process's limit (``ulimit -n``, often 1024 by default) must be above
        the connections to all origins plus the clients' own; past it,
        connects fail as "refused" (EMFILE).

        `max_head_bytes` and `max_headers` bound a response head (status
        line, headers and trailers); past either, send() fails.
        """
        self.max_connections = max_connections  # per origin
        self.keepalive_expiry = keepalive_expiry
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        # sweep_idle's period: half the expiry, so that an expired connection
        # lives at most 1.5 times it; at least 1 s, since a sweep polls every
        # idle socket (a system call each); at most 5 s, so that a socket the
        # server closed holds its descriptor in CLOSE-WAIT for seconds, not for
        # half of a long expiry.
        self.sweep_interval = min(max(keepalive_expiry / 2, 1.0), 5.0)
        self._ssl_context = ssl_context
        self._origins: dict[str, tuple[Origin, int]] = {}  # base URL -> origin, path start
        self._by_address: dict[tuple[str, str, int], Origin] = {}

    def origin(self, base_url: str) -> tuple[Origin, int]:
        """The origin of a base URL, and where the path starts in URLs under it."""
        found = self._origins.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamError(f"cannot send to {base_url!r}: not an http(s) URL", "invalid")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = (parts.scheme, parts.hostname, port)
            origin = self._by_address.get(address)
            if origin is None:
                origin = Origin(*address, self.max_connections)
                self._by_address[address] = origin
            found = (origin, len(f"{parts.scheme}://{parts.netloc}"))
            self._origins[base_url] = found
        return found

    async def send(
        self,
        base_url: str,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        on_queued: Callable[[], None] | None = None,
        on_connecting: Callable[[], None] | None = None,
        on_written: Callable[[], None] | None = None,
    ) -> UpstreamResponse:
        """Send and return once the response head is in; the body streams later.

        `url` starts with `base_url`; `headers` carry no host or content-length.
        `on_queued()` is called only when no connection slot is free and the
        request must wait for one (the pool's wait, not the upstream's), and
        `on_connecting()` once a slot is ours.  `on_written()` is called
        as soon as the request has been handed to the socket (again if the
        keep-alive race sends it once more): where a first-byte deadline starts,
        after any wait for a slot or a connect.
        """
        origin, path_start = self.origin(base_url)
        head = _request_head(method, url[path_start:] or "/", origin.host_header, headers, body)
        message = head + body if len(body) < 65536 else None  # one write for small bodies
        try:
            origin.slots.acquire_nowait()
        except trio.WouldBlock:
            if on_queued is not None:
                on_queued()
            await origin.slots.acquire()
        connection: _Connection | None = None
        try:
            if on_connecting is not None:
                on_connecting()
            while True:
                connection = await self._connection(origin)
                try:
                    if message is not None:
                        await connection.stream.send_all(message)
                    else:
                        await connection.stream.send_all(head)
                        await connection.stream.send_all(body)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    failure = _transport_error(origin.host, "send", error)
                else:
                    if on_written is not None:
                        on_written()
                    try:
                        while not connection.headed:
                            await connection.fill()
                    except UpstreamError as error:
                        failure = error
                    else:
                        connection.used = True
                        return UpstreamResponse(connection, self)
                # The keep-alive race: the server closed a reused connection as
                # we wrote, and answered nothing; once more on a new connection.
                stale = connection.used and connection.received == 0
                await connection.aclose()
                connection = None
                if not stale:
                    raise failure
        except BaseException:
            if connection is not None:
                await connection.aclose()
            origin.slots.release()
            raise

    async def _connection(self, origin: Origin) -> _Connection:
        now = trio.current_time()
        while origin.idle:
            connection = origin.idle.pop()
            idle = now - connection.idle_since
            # A connection idle under a second is taken on trust (the check is a
            # system call); if the server did close it, send() retries once.
            if idle < self.keepalive_expiry and (idle < 1.0 or not _dropped(connection)):
                connection._start()
                return connection
            await connection.aclose()
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(origin.host, origin.port)
                if origin.scheme == "https":
                    stream = trio.SSLStream(
                        stream, self._tls(), server_hostname=origin.host, https_compatible=True
                    )
                    await stream.do_handshake()
        except BaseException as error:
            if stream is not None:  # a failed or cancelled handshake leaves a socket behind
                await trio.aclose_forcefully(stream)
            if isinstance(
                error, (trio.TooSlowError, OSError, trio.BrokenResourceError, ssl.SSLError)
            ):
                raise _transport_error(origin.host, "connect", error) from None
            raise
        return _Connection(stream, origin, self.max_head_bytes, self.max_headers)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
            try:
                import certifi  # the CA bundle httpx uses, where present

                self._ssl_context.load_verify_locations(certifi.where())
            except ImportError:
                pass
        return self._ssl_context

    async def _release(self, connection: _Connection) -> None:
        origin = connection.origin
        try:
            if connection.reusable() and not connection.body:
                connection.idle_since = trio.current_time()
                origin.idle.append(connection)
            else:
                await connection.aclose()
        finally:
            origin.slots.release()

    async def sweep_idle(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Close idle connections that expired or that the server closed, every
        `sweep_interval` seconds, until cancelled: run it in a nursery beside
        the code that sends."""
        task_status.started()
        while True:
            await trio.sleep(self.sweep_interval)
            await self._sweep()

    async def _sweep(self) -> None:
        now = trio.current_time()
        closing: list[_Connection] = []
        for origin in list(self._by_address.values()):
            kept = []
            for connection in origin.idle:
                if now - connection.idle_since >= self.keepalive_expiry or _dropped(connection):
                    closing.append(connection)
                else:
                    kept.append(connection)
            origin.idle[:] = kept  # in place and before any await: LIFO order stays
        for connection in closing:
            await connection.aclose()

    def idle_connections(self, base_url: str) -> int:
        return len(self.origin(base_url)[0].idle)

    async def aclose(self) -> None:
        for origin in self._by_address.values():
            while origin.idle:
                await origin.idle.pop().aclose()


def _request_head(
    method: str, target: str, host: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {host}\r\n"]
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise UpstreamError(f"header {name!r} holds a line break; not sent", "invalid")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamError(
            "a request header holds characters outside latin-1", "invalid"
        ) from None


def _dropped(connection: _Connection) -> bool:
    """An idle connection is readable only when the server closed it (or broke
    protocol): either way it cannot carry another request."""
    stream = connection.stream
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket.is_readable()


def _transport_error(host: str, phase: str, error: BaseException) -> UpstreamError:
    """The one place where a failure of the network or of the upstream's HTTP
    becomes an UpstreamError, with its message and kind; `phase` is "connect",
    "send" or "receive"."""
    if isinstance(error, OSError) and error.errno in _LOCAL_ERRNOS:
        # this process ran out of something: not the upstream's fault
        return UpstreamError(f"cannot reach {host}: {_reason(error)}", "local")
    if phase == "connect":  # no connection: whatever the cause, nothing was sent
        if isinstance(error, trio.TooSlowError):
            return UpstreamError(f"connecting to {host} took over {CONNECT_TIMEOUT:g}s", "refused")
        return UpstreamError(f"cannot connect to {host}: {_reason(error)}", "refused")
    if isinstance(error, httptools.HttpParserError):
        return UpstreamError(f"{host} sent a malformed response: {error}", "malformed")
    if phase == "send":
        return UpstreamError(f"cannot send to {host}: {_reason(error)}", "reset")
    return UpstreamError(f"connection to {host} broke: {_reason(error)}", "reset")


_LOCAL_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name)
)


def _reason(error: BaseException) -> str:
    cause = error.__cause__ or error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__
