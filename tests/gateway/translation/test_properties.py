"""Properties of the translation, over generated requests, answers and streams.

(a) Whatever a client may send that translates, the target gets a request
    its API takes: it decodes strictly as the target's shape, and every tool
    call is answered where the target's API wants it (OpenAI: by the tool
    messages right after the assistant message; Anthropic: by tool_result
    blocks first in the next user turn).
(b) Within the lossless subset, a round trip is the identity: an Anthropic
    request through OpenAI and back is the request the client sent, and an
    answer likewise, both ways.  The subset is defined in the strategies
    below (``lossless=True``), each exclusion with its reason.
(c) A stream, cut anywhere, assembles to the message that the whole-answer
    translation gives for the same answer.
"""

from __future__ import annotations

import itertools
import string
from typing import Any

import msgspec
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from byok.cli.simulator import validation as simulated_api
from byok.gateway.translation import anthropic_shapes as A
from byok.gateway.translation import openai_shapes as O
from byok.gateway.translation.chat_via_messages import Answering, chat_answer
from byok.gateway.translation.common import Untranslatable, json_text
from byok.gateway.translation.messages_via_chat import message_answer

from .wire import (
    COMPATIBLE,
    GPT,
    O4,
    Json,
    anthropic_events,
    anthropic_stream,
    assemble_completion,
    assemble_message,
    chat_to_messages,
    chunk,
    messages_to_chat,
    openai_chunks,
    openai_stream,
    sdk_completion,
    sdk_message,
)

PROPERTY = settings(max_examples=200, deadline=None)
Draw = Any  # hypothesis' draw function

texts = st.text(max_size=12)
names = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
base64_data = st.text(string.ascii_letters + string.digits + "+/", max_size=16)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)
unit_floats = st.floats(0, 1)
CACHE = {"type": "ephemeral"}


def maybe(draw: Draw, into: Json, key: str, values: st.SearchStrategy[Any]) -> None:
    """Sets `key` to a drawn value, or leaves it absent."""
    if draw(st.booleans()):
        into[key] = draw(values)


