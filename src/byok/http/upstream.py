"""The HTTP client that talks to upstream providers: one module, so that the
choice of client can change in one place.

Theory of operation
-------------------
HTTP/1.1 over trio streams (TCP, or TLS through ``trio.SSLStream``), with
llhttp (through httptools, a C parser) reading responses, and a pool of
keep-alive connections per origin (scheme, host, port) and egress settings:
two providers with the same base URL but another proxy, trust or client
certificate never share a connection (egress.py reads the settings).

A new connection goes to the origin directly, or through an HTTP proxy: to
an https origin through a CONNECT tunnel (TLS end to end, the proxy sees
only the host and port), to an http one as absolute-form requests
(``POST http://host/path``, as curl sends them) on connections to the
proxy.  The TCP connect, the proxy's TLS and tunnel and the origin's TLS
handshake together are bounded by the origin's connect timeout.

A request takes a connection from its origin's pool: the most recently used
idle one (LIFO keeps few connections warm), after dropping any that sat idle
past ``keepalive_expiry`` or that the server has closed meanwhile (an idle
socket that reads as ready holds an EOF or garbage); else a new one, up to
``max_connections`` per origin (10,000 by default, or the provider's: a cap
against runaway growth, not a throttle; each connection is a file
descriptor), after which requests wait for a connection to come back.  The
request goes out in one write (head and body; the body always has a
content-length), and then the caller's ``on_written`` is called: the
caller's first-byte deadline starts there, never while a request waits for
a slot or a connect.  ``send`` returns once the response head is in; the
body is read as it arrives, whatever the parser has so far handed out in
one piece, so a stream that piles up is relayed in fewer, larger writes.

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
the limit on a connect and the read deadlines a caller may give a response
being read (``read_by``: cheaper than a scope around every chunk of a
stream; ``expire_reads`` cuts the connection when one passes), and
cancellation at any point closes the connection in use. Network and protocol
failures of every kind become ``UpstreamError`` here, at the edge, with a
message that names the host (or the proxy) and never a secret, and a
``kind``: "refused" (no connection: refused, unreachable, DNS, TLS, connect
limit, a proxy that could not reach the upstream), "reset" (the connection
broke or closed before or while answering), "malformed" (not HTTP, or over a
limit), "invalid" (the request itself cannot be sent; nothing went out) or
"local" (byok's own side failed, not the upstream: this process ran out of
file descriptors or memory, or the egress proxy is unreachable or refuses
byok, with a 407 for its credentials or a 403 for its policy).

Why our own client: on the proxy's hot path it costs a fraction of httpx's,
httpx2's or httpcore's (the figures are in docs/upstream-client.md, from
``python benchmarks/bench_upstream_client.py``).  httpx remains the client for
everything off that path.
"""

from __future__ import annotations

import errno
import math
import os
import re
import ssl
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Literal
from urllib.parse import urlsplit

import httptools
import trio

from .egress import EgressError, EgressSettings, Proxy, authority, resolve_proxy, tls_context
from .sockets import FastSocketStream

RECEIVE_SIZE = 65536
CONNECT_TIMEOUT = 30.0  # the one limit of this module's own: the caller's is usually far shorter
_TLSSettings = tuple[str | None, str | None, str | None, bool]  # tls_context's arguments
_DEFAULT_TLS: _TLSSettings = (None, None, None, True)  # the system's trust store

