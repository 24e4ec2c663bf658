"""Stream token counts end to end: byok asks every OpenAI-style stream for its
usage, counts it in the key table and the metrics, and relays what the client
asked for.  The official openai SDK streams through byok and, to compare,
straight to the simulated upstream; the upstream is offered only content
codings byok reads.  Virtual time (MockClock): the simulator's pieces of an
event arrive in separate reads."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from ..stack import LiveStack, open_stack

SECRET = "sk-su-ALPHA-0001"
CLAUDE_SECRET = "sk-ant-su-CLAUDE-0002"
CLIENT_KEY = "cli-su-CLIENT-0003"
ADMIN = {"authorization": "Bearer adm-su-ADMIN-0004"}
MESSAGES: Any = [{"role": "user", "content": "hi"}]
WORDS = 5  # the simulator's answer: 5 words, 5 prompt tokens

# The async openai SDK stops reading its SSE generators (and its HTTP
# client's under them) at [DONE] and leaves them to the garbage collector,
# which trio reports: the client's doing, not byok's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator '(openai|httpx2|httpcore2)\\.:ResourceWarning"
)


def tables(upstream: str) -> dict[str, Any]:
    return {
        "server": {"client_keys": [CLIENT_KEY], "admin_keys": [ADMIN["authorization"][7:]]},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": SECRET, "label": "alpha"}],
            },
            "simant": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [{"key": CLAUDE_SECRET, "label": "claude"}],
            },
        },
        "models": {
            "m": {"targets": ["sim/up"]},  # renamed upstream: the body is rewritten whole
            "same": {"targets": ["sim/same"]},  # the same name: stream_options is spliced in
            "claude": {"targets": ["simant/up-claude"]},
        },
    }


def stack() -> Any:
    return open_stack(tables, {SECRET: "alpha", CLAUDE_SECRET: "claude"})


def through(stack: LiveStack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def direct(stack: LiveStack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.upstream_url}/v1", api_key=SECRET, max_retries=0)


async def chat(client: openai.AsyncOpenAI, model: str, **extra: Any) -> list[Any]:
    async with client:
        stream = await client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, **extra
        )
        return [chunk async for chunk in stream]


def parsed(chunks: list[Any]) -> list[dict[str, Any]]:
    """What the SDK made of each chunk, less what differs from answer to answer."""
    return [chunk.model_dump(exclude={"id", "created"}) for chunk in chunks]


async def tokens(stack: LiveStack, label: str = "alpha") -> dict[str, int]:
    """A key's tokens in the key table: over all its targets."""
    reply = await stack.client.get("/admin/keys", headers=ADMIN)
    for model in reply.json()["models"]:
        for target in model["targets"]:
            for key in target["keys"]:
                if key["label"] == label:
                    found: dict[str, int] = key["key_tokens"]
                    return found
    raise AssertionError(f"no key {label} in /admin/keys")


async def metric_tokens(stack: LiveStack) -> dict[str, float]:
    """byok_tokens_total summed by kind, whatever its other labels."""
    text = (await stack.client.get("/metrics", headers=ADMIN)).text
    totals = {"input": 0.0, "output": 0.0}
    for line in text.splitlines():
        if line.startswith("byok_tokens_total{"):
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            totals[kind] += float(line.rsplit(" ", 1)[1])
    return totals


@pytest.mark.parametrize(("model", "upstream"), [("m", "up"), ("same", "same")])
async def test_the_sdk_gets_the_upstreams_chunks_and_byok_counts_the_tokens(
    autojump_clock: Any, model: str, upstream: str
) -> None:
    async with stack() as running:
        relayed = await chat(through(running), model)
        asked = running.simulator.seen[-1].body
        plain = await chat(direct(running), upstream)
        assert parsed(relayed) == parsed(plain)  # as if byok were not there
        assert all(chunk.choices and chunk.usage is None for chunk in relayed)
        assert "".join(c.choices[0].delta.content or "" for c in relayed).startswith("Hello")
        assert asked["stream_options"] == {"include_usage": True}  # byok asked upstream
        assert "stream_options" not in running.simulator.seen[-1].body  # the SDK did not
        assert await tokens(running) == {"input": 5, "output": WORDS}
        assert await metric_tokens(running) == {"input": 5, "output": WORDS}


