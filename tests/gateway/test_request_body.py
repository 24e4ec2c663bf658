"""Bodies a naive proxy gets wrong, and upstream answers that would leak a
key: through the whole gateway on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from ..stack import LiveStack, open_stack

SECRET = "sk-body-SECRET-0123456789"


def tables(upstream: str) -> dict[str, Any]:
    return {
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": SECRET, "label": "only"}],
            },
        },
        "models": {"public": {"targets": ["sim/upstream-name"]}},
    }


async def post(stack: LiveStack, body: bytes) -> Any:
    return await stack.client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    "body",
    [
        # an escaped field name
        b'{"mod\\u0065l": "public", "messages": [{"role": "user", "content": "hi"}]}',
        # an escaped value
        b'{"model": "publ\\u0069c", "messages": [{"role": "user", "content": "hi"}]}',
        # the last one wins
        b'{"model": "other", "messages": [{"role": "user", "content": "hi"}], "model": "public"}',
        b'{"messages": [{"role": "user", "content": "\\"model\\": \\"x\\""}], "model": "public"}',
    ],
)
async def test_one_parser_routes_and_rewrites(body: bytes, autojump_clock: Any) -> None:
    async with open_stack(tables, {SECRET: "only"}) as stack:
        reply = await post(stack, body)
        assert reply.status_code == 200, reply.text
        assert [seen.model for seen in stack.simulator.seen] == ["upstream-name"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"model": 7, "messages": []}', "$.model"),
        (b'{"messages": []}', "model"),
        (b'{"model": "public", "stream": "yes"}', "$.stream"),
        (b"[1, 2]", "object"),
        (b"{not json", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "request body"),
    ],
)
async def test_bad_bodies_are_400_never_500(body: bytes, says: str, autojump_clock: Any) -> None:
    async with open_stack(tables, {SECRET: "only"}) as stack:
        reply = await post(stack, body)
        assert reply.status_code == 400
        assert says in reply.json()["error"]["message"]
        assert stack.simulator.seen == []


async def test_an_upstream_that_echoes_the_key_never_shows_it_to_the_client(
    autojump_clock: Any,
) -> None:
    async with open_stack(tables, {SECRET: "only"}) as stack:
        stack.simulator.set(SECRET, mode="echo_400")
        reply = await post(stack, b'{"model": "public", "messages": []}')
        assert reply.status_code == 400  # the client's own fault, relayed
        assert SECRET not in reply.text
        assert SECRET not in str(reply.headers)
        assert "bad request sent with" in reply.json()["error"]["message"]
        assert "[redacted]" in reply.headers["x-debug-auth"]


async def test_a_compressed_error_is_inflated_before_it_is_checked(autojump_clock: Any) -> None:
    async with open_stack(tables, {SECRET: "only"}) as stack:
        stack.simulator.set(SECRET, mode="echo_400", gzip=True)
        reply = await stack.client.post(
            "/v1/chat/completions",
            content=b'{"model": "public", "messages": []}',
            headers={"content-type": "application/json", "accept-encoding": "gzip"},
        )
        assert reply.status_code == 400
        assert "content-encoding" not in reply.headers  # inflated, checked, sent plain
        assert "bad request sent with Bearer [redacted]" in reply.json()["error"]["message"]
        assert SECRET not in reply.text
