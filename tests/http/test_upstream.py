"""byok's own upstream client (byok.http.upstream) against raw servers on loopback
that misbehave on purpose: the connection-pool edge cases it owns."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trustme

from byok.http import upstream as upstream_module
from byok.http.upstream import RECEIVE_SIZE, Upstream, UpstreamError

Handler = Callable[[trio.abc.Stream, int], Awaitable[None]]
OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{"ok": true}'


class Reader:
    """Reads raw requests off a server-side stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def request(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buffer:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self.buffer += await self.stream.receive_some(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head + b"\r\n\r\n" + body


class Server:
    """A raw TCP (or TLS) server: `handler(stream, n)` serves the n-th connection."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = 0
        self.most_open = 0

    async def serve(self, *, task_status: trio.TaskStatus[str]) -> None:
        async def handle(stream: trio.SocketStream) -> None:
            self.connections += 1
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            wrapped: trio.abc.Stream = stream
            try:
                if self.tls is not None:
                    wrapped = trio.SSLStream(stream, self.tls, server_side=True)
                await self.handler(wrapped, self.connections)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                self.open -= 1
                await trio.aclose_forcefully(wrapped)

        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        scheme = "https" if self.tls else "http"
        task_status.started(f"{scheme}://127.0.0.1:{port}/v1")
        await trio.serve_listeners(handle, listeners)


def run(handler: Handler, scenario, tls_server: ssl.SSLContext | None = None, **options) -> Server:
    """Run `scenario(upstream, base_url, server)` against a server of `handler`."""
    server = Server(handler, tls_server)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            base = await nursery.start(server.serve)
            upstream = Upstream(**options)
            with trio.fail_after(10):
                await scenario(upstream, base, server)
            await upstream.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
    return server


@asynccontextmanager
async def serving(handler: Handler, **options) -> AsyncIterator[tuple[Upstream, str, Server]]:
    """For async tests: an Upstream and a server of `handler`, both closed on the way out."""
    server = Server(handler)
    async with trio.open_nursery() as nursery:
        base = await nursery.start(server.serve)
        upstream = Upstream(**options)
        try:
            yield upstream, base, server
        finally:
            await upstream.aclose()
            nursery.cancel_scope.cancel()


async def post(upstream: Upstream, base: str, body: bytes = b"{}", **options) -> tuple[int, bytes]:
    response = await upstream.send(base, "POST", base + "/chat/completions", [], body, **options)
    return response.status, await response.read()


async def keep_answering(stream: trio.abc.Stream, n: int) -> None:
    reader = Reader(stream)
    while await reader.request() is not None:
        await stream.send_all(OK)


def test_keep_alive_reuses_one_connection():
    async def scenario(upstream, base, server):
        for _ in range(5):
            assert await post(upstream, base) == (200, b'{"ok": true}')
        assert upstream.idle_connections(base) == 1

    assert run(keep_answering, scenario).connections == 1


def test_the_request_goes_out_as_sent():
    seen: list[bytes] = []

    async def record(stream, n):
        reader = Reader(stream)
        seen.append(await reader.request() or b"")
        await stream.send_all(OK)

    async def scenario(upstream, base, server):
        headers = [("authorization", "Bearer sk-test"), ("x-extra", "1")]
        response = await upstream.send(base, "POST", base + "/chat/completions", headers, b"{}")
        await response.read()

    run(record, scenario)
    head = seen[0].split(b"\r\n")
    assert head[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert head[1].startswith(b"host: 127.0.0.1:")
    assert b"authorization: Bearer sk-test" in head
    assert b"content-length: 2" in head
    assert seen[0].endswith(b"\r\n\r\n{}")


def test_connections_per_origin_are_capped_and_requests_wait_their_turn():
    async def slow(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            await trio.sleep(0.05)
            await stream.send_all(OK)

    async def scenario(upstream, base, server):
        results = []

        async def one():
            results.append(await post(upstream, base))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
        assert results == [(200, b'{"ok": true}')] * 8

    server = run(slow, scenario, max_connections=2)
    assert server.most_open == 2
    assert server.connections == 2


def test_a_chunked_body_streams_piece_by_piece_and_the_connection_is_reused():
    async def chunked(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"):
                await stream.send_all(b"%x\r\n%b\r\n" % (len(part), part))
                await trio.sleep(0.02)
            await stream.send_all(b"0\r\n\r\n")

    async def scenario(upstream, base, server):
        response = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        pieces = [piece async for piece in response.chunks()]
        assert b"".join(pieces) == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
        assert len(pieces) == 3  # relayed as they came, not gathered
        assert upstream.idle_connections(base) == 1
        assert (await post(upstream, base))[1].endswith(b"[DONE]\n\n")

    assert run(chunked, scenario).connections == 1


def test_a_content_length_body_in_several_writes_is_read_whole():
    async def dribble(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
            await trio.sleep(0.02)
            await stream.send_all(b"56789")

    async def scenario(upstream, base, server):
        assert await post(upstream, base) == (200, b"0123456789")
        assert await post(upstream, base) == (200, b"0123456789")

    assert run(dribble, scenario).connections == 1


def test_an_interim_answer_is_skipped_for_the_real_one():
    async def early_hints(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            await stream.send_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK)

    async def scenario(upstream, base, server):
        response = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        assert response.status == 200
        assert response.header("link") is None
        assert await response.read() == b'{"ok": true}'
        assert await post(upstream, base) == (200, b'{"ok": true}')

    assert run(early_hints, scenario).connections == 1


def test_connection_close_is_honoured():
    async def closing(stream, n):
        await Reader(stream).request()
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
        )

    async def scenario(upstream, base, server):
        for _ in range(3):
            assert await post(upstream, base) == (200, b"ok")
            assert upstream.idle_connections(base) == 0

    assert run(closing, scenario).connections == 3


def test_a_body_that_runs_to_the_end_of_the_connection():
    async def unframed(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ")
        await stream.send_all(b"it")

    async def scenario(upstream, base, server):
        assert await post(upstream, base) == (200, b"all of it")
        assert upstream.idle_connections(base) == 0

    run(unframed, scenario)


def test_a_stale_keep_alive_connection_is_retried_once_on_a_new_one():
    # The server answers, keeps the connection open as keep-alive, then closes
    # it: the next request meets the closed connection and must not fail.
    async def answer_once(stream, n):
        await Reader(stream).request()
        await stream.send_all(OK)
        await trio.sleep(0.05)

    written: list[float] = []

    async def scenario(upstream, base, server):
        assert await post(upstream, base) == (200, b'{"ok": true}')
        await trio.sleep(0.2)  # the server has closed it by now
        answer = await post(upstream, base, on_written=lambda: written.append(trio.current_time()))
        assert answer == (200, b'{"ok": true}')

    assert run(answer_once, scenario).connections == 2
    assert len(written) == 2  # once per write: the first deadline restarts on the new connection


def test_an_idle_connection_past_keepalive_expiry_is_not_used():
    async def scenario(upstream, base, server):
        await post(upstream, base)
        await trio.sleep(0.1)
        await post(upstream, base)

    assert run(keep_answering, scenario, keepalive_expiry=0.05).connections == 2


def test_a_new_connection_closed_without_an_answer_fails_without_a_retry():
    async def hang_up(stream, n):
        await Reader(stream).request()

    async def scenario(upstream, base, server):
        with pytest.raises(UpstreamError, match="closed the connection without answering"):
            await post(upstream, base)

    assert run(hang_up, scenario).connections == 1


def test_a_reset_mid_body_fails_and_the_pool_recovers():
    async def reset_first(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            if n == 1:
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                sock = stream.socket  # type: ignore[attr-defined]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return  # closed with SO_LINGER 0: a reset
            await stream.send_all(OK)

    async def scenario(upstream, base, server):
        with pytest.raises(UpstreamError):
            await post(upstream, base)
        assert upstream.idle_connections(base) == 0
        assert await post(upstream, base) == (200, b'{"ok": true}')

    assert run(reset_first, scenario, max_connections=1).connections == 2


def test_a_timeout_closes_the_connection_and_frees_its_slot():
    async def stall_first(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            if n == 1:
                await trio.sleep_forever()
            await stream.send_all(OK)

    async def scenario(upstream, base, server):
        with trio.move_on_after(0.1) as timer:
            await post(upstream, base)
        assert timer.cancelled_caught
        assert upstream.idle_connections(base) == 0
        # max_connections=1: the slot came back, or this would wait forever
        assert await post(upstream, base) == (200, b'{"ok": true}')

    assert run(stall_first, scenario, max_connections=1).connections == 2


def test_an_abandoned_response_closes_its_connection():
    async def scenario(upstream, base, server):
        response = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        await response.aclose()  # body never read
        assert upstream.idle_connections(base) == 0
        assert await post(upstream, base) == (200, b'{"ok": true}')

    assert run(keep_answering, scenario).connections == 2


def test_a_malformed_response_is_an_upstream_error():
    async def garbage(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"SMTP ready\r\n\r\n")

    async def scenario(upstream, base, server):
        with pytest.raises(UpstreamError, match="malformed response"):
            await post(upstream, base)

    run(garbage, scenario)


def test_nobody_listening_is_an_upstream_error_naming_the_host():
    async def scenario(upstream, base, server):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # bound but not listening: refused
            with pytest.raises(UpstreamError, match=r"cannot connect to 127\.0\.0\.1"):
                await post(upstream, f"http://127.0.0.1:{port}/v1")

    run(keep_answering, scenario)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async def scenario(upstream, base, server):
        with pytest.raises(UpstreamError, match="line break"):
            await upstream.send(base, "POST", base + "/x", [("x-evil", "a\r\nhost: b")], b"")

    assert run(keep_answering, scenario).connections == 0


def test_tls_through_trio_ssl_stream_with_keep_alive():
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)

    async def scenario(upstream, base, server):
        assert base.startswith("https://")
        for _ in range(3):
            assert await post(upstream, base) == (200, b'{"ok": true}')

    server = run(keep_answering, scenario, server_context, ssl_context=client_context)
    assert server.connections == 1


def test_tls_with_an_untrusted_certificate_is_refused():
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)

    async def scenario(upstream, base, server):
        with pytest.raises(UpstreamError, match="cannot connect"):
            await post(upstream, base)

    run(keep_answering, scenario, server_context)  # the default trust store


def test_the_default_connection_cap_leaves_room_for_thousands_of_streams():
    assert Upstream().max_connections == 10_000


# -- on_written: where the caller's first-byte deadline starts --


async def test_on_written_comes_after_the_wait_for_a_slot(autojump_clock):
    release = trio.Event()

    async def slow_first(stream, n):
        reader = Reader(stream)
        first = True
        while await reader.request() is not None:
            if first:
                await release.wait()
                first = False
            await stream.send_all(OK)

    events: list[tuple[str, float]] = []

    def note(what: str) -> Callable[[], None]:
        return lambda: events.append((what, trio.current_time()))

    async with serving(slow_first, max_connections=1) as (upstream, base, server):

        async def first() -> None:
            assert await post(upstream, base, on_written=note("first written")) == (200, OK[-12:])
            note("first done")()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await trio.sleep(1)  # the first holds the only connection by now
            nursery.start_soon(_later_release, release, 100)
            # A first-byte deadline of 5 s, started by on_written: waiting
            # 100 s for the slot must not count against it.
            with trio.CancelScope() as timer:

                def start_timer() -> None:
                    note("second written")()
                    timer.deadline = trio.current_time() + 5

                assert await post(upstream, base, on_written=start_timer) == (200, OK[-12:])
            assert not timer.cancelled_caught
    assert [what for what, _ in events] == ["first written", "first done", "second written"]
    assert dict(events)["second written"] >= 100
    assert server.connections == 1


async def _later_release(event: trio.Event, seconds: float) -> None:
    await trio.sleep(seconds)
    event.set()


# -- the idle sweeper --


async def test_the_sweeper_closes_an_expired_idle_connection_without_a_request(autojump_clock):
    async with serving(keep_answering, keepalive_expiry=10) as (upstream, base, server):
        assert upstream.sweep_interval == 5
        async with trio.open_nursery() as nursery:
            await nursery.start(upstream.sweep_idle)
            await post(upstream, base)
            connection = upstream.origin(base)[0].idle[-1]
            await trio.sleep(9)  # one sweep went by: not expired, kept
            assert upstream.idle_connections(base) == 1
            assert server.open == 1
            await trio.sleep(7)  # the sweep at 10 s found it expired
            assert upstream.idle_connections(base) == 0
            assert connection.stream.socket.fileno() == -1
            assert server.open == 0  # the server saw it close
            nursery.cancel_scope.cancel()


async def test_the_sweeper_closes_a_connection_the_server_closed(autojump_clock):
    async def answer_and_close(stream, n):
        await Reader(stream).request()
        await stream.send_all(OK)  # keep-alive by default; and yet it closes

    async with (
        serving(answer_and_close, keepalive_expiry=60) as (upstream, base, _),
        trio.open_nursery() as nursery,
    ):
        await nursery.start(upstream.sweep_idle)
        await post(upstream, base)
        connection = upstream.origin(base)[0].idle[-1]
        await trio.sleep(upstream.sweep_interval + 1)  # far from expiry
        assert upstream.idle_connections(base) == 0
        assert connection.stream.socket.fileno() == -1
        nursery.cancel_scope.cancel()


# -- limits on what the upstream sends --


def _huge_head(shape: str) -> bytes:
    if shape == "many headers":
        line = b"x-filler-%06d: " + b"v" * 200 + b"\r\n"  # bytes, not count, trip first
        return b"".join(line % n for n in range(2 * 1024 * 1024 // len(line)))
    return b"x-huge: " + b"v" * (2 * 1024 * 1024) + b"\r\n"


@pytest.mark.parametrize("shape", ["many headers", "one huge header"])
async def test_a_response_head_over_the_limit_fails_early_and_closes(shape, monkeypatch):
    closed = trio.Event()

    async def huge_head(stream, n):
        try:
            await Reader(stream).request()
            await stream.send_all(b"HTTP/1.1 200 OK\r\n" + _huge_head(shape) + b"\r\n")
            await stream.receive_some(65536)  # until the client hangs up
        finally:
            closed.set()

    received: list[int] = []
    fill = upstream_module._Connection.fill

    async def counting_fill(self):
        try:
            await fill(self)
        finally:
            received.append(self.received)

    monkeypatch.setattr(upstream_module._Connection, "fill", counting_fill)
    with trio.fail_after(10):
        async with serving(huge_head) as (upstream, base, _):
            with pytest.raises(UpstreamError) as caught:
                await post(upstream, base)
            assert str(caught.value) == "127.0.0.1 sent a response head over 65536 bytes"
            assert caught.value.kind == "malformed"
            assert max(received) <= 64 * 1024 + RECEIVE_SIZE  # read no further than that
            assert upstream.idle_connections(base) == 0
            await closed.wait()


async def test_too_many_response_headers_fail():
    async def many(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\n" + b"a: b\r\n" * 2000 + b"\r\n")
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with serving(many) as (upstream, base, _):
            with pytest.raises(UpstreamError, match="sent a response head over 1000 headers"):
                await post(upstream, base)
            assert upstream.idle_connections(base) == 0


async def test_trailers_count_but_are_not_kept_as_headers():
    async def with_trailer(stream, n):
        reader = Reader(stream)
        while await reader.request() is not None:
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"2\r\nok\r\n0\r\nx-trailer: 1\r\n\r\n"
            )

    async with serving(with_trailer) as (upstream, base, _):
        response = await upstream.send(base, "POST", base + "/x", [], b"")
        assert await response.read() == b"ok"
        assert response.header("x-trailer") is None
        assert upstream.idle_connections(base) == 1


async def test_read_with_a_limit():
    async def bodies(stream, n):
        reader = Reader(stream)
        while (request := await reader.request()) is not None:
            if b"/announced" in request:
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
                await stream.send_all(b"x" * 100)
            else:  # chunked: the size is known only as it comes
                await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                for _ in range(3):
                    await stream.send_all(b"a\r\n0123456789\r\n")
                await stream.send_all(b"0\r\n\r\n")

    async def get(upstream, base, path, limit):
        response = await upstream.send(base, "GET", base + path, [], b"")
        return await response.read(limit)

    async with serving(bodies) as (upstream, base, server):
        assert await get(upstream, base, "/chunked", 30) == b"0123456789" * 3
        assert await get(upstream, base, "/announced", 100) == b"x" * 100
        assert upstream.idle_connections(base) == 1  # within the limit: reused
        assert server.connections == 1
        for path, limit in (("/announced", 99), ("/chunked", 25)):
            with pytest.raises(UpstreamError) as caught:
                await get(upstream, base, path, limit)
            assert str(caught.value) == f"127.0.0.1 sent a body over {limit} bytes"
            assert caught.value.kind == "malformed"
            assert upstream.idle_connections(base) == 0  # closed, not pooled
        assert await get(upstream, base, "/chunked", None) == b"0123456789" * 3
        assert server.connections == 3


# -- failures by kind --


async def test_a_closed_port_is_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening
        with pytest.raises(UpstreamError, match=r"cannot connect to 127\.0\.0\.1") as caught:
            await post(Upstream(), f"http://127.0.0.1:{port}/v1")
    assert caught.value.kind == "refused"


async def test_a_name_that_does_not_resolve_is_refused(monkeypatch):
    async def unresolvable(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(trio, "open_tcp_stream", unresolvable)
    with pytest.raises(UpstreamError, match=r"cannot connect to api\.invalid") as caught:
        await post(Upstream(), "https://api.invalid/v1")
    assert caught.value.kind == "refused"


async def test_a_server_that_accepts_and_closes_is_a_reset():
    async def hang_up(stream, n):
        pass

    async with serving(hang_up) as (upstream, base, _):
        with pytest.raises(UpstreamError) as caught:
            await post(upstream, base)
    assert caught.value.kind == "reset"


async def test_a_reset_mid_body_is_a_reset():
    async def reset(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        sock = stream.socket  # type: ignore[attr-defined]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async with serving(reset) as (upstream, base, _):
        response = await upstream.send(base, "POST", base + "/x", [], b"")
        with pytest.raises(UpstreamError) as caught:
            await response.read()
    assert caught.value.kind == "reset"


async def test_garbage_is_malformed():
    async def garbage(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"SMTP ready\r\n\r\n")

    async with serving(garbage) as (upstream, base, _):
        with pytest.raises(UpstreamError, match="malformed response") as caught:
            await post(upstream, base)
    assert caught.value.kind == "malformed"


async def test_a_request_that_cannot_be_sent_is_invalid():
    upstream = Upstream()
    for base, headers in (("ftp://example.com", []), ("http://x", [("a", "b\nc")])):
        with pytest.raises(UpstreamError) as caught:
            await upstream.send(base, "POST", base + "/x", headers, b"")
        assert caught.value.kind == "invalid"


# -- read deadlines (read_by, expire_reads) --


async def test_a_read_past_its_deadline_is_cut_and_the_connection_not_reused(autojump_clock):
    async def head_then_silence(stream, n):
        await Reader(stream).request()
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n"
        )
        await trio.sleep_forever()

    async with (
        serving(head_then_silence) as (upstream, base, _),
        trio.open_nursery() as nursery,
    ):
        await nursery.start(upstream.housekeeping)
        answer = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        chunks = answer.chunks()
        assert await chunks.__anext__() == b"first"
        started = trio.current_time()
        answer.read_by(started + 3)
        with pytest.raises(upstream_module.UpstreamTimeout, match="sent nothing in time"):
            await chunks.__anext__()
        assert trio.current_time() - started == pytest.approx(3)  # known before: on time
        await answer.aclose()
        assert upstream.idle_connections(base) == 0  # a cut connection is not pooled
        assert upstream._read_deadlines == {}
        nursery.cancel_scope.cancel()


async def test_a_deadline_moved_on_before_it_passes_cuts_nothing(autojump_clock):
    async def slow_chunks(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(5):
            await trio.sleep(2)
            await stream.send_all(b"1\r\nx\r\n")
        await stream.send_all(b"0\r\n\r\n")

    async with (
        serving(slow_chunks) as (upstream, base, _),
        trio.open_nursery() as nursery,
    ):
        await nursery.start(upstream.housekeeping)
        answer = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        got = b""
        chunks = answer.chunks()
        while True:
            answer.read_by(trio.current_time() + 3)  # each chunk comes 2 s after the last
            try:
                got += await chunks.__anext__()
            except StopAsyncIteration:
                break
        assert got == b"xxxxx"
        assert upstream._read_deadlines == {}  # read to the end: forgotten
        assert upstream.idle_connections(base) == 1
        nursery.cancel_scope.cancel()


async def test_a_deadline_given_while_the_watch_sleeps_is_late_by_a_tick_at_most(autojump_clock):
    async def head_then_silence(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await trio.sleep_forever()

    async with (
        serving(head_then_silence) as (upstream, base, _),
        trio.open_nursery() as nursery,
    ):
        await nursery.start(upstream.housekeeping)
        first = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        second = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        first.read_by(trio.current_time() + 100)
        await trio.sleep(0.01)  # the watch now sleeps until its next tick
        started = trio.current_time()
        second.read_by(started + 0.05)  # sooner than anything it knew
        with pytest.raises(upstream_module.UpstreamTimeout):
            await second.read()
        late = trio.current_time() - started - 0.05
        assert 0 <= late <= upstream_module.READ_TICK
        await first.aclose()
        nursery.cancel_scope.cancel()


async def test_a_caller_holding_a_piece_past_the_deadline_is_not_cut(autojump_clock):
    async def two_chunks(stream, n):
        await Reader(stream).request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n")
        await trio.sleep(1)
        await stream.send_all(b"1\r\nb\r\n0\r\n\r\n")

    async with (
        serving(two_chunks) as (upstream, base, _),
        trio.open_nursery() as nursery,
    ):
        await nursery.start(upstream.housekeeping)
        answer = await upstream.send(base, "POST", base + "/chat/completions", [], b"{}")
        chunks = answer.chunks()
        answer.read_by(trio.current_time() + 2)
        assert await chunks.__anext__() == b"a"
        await trio.sleep(10)  # a slow client: the deadline was for the read, not for this
        answer.read_by(trio.current_time() + 2)
        assert await chunks.__anext__() == b"b"
        with pytest.raises(StopAsyncIteration):
            await chunks.__anext__()
        nursery.cancel_scope.cancel()