def split(draw: Draw, text: str) -> list[str]:
    """`text` cut at drawn places into non-empty pieces."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=4))))
    bounds = [0, *(c for c in cuts if c < len(text)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def unique_names(draw: Draw, low: int, high: int) -> list[str]:
    found: list[str] = draw(st.lists(names, min_size=low, max_size=high, unique=True))
    return found


# ---- Anthropic requests ---------------------------------------------------------------
#
# ``lossless=True`` keeps to what a round trip through OpenAI gives back as it
# was; each exclusion, and why it is lossy:
# - no hints (cache_control, citations, service_tier, a document's context, a
#   tool result's is_error, a tool's type "custom" or eager_input_streaming):
#   dropped, OpenAI has no field for them;
# - no thinking, and no thinking blocks in history: reasoning_effort keeps only
#   a bucket of the budget, and no Chat API takes an earlier answer's reasoning;
# - no top_k on an OpenAI target (dropped there; an OpenAI-compatible one keeps it);
# - no text documents (they become text parts, which come back as text blocks),
#   and a PDF's title is a string or absent (null comes back absent);
# - a tool result has content, not an empty list (both come back as "");
# - tool_choice only beside tools (OpenAI takes none without: it is dropped);
# - roles alternate, and a user turn's tool results come first (tool messages
#   go before the turn's other parts); an assistant turn's text comes before its
#   tool calls (OpenAI keeps them apart); a user turn's content is a string only
#   when it answers no tool call;
# - tools are absent or not empty (OpenAI's tools: [] reads as none), and
#   disable_parallel_tool_use only beside tools (OpenAI refuses
#   parallel_tool_calls without tools, so it is not sent);
# - metadata only with a user_id string; max_tokens always (Anthropic's requires it).


@st.composite
def anthropic_text(draw: Draw, lossless: bool) -> Json:
    block = {"type": "text", "text": draw(texts)}
    if not lossless:
        maybe(draw, block, "cache_control", st.just(CACHE))
    return block


@st.composite
def anthropic_image(draw: Draw, lossless: bool) -> Json:
    if draw(st.booleans()):
        media = draw(st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]))
        source = {"type": "base64", "media_type": media, "data": draw(base64_data)}
    else:
        source = {"type": "url", "url": "https://img.example/" + draw(names)}
    block = {"type": "image", "source": source}
    if not lossless:
        maybe(draw, block, "cache_control", st.just(CACHE))
    return block


@st.composite
def anthropic_document(draw: Draw, lossless: bool) -> Json:
    if lossless or draw(st.booleans()):
        source = {"type": "base64", "media_type": "application/pdf", "data": draw(base64_data)}
    else:
        source = {"type": "text", "media_type": "text/plain", "data": draw(texts)}
    block: Json = {"type": "document", "source": source}
    maybe(draw, block, "title", texts if lossless else st.none() | texts)
    if not lossless:
        maybe(draw, block, "context", texts)
        maybe(draw, block, "citations", st.just({"enabled": True}))
        maybe(draw, block, "cache_control", st.just(CACHE))
    return block


@st.composite
def anthropic_tool_result(draw: Draw, tool_use_id: str, lossless: bool) -> Json:
    block: Json = {"type": "tool_result", "tool_use_id": tool_use_id}
    # an empty list goes as "" (OpenAI takes no empty array), which comes back so
    content = texts | st.lists(anthropic_text(lossless), min_size=int(lossless), max_size=3)
    if lossless:
        block["content"] = draw(content)
    else:
        maybe(draw, block, "content", content)
        maybe(draw, block, "is_error", st.booleans())
        maybe(draw, block, "cache_control", st.just(CACHE))
    return block


@st.composite
def anthropic_user_turn(draw: Draw, answers: list[str], lossless: bool) -> Json:
    """A user turn, its tool results (for the calls of the turn before) first."""
    results = [
        draw(anthropic_tool_result(tool_use_id, lossless))
        for tool_use_id in draw(st.permutations(answers))
    ]
    if not results and draw(st.booleans()):
        return {"role": "user", "content": draw(texts)}
    part = anthropic_text(lossless) | anthropic_image(lossless) | anthropic_document(lossless)
    parts = draw(st.lists(part, min_size=0 if results else 1, max_size=3))
    return {"role": "user", "content": results + parts}


@st.composite
def anthropic_assistant_turn(draw: Draw, first_id: int, lossless: bool) -> Json:
    """An assistant turn; its tool_use ids count from `first_id`."""
    uses = [
        {
            "type": "tool_use",
            "id": f"toolu_{first_id + n:02d}",
            "name": draw(names),
            "input": draw(json_objects),
        }
        for n in range(draw(st.integers(0, 3)))
    ]
    if not uses and draw(st.booleans()):
        return {"role": "assistant", "content": draw(texts)}
    blocks = draw(st.lists(anthropic_text(lossless), max_size=2))
    if lossless:
        return {"role": "assistant", "content": blocks + uses}
    for use in uses:
        maybe(draw, use, "cache_control", st.just(CACHE))
    thoughts = draw(
        st.lists(
            st.fixed_dictionaries(
                {"type": st.just("thinking"), "thinking": texts, "signature": base64_data}
            )
            | st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": base64_data}),
            max_size=2,
        )
    )
    return {"role": "assistant", "content": thoughts + draw(st.permutations(blocks + uses))}


@st.composite
def anthropic_conversation(draw: Draw, lossless: bool) -> list[Json]:
    """User and assistant turns in turn, each call answered in the next user
    turn; it ends with a user turn, or an assistant turn that calls nothing
    (a prefill)."""
    turns: list[Json] = []
    answers: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        turns.append(draw(anthropic_user_turn(answers, lossless)))
        assistant = draw(anthropic_assistant_turn(len(turns) * 10, lossless))
        turns.append(assistant)
        content = assistant["content"]
        answers = [b["id"] for b in content if isinstance(b, dict) and b["type"] == "tool_use"]
    turns.append(draw(anthropic_user_turn(answers, lossless)))
    if draw(st.booleans()):
        turns.append({"role": "assistant", "content": draw(texts)})
    return turns


@st.composite
def anthropic_tools(draw: Draw, lossless: bool) -> list[Json]:
    tools = []
    for name in unique_names(draw, 1, 3):
        schema = {
            "type": "object",
            "properties": draw(st.dictionaries(names, json_objects, max_size=2)),
        }
        tool: Json = {"name": name, "input_schema": schema}
        maybe(draw, tool, "description", texts)
        if not lossless:
            maybe(draw, tool, "type", st.sampled_from([None, "custom"]))
            maybe(draw, tool, "cache_control", st.just(CACHE))
            maybe(draw, tool, "eager_input_streaming", st.booleans())
        tools.append(tool)
    return tools


@st.composite
def anthropic_requests(draw: Draw, lossless: bool) -> tuple[Any, Json]:
    """(target, request): an Anthropic request that translates for the target."""
    target = draw(st.sampled_from([GPT, COMPATIBLE] if lossless else [GPT, O4, COMPATIBLE]))
    request: Json = {
        "model": "claude-sonnet-4-5",
        "messages": draw(anthropic_conversation(lossless)),
        "max_tokens": draw(st.integers(1, 200_000)),
    }
    # an empty list of system blocks goes as none (OpenAI takes no empty array)
    system = st.lists(anthropic_text(lossless), min_size=int(lossless), max_size=3)
    maybe(draw, request, "system", texts | system)
    maybe(draw, request, "stop_sequences", st.lists(texts, max_size=target.max_stop or 8))
    maybe(draw, request, "temperature", unit_floats)
    maybe(draw, request, "top_p", unit_floats)
    if target.top_k or not lossless:
        maybe(draw, request, "top_k", st.integers(0, 500))
    maybe(draw, request, "metadata", st.fixed_dictionaries({"user_id": texts}))
    maybe(draw, request, "stream", st.booleans())
    tools = draw(st.none() | anthropic_tools(lossless))
    if tools is not None:
        request["tools"] = tools
    choice = draw(st.sampled_from(["auto", "any", "none"] + (["tool"] if tools else []) + [None]))
    if lossless and not tools:
        choice = None  # without tools OpenAI takes no tool_choice: it is dropped
    if choice is not None:
        request["tool_choice"] = {"type": choice}
        if choice == "tool":
            request["tool_choice"]["name"] = draw(st.sampled_from([t["name"] for t in tools]))
        if choice != "none" and (tools or not lossless):
            maybe(draw, request["tool_choice"], "disable_parallel_tool_use", st.booleans())
    if not lossless:
        maybe(draw, request, "metadata", st.fixed_dictionaries({"user_id": st.none() | texts}))
        maybe(draw, request, "service_tier", st.sampled_from(["auto", "standard_only"]))
        maybe(
            draw,
            request,
            "thinking",
            st.fixed_dictionaries(
                {"type": st.just("enabled"), "budget_tokens": st.integers(1024, 64_000)}
            )
            | st.just({"type": "disabled"}),
        )
    return target, request


def openai_violations(chat: Json) -> list[str]:
    """What an OpenAI Chat Completions API would refuse in a request's
    conversation and tool fields: a tool call not answered by the tool
    messages right after its assistant message, a tool message answering no
    call, parallel_tool_calls without tools."""
    found = []
    messages = chat["messages"]
    n = 0
    while n < len(messages):
        message = messages[n]
        n += 1
        if message["role"] == "tool":
            found.append(f"tool message {message['tool_call_id']} answers no call")
            continue
        calls = [c["id"] for c in message.get("tool_calls", ())]
        answered = []
        while n < len(messages) and messages[n]["role"] == "tool":
            answered.append(messages[n]["tool_call_id"])
            n += 1
        if sorted(answered) != sorted(calls):
            found.append(f"calls {calls} answered by {answered}")
    if "parallel_tool_calls" in chat and not chat.get("tools"):
        found.append("parallel_tool_calls without tools")
    return found


@PROPERTY
@given(anthropic_requests(lossless=False))
def test_anthropic_requests_become_requests_openai_takes(case: tuple[Any, Json]) -> None:
    target, request = case
    body = messages_to_chat(request, target).body("upstream-model")
    msgspec.json.decode(body, type=O.ChatRequest)  # strictly, as byok reads an OpenAI request
    chat = msgspec.json.decode(body)
    assert openai_violations(chat) == []
    # a request Anthropic's API takes becomes one OpenAI's takes, as the
    # simulator's strict copies of the two APIs judge them
    assume(accepted("/v1/messages", request))
    if target.top_k:  # vLLM and Ollama take it; OpenAI's API, the simulator's model, does not
        chat.pop("top_k", None)
    if target.max_stop is None and "stop" in chat:  # those servers take more than OpenAI's 4
        chat["stop"] = chat["stop"][:4]
    assert accepted("/v1/chat/completions", chat), refusal("/v1/chat/completions", chat)
    assert target.max_tokens_field in chat
    assert len(chat.get("stop", ())) <= (target.max_stop or len(chat.get("stop", ())))
    if "reasoning_effort" in chat:
        assert target.reasoning
    if "top_k" in chat:
        assert target.top_k


@PROPERTY
@given(anthropic_requests(lossless=True))
def test_lossless_anthropic_requests_come_back_as_they_were(case: tuple[Any, Json]) -> None:
    target, request = case
    # of the requests Anthropic's API takes (not those with an empty text, say)
    assume(accepted("/v1/messages", request))
    there = messages_to_chat(request, target)
    back = chat_to_messages(msgspec.json.decode(there.body("upstream-model")))
    assert msgspec.json.decode(back.body(request["model"])) == request
    assert there.dropped.names == []
    assert back.dropped.names == []


# ---- OpenAI requests ------------------------------------------------------------------


@st.composite
def openai_user_message(draw: Draw) -> Json:
    if draw(st.booleans()):
        content: Any = draw(texts)
    else:
        parts = []
        for _ in range(draw(st.integers(1, 3))):  # OpenAI takes no empty array
            kind = draw(st.sampled_from(["text", "data-image", "url-image", "pdf"]))
            if kind == "text":
                parts.append({"type": "text", "text": draw(texts)})
            elif kind == "pdf":
                file = {"file_data": "data:application/pdf;base64," + draw(base64_data)}
                maybe(draw, file, "filename", names)
                parts.append({"type": "file", "file": file})
            else:
                url = (
                    f"data:image/png;base64,{draw(base64_data)}"
                    if kind == "data-image"
                    else f"https://img.example/{draw(names)}.png"
                )
                image = {"url": url}
                maybe(draw, image, "detail", st.sampled_from(["auto", "low", "high"]))
                parts.append({"type": "image_url", "image_url": image})
        content = parts
    message = {"role": "user", "content": content}
    maybe(draw, message, "name", names)
    return message


@st.composite
def openai_assistant_turn(draw: Draw, first_id: int) -> list[Json]:
    """An assistant message, and the tool messages answering its calls."""
    calls = [
        {
            "id": f"call_{first_id + n:02d}",
            "type": "function",
            "function": {"name": draw(names), "arguments": json_text(draw(json_objects))},
        }
        for n in range(draw(st.integers(0, 3)))
    ]
    message: Json = {"role": "assistant"}
    text_parts = st.lists(
        st.fixed_dictionaries({"type": st.just("text"), "text": texts})
        | st.fixed_dictionaries({"type": st.just("refusal"), "refusal": texts}),
        max_size=2,
    )
    if calls:  # OpenAI takes an assistant message without content only if it calls tools
        maybe(draw, message, "content", st.none() | texts | text_parts)
    else:
        message["content"] = draw(texts | text_parts)
    if calls:
        message["tool_calls"] = calls
    maybe(draw, message, "reasoning_content", texts)
    maybe(draw, message, "refusal", st.none())
    results = [
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": draw(
                texts
                | st.lists(
                    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                    min_size=1,
                    max_size=2,
                )
            ),
        }
        for call in draw(st.permutations(calls))
    ]
    return [message, *results]


@st.composite
def openai_requests(draw: Draw) -> Json:
    messages: list[Json] = []
    for _ in range(draw(st.integers(0, 2))):
        system: Json = {
            "role": draw(st.sampled_from(["system", "developer"])),
            "content": draw(
                texts
                | st.lists(
                    st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
                    min_size=1,
                    max_size=2,
                )
            ),
        }
        maybe(draw, system, "name", names)
        messages.append(system)
    called = False
    for n in range(draw(st.integers(0, 3))):
        if not called or draw(st.booleans()):  # after tool messages, a user message may follow
            messages.append(draw(openai_user_message()))
        turn = draw(openai_assistant_turn(n * 10))
        messages += turn
        called = len(turn) > 1
    messages.append(draw(openai_user_message()))
    request: Json = {"model": "gpt-4o", "messages": messages}
    tool_names = [name for name in unique_names(draw, 0, 3) if name != "the_answer"]
    if tool_names:
        tools = []
        for name in tool_names:
            function: Json = {"name": name}
            maybe(draw, function, "description", texts)
            maybe(draw, function, "parameters", st.just({"type": "object", "properties": {}}))
            maybe(draw, function, "strict", st.booleans())
            tools.append({"type": "function", "function": function})
        request["tools"] = tools
    if tool_names:  # OpenAI takes these only beside tools
        choices: list[Any] = ["none", "auto", "required"]
        choices += [{"type": "function", "function": {"name": name}} for name in tool_names]
        maybe(draw, request, "tool_choice", st.sampled_from(choices))
        maybe(draw, request, "parallel_tool_calls", st.booleans())
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "the_answer", "schema": {"type": "object"}},
    }
    maybe(
        draw,
        request,
        "response_format",
        st.sampled_from([{"type": "text"}, {"type": "json_object"}, schema]),
    )
    forced = request.get("tool_choice", "auto") not in ("auto", "none")
    if request.get("response_format", {"type": "text"})["type"] == "text" and not forced:
        # (with a JSON schema or a forced tool, reasoning_effort is refused: Anthropic
        # cannot think while made to call a tool)
        maybe(
            draw,
            request,
            "reasoning_effort",
            st.sampled_from([None, "minimal", "low", "medium", "high"]),
        )
    maybe(
        draw,
        request,
        draw(st.sampled_from(["max_tokens", "max_completion_tokens"])),
        st.integers(1, 100_000),
    )
    maybe(draw, request, "stop", st.none() | texts | st.lists(texts, max_size=4))
    maybe(draw, request, "temperature", st.none() | unit_floats)
    maybe(draw, request, "top_p", unit_floats)
    maybe(draw, request, "top_k", st.integers(0, 100))
    maybe(draw, request, draw(st.sampled_from(["user", "safety_identifier"])), names)
    maybe(draw, request, "stream", st.booleans())
    if request.get("stream"):  # OpenAI takes stream_options with a stream only
        options = st.fixed_dictionaries({"include_usage": st.booleans()})
        maybe(draw, request, "stream_options", options)
    maybe(draw, request, "n", st.just(1))
    for hint in ("seed", "presence_penalty", "frequency_penalty", "store"):
        maybe(draw, request, hint, st.integers(0, 2))
    return request


def anthropic_violations(messages: Json) -> list[str]:
    """What Anthropic's Messages API would refuse in a request's turns and
    thinking: a tool_use not answered by tool_result blocks first in the very
    next user turn; a tool_result answering no call of the turn before;
    thinking beside a tool_choice that forces a tool, or with a budget below
    1,024 or not below max_tokens."""
    found = []
    turns = messages["messages"]
    for n, turn in enumerate(turns):
        content = turn["content"] if isinstance(turn["content"], list) else []
        if turn["role"] == "user":
            previous = turns[n - 1]["content"] if n and turns[n - 1]["role"] == "assistant" else []
            calls = {b["id"] for b in previous if isinstance(b, dict) and b["type"] == "tool_use"}
            leading = []
            for block in content:
                if block["type"] != "tool_result":
                    break
                leading.append(block["tool_use_id"])
            every = [b["tool_use_id"] for b in content if b["type"] == "tool_result"]
            if sorted(leading) != sorted(calls) or len(every) != len(leading):
                found.append(f"turn {n}: calls {sorted(calls)} answered by {every}")
        elif any(b["type"] == "tool_use" for b in content) and (
            n + 1 == len(turns) or turns[n + 1]["role"] != "user"
        ):
            found.append(f"turn {n}: calls answered by no user turn")
    thinking = messages.get("thinking")
    if thinking is not None:
        if messages.get("tool_choice", {"type": "auto"})["type"] not in ("auto", "none"):
            found.append("thinking with a forced tool")
        if not 1024 <= thinking["budget_tokens"] < messages["max_tokens"]:
            found.append(
                f"budget {thinking['budget_tokens']} for max_tokens {messages['max_tokens']}"
            )
    return found


@PROPERTY
@given(openai_requests())
def test_openai_requests_become_requests_anthropic_takes(request: Json) -> None:
    why = ""
    try:
        body = chat_to_messages(request).body("claude-sonnet-4-5")
    except Untranslatable as refused:
        why = str(refused)
    if why:  # an empty message: OpenAI takes it, Anthropic does not, and byok says so
        assert "is empty" in why
        assume(False)
    msgspec.json.decode(body, type=A.MessagesRequest)  # strictly, as byok reads a Messages request
    messages = msgspec.json.decode(body)
    assert anthropic_violations(messages) == []
    assume(accepted("/v1/chat/completions", as_openai_takes_it(request)))
    assert accepted("/v1/messages", messages), refusal("/v1/messages", messages)


def as_openai_takes_it(request: Json) -> Json:
    """`request` less what byok takes beside OpenAI's API, as servers that copy
    it do (top_k; reasoning_content sent back), which the simulator refuses."""
    request = {k: v for k, v in request.items() if k != "top_k"}
    request["messages"] = [
        {k: v for k, v in message.items() if k != "reasoning_content"}
        for message in request["messages"]
    ]
    return request


def accepted(path: str, body: Json) -> bool:
    """Whether the API of `path` takes `body`, as the simulator judges it."""
    return refusal(path, body) is None


def refusal(path: str, body: Json) -> str | None:
    try:
        simulated_api.parse(path, msgspec.json.decode(msgspec.json.encode(body)))
    except simulated_api.Invalid as refused:
        return str(refused)
    return None


# ---- answers --------------------------------------------------------------------------


@st.composite
def lossless_anthropic_answers(draw: Draw) -> Json:
    """An Anthropic answer that OpenAI's shape tells as it is: at most one
    text block, and not empty (text blocks join into one content, "" reads
    as none); tool_use blocks after it (OpenAI keeps calls apart from the
    text); no thinking (its signature has no place in OpenAI's answer);
    stop_reason end_turn, max_tokens, or tool_use where there are calls
    (stop_sequence and refusal come back as end_turn and... the like); usage
    with cache reads and no cache writes, or no cache fields at all (OpenAI
    counts writes into the prompt with nothing to tell them apart)."""
    content = []
    if draw(st.booleans()):
        content.append({"type": "text", "text": draw(texts.filter(bool))})
    calls = draw(st.integers(0, 3))
    content += [
        {"type": "tool_use", "id": f"toolu_{n}", "name": draw(names), "input": draw(json_objects)}
        for n in range(calls)
    ]
    reasons = ["end_turn", "max_tokens"] + (["tool_use"] if calls else [])
    usage = {
        "input_tokens": draw(st.integers(0, 10**6)),
        "output_tokens": draw(st.integers(0, 10**5)),
    }
    if draw(st.booleans()):
        usage |= {
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": draw(st.integers(0, 10**6)),
        }
    return {
        "id": draw(texts),
        "type": "message",
        "role": "assistant",
        "model": draw(texts),
        "content": content,
        "stop_reason": draw(st.sampled_from(reasons)),
        "stop_sequence": None,
        "usage": usage,
    }


@st.composite
def lossless_openai_answers(draw: Draw) -> Json:
    """An OpenAI answer that Anthropic's shape tells as it is: no refusal (it
    comes back as content); arguments as compact JSON objects (they come back
    re-encoded); finish_reason tool_calls only with calls (without, it comes
    back as stop), and no function_call; total_tokens the sum, and no
    completion details (Anthropic's usage has no place for them)."""
    message: Json = {
        "role": "assistant",
        "content": draw(st.none() | texts.filter(bool)),
        "refusal": None,
    }
    calls = [
        {
            "id": f"call_{n}",
            "type": "function",
            "function": {"name": draw(names), "arguments": json_text(draw(json_objects))},
        }
        for n in range(draw(st.integers(0, 3)))
    ]
    if calls:
        message["tool_calls"] = calls
    maybe(draw, message, "reasoning_content", texts.filter(bool))
    prompt = draw(st.integers(0, 10**6))
    completion = draw(st.integers(0, 10**5))
    usage: Json = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    maybe(
        draw,
        usage,
        "prompt_tokens_details",
        st.fixed_dictionaries({"cached_tokens": st.integers(0, prompt)}),
    )
    finishes = ["stop", "length", "content_filter"] + (["tool_calls"] if calls else [])
    return {
        "id": draw(texts),
        "model": draw(texts),
        "object": "chat.completion",
        "created": 0,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": draw(st.sampled_from(finishes)),
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


_encode = msgspec.json.encode


@PROPERTY
@given(lossless_anthropic_answers())
def test_anthropic_answers_come_back_as_they_were(answer: Json) -> None:
    # each hop through the wire, so that the types are those a client sees
    message = msgspec.json.decode(_encode(answer), type=A.Message)
    there = _encode(chat_answer(message, Answering(created=0)))
    back = message_answer(msgspec.json.decode(there, type=O.ChatCompletion))
    assert msgspec.json.decode(_encode(back)) == answer


@PROPERTY
@given(lossless_openai_answers())
def test_openai_answers_come_back_as_they_were(answer: Json) -> None:
    completion = msgspec.json.decode(_encode(answer), type=O.ChatCompletion)
    there = _encode(message_answer(completion))
    back = chat_answer(msgspec.json.decode(there, type=A.Message), Answering(created=0))
    assert msgspec.json.decode(_encode(back)) == answer


# ---- streams --------------------------------------------------------------------------


def feed_in_pieces(draw: Draw, translator: Any, stream: bytes) -> bytes:
    """The stream fed to the translator cut at drawn places, then finished."""
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    out: bytes = b"".join(translator.feed(stream[a:b]) for a, b in itertools.pairwise(bounds))
    rest: bytes = translator.finish()
    return out + rest


@st.composite
def openai_answers_and_chunks(draw: Draw) -> tuple[Json, list[Json]]:
    """An OpenAI answer, and the chunks OpenAI (or a server like it) streams
    it in: reasoning, then text (or a refusal), then the tool calls, whose
    argument pieces may interleave (each call begun after the one before)."""
    message: Json = {"role": "assistant", "content": None}
    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    reasoning = draw(texts)
    if reasoning:
        message["reasoning_content"] = reasoning
        chunks += [chunk({"reasoning_content": p}) for p in split(draw, reasoning)]
    said = draw(texts)
    if said:
        field = draw(st.sampled_from(["content", "refusal"]))
        message[field] = said
        chunks += [chunk({field: p}) for p in split(draw, said)]
    calls = []
    queues = []
    for n in range(draw(st.integers(0, 3))):
        call_id, name, arguments = f"call_{n}", draw(names), json_text(draw(json_objects))
        calls.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
        start = {
            "index": n,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        pieces = [{"index": n, "function": {"arguments": p}} for p in split(draw, arguments)]
        queues.append([start, *pieces])
    begun = 0
    while any(queues):
        ready = [n for n, queue in enumerate(queues) if queue and n <= begun]
        n = draw(st.sampled_from(ready))
        chunks.append(chunk({"tool_calls": [queues[n].pop(0)]}))
        begun = max(begun, n + 1)
    if calls:
        message["tool_calls"] = calls
    finish = draw(
        st.sampled_from(["stop", "length", "content_filter"] + (["tool_calls"] if calls else []))
    )
    final = chunk({}, finish)
    stop_string = draw(st.none() | texts) if finish == "stop" else None
    if stop_string is not None:
        final["choices"][0]["stop_reason"] = stop_string  # vLLM's
    chunks.append(final)
    prompt = draw(st.integers(0, 10**5))
    usage: Json = {"prompt_tokens": prompt, "completion_tokens": draw(st.integers(0, 10**4))}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    maybe(
        draw,
        usage,
        "prompt_tokens_details",
        st.fixed_dictionaries({"cached_tokens": st.integers(0, prompt)}),
    )
    chunks.append(chunk(usage=usage))
    choice: Json = {"index": 0, "message": message, "finish_reason": finish}
    if stop_string is not None:
        choice["stop_reason"] = stop_string
    answer = {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [choice],
        "usage": usage,
    }
    return answer, chunks


STREAMING_MESSAGES: Json = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
}


@PROPERTY
@given(openai_answers_and_chunks(), st.data())
def test_openai_streams_assemble_to_the_whole_answer(
    case: tuple[Json, list[Json]], data: st.DataObject
) -> None:
    answer, chunks = case
    translation = messages_to_chat(STREAMING_MESSAGES)
    whole = msgspec.json.decode(translation.answer(_encode(answer)))
    translator = translation.stream()
    events = anthropic_events(feed_in_pieces(data.draw, translator, openai_stream(chunks)))
    streamed = assemble_message(events)
    assert streamed == whole
    assert sdk_message(events) == streamed
    usage = answer["usage"]
    assert (translator.input, translator.output) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


@st.composite
def anthropic_answers_and_events(draw: Draw) -> tuple[Json, Json, list[Json]]:
    """(request, answer, events): an Anthropic answer and the events Anthropic
    streams it in; the request may ask for a JSON schema, whose tool the
    answer may call."""
    request: Json = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hi"}],
    }
    schema_tool = draw(st.booleans())
    if schema_tool:
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "the_answer"}}
        request["tools"] = [{"type": "function", "function": {"name": "lookup"}}]
    content: list[Json] = []
    events: list[Json] = []
    for index in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "thinking", "redacted_thinking", "tool_use"]))
        if kind == "text":
            text = draw(texts)
            block: Json = {"type": "text", "text": text}
            deltas = [{"type": "text_delta", "text": p} for p in split(draw, text)]
            start: Json = {"type": "text", "text": ""}
        elif kind == "thinking":
            thought, signature = draw(texts), draw(base64_data)
            block = {"type": "thinking", "thinking": thought, "signature": signature}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in split(draw, thought)]
            deltas.append({"type": "signature_delta", "signature": signature})
            start = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "redacted_thinking":
            block = {"type": "redacted_thinking", "data": draw(base64_data)}
            deltas, start = [], block
        else:
            name = draw(
                st.sampled_from(["the_answer", "lookup"] if schema_tool else ["lookup", "fetch"])
            )
            tool_input = draw(json_objects)
            block = {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": tool_input}
            pieces = ["", *split(draw, json_text(tool_input))]  # Anthropic's first piece is ""
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            start = {**block, "input": {}}
        content.append(block)
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    stop_reason = draw(
        st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"])
    )
    usage = {
        "input_tokens": draw(st.integers(0, 10**5)),
        "cache_creation_input_tokens": draw(st.integers(0, 10**5)),
        "cache_read_input_tokens": draw(st.integers(0, 10**5)),
        "output_tokens": draw(st.integers(1, 10**4)),
    }
    answer = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    start_message = {
        **answer,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events = [
        {"type": "message_start", "message": start_message},
        *events,
        {"type": "ping"},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
        {"type": "message_stop"},
    ]
    return request, answer, events


def comparable(message: Json) -> Json:
    """A completion's message, as what it says: text ("" and null alike,
    a stream cannot tell them apart), reasoning, and calls with their
    arguments read as JSON."""
    return {
        "content": message.get("content") or None,
        "reasoning_content": message.get("reasoning_content") or None,
        "tool_calls": [
            (
                c["id"],
                c["type"],
                c["function"]["name"],
                msgspec.json.decode(c["function"]["arguments"]),
            )
            for c in message.get("tool_calls", ())
        ],
    }


@PROPERTY
@given(anthropic_answers_and_events(), st.data())
def test_anthropic_streams_assemble_to_the_whole_answer(
    case: tuple[Json, Json, list[Json]], data: st.DataObject
) -> None:
    request, answer, events = case
    translation = chat_to_messages(request)
    whole = msgspec.json.decode(translation.answer(_encode(answer)))
    translator = translation.stream()
    chunks = openai_chunks(feed_in_pieces(data.draw, translator, anthropic_stream(events)))
    streamed = assemble_completion(chunks)
    (choice,) = whole["choices"]
    assert comparable(streamed["message"]) == comparable(choice["message"])
    assert streamed["finish_reason"] == choice["finish_reason"]
    assert streamed["usage"] == whole["usage"]
    assert {k: streamed[k] for k in ("id", "created", "model")} == {
        k: whole[k] for k in ("id", "created", "model")
    }
    sdk = sdk_completion(chunks)["choices"][0]
    assert comparable(sdk["message"]) == comparable(choice["message"])
    usage = answer["usage"]
    assert translator.input == sum(usage[k] for k in usage if k != "output_tokens")
    assert translator.output == usage["output_tokens"]
