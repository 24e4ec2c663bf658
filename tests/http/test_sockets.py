"""FastSocketStream: trio's stream contract over a socket called directly."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from byok.http.sockets import FastSocketStream


def pair() -> tuple[FastSocketStream, socket.socket]:
    """A FastSocketStream and the plain (blocking) socket at its other end, on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    return FastSocketStream(ours), theirs


async def test_bytes_cross_both_ways() -> None:
    stream, peer = pair()
    with peer:
        await stream.send_all(b"hello")
        assert peer.recv(100) == b"hello"
        peer.sendall(b"world")
        assert await stream.receive_some(100) == b"world"
        peer.shutdown(socket.SHUT_WR)
        assert await stream.receive_some(100) == b""  # the peer's end
        await stream.aclose()


async def test_a_receive_waits_until_data_comes() -> None:
    stream, peer = pair()
    got: list[bytes] = []
    with peer:
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await stream.receive_some(100))

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # waiting, not spinning
            peer.sendall(b"late")
        assert got == [b"late"]
        await stream.aclose()


async def test_a_send_larger_than_the_buffers_waits_and_arrives_whole() -> None:
    stream, peer = pair()
    payload = bytes(range(256)) * 40_000  # 10 MB: far over the socket buffers
    received = bytearray()
    with peer:
        peer.setblocking(False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send_all, payload)
            while len(received) < len(payload):
                await trio.lowlevel.wait_readable(peer)
                received += peer.recv(1 << 20)
        assert received == payload
        await stream.aclose()


async def test_two_receivers_at_once_is_an_error() -> None:
    stream, peer = pair()
    with peer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.receive_some, 10)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await stream.receive_some(10)
            peer.sendall(b"x")
        await stream.aclose()


async def test_a_reset_connection_is_broken_and_a_closed_one_closed() -> None:
    stream, peer = pair()
    # SO_LINGER 0: closing sends a reset instead of an orderly end
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.close()
    with pytest.raises(trio.BrokenResourceError):  # loopback: the reset is here already
        await stream.receive_some(10)
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some(10)
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"x")
    await stream.aclose()  # twice is fine


async def test_closing_wakes_a_waiting_receiver() -> None:
    stream, peer = pair()
    with peer:
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException] = []

            async def receive() -> None:
                try:
                    await stream.receive_some(10)
                except trio.ClosedResourceError as error:
                    outcome.append(error)

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            await stream.aclose()
        assert len(outcome) == 1


async def test_is_readable_says_when_the_peer_spoke_or_left() -> None:
    stream, peer = pair()
    with peer:
        assert not stream.is_readable()
        peer.sendall(b"?")
        await trio.sleep(0)
        with trio.fail_after(5):
            while not stream.is_readable():
                await trio.sleep(0.01)
        assert await stream.receive_some(10) == b"?"
        peer.close()
        with trio.fail_after(5):
            while not stream.is_readable():
                await trio.sleep(0.01)
    await stream.aclose()


async def test_send_eof_ends_our_side_only() -> None:
    stream, peer = pair()
    with peer:
        await stream.send_eof()
        assert peer.recv(10) == b""
        peer.sendall(b"still")
        assert await stream.receive_some(10) == b"still"
        await stream.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_eof()


async def test_take_keeps_the_connection_and_leaves_trios_stream_empty() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        trio_stream = await trio.open_tcp_stream(*listener.getsockname())
        peer, _ = listener.accept()
    with peer:
        stream = FastSocketStream.take(trio_stream)
        assert trio_stream.socket.fileno() == -1  # detached: its close cannot close ours
        await stream.send_all(b"moved")
        assert peer.recv(10) == b"moved"
        # trio set TCP_NODELAY on its stream; the option lives on the socket
        assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await stream.aclose()


async def test_receive_next_waits_first_and_takes_what_is_there_then() -> None:
    stream, peer = pair()
    with peer:
        peer.sendall(b"already here")  # waiting first still finds it
        assert await stream.receive_next(100) == b"already here"
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                got.append(await stream.receive_next(100))

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            with pytest.raises(trio.BusyResourceError):
                await stream.receive_some(10)
            peer.sendall(b"later")
        assert got == [b"later"]
        await stream.aclose()
