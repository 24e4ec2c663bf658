"""The HTTP server's limits, on raw sockets: nothing a client sends can hold
or crash the process."""

from __future__ import annotations

import socket

import httpx
import pytest
import trio

from byok.http.server import Limits

from ..stack import Stack, open_stack

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}  # as the API takes it


def tables(upstream: str) -> dict:
    return {
        "providers": {"sim": {"base_url": f"{upstream}/v1", "kind": "openai", "keys": ["sk-srv"]}},
        "models": {"m": {"targets": ["sim/up"]}},
    }


@pytest.fixture
def stack():
    limits = Limits(max_body_bytes=1000, max_headers=20, read_timeout=0.5, idle_timeout=1)
    with Stack(tables, limits) as running:
        running.simulator.add_key("sk-srv", "srv")
        yield running


def raw(stack: Stack, data: bytes, wait: float = 3) -> bytes:
    port = int(stack.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def test_oversize_body_is_413(stack):
    reply = httpx.post(f"{stack.url}/v1/chat/completions", content=b"x" * 2000)
    assert reply.status_code == 413


def test_too_many_headers_is_431(stack):
    headers = {f"x-h{n}": "v" for n in range(30)}
    reply = httpx.post(f"{stack.url}/v1/chat/completions", content=b"{}", headers=headers)
    assert reply.status_code == 431


async def test_a_slow_client_gets_408_and_is_let_go(autojump_clock):
    limits = Limits(max_body_bytes=1000, max_headers=20, read_timeout=0.5, idle_timeout=1)
    async with open_stack(tables, {"sk-srv": "srv"}, limits) as stack:
        port = int(stack.url.rsplit(":", 1)[1])
        client = await trio.open_tcp_stream("127.0.0.1", port)
        started = trio.current_time()
        await client.send_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{"
        )
        answer = b""
        while chunk := await client.receive_some(65536):  # until the server lets go
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        # read_timeout, late by at most one tick of the server's timer (read_timeout / 8)
        assert 0.5 <= trio.current_time() - started <= 0.5 + 0.5 / 8
        await client.aclose()


async def test_an_idle_connection_is_closed_after_idle_timeout_without_an_answer(autojump_clock):
    limits = Limits(read_timeout=0.5, idle_timeout=1)
    async with open_stack(tables, {"sk-srv": "srv"}, limits) as stack:
        port = int(stack.url.rsplit(":", 1)[1])
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 59\r\n\r\n"
            b'{"model":"m","messages":[{"role":"user","content":"hi"}]}\r\n'
        )
        answered = b""
        while b"\r\n\r\n" not in answered:
            answered += await client.receive_some(65536)
        assert answered.startswith(b"HTTP/1.1 200")
        done = trio.current_time()
        rest = b""
        with trio.fail_after(30):  # virtual seconds: a server that never closes fails here
            while chunk := await client.receive_some(65536):  # the body, then the close
                rest += chunk
        assert b"HTTP/1.1" not in rest  # closed without a 408: no request was under way
        assert 1 <= trio.current_time() - done <= 1 + 0.5 / 8
        await client.aclose()


@pytest.mark.parametrize(
    "garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n"]
)
def test_malformed_requests_get_400_and_the_server_lives_on(stack, garbage):
    assert raw(stack, garbage).startswith(b"HTTP/1.1 400")
    reply = httpx.post(f"{stack.url}/v1/chat/completions", json=ASK)
    assert reply.status_code == 200


def test_keep_alive_serves_several_requests_on_one_connection(stack):
    with httpx.Client(base_url=stack.url) as client:
        for _ in range(3):
            reply = client.post("/v1/chat/completions", json=ASK)
            assert reply.status_code == 200
        assert reply.extensions["network_stream"] is not None
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    head = f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n\r\n"
    request = head.encode() + body
    answer = raw(stack, request + request, wait=1.5)
    assert answer.count(b"HTTP/1.1 200") == 2  # pipelined, answered in order
