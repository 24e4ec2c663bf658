"""Servers for the egress tests, on trio and loopback: an HTTP proxy (CONNECT
tunnels and absolute-form forwarding, Basic proxy authentication, modes
that refuse or never answer), and a TLS front that terminates TLS for a
plain-HTTP upstream."""

from __future__ import annotations

import base64
import ssl
from urllib.parse import urlsplit

import trio

Streams = (trio.BrokenResourceError, trio.ClosedResourceError)
REASONS = {403: "Forbidden", 407: "Proxy Authentication Required", 502: "Bad Gateway"}


class HeadReader:
    """Reads requests (a head, and a content-length body) off a stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def request(self) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """(request line, headers, body), or None at the end of the stream."""
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        headers = [(n.strip().lower(), v.strip()) for n, _, v in (f.partition(":") for f in fields)]
        length = int(dict(headers).get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += await self.stream.receive_some(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return line, headers, body


async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except Streams:
        pass


async def splice(one: trio.abc.Stream, other: trio.abc.Stream) -> None:
    """Bytes both ways until either side ends."""
    async with trio.open_nursery() as nursery:

        async def one_way(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
            await pipe(source, sink)
            nursery.cancel_scope.cancel()

        nursery.start_soon(one_way, one, other)
        nursery.start_soon(one_way, other, one)


class HttpProxy:
    """An HTTP proxy: CONNECT opens a tunnel; an absolute-form request is
    forwarded in origin form.  `credentials` ("user:password"): others get a
    407; `refuse`: every request gets that status; `silent`: it reads a
    request and never answers.  `tls`: it speaks TLS itself (an https:// proxy)."""

    def __init__(
        self,
        credentials: str | None = None,
        refuse: int | None = None,
        silent: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.expected = None
        if credentials is not None:
            self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.refuse, self.silent, self.tls = refuse, silent, tls
        self.seen: list[str] = []  # request lines, in order
        self.authorizations: list[str | None] = []
        self.forwarded: list[bytes] = []  # heads as the upstream got them
        self.connections = 0

    async def serve(self, *, task_status: trio.TaskStatus[str]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        task_status.started(f"{'https' if self.tls else 'http'}://127.0.0.1:{port}")
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = client
        try:
            if self.tls is not None:
                stream = trio.SSLStream(client, self.tls, server_side=True)
            reader = HeadReader(stream)
            request = await reader.request()
            if request is None:
                return
            line, headers, _ = request
            method, target, _ = line.split(" ")
            if not await self._admitted(stream, line, headers):
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
                await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                async with upstream:
                    await splice(stream, upstream)
            else:
                await self._forward(stream, reader, request)
        except (*Streams, ssl.SSLError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _admitted(self, stream: trio.abc.Stream, line: str, headers: list) -> bool:
        authorization = dict(headers).get("proxy-authorization")
        self.seen.append(line.rpartition(" ")[0])
        self.authorizations.append(authorization)
        if self.silent:
            await trio.sleep_forever()
        status = self.refuse
        if status is None and self.expected is not None and authorization != self.expected:
            status = 407
        if status is None:
            return True
        challenge = 'proxy-authenticate: Basic realm="test"\r\n' if status == 407 else ""
        reply = f"HTTP/1.1 {status} {REASONS[status]}\r\n{challenge}content-length: 0\r\n\r\n"
        await stream.send_all(reply.encode())
        return False

    async def _forward(self, client: trio.abc.Stream, reader: HeadReader, request: tuple) -> None:
        """Absolute-form requests, each sent on in origin form without the
        proxy's credentials; the answers flow back as they come."""
        target = urlsplit(request[0].split(" ")[1])
        assert target.hostname is not None
        assert target.port is not None
        async with (
            await trio.open_tcp_stream(target.hostname, target.port) as upstream,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(pipe, upstream, client)
            while request is not None:
                line, headers, body = request
                method, url, version = line.split(" ")
                head = f"{method} {urlsplit(url).path} {version}\r\n" + "".join(
                    f"{name}: {value}\r\n"
                    for name, value in headers
                    if name != "proxy-authorization"
                )
                self.forwarded.append(head.encode())
                await upstream.send_all(head.encode() + b"\r\n" + body)
                request = await reader.request()
                if request is not None and not await self._admitted(client, request[0], request[1]):
                    break
            nursery.cancel_scope.cancel()


class TlsFront:
    """TLS in front of a plain-HTTP server: each connection is decrypted and
    spliced to `target` (host, port), which may be set after it starts."""

    def __init__(self, tls: ssl.SSLContext, target: tuple[str, int] | None = None) -> None:
        self.tls = tls
        self.target = target
        self.connections = 0

    async def serve(self, *, task_status: trio.TaskStatus[str]) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        assert self.target is not None
        stream = trio.SSLStream(client, self.tls, server_side=True)
        try:
            async with await trio.open_tcp_stream(*self.target) as upstream:
                await splice(stream, upstream)
        except (*Streams, ssl.SSLError):
            pass
        finally:
            await trio.aclose_forcefully(stream)