Kind = Literal["refused", "reset", "malformed", "invalid", "local"]


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; the message is safe to log.

    `kind`: "refused" (no connection was made: refused, unreachable, DNS,
    TLS handshake, connect limit, a proxy that could not reach the upstream),
    "reset" (the connection broke or was closed before or while answering),
    "malformed" (a response that is not HTTP, or a head or body over its
    limit), "invalid" (the request cannot be sent as given; nothing went
    out), "local" (byok's own side failed: this process ran out of file
    descriptors or memory, or the egress proxy cannot be reached or refuses
    byok; no fault of the upstream's).  Timeouts are the caller's and never
    appear here.
    """

    def __init__(self, message: str, kind: Kind = "reset") -> None:
        super().__init__(message)
        self.kind: Kind = kind


class UpstreamTimeout(UpstreamError):
    """The read deadline the caller gave with ``UpstreamResponse.read_by``
    passed: the connection was cut (kind "reset")."""


# The longest expire_reads sleeps without looking: a deadline given while it
# sleeps, earlier than any it knew, is cut up to this late.
READ_TICK = 0.25


class Origin:
    """Where connections go (scheme, host and port), how they get there (a
    proxy, TLS, a connect limit), and the pool for them."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        max_connections: int,
        *,
        proxy: Proxy | None = None,
        tls: ssl.SSLContext | None = None,
        proxy_tls: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        """`tls` for an https origin; `proxy_tls` for an https:// proxy."""
        self.scheme, self.host, self.port = scheme, host, port
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
        self.host_header = host_header
        self.authority = authority(host, port)  # what a CONNECT asks for
        self.proxy, self.tls, self.proxy_tls = proxy, tls, proxy_tls
        self.connect_timeout = connect_timeout
        # plain http through a proxy: absolute-form requests on connections to
        # the proxy, each with the proxy's credentials
        self.forwarded = proxy is not None and scheme == "http"
        self.head_lines = f"host: {host_header}\r\n"  # what every request's head carries
        if self.forwarded and proxy is not None and proxy.authorization:
            self.head_lines += f"proxy-authorization: {proxy.authorization}\r\n"
        self.idle: list[_Connection] = []
        self.slots = trio.Semaphore(max_connections)

    def __repr__(self) -> str:
        via = f" via {self.proxy.address}" if self.proxy else ""
        return f"Origin({self.scheme}://{self.host_header}{via})"


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
        self.expired = False  # its read deadline passed: cut by expire_reads
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
            if self.expired:
                raise UpstreamTimeout(f"{self.origin.host} sent nothing in time") from None
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
        return self.complete and self.framed and self.keep_alive and not self.expired

    def expire(self) -> None:
        """Cut the connection now: a task waiting to read gets UpstreamTimeout."""
        self.expired = True
        stream = self.stream
        while isinstance(stream, trio.SSLStream):  # the socket under the TLS layers
            stream = stream.transport_stream
        assert isinstance(stream, FastSocketStream)
        stream.abort()

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
        deadlines = self._upstream._read_deadlines
        try:
            while True:
                if connection.body:
                    body = connection.body
                    piece = body[0] if len(body) == 1 else b"".join(body)
                    body.clear()
                    # read_by's deadline was for this read: while the caller
                    # holds the piece (a slow client), no deadline runs
                    deadlines.pop(connection, None)
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

    def read_by(self, deadline: float) -> None:
        """Until when the next read of the body may wait (trio time): past
        it, the connection is cut and the read raises UpstreamTimeout.  With
        chunks(), it holds until the next piece is handed out: say it before
        each.  It costs a dict update, where a cancel scope around each read
        cost as much as the read.  Needs ``Upstream.housekeeping`` (or
        ``expire_reads``) running."""
        if self._connection is not None:
            self._upstream._watch(self._connection, deadline)

    async def aclose(self) -> None:
        """Give the connection back if the response was read to its end, else close it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._upstream._read_deadlines.pop(connection, None)
            await self._upstream._release(connection)


class Upstream:
    """Pooled keep-alive connections, one pool per origin and egress settings."""

    def __init__(
        self,
        max_connections: int = 10_000,
        keepalive_expiry: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        max_head_bytes: int = 64 * 1024,
        max_headers: int = 1000,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`max_connections` per origin (for sends without egress settings,
        which carry their own) is a cap against runaway growth, not a
        throttle: a gateway relaying thousands of concurrent streams holds a
        connection for each.  Every connection is a file descriptor, so the
        process's limit (``ulimit -n``, often 1024 by default) must be above
        the connections to all origins plus the clients' own; past it,
        connects fail as "local" (EMFILE).

        `ssl_context` replaces the system's trust store for https origins
        whose settings ask for no other TLS.  `environ` (os.environ if None)
        is where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read, once per origin.

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
        self._environ = os.environ if environ is None else environ
        # one context per distinct TLS settings (each holds a trust store)
        self._contexts: dict[_TLSSettings, ssl.SSLContext] = {}
        if ssl_context is not None:
            self._contexts[_DEFAULT_TLS] = ssl_context
        # (base URL, settings) -> origin, path start
        self._origins: dict[tuple[str, EgressSettings | None], tuple[Origin, int]] = {}
        self._by_address: dict[tuple[str, str, int, EgressSettings | None], Origin] = {}
        # read_by() deadlines of responses being read, for expire_reads
        self._read_deadlines: dict[_Connection, float] = {}
        self._reads_given = trio.Event()

    def origin(self, base_url: str, egress: EgressSettings | None = None) -> tuple[Origin, int]:
        """The origin (the pool) of a base URL reached with these settings, and
        where the request target starts in URLs under it (0 through a proxy
        that takes absolute-form requests).  Without settings: the
        environment's proxy, the system's trust store, this Upstream's cap.
        Prepared once: the proxy and TLS are settled here, not per request."""
        found = self._origins.get((base_url, egress))
        if found is None:
            parts = urlsplit(base_url)
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:  # a port out of range
                port = 0
            if parts.scheme not in ("http", "https") or not parts.hostname or not port:
                raise UpstreamError(f"cannot send to {base_url!r}: not an http(s) URL", "invalid")
            address = (parts.scheme, parts.hostname, port, egress)
            origin = self._by_address.get(address)
            if origin is None:
                origin = self._by_address[address] = self._new_origin(*address)
            path_start = 0 if origin.forwarded else len(f"{parts.scheme}://{parts.netloc}")
            found = self._origins[(base_url, egress)] = (origin, path_start)
        return found

    def _new_origin(
        self, scheme: str, host: str, port: int, egress: EgressSettings | None
    ) -> Origin:
        try:
            setting = None if egress is None else egress.proxy
            proxy = resolve_proxy(setting, scheme, host, port, self._environ)
            tls = self._tls(egress, to_proxy=False) if scheme == "https" else None
            proxy_tls = None
            if proxy is not None and proxy.scheme == "https":
                proxy_tls = self._tls(egress, to_proxy=True)
        except EgressError as error:  # checked when the config loaded: a file changed since
            message = f"cannot send to {host}: {error.field}: {error}"
            raise UpstreamError(message, "invalid") from None
        cap = self.max_connections if egress is None else egress.max_connections
        timeout = (egress and egress.connect_timeout) or CONNECT_TIMEOUT
        return Origin(
            scheme,
            host,
            port,
            cap,
            proxy=proxy,
            tls=tls,
            proxy_tls=proxy_tls,
            connect_timeout=timeout,
        )

    def _tls(self, egress: EgressSettings | None, *, to_proxy: bool) -> ssl.SSLContext:
        """The context for these settings, shared by every origin that has
        them; to an https:// proxy: the same trust, no client certificate."""
        settings = _DEFAULT_TLS
        if egress is not None:
            cert, key = (None, None) if to_proxy else (egress.client_cert, egress.client_key)
            settings = (egress.ca_file, cert, key, egress.verify)
        context = self._contexts.get(settings)
        if context is None:
            context = self._contexts[settings] = tls_context(*settings)
        return context

    async def send(
        self,
        base_url: str,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        egress: EgressSettings | None = None,
        on_queued: Callable[[], float] | None = None,
        on_connecting: Callable[[], float] | None = None,
        on_written: Callable[[], float] | None = None,
    ) -> UpstreamResponse:
        """Send and return once the response head is in; the body streams later.

        `url` starts with `base_url`; `headers` carry no host or content-length.
        `egress`: the provider's proxy, TLS, connect timeout and connection
        cap (None: the environment's proxy, the system's trust store).
        `on_queued()` is called only when no connection slot is free and the
        request must wait for one (the pool's wait, not the upstream's), and
        `on_connecting()` once a slot is ours.  `on_written()` is called
        as soon as the request has been handed to the socket (again if the
        keep-alive race sends it once more): where a first-byte deadline starts,
        after any wait for a slot or a connect.  Each returns the deadline
        (trio time) of the phase it begins: the wait for a slot, connecting
        and writing, the response head; past it, UpstreamTimeout (never
        retried).  The slot wait and a new connection take a cancel scope;
        writing and the head take read deadlines (read_by's, as cheap as a
        dict update), so that a request on a pooled connection takes no scope.
        """
        found = self._origins.get((base_url, egress))
        origin, path_start = self.origin(base_url, egress) if found is None else found
        head = _request_head(method, url[path_start:] or "/", origin.head_lines, headers, body)
        message = head + body if len(body) < 65536 else None  # one write for small bodies
        try:
            origin.slots.acquire_nowait()
        except trio.WouldBlock:
            with trio.move_on_at(math.inf if on_queued is None else on_queued()) as waiting:
                await origin.slots.acquire()
            if waiting.cancelled_caught:
                raise UpstreamTimeout(
                    f"no connection to {origin.host} became free in time"
                ) from None
        connection: _Connection | None = None
        deadlines = self._read_deadlines
        try:
            until = math.inf if on_connecting is None else on_connecting()
            while True:
                connection = await self._connection(origin, until)
                if until != math.inf:
                    self._watch(connection, until)  # for the write, as for a read
                try:
                    if message is not None:
                        await connection.stream.send_all(message)
                    else:
                        await connection.stream.send_all(head)
                        await connection.stream.send_all(body)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
                    failure = (
                        UpstreamTimeout(f"{origin.host} took the request too slowly")
                        if connection.expired
                        else _transport_error(origin.host, "send", error)
                    )
                else:
                    if on_written is not None:
                        head_by = on_written()
                        if head_by != math.inf:
                            self._watch(connection, head_by)
                        else:
                            deadlines.pop(connection, None)
                    try:
                        while not connection.headed:
                            await connection.fill()
                    except UpstreamError as error:
                        failure = error
                    else:
                        deadlines.pop(connection, None)  # the caller's read_by, from here
                        connection.used = True
                        if origin.forwarded and connection.parser.get_status_code() == 407:
                            raise _proxy_refused(origin, 407, "")  # the proxy's, not the upstream's
                        return UpstreamResponse(connection, self)
                # The keep-alive race: the server closed a reused connection as
                # we wrote, and answered nothing; once more on a new connection.
                # A deadline that passed is never such a race.
                stale = (
                    connection.used
                    and connection.received == 0
                    and not isinstance(failure, UpstreamTimeout)
                )
                deadlines.pop(connection, None)
                await connection.aclose()
                connection = None
                if not stale:
                    raise failure
        except BaseException:
            if connection is not None:
                deadlines.pop(connection, None)
                await connection.aclose()
            origin.slots.release()
            raise

    async def _connection(self, origin: Origin, until: float = math.inf) -> _Connection:
        """A pooled connection, or a new one opened by `until` (else UpstreamTimeout)."""
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
        with trio.move_on_at(until):
            stream = await self._open(origin)
            return _Connection(stream, origin, self.max_head_bytes, self.max_headers)
        raise UpstreamTimeout(f"connecting to {origin.host} took too long")

    async def _open(self, origin: Origin) -> trio.abc.Stream:
        """A new connection: TCP to the origin or its proxy (and TLS to an
        https:// proxy), a CONNECT tunnel for an https origin behind a proxy,
        then TLS to the origin; all within the origin's connect timeout."""
        proxy = origin.proxy
        at_proxy = proxy is not None  # until the tunnel is open, a failure is the proxy's
        stream: trio.abc.Stream | None = None
        try:
            with trio.fail_after(origin.connect_timeout):
                if proxy is None:
                    stream = await _open_tcp(origin.host, origin.port)
                else:
                    stream = await _open_tcp(proxy.host, proxy.port)
                    if origin.proxy_tls is not None:
                        stream = trio.SSLStream(
                            stream,
                            origin.proxy_tls,
                            server_hostname=proxy.host,
                            https_compatible=True,
                        )
                        await stream.do_handshake()
                    if origin.tls is not None:
                        await _tunnel(stream, origin, proxy, self.max_head_bytes)
                    at_proxy = False
                if origin.tls is not None:
                    stream = trio.SSLStream(
                        stream, origin.tls, server_hostname=origin.host, https_compatible=True
                    )
                    await stream.do_handshake()
        except BaseException as error:
            if stream is not None:  # a failed or cancelled handshake leaves a socket behind
                await trio.aclose_forcefully(stream)
            if isinstance(error, trio.TooSlowError):
                via = f" through proxy {proxy.address}" if proxy else ""
                raise UpstreamError(
                    f"connecting to {origin.host}{via} took over {origin.connect_timeout:g}s",
                    "refused",
                ) from None
            if isinstance(error, (OSError, trio.BrokenResourceError, ssl.SSLError)):
                if at_proxy and proxy is not None:
                    raise UpstreamError(
                        f"cannot connect to proxy {proxy.address}: {_reason(error)}", "local"
                    ) from None
                raise _transport_error(origin.host, "connect", error) from None
            raise
        return stream

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

    def _watch(self, connection: _Connection, deadline: float) -> None:
        """Cut `connection` if it is still being read or written at `deadline`."""
        self._read_deadlines[connection] = deadline
        if not self._reads_given.is_set():  # expire_reads parks while there is none
            self._reads_given.set()

    async def housekeeping(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """`sweep_idle` and `expire_reads`, until cancelled: run it in a
        nursery beside the code that sends."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.sweep_idle)
            await nursery.start(self.expire_reads)
            task_status.started()

    async def expire_reads(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Cut the connections whose read deadline (``read_by``) passed, until
        cancelled.  One task for every response being read: it sleeps until
        the soonest deadline (at most READ_TICK) and parks while there is none."""
        task_status.started()
        deadlines = self._read_deadlines
        while True:
            if not deadlines:
                self._reads_given = trio.Event()
                await self._reads_given.wait()
                continue
            now = trio.current_time()
            soonest = now + READ_TICK
            for connection, deadline in list(deadlines.items()):
                if now >= deadline:
                    del deadlines[connection]
                    connection.expire()
                elif deadline < soonest:
                    soonest = deadline
            await trio.sleep_until(soonest)

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

    def idle_connections(self, base_url: str, egress: EgressSettings | None = None) -> int:
        return len(self.origin(base_url, egress)[0].idle)

    async def aclose(self) -> None:
        for origin in self._by_address.values():
            while origin.idle:
                await origin.idle.pop().aclose()


def _request_head(
    method: str, target: str, head_lines: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\n{head_lines}"]
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
    while isinstance(stream, trio.SSLStream):  # TLS, or TLS in TLS to an https:// proxy
        stream = stream.transport_stream
    assert isinstance(stream, FastSocketStream)
    return stream.is_readable()


async def _open_tcp(host: str, port: int) -> FastSocketStream:
    """trio's connect (happy eyeballs, TCP_NODELAY), then the socket for the hot path."""
    return FastSocketStream.take(await trio.open_tcp_stream(host, port))


def _transport_error(host: str, phase: str, error: BaseException) -> UpstreamError:
    """The one place where a failure of the network or of the upstream's HTTP
    becomes an UpstreamError, with its message and kind; `phase` is "connect",
    "send" or "receive"."""
    if isinstance(error, OSError) and error.errno in _LOCAL_ERRNOS:
        # this process ran out of something: not the upstream's fault
        return UpstreamError(f"cannot reach {host}: {_reason(error)}", "local")
    if phase == "connect":  # no connection: whatever the cause, nothing was sent
        return UpstreamError(f"cannot connect to {host}: {_reason(error)}", "refused")
    if isinstance(error, httptools.HttpParserError):
        return UpstreamError(f"{host} sent a malformed response: {error}", "malformed")
    if phase == "send":
        return UpstreamError(f"cannot send to {host}: {_reason(error)}", "reset")
    return UpstreamError(f"connection to {host} broke: {_reason(error)}", "reset")


async def _tunnel(stream: trio.abc.Stream, origin: Origin, proxy: Proxy, max_head: int) -> None:
    """Ask the proxy for a tunnel to the origin; return once it is open."""
    request = f"CONNECT {origin.authority} HTTP/1.1\r\nhost: {origin.authority}\r\n"
    if proxy.authorization:
        request += f"proxy-authorization: {proxy.authorization}\r\n"
    await stream.send_all(f"{request}\r\n".encode("latin-1"))
    reply = b""
    while b"\r\n\r\n" not in reply:
        if len(reply) > max_head:
            message = f"proxy {proxy.address} answered CONNECT with a head over {max_head} bytes"
            raise UpstreamError(message, "local")
        data = await stream.receive_some(RECEIVE_SIZE)
        if not data:
            message = f"proxy {proxy.address} closed the connection instead of opening a tunnel"
            raise UpstreamError(message, "local")
        reply += data
    head, _, rest = reply.partition(b"\r\n\r\n")
    status = _STATUS_LINE.fullmatch(head.partition(b"\r\n")[0])
    if status is None:
        raise UpstreamError(f"proxy {proxy.address} answered CONNECT with no HTTP status", "local")
    code = int(status[1])
    if not 200 <= code < 300:
        reason = "".join(c for c in (status[2] or b"").decode("latin-1") if c.isprintable())
        raise _proxy_refused(origin, code, reason[:80])
    if rest:  # the origin speaks only after our TLS hello: these bytes are the proxy's
        raise UpstreamError(f"proxy {proxy.address} sent bytes before the tunnel opened", "local")


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?")


def _proxy_refused(origin: Origin, code: int, reason: str) -> UpstreamError:
    """A proxy that will not carry a request to the origin: a 5xx says it
    could not reach the origin (as a failed connect would: "refused"); any
    other status is the proxy refusing byok itself ("local": no key's fault)."""
    assert origin.proxy is not None
    proxy = origin.proxy
    message = f"proxy {proxy.address} would not connect to {origin.authority}: {code} {reason}"
    message = message.strip()
    if code == 407:
        if proxy.authorization:
            message += "; it rejected the user:password in the proxy URL"
        else:
            message += "; it wants credentials: http://user:password@host:port as the proxy URL"
    return UpstreamError(message, "refused" if code >= 500 else "local")


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
