"""A reply as each endpoint says it: the whole answer, or the events of its
stream, in the shapes the official SDKs parse.

OpenAI's chat stream sends a chunk per token and choice (the choices'
chunks in turn), the first of a choice with ``"role": "assistant"``, then
a chunk per choice with its finish_reason; a tool call starts with its id,
name and empty arguments, then its arguments in pieces (each call's pieces
after the other's, or in turn when ``interleave``, as some servers send
them).  Like OpenAI, a stream tells its usage only when asked
(``stream_options.include_usage``): then every chunk carries
``"usage": null`` and a last chunk, with no choices, the usage.

Anthropic's stream is message_start (usage: the input and 1 output token),
then per content block content_block_start, its deltas and
content_block_stop, a ping after the first block's start, then
message_delta (the stop reason and the output tokens) and message_stop.

Usage: 5 tokens of prompt, the reply's tokens of output.  Cached tokens
come on top of the 5: OpenAI counts them in prompt_tokens (and tells them
in prompt_tokens_details), Anthropic apart from input_tokens
(cache_read_input_tokens).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgspec

from .replies import THINKING, THINKING_TOKENS, Reply

PROMPT_TOKENS = 5
_OPENAI_FINISH = {"end": "stop", "stop": "stop", "length": "length", "tools": "tool_calls"}
_ANTHROPIC_STOP = {"end": "end_turn", "stop": "stop_sequence", "length": "max_tokens"}
_DONE = b"data: [DONE]\n\n"


@dataclass
class _Block:
    """A content block of Anthropic's: as a stream starts it, the deltas
    that stream it, and whole."""

    start: dict[str, Any]
    deltas: list[dict[str, Any]]
    whole: dict[str, Any]


@dataclass
class Answer:
    number: int  # of the answer, for its ids
    model: str
    dialect: str
    path: str
    reply: Reply
    include_usage: bool = False  # an OpenAI stream's stream_options.include_usage
    reasoning_content: bool = False  # OpenAI: the thinking in reasoning_content
    interleave: bool = False  # OpenAI streams: the tool calls' pieces in turn
    cached_tokens: int = 0
    input_tokens: int = 0  # what count_tokens answers

    def whole(self) -> dict[str, Any]:
        if self.path == "/v1/messages/count_tokens":  # the prompt's estimate, as admission's
            return {"input_tokens": self.input_tokens}
        if self.dialect == "anthropic":
            return self._message()
        if self.path == "/v1/embeddings":
            return {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": self.model,
                "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
            }
        if self.path == "/v1/completions":
            return {
                "id": f"cmpl-sim-{self.number}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {"index": 0, "text": self.reply.text, "finish_reason": "stop", "logprobs": None}
                ],
                "usage": self._openai_usage(),
            }
        if self.path == "/v1/responses":
            return self._response()
        return self._chat_completion()

    def events(self) -> list[bytes]:
        if self.dialect == "anthropic":
            return self._message_events()
        if self.path == "/v1/completions":
            return self._completion_events()
        return self._chat_events()

    # ------------------------------------------------------------ OpenAI

    def _openai_usage(self) -> dict[str, Any]:
        completion = self.reply.tokens * self.reply.choices
        prompt = PROMPT_TOKENS + self.cached_tokens
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reply.thinking:
            reasoning = THINKING_TOKENS * self.reply.choices
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    def _call_id(self, choice: int, call: int) -> str:
        return f"call_sim_{self.number}_{choice * len(self.reply.calls) + call}"

    def _chat_completion(self) -> dict[str, Any]:
        reply = self.reply
        choices = []
        for index in range(reply.choices):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text if reply.pieces or not reply.calls else None,
            }
            if reply.thinking and self.reasoning_content:
                message["reasoning_content"] = THINKING
            if reply.calls:
                message["tool_calls"] = [
                    {
                        "id": self._call_id(index, n),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for n, call in enumerate(reply.calls)
                ]
            finish = _OPENAI_FINISH[reply.ending]
            choices.append({"index": index, "message": message, "finish_reason": finish})
        return {
            "id": f"chatcmpl-sim-{self.number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
            "usage": self._openai_usage(),
        }

    def _chunk_base(self, completions: bool = False) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": f"{'cmpl' if completions else 'chatcmpl'}-sim-{self.number}",
            "object": "text_completion" if completions else "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        if self.include_usage:
            base["usage"] = None  # on every chunk but the last, as OpenAI sends it
        return base

    def _openai_ending(self, base: dict[str, Any], choices: list[dict[str, Any]]) -> list[bytes]:
        events = [_sse({**base, "choices": [choice]}) for choice in choices]
        if self.include_usage:
            events.append(_sse({**base, "choices": [], "usage": self._openai_usage()}))
        events.append(_DONE)
        return events

    def _chat_events(self) -> list[bytes]:
        reply = self.reply
        deltas = [self._deltas(index) for index in range(reply.choices)]
        chunks: list[dict[str, Any]] = [
            {"index": index, "delta": delta[step], "finish_reason": None}
            for step in range(max(len(delta) for delta in deltas))
            for index, delta in enumerate(deltas)
            if step < len(delta)
        ]
        finish = _OPENAI_FINISH[reply.ending]
        chunks += [
            {"index": index, "delta": {}, "finish_reason": finish} for index in range(reply.choices)
        ]
        return self._openai_ending(self._chunk_base(), chunks)

    def _deltas(self, choice: int) -> list[dict[str, Any]]:
        """One choice's deltas: its thinking, text and tool calls, the first
        naming the role."""
        reply = self.reply
        deltas: list[dict[str, Any]] = []
        if reply.thinking and self.reasoning_content:
            deltas += [{"reasoning_content": piece} for piece in _words(THINKING)]
        deltas += [{"content": piece} for piece in reply.pieces]
        runs: list[list[dict[str, Any]]] = [
            [
                {
                    "index": n,
                    "id": self._call_id(choice, n),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                },
                *({"index": n, "function": {"arguments": piece}} for piece in call.pieces()),
            ]
            for n, call in enumerate(reply.calls)
        ]
        if self.interleave:
            longest = max((len(run) for run in runs), default=0)
            calls = [run[step] for step in range(longest) for run in runs if step < len(run)]
        else:
            calls = [item for run in runs for item in run]
        deltas += [{"tool_calls": [item]} for item in calls]
        if not deltas:
            deltas = [{"content": ""}]
        first = {"role": "assistant", **deltas[0]}
        if "tool_calls" in first:
            first["content"] = None  # a reply of tool calls alone, as OpenAI starts it
        return [first, *deltas[1:]]

    def _completion_events(self) -> list[bytes]:
        choices: list[dict[str, Any]] = [
            {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
            for piece in self.reply.pieces
        ]
        choices.append({"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
        return self._openai_ending(self._chunk_base(completions=True), choices)

    def _response(self) -> dict[str, Any]:
        tokens = self.reply.tokens
        return {
            "id": f"resp_sim_{self.number}",
            "object": "response",
            "created_at": int(time.time()),
            "model": self.model,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": f"msg_sim_{self.number}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": self.reply.text, "annotations": []}
                    ],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": PROMPT_TOKENS,
                "output_tokens": tokens,
                "total_tokens": PROMPT_TOKENS + tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }

    # ------------------------------------------------------------ Anthropic

    def _anthropic_usage(self, output_tokens: int) -> dict[str, int]:
        usage = {"input_tokens": PROMPT_TOKENS, "output_tokens": output_tokens}
        if self.cached_tokens:
            usage["cache_creation_input_tokens"] = 0
            usage["cache_read_input_tokens"] = self.cached_tokens
        return usage

    def _blocks(self) -> list[_Block]:
        """The content blocks of the reply: thinking, text, tool calls."""
        reply = self.reply
        blocks: list[_Block] = []
        if reply.thinking:
            signature = f"sig_sim_{self.number}"
            thought = [{"type": "thinking_delta", "thinking": p} for p in _words(THINKING)]
            blocks.append(
                _Block(
                    {"type": "thinking", "thinking": ""},
                    [*thought, {"type": "signature_delta", "signature": signature}],
                    {"type": "thinking", "thinking": THINKING, "signature": signature},
                )
            )
        if reply.pieces:
            written = [{"type": "text_delta", "text": piece} for piece in reply.pieces]
            blocks.append(
                _Block({"type": "text", "text": ""}, written, {"type": "text", "text": reply.text})
            )
        for n, call in enumerate(reply.calls):
            use = {"type": "tool_use", "id": f"toolu_sim_{self.number}_{n}", "name": call.name}
            blocks.append(
                _Block(
                    {**use, "input": {}},
                    [{"type": "input_json_delta", "partial_json": p} for p in call.pieces()],
                    {**use, "input": msgspec.json.decode(call.arguments)},
                )
            )
        return blocks

    def _stop(self) -> dict[str, Any]:
        reason = _ANTHROPIC_STOP.get(self.reply.ending, "tool_use")
        return {"stop_reason": reason, "stop_sequence": self.reply.stop_sequence}

    def _message(self) -> dict[str, Any]:
        return {
            "id": f"msg_sim_{self.number}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [block.whole for block in self._blocks()],
            **self._stop(),
            "usage": self._anthropic_usage(self.reply.tokens),
        }

    def _message_events(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": f"msg_sim_{self.number}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._anthropic_usage(1),
        }
        events = [_sse({"type": "message_start", "message": message}, "message_start")]
        ping = _sse({"type": "ping"}, "ping")
        blocks = self._blocks()
        if not blocks:
            events.append(ping)
        for index, block in enumerate(blocks):
            started = {"type": "content_block_start", "index": index, "content_block": block.start}
            events.append(_sse(started, "content_block_start"))
            if index == 0:
                events.append(ping)
            events += [
                _sse(
                    {"type": "content_block_delta", "index": index, "delta": delta},
                    "content_block_delta",
                )
                for delta in block.deltas
            ]
            events.append(
                _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            )
        delta = {"type": "message_delta", "delta": self._stop()}
        delta["usage"] = {"output_tokens": self.reply.tokens}
        events.append(_sse(delta, "message_delta"))
        events.append(_sse({"type": "message_stop"}, "message_stop"))
        return events


def _words(text: str) -> list[str]:
    return [word if n == 0 else " " + word for n, word in enumerate(text.split())]


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + msgspec.json.encode(data) + b"\n\n"
