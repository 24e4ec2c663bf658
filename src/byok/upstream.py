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
``max_connections`` per origin, after which requests wait for a connection to
come back.  The request goes out in one write (head and body; the body always
has a content-length).  ``send`` returns once the response head is in; the
body is read as it arrives, whatever the parser has so far handed out in one
piece, so a stream that piles up is relayed in fewer, larger writes.

A connection goes back to the pool only when its response was read to the
end and both sides allow keep-alive; a response abandoned midway, cancelled,
broken, or answered with ``Connection: close`` closes its connection.  When a
reused connection fails before a single byte of the response arrives (the
server closed it as we wrote: the keep-alive race), the request is sent once
more on a new connection; a failure on a new connection is the upstream's.

Timeouts are the caller's cancel scopes: this module has none of its own,
and cancellation at any point closes the connection in use.  Network and
protocol failures of every kind become ``UpstreamError`` here, at the edge,
with a message that names the host and never a secret.

Why our own client: on the proxy's hot path it costs a fraction of httpx's,
httpx2's or httpcore's (the figures are in docs/upstream-client.md, from
``python benchmarks/bench_upstream_client.py``).  httpx remains the client for
everything off that path.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools
import trio

RECEIVE_SIZE = 65536


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; the message is safe to log."""


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

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
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

    # -- httptools callbacks --
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        if key == "content-length" or key == "transfer-encoding":
            self.framed = True
        self.headers.append((key, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.interim = True
            self.headers = []
            return
        self.headed = True
        if status == 204 or status == 304:
            self.framed = True  # no body, by definition

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
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
            raise UpstreamError(
                f"connection to {self.origin.host} broke: {_reason(error)}"
            ) from None
        if not data:
            if self.headed and not self.framed:
                self.complete = True  # a body that runs to the end of the connection
                return
            where = "mid-response" if self.received else "without answering"
            raise UpstreamError(f"{self.origin.host} closed the connection {where}")
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise UpstreamError(f"{self.origin.host} sent a malformed response: {error}") from None

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
        self.status = connection.parser.get_status_code()
        self.headers = connection.headers  # lower-cased names, in order

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
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

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

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
        max_connections: int = 512,
        keepalive_expiry: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_connections = max_connections  # per origin
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._origins: dict[str, tuple[Origin, int]] = {}  # base URL -> origin, path start
        self._by_address: dict[tuple[str, str, int], Origin] = {}

    def origin(self, base_url: str) -> tuple[Origin, int]:
        """The origin of a base URL, and where the path starts in URLs under it."""
        found = self._origins.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamError(f"cannot send to {base_url!r}: not an http(s) URL")
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
        self, base_url: str, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send and return once the response head is in; the body streams later.

        `url` starts with `base_url`; `headers` carry no host or content-length.
        """
        origin, path_start = self.origin(base_url)
        head = _request_head(method, url[path_start:] or "/", origin.host_header, headers, body)
        message = head + body if len(body) < 65536 else None  # one write for small bodies
        try:
            origin.slots.acquire_nowait()
        except trio.WouldBlock:
            await origin.slots.acquire()
        connection: _Connection | None = None
        try:
            while True:
                connection = await self._connection(origin)
                try:
                    if message is not None:
                        await connection.stream.send_all(message)
                    else:
                        await connection.stream.send_all(head)
                        await connection.stream.send_all(body)
                    while not connection.headed:
                        await connection.fill()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    failure = UpstreamError(f"cannot send to {origin.host}: {_reason(error)}")
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
            with trio.fail_after(30):  # the caller's deadline is usually far shorter
                stream = await trio.open_tcp_stream(origin.host, origin.port)
                if origin.scheme == "https":
                    stream = trio.SSLStream(
                        stream, self._tls(), server_hostname=origin.host, https_compatible=True
                    )
                    await stream.do_handshake()
        except BaseException as error:
            if stream is not None:  # a failed or cancelled handshake leaves a socket behind
                await trio.aclose_forcefully(stream)
            if isinstance(error, trio.TooSlowError):
                raise UpstreamError(f"connecting to {origin.host} took over 30s") from None
            if isinstance(error, (OSError, trio.BrokenResourceError, ssl.SSLError)):
                raise UpstreamError(f"cannot connect to {origin.host}: {_reason(error)}") from None
            raise
        return _Connection(stream, origin)

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
            raise UpstreamError(f"header {name!r} holds a line break; not sent")
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamError("a request header holds characters outside latin-1") from None


def _dropped(connection: _Connection) -> bool:
    """An idle connection is readable only when the server closed it (or broke
    protocol): either way it cannot carry another request."""
    stream = connection.stream
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket.is_readable()


def _reason(error: BaseException) -> str:
    cause = error.__cause__ or error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__
