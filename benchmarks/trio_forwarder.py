"""The floor: the least a trio proxy can do, for bench_proxy.py to compare with.

    python benchmarks/trio_forwarder.py --port 8001 --upstream 127.0.0.1:8002

h11 on trio streams on both sides, keep-alive on both sides (a pool of idle
upstream connections), every request forwarded as it came to the one upstream,
the answer relayed back chunk by chunk.  No routing, no keys, no retries, no
limits, no disconnect watcher, no logging: whatever byok costs above this is
the price of being a gateway.
"""

from __future__ import annotations

import argparse

import h11
import trio

_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length"})


class UpstreamPool:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[trio.SocketStream, h11.Connection]] = []

    async def get(self) -> tuple[trio.SocketStream, h11.Connection]:
        if self.idle:
            return self.idle.pop()
        stream = await trio.open_tcp_stream(self.host, self.port)
        return stream, h11.Connection(h11.CLIENT)


async def next_event(stream: trio.SocketStream, conn: h11.Connection) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        return event  # type: ignore[return-value]


async def handle(client: trio.SocketStream, pool: UpstreamPool) -> None:
    down = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await next_event(client, down)
            if not isinstance(request, h11.Request):
                return
            body = []
            while True:
                event = await next_event(client, down)
                if isinstance(event, h11.Data):
                    body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
            data = b"".join(body)
            headers = [(k, v) for k, v in request.headers if k not in _HOP]
            headers.append((b"content-length", str(len(data)).encode()))
            stream, up = await pool.get()
            await stream.send_all(
                up.send(h11.Request(method=request.method, target=request.target, headers=headers))
                + up.send(h11.Data(data=data))
                + up.send(h11.EndOfMessage())
            )
            response = await next_event(stream, up)
            assert isinstance(response, h11.Response)
            out = [(k, v) for k, v in response.headers if k not in _HOP]
            await client.send_all(
                down.send(h11.Response(status_code=response.status_code, headers=out))
            )
            while True:
                event = await next_event(stream, up)
                if isinstance(event, h11.Data):
                    await client.send_all(down.send(h11.Data(data=event.data)))
                elif isinstance(event, h11.EndOfMessage):
                    break
            await client.send_all(down.send(h11.EndOfMessage()))
            if up.our_state is h11.DONE and up.their_state is h11.DONE:
                up.start_next_cycle()
                pool.idle.append((stream, up))
            else:
                await stream.aclose()
            if down.our_state is not h11.DONE or down.their_state is not h11.DONE:
                return
            down.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        pass
    finally:
        await client.aclose()


async def main(port: int, upstream: str) -> None:
    host, _, upstream_port = upstream.rpartition(":")
    pool = UpstreamPool(host, int(upstream_port))

    async def serve(client: trio.SocketStream) -> None:
        await handle(client, pool)

    await trio.serve_tcp(serve, port, host="127.0.0.1")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    args = parser.parse_args()
    trio.run(main, args.port, args.upstream)