async def test_a_client_that_asks_for_usage_gets_it_once(autojump_clock: Any) -> None:
    async with stack() as running:
        options = {"include_usage": True}
        relayed = await chat(through(running), "same", stream_options=options)
        plain = await chat(direct(running), "same", stream_options=options)
        assert parsed(relayed) == parsed(plain)
        usage = [chunk for chunk in relayed if chunk.usage is not None]
        assert len(usage) == 1
        assert usage[0].choices == []
        assert (usage[0].usage.prompt_tokens, usage[0].usage.completion_tokens) == (5, WORDS)
        assert await tokens(running) == {"input": 5, "output": WORDS}  # counted once


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        ({"include_obfuscation": False}, {"include_obfuscation": False, "include_usage": True}),
        ({"include_usage": False}, {"include_usage": True}),
        (None, {"include_usage": True}),
    ],
    ids=["other option", "usage refused", "null"],
)
async def test_the_clients_other_stream_options_are_kept(
    autojump_clock: Any, options: dict[str, Any] | None, sent: dict[str, Any]
) -> None:
    body = {"model": "same", "messages": MESSAGES, "stream": True, "stream_options": options}
    async with stack() as running:
        client = through(running)
        async with client:
            # the SDK drops a None stream_options: the raw body says null itself
            answer = await client.post(
                "/chat/completions",
                cast_to=openai.types.chat.ChatCompletionChunk,
                body=body,
                stream=True,
                stream_cls=openai.AsyncStream[openai.types.chat.ChatCompletionChunk],
            )
            relayed = [chunk async for chunk in answer]
        assert running.simulator.seen[-1].body["stream_options"] == sent
        assert relayed
        assert all(chunk.choices for chunk in relayed)  # no usage chunk
        assert await tokens(running) == {"input": 5, "output": WORDS}


@pytest.mark.parametrize("options", [None, {"include_usage": True}], ids=["unasked", "asked"])
async def test_a_usage_chunk_split_across_reads(
    autojump_clock: Any, options: dict[str, Any] | None
) -> None:
    extra = {} if options is None else {"stream_options": options}
    async with stack() as running:
        # every event in pieces of 7 bytes, each its own read
        running.simulator.set(SECRET, piece=7, chunk_delay=0.01)
        relayed = await chat(through(running), "m", **extra)
        plain = await chat(direct(running), "up", **extra)
        assert parsed(relayed) == parsed(plain)
        assert sum(chunk.usage is not None for chunk in relayed) == (options is not None)
        assert await tokens(running) == {"input": 5, "output": WORDS}


async def test_the_usage_event_never_reaches_a_raw_client(autojump_clock: Any) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    upstream = {"authorization": f"Bearer {SECRET}"}
    async with stack() as running:
        running.simulator.set(SECRET, piece=3, chunk_delay=0.01)
        async with running.client.stream(
            "POST", "/v1/chat/completions", json=body, headers=headers
        ) as reply:
            reads = [piece async for piece in reply.aiter_raw()]
        async with running.client.stream(
            "POST", f"{running.upstream_url}/v1/chat/completions", json=body, headers=upstream
        ) as reply:
            pieces = [piece async for piece in reply.aiter_raw()]
        text = b"".join(reads)
        events = [event for event in text.split(b"\n\n") if event]
        assert events[-1] == b"data: [DONE]"
        assert b'"choices":[]' not in text
        assert b'"prompt_tokens"' not in text
        assert len(events) == WORDS + 2  # the words, the finish, [DONE]
        assert len(pieces) > 3 * len(events)  # the upstream sends pieces...
        assert all(read.endswith(b"\n\n") for read in reads)  # ...relayed as whole events
        assert await tokens(running) == {"input": 5, "output": WORDS}


