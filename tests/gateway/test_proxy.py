"""The proxy end to end on loopback: the official SDKs and raw HTTP as
clients, the simulated upstream behind, real sockets in between."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
import trio

from ..stack import Stack, open_stack

KEYS = {"sk-sim-alpha": "alpha", "sk-sim-bravo": "bravo", "sk-sim-charlie": "charlie"}
ANTHROPIC_KEYS = {"sk-ant-sim-one": "one", "sk-ant-sim-two": "two"}
CLIENT_KEY = "byok-client-secret"


def tables(upstream: str, **model_options) -> dict:
    return {
        "server": {"client_keys": [CLIENT_KEY], "cooldown": 30},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": label} for k, label in KEYS.items()],
            },
            "simant": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [{"key": k, "label": label} for k, label in ANTHROPIC_KEYS.items()],
            },
        },
        "models": {
            "gpt-test": {
                "targets": ["sim/sim-gpt"],
                "strategy": "round_robin",
                "fallbacks": ["claude-test"],
                "attempts": 6,  # enough for all five keys of the model and its fallback
                **model_options,
            },
            "claude-test": {"targets": ["simant/sim-claude"], "strategy": "round_robin"},
            "solo": {"targets": ["sim/sim-solo"], "strategy": "priority", "attempts": 2},
        },
    }


@pytest.fixture
def stack():
    with Stack(tables) as running:
        for secret, name in {**KEYS, **ANTHROPIC_KEYS}.items():
            running.simulator.add_key(secret, name)
        yield running


@pytest.fixture
def oai(stack):
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=CLIENT_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def claude(stack):
    with anthropic.Anthropic(base_url=stack.url, api_key=CLIENT_KEY, max_retries=0) as client:
        yield client


MESSAGES = [{"role": "user", "content": "hi"}]


def test_openai_sdk_chat_through_the_proxy(stack, oai):
    reply = oai.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    completion = reply.parse()
    assert completion.choices[0].message.content.startswith("Hello from alpha")
    assert reply.headers["x-byok-key"] == "alpha"
    assert reply.headers["x-byok-attempts"] == "1"
    assert float(reply.headers["x-byok-overhead-ms"]) >= 0
    seen = stack.simulator.seen[-1]
    assert (seen.key, seen.model, seen.path) == ("sk-sim-alpha", "sim-gpt", "/v1/chat/completions")


def test_keys_rotate(stack, oai):
    client = oai
    served = [
        client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES
        ).headers["x-byok-key"]
        for _ in range(6)
    ]
    assert served == ["alpha", "bravo", "charlie"] * 2


def test_openai_sdk_streaming(stack, oai):
    stream = oai.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.startswith("Hello from alpha")


def test_anthropic_sdk_messages_and_stream(stack, claude):
    client = claude
    message = client.messages.create(model="claude-test", max_tokens=50, messages=MESSAGES)
    assert message.content[0].text.startswith("Hello from one")
    with client.messages.stream(model="claude-test", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello from two")
    seen = stack.simulator.seen[-1]
    assert seen.model == "sim-claude"
    assert seen.stream


def test_rate_limited_key_cools_and_traffic_moves(stack, oai):
    stack.simulator.set("sk-sim-alpha", mode="429", retry_after=20)
    client = oai
    reply = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    assert reply.headers["x-byok-key"] == "bravo"
    assert reply.headers["x-byok-attempts"] == "2"
    selector = stack.selector("sim", "sim-gpt")
    assert selector.state("alpha") == "cooldown"
    assert 19 < selector.snapshot()[0]["cooldown_remaining"] <= 20
    served = {
        client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES
        ).headers["x-byok-key"]
        for _ in range(4)
    }
    assert served == {"bravo", "charlie"}
    assert stack.simulator.requests_for("sk-sim-alpha") == 1


def test_revoked_key_is_blocked(stack, oai):
    stack.simulator.set("sk-sim-alpha", mode="401")
    client = oai
    for _ in range(4):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert stack.selector("sim", "sim-gpt").state("alpha") == "blocked"
    assert stack.simulator.requests_for("sk-sim-alpha") == 1


def test_every_key_cooling_gives_429_with_retry_after(stack, oai):
    for secret in KEYS:
        stack.simulator.set(secret, mode="429", retry_after=12)
    for secret in ANTHROPIC_KEYS:
        stack.simulator.set(secret, mode="429", retry_after=12)
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="gpt-test", messages=MESSAGES)
    response = caught.value.response
    # a wait the SDKs would honour on their own (max_retries=0 here)
    assert response.headers["x-should-retry"] == "true"
    assert 11 <= int(response.headers["retry-after"]) <= 12
    # and now nothing is tried at all until a key returns
    before = len(stack.simulator.seen)
    reply = httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "gpt-test", "messages": MESSAGES},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert reply.status_code == 429
    assert "is rate-limited; the soonest is back in" in reply.json()["error"]["message"]
    assert len(stack.simulator.seen) == before


def test_fallback_model_serves_when_every_key_fails(stack, oai, claude):
    for secret in KEYS:
        stack.simulator.set(secret, mode="500")
    reply = oai.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    assert reply.headers["x-byok-key"] == "one"  # the claude-test fallback, translated
    assert (stack.simulator.seen[-1].model, stack.simulator.seen[-1].path) == (
        "sim-claude",
        "/v1/messages",
    )


def test_upstream_client_errors_pass_through_without_penalty(stack):
    reply = httpx.post(
        f"{stack.url}/v1/chat/completions",
        content=b'{"model": "gpt-test", "messages": "not json at upstream?"',
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert reply.status_code == 400  # our own JSON check: truncated body
    assert reply.json()["error"]["type"] == "invalid_request_error"


def test_all_blocked_gives_503(stack, oai):
    selector = stack.selector("sim", "sim-solo")
    for label in KEYS.values():
        selector.block(label)
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert "blocked or disabled" in caught.value.message


def test_mid_stream_drop_ends_with_an_error_event(stack):
    stack.simulator.set("sk-sim-alpha", mode="drop", drop_after=2)
    with httpx.stream(
        "POST",
        f"{stack.url}/v1/chat/completions",
        json={"model": "solo", "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
    ) as response:
        assert response.status_code == 200
        body = response.read().decode()
    events = [e for e in body.split("\n\n") if e.strip()]
    assert len(events) == 3  # two relayed chunks, then our error event
    assert '"error"' in events[-1]
    assert "upstream stream failed" in events[-1]
    assert "[DONE]" not in body


async def test_client_disconnect_cancels_the_upstream_request(autojump_clock):
    async with open_stack(tables, {**KEYS, **ANTHROPIC_KEYS}) as stack:
        stack.simulator.set("sk-sim-alpha", mode="hang")
        with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.5 s
            await stack.client.post(
                "/v1/chat/completions",
                json={"model": "solo", "messages": MESSAGES},
                headers={"authorization": f"Bearer {CLIENT_KEY}"},
                timeout=0.5,
            )
        await trio.sleep(0.01)  # the cancel travels client -> proxy -> upstream
        assert stack.simulator.cancelled == 1
        assert stack.view("sim", "sim-solo", "alpha")["inflight"] == 0
        assert stack.view("sim", "sim-solo", "alpha")["failures"] == 0  # not the key's fault


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fragment"),
    [
        ("/v1/chat/completions", b"{not json", {}, 400, "not valid JSON"),
        ("/v1/chat/completions", b'{"messages": []}', {}, 400, "model"),
        (
            "/v1/chat/completions",
            b'{"model": "nope", "messages": []}',
            {},
            404,
            "known models: gpt-test",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-test"}',
            {"authorization": "Bearer wrong"},
            401,
            "client key",
        ),
        ("/v1/messages", b'{"model": "claude-test"}', {"x-api-key": "wrong"}, 401, "client key"),
        ("/v1/nothing", b"{}", {}, 404, "no endpoint"),
    ],
)
def test_bad_input_gets_a_clear_error_in_the_dialect(stack, path, body, headers, status, fragment):
    sent = {"authorization": f"Bearer {CLIENT_KEY}", **headers}
    reply = httpx.post(f"{stack.url}{path}", content=body, headers=sent)
    assert reply.status_code == status
    data = reply.json()
    if path.startswith("/v1/messages"):
        assert data["type"] == "error"
        assert fragment in data["error"]["message"]
    else:
        assert fragment in data["error"]["message"]
    assert CLIENT_KEY not in reply.text
    assert "sk-sim" not in reply.text


def test_models_lists_the_public_names(stack, oai, claude):
    names = [m.id for m in oai.models.list()]
    assert names == ["gpt-test", "claude-test", "solo"]
    assert [m.id for m in claude.models.list()] == names  # in Anthropic's shape
    auth = {"authorization": f"Bearer {CLIENT_KEY}"}
    refused = httpx.post(f"{stack.url}/v1/models", headers=auth)
    assert refused.status_code == 405
    assert refused.json()["error"]["message"] == "/v1/models takes GET, not POST"
    assert httpx.get(f"{stack.url}/v1/models").status_code == 401  # no client key


def test_every_openai_endpoint_through_the_sdk(stack, oai):
    completion = oai.completions.create(model="gpt-test", prompt="hi")
    assert completion.choices[0].text.startswith("Hello from")
    embedding = oai.embeddings.create(model="gpt-test", input="hi")
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]
    response = oai.responses.create(model="gpt-test", input="hi")
    assert response.output_text.startswith("Hello from")
    paths = [s.path for s in stack.simulator.seen[-3:]]
    assert paths == ["/v1/completions", "/v1/embeddings", "/v1/responses"]
    assert {s.model for s in stack.simulator.seen[-3:]} == {"sim-gpt"}


def test_anthropic_count_tokens_and_529_overload(stack, claude):
    counted = claude.messages.count_tokens(model="claude-test", messages=MESSAGES)
    assert counted.input_tokens == 1  # the simulator's estimate: "hi" is 2 characters / 4
    stack.simulator.set("sk-ant-sim-one", mode="529")
    for _ in range(2):
        message = claude.messages.create(model="claude-test", max_tokens=20, messages=MESSAGES)
        assert message.content[0].text.startswith("Hello from two")
    selector = stack.selector("simant", "sim-claude")
    assert selector.snapshot()[0]["failures"] >= 1  # 529 counts as an error, not a client fault


def test_anthropic_stream_drop_ends_with_an_error_event(stack, claude):
    stack.simulator.set("sk-ant-sim-one", mode="drop", drop_after=3)
    stack.simulator.set("sk-ant-sim-two", mode="drop", drop_after=3)
    stream = claude.messages.stream(model="claude-test", max_tokens=20, messages=MESSAGES)
    with pytest.raises(anthropic.APIStatusError) as caught, stream as events:
        for _ in events.text_stream:
            pass
    assert "upstream stream failed" in str(caught.value)