async def test_completions_streams_are_counted_too(autojump_clock: Any) -> None:
    async with stack() as running:
        client = through(running)
        async with client:
            stream = await client.completions.create(model="m", prompt="hi", stream=True)
            relayed = [chunk async for chunk in stream]
        assert running.simulator.seen[-1].body["stream_options"] == {"include_usage": True}
        assert all(chunk.choices and chunk.usage is None for chunk in relayed)
        assert "".join(chunk.choices[0].text for chunk in relayed).startswith("Hello")
        assert await tokens(running) == {"input": 5, "output": WORDS}


async def test_a_stream_translated_from_anthropic_is_counted(autojump_clock: Any) -> None:
    # an OpenAI client on an Anthropic target: Messages natively, whose
    # stream tells its usage unasked, and the client gets no usage chunk
    async with stack() as running:
        relayed = await chat(through(running), "claude")
        seen = running.simulator.seen[-1]
        assert (seen.key, seen.path) == (CLAUDE_SECRET, "/v1/messages")
        assert "stream_options" not in seen.body
        assert all(chunk.choices and chunk.usage is None for chunk in relayed)
        assert await tokens(running, "claude") == {"input": 5, "output": WORDS}


@pytest.mark.parametrize(
    ("path", "model", "stream"),
    [
        ("/v1/chat/completions", "m", False),  # OpenAI refuses stream_options without a stream
        ("/v1/responses", "m", True),  # the responses API streams its usage unasked
        ("/v1/messages", "claude", True),  # so do Anthropic's messages
    ],
)
async def test_other_requests_go_up_unchanged(
    autojump_clock: Any, path: str, model: str, stream: bool
) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 9, "stream": stream}
    body["input" if path == "/v1/responses" else "messages"] = MESSAGES
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with stack() as running:
        async with running.client.stream("POST", path, json=body, headers=headers) as reply:
            await reply.aread()
        assert reply.status_code == 200
        seen = running.simulator.seen[-1].body
        assert seen == {**body, "model": seen["model"]}  # no stream_options


# ---- content codings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accepts", "offered", "coding"),
    [
        ("br, zstd", "identity", None),
        ("br;q=1.0, gzip;q=0.5, zstd", "gzip;q=0.5", "gzip"),
        ("gzip, deflate, br, zstd", "gzip, deflate", "gzip"),
        ("*", "identity", None),
    ],
)
async def test_an_answer_comes_in_a_coding_byok_reads(
    autojump_clock: Any, accepts: str, offered: str, coding: str | None
) -> None:
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "accept-encoding": accepts}
    body = {"model": "m", "messages": MESSAGES}
    async with stack() as running:
        running.simulator.set(SECRET, gzip=True)  # gzips when it is offered gzip
        reply = await running.client.post("/v1/chat/completions", json=body, headers=headers)
        assert running.simulator.seen[-1].headers["accept-encoding"] == offered
        assert reply.headers.get("content-encoding") == coding  # one the client accepts
        assert reply.json()["usage"]["completion_tokens"] == WORDS
        assert await tokens(running) == {"input": 5, "output": WORDS}


async def test_a_stream_is_asked_for_in_no_coding(autojump_clock: Any) -> None:
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "accept-encoding": "gzip, br, zstd"}
    body = {"model": "claude", "max_tokens": 9, "stream": True, "messages": MESSAGES}
    async with stack() as running:
        async with running.client.stream(
            "POST", "/v1/messages", json=body, headers=headers
        ) as reply:
            await reply.aread()
        assert "content-encoding" not in reply.headers
        assert running.simulator.seen[-1].headers["accept-encoding"] == "identity"
        assert await tokens(running, "claude") == {"input": 5, "output": WORDS}
