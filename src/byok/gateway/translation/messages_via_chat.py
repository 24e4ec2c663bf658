"""An Anthropic Messages request served by a Chat Completions target.

Request (Anthropic → OpenAI)
    system (a string, or text blocks)   a first system message (a string, or text parts)
    user text, image (base64 or URL)     text and image_url parts (base64 as a data: URL)
    document (a base64 PDF, plain text)  a file part with file_data; a text part
    tool_result blocks                   tool messages, before the turn's other content
    assistant text, tool_use             content, and tool_calls with JSON arguments
    tools, tool_choice                   function tools; auto, required, a named
                                         function, none; disable_parallel_tool_use as
                                         parallel_tool_calls false
    max_tokens                           max_completion_tokens (OpenAI), max_tokens
                                         (an OpenAI-compatible server)
    stop_sequences, temperature, top_p   stop, temperature, top_p
    metadata.user_id                     user
    thinking (enabled)                   reasoning_effort from the budget, where the
                                         target takes it
    stream                               stream, asking for the usage event

Hints are dropped and counted: cache_control, citations, service_tier,
thinking blocks of earlier answers, a tool result's is_error (its text says
the error), top_k and thinking where the target takes none.  What would
change the answer is refused by name: a server tool, an image inside a tool
result, a document from a URL.

Answer (OpenAI → Anthropic): reasoning_content, content, refusal and
tool_calls become thinking, text and tool_use blocks; finish_reason becomes
stop_reason (stop → end_turn, or stop_sequence where the server says which
one matched; length → max_tokens; tool_calls → tool_use; content_filter →
refusal); usage becomes input (less cache reads), output and cache read tokens.

Stream (OpenAI chunks → Anthropic events): ``EventsFromChunks`` is fed the
upstream's bytes and hands back Anthropic's event sequence: message_start
and a ping, then per block content_block_start, deltas (text_delta,
thinking_delta, input_json_delta) and content_block_stop, then
message_delta (stop_reason, usage) and message_stop.  Anthropic's blocks
follow one another, while a server may interleave the argument pieces of
parallel tool calls: the first call streams as it comes, and a call that
begins while another is open is held and sent whole once that one is closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec
from msgspec import UNSET

from . import anthropic_shapes as A
from . import fast_text
from . import openai_shapes as O
from .common import Dropped, Untranslatable, json_text
from .sse import event
from .streams import EventStream

__all__ = ["ChatTarget", "EventsFromChunks", "chat_request", "message_answer"]

_encode = msgspec.json.Encoder().encode


class BadAnswer(ValueError):
    """An upstream answer that cannot be told in the client's API (answered 502)."""


@dataclass(frozen=True)
class ChatTarget:
    """What differs between the targets that speak Chat Completions."""

    # OpenAI's reasoning models refuse max_tokens; servers that copy the API
    # may know only max_tokens
    max_tokens_field: str = "max_completion_tokens"
    reasoning: bool = False  # takes reasoning_effort
    top_k: bool = False  # takes top_k (vLLM, Ollama do)
    max_stop: int | None = 4  # stop strings it takes (OpenAI: 4)
    name: str = "an OpenAI target"  # for messages


# budget_tokens → reasoning_effort: Anthropic's minimum budget is 1,024
_EFFORTS = ((4096, "low"), (16384, "medium"))


def reasoning_effort(budget: int) -> str:
    for below, effort in _EFFORTS:
        if budget < below:
            return effort
    return "high"


def chat_request(
    request: A.MessagesRequest, upstream_model: str, target: ChatTarget, dropped: Dropped
) -> O.ChatRequest:
    # A decoded request holds the exact Struct types (never subclasses):
    # tested by identity here, as isinstance() against a Struct class that
    # does not match costs ten times as much, and this walk runs for every
    # translated request.
    messages: list[O.ChatMessage] = []
    system = request.system
    if system is not UNSET and system != []:  # OpenAI takes no empty array
        if isinstance(system, str):
            messages.append(O.SystemMessage(content=system))
        else:
            messages.append(O.SystemMessage(content=[_text(b, dropped) for b in system]))
    for n, message in enumerate(request.messages):
        content = message.content
        if message.role == "user":
            if isinstance(content, str):
                messages.append(O.UserMessage(content=content))
            else:
                messages += _user_turn(content, n, dropped)
        elif isinstance(content, str):
            messages.append(O.AssistantMessage(content=content))
        else:
            messages.append(_assistant_turn(content, n, dropped))
    chat = O.ChatRequest(model=upstream_model, messages=messages)
    if request.max_tokens is not UNSET:
        setattr(chat, target.max_tokens_field, request.max_tokens)
    if request.stop_sequences is not UNSET:
        if target.max_stop is not None and len(request.stop_sequences) > target.max_stop:
            raise Untranslatable(
                "stop_sequences", f"{target.name} takes at most {target.max_stop} stop sequences"
            )
        chat.stop = list(request.stop_sequences)
    chat.temperature = request.temperature
    chat.top_p = request.top_p
    if request.top_k is not UNSET:
        if target.top_k:
            chat.top_k = request.top_k
        else:
            dropped.add("top_k")
    if request.metadata is not UNSET and type(request.metadata.user_id) is str:
        chat.user = request.metadata.user_id
    if request.stream is not UNSET:
        chat.stream = request.stream
        if request.stream:  # the usage comes only when asked, and message_delta needs it
            chat.stream_options = O.StreamOptions(include_usage=True)
    if request.tools is not UNSET:
        chat.tools = [_tool(tool, n, dropped) for n, tool in enumerate(request.tools)]
    if request.tool_choice is not UNSET:
        _tool_choice(request.tool_choice, chat, dropped)
    if request.thinking is not UNSET and request.thinking.type == "enabled":
        if target.reasoning:
            budget = request.thinking.budget_tokens
            chat.reasoning_effort = reasoning_effort(budget if budget is not UNSET else 1024)
        else:
            dropped.add("thinking")
    if request.service_tier is not UNSET:
        dropped.add("service_tier")
    return chat


def _text(block: A.TextBlock, dropped: Dropped) -> O.TextPart:
    if block.cache_control is not UNSET:
        dropped.add("cache_control")
    if block.citations is not UNSET:
        dropped.add("citations")
    return O.TextPart(text=block.text)


def _user_turn(blocks: list[A.RequestBlock], turn: int, dropped: Dropped) -> list[O.ChatMessage]:
    results: list[O.ChatMessage] = []
    parts: list[O.UserPart] = []
    for n, block in enumerate(blocks):
        if type(block) is A.TextBlock:
            parts.append(_text(block, dropped))
        elif type(block) is A.ToolResultBlock:
            results.append(_tool_result(block, f"messages[{turn}].content[{n}]", dropped))
        elif type(block) is A.ImageBlock:
            parts.append(_image(block, dropped))
        elif type(block) is A.DocumentBlock:
            parts.append(_document(block, f"messages[{turn}].content[{n}]", dropped))
        else:
            raise Untranslatable(
                f"messages[{turn}].content[{n}]",
                f"a {block.__struct_config__.tag} block belongs to an assistant turn",
            )
    if parts or not results:
        results.append(O.UserMessage(content=parts))
    return results


def _image(block: A.ImageBlock, dropped: Dropped) -> O.ImagePart:
    if block.cache_control is not UNSET:
        dropped.add("cache_control")
    source = block.source
    if isinstance(source, A.Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return O.ImagePart(image_url=O.ImageUrl(url=url))


def _document(block: A.DocumentBlock, where: str, dropped: Dropped) -> O.UserPart:
    for hint in ("cache_control", "citations", "context"):
        if getattr(block, hint) is not UNSET:
            dropped.add(hint)
    source = block.source
    kind = source.get("type")
    media = source.get("media_type")
    data = source.get("data")
    if kind == "base64" and media == "application/pdf" and isinstance(data, str):
        file = O.FileRef(file_data=f"data:application/pdf;base64,{data}")
        if isinstance(block.title, str):
            file.filename = block.title
        return O.FilePart(file=file)
    if kind == "text" and isinstance(data, str):
        if block.title is not UNSET:
            dropped.add("title")
        return O.TextPart(text=data)
    raise Untranslatable(
        f"{where}.source",
        f"{target_words(kind, media)} has no equivalent on an OpenAI target "
        "(a base64 PDF or plain text has)",
    )


def target_words(kind: object, media: object) -> str:
    if kind == "base64":
        return f"a base64 document of type {media!r}"
    return f"a document source of type {kind!r}"


def _tool_result(block: A.ToolResultBlock, where: str, dropped: Dropped) -> O.ToolMessage:
    if block.cache_control is not UNSET:
        dropped.add("cache_control")
    if block.is_error is not UNSET:
        dropped.add("is_error")
    content = block.content
    if content is UNSET:
        return O.ToolMessage(tool_call_id=block.tool_use_id, content="")
    if isinstance(content, str):
        return O.ToolMessage(tool_call_id=block.tool_use_id, content=content)
    if not content:  # OpenAI takes no empty array
        return O.ToolMessage(tool_call_id=block.tool_use_id, content="")
    parts = []
    for n, item in enumerate(content):
        if not isinstance(item, A.TextBlock):
            raise Untranslatable(
                f"{where}.content[{n}]",
                "an OpenAI tool message holds text only; an image or document in a "
                "tool result has no equivalent",
            )
        parts.append(_text(item, dropped))
    return O.ToolMessage(tool_call_id=block.tool_use_id, content=parts)


def _assistant_turn(
    blocks: list[A.RequestBlock], turn: int, dropped: Dropped
) -> O.AssistantMessage:
    texts: list[O.TextPart | O.RefusalPart] = []
    calls: list[O.ToolCall] = []
    for n, block in enumerate(blocks):
        if type(block) is A.TextBlock:
            texts.append(_text(block, dropped))
        elif type(block) is A.ToolUseBlock:
            if block.cache_control is not UNSET:
                dropped.add("cache_control")
            function = O.FunctionCall(name=block.name, arguments=json_text(block.input))
            calls.append(O.ToolCall(id=block.id, function=function))
        elif type(block) is A.ThinkingBlock or type(block) is A.RedactedThinkingBlock:
            dropped.add("thinking")  # an earlier answer's reasoning: no Chat API takes it back
        else:
            raise Untranslatable(
                f"messages[{turn}].content[{n}]",
                f"a {block.__struct_config__.tag} block belongs to a user turn",
            )
    message = O.AssistantMessage()
    if texts or not calls:
        message.content = texts
    if calls:
        message.tool_calls = calls
    return message


def _tool(tool: A.Tool, n: int, dropped: Dropped) -> O.Tool:
    if tool.type not in (UNSET, None, "custom"):
        raise _server_tool(n, tool.type)
    if tool.input_schema is UNSET:
        raise Untranslatable(f"tools[{n}].input_schema", "a tool needs its input_schema")
    for hint in ("cache_control", "eager_input_streaming"):
        if getattr(tool, hint) is not UNSET:
            dropped.add(hint)
    function = O.FunctionDef(name=tool.name, parameters=tool.input_schema)
    function.description = tool.description
    return O.Tool(type="function", function=function)


def _server_tool(n: int, kind: object) -> Untranslatable:
    return Untranslatable(
        f"tools[{n}]", f"Anthropic's server tool {kind!r} has no equivalent on an OpenAI target"
    )


def server_tool(body: bytes) -> Untranslatable | None:
    """The refusal of a request that names a server tool (web search, code
    execution, ...), whose fields fail a strict decode before its type is
    read; None if it names none."""
    try:
        tools = msgspec.json.decode(body).get("tools")
    except (msgspec.DecodeError, AttributeError):
        return None
    for n, tool in enumerate(tools if isinstance(tools, list) else ()):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in (None, "custom"):
            return _server_tool(n, kind)
    return None


def _tool_choice(choice: A.ToolChoice, chat: O.ChatRequest, dropped: Dropped) -> None:
    if not chat.tools:  # OpenAI refuses a tool_choice without tools; with none, it says nothing
        dropped.add("tool_choice")
        return
    if isinstance(choice, A.ToolChoiceNone):
        chat.tool_choice = "none"
        return
    if isinstance(choice, A.ToolChoiceAuto):
        chat.tool_choice = "auto"
    elif isinstance(choice, A.ToolChoiceAny):
        chat.tool_choice = "required"
    else:
        chat.tool_choice = O.NamedToolChoice(
            type="function", function=O.NamedFunction(name=choice.name)
        )
    if choice.disable_parallel_tool_use is not UNSET:
        chat.parallel_tool_calls = not choice.disable_parallel_tool_use


# ---- the answer --------------------------------------------------------------------

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_answer(answer: O.ChatCompletion) -> A.Message:
    """A whole Chat Completions answer as a Messages answer."""
    if not answer.choices:
        raise BadAnswer("the upstream's answer has no choices")
    choice = answer.choices[0]
    message = choice.message if choice.message is not UNSET else O.AnswerMessage()
    blocks: list[A.AnswerBlock] = []
    if message.reasoning_content:
        blocks.append(
            A.AnswerBlock(type="thinking", thinking=message.reasoning_content, signature="")
        )
    if message.content:
        blocks.append(A.AnswerBlock(type="text", text=message.content))
    if message.refusal:
        blocks.append(A.AnswerBlock(type="text", text=message.refusal))
    for call in message.tool_calls or ():
        blocks.append(_tool_use(call))
    stop_reason, stop_sequence = _stop(choice)
    if message.refusal:
        stop_reason = "refusal"
    return A.Message(
        id=answer.id,
        model=answer.model,
        content=blocks,
        usage=anthropic_usage(answer.usage),
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
    )


def _tool_use(call: O.AnswerToolCall) -> A.AnswerBlock:
    function = call.function if call.function is not UNSET else O.AnswerFunction()
    name = function.name if isinstance(function.name, str) else ""
    arguments = function.arguments if isinstance(function.arguments, str) else ""
    try:
        value = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadAnswer(
            f"the upstream called tool {name!r} with arguments that are not a JSON object"
        )
    call_id = call.id if isinstance(call.id, str) else ""
    return A.AnswerBlock(type="tool_use", id=call_id, name=name, input=value)


def _stop(choice: O.Choice | O.ChunkChoice) -> tuple[str, str | None]:
    reason = choice.finish_reason
    if reason == "stop" and type(choice.stop_reason) is str:
        return "stop_sequence", choice.stop_reason
    return STOP_REASONS.get(reason or "stop", "end_turn"), None


def anthropic_usage(usage: O.Usage | msgspec.UnsetType | None) -> A.Usage:
    if usage is UNSET or usage is None:
        return A.Usage(input_tokens=0, output_tokens=0)
    prompt = usage.prompt_tokens or 0
    details = usage.prompt_tokens_details
    if details is UNSET or details is None or type(details.cached_tokens) is not int:
        return A.Usage(input_tokens=prompt, output_tokens=usage.completion_tokens or 0)
    # Anthropic's input_tokens leaves out what was read from the cache
    return A.Usage(
        input_tokens=max(prompt - details.cached_tokens, 0),
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=details.cached_tokens,
        cache_creation_input_tokens=0,
    )


# ---- the stream ----------------------------------------------------------------------

_decode_chunk = msgspec.json.Decoder(O.Chunk).decode


@dataclass
class _HeldCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


class EventsFromChunks(EventStream):
    """Feed it an OpenAI stream's bytes; it hands back Anthropic's events.

    ``input``/``output`` are the stream's tokens once its usage came (as
    gateway.usage counts them: input with cache reads), for the ledger."""

    def __init__(self, compiled: bool = True) -> None:
        super().__init__(fast_text.of_chunks if compiled else None, _TEXT_TAIL)
        self.input = 0
        self.output = 0
        self._started = False
        self._index = -1  # the Anthropic index of the last block begun
        self._open: str | None = None  # "text", "thinking", "tool" or None
        self._open_call: int | None = None  # the OpenAI index of the streaming tool call
        self._done_calls: set[int] = set()
        self._held: dict[int, _HeldCall] = {}  # calls begun while another was open
        self._stop_reason = "end_turn"
        self._stop_sequence: str | None = None
        self._refused = False
        self._usage = A.Usage(input_tokens=0, output_tokens=0)

    def _ended_by_upstream(self, out: list[bytes]) -> None:
        self._end(out)

    def _unreadable(self, message: str, out: list[bytes]) -> None:
        self._fail(message, out)

    def _take(self, data: bytes, out: list[bytes]) -> None:
        if self._ended:
            return
        if data == b"[DONE]":
            self._end(out)
            return
        try:
            chunk = _decode_chunk(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return  # not a chunk (a comment, a server's own line): nothing to tell
        if chunk.error is not UNSET:
            self._fail(chunk.error, out)
            return
        if not self._started:
            self._start(chunk, out)
        usage = chunk.usage
        if type(usage) is O.Usage:
            self._usage = anthropic_usage(usage)
            self.input = usage.prompt_tokens or 0
            self.output = usage.completion_tokens or 0
        for choice in chunk.choices:
            if choice.index:
                continue  # one choice was asked for
            delta = choice.delta
            if type(delta) is O.AnswerMessage:
                content = delta.content
                if (
                    content
                    and self._open == "text"
                    and not delta.tool_calls
                    and not delta.reasoning_content
                    and not delta.refusal
                ):  # the common chunk: more of the text being written
                    out.append(self._text(content))
                else:
                    self._delta(delta, out)
            if choice.finish_reason is not None:
                self._stop_reason, self._stop_sequence = _stop(choice)

    def _start(self, chunk: O.Chunk, out: list[bytes]) -> None:
        self._started = True
        # each event of a stream's frame written as bytes, as the text's are
        # (a dict built and encoded costs several times as much)
        out.append(
            b'event: message_start\ndata: {"type":"message_start","message":{"id":'
            + _encode(chunk.id)
            + b',"type":"message","role":"assistant","model":'
            + _encode(chunk.model)
            + b',"content":[],"stop_reason":null,"stop_sequence":null,'
            b'"usage":{"input_tokens":0,"output_tokens":0}}}\n\n'
        )
        out.append(_PING)

    def _delta(self, delta: O.AnswerMessage, out: list[bytes]) -> None:
        if delta.reasoning_content:
            self._block("thinking", _THINKING_BLOCK, out)
            out.append(
                _block_delta(
                    self._index, {"type": "thinking_delta", "thinking": delta.reasoning_content}
                )
            )
        if delta.content:
            self._block("text", _TEXT_BLOCK, out)
            out.append(self._text(delta.content))
        if delta.refusal:
            self._refused = True
            self._block("text", _TEXT_BLOCK, out)
            out.append(self._text(delta.refusal))
        if delta.tool_calls:
            for position, call in enumerate(delta.tool_calls):
                self._call_piece(call, position, out)

    def _call_piece(self, call: O.AnswerToolCall, position: int, out: list[bytes]) -> None:
        index = call.index if isinstance(call.index, int) else position
        function = call.function if call.function is not UNSET else O.AnswerFunction()
        arguments = function.arguments if isinstance(function.arguments, str) else ""
        if index == self._open_call:
            if arguments:
                out.append(
                    _block_delta(
                        self._index, {"type": "input_json_delta", "partial_json": arguments}
                    )
                )
            return
        held = self._held.get(index)
        if held is None and index in self._done_calls:
            # a piece of a call already closed (a server out of order): no
            # well-formed event can carry it
            return
        if held is None and self._open != "tool":
            # nothing else streaming: this call streams as it comes
            self._block("tool", _tool_block(_str(call.id), _str(function.name)), out)
            self._open_call = index
            if arguments:
                out.append(
                    _block_delta(
                        self._index, {"type": "input_json_delta", "partial_json": arguments}
                    )
                )
            return
        if held is None:
            held = self._held[index] = _HeldCall()
        if isinstance(call.id, str) and call.id:
            held.id = call.id
        if isinstance(function.name, str) and function.name:
            held.name = function.name
        held.arguments += arguments

    def _text(self, text: str) -> bytes:
        """A text delta of the open text block."""
        return self._text_head + _encode(text) + _TEXT_TAIL

    def _block(self, kind: str, block: bytes, out: list[bytes]) -> None:
        """Open a block of `kind` (`block`: its JSON) unless one is open (a
        tool block is never continued: each call opens its own)."""
        if self._open == kind and kind != "tool":
            return
        self._close(out)
        self._index += 1
        self._open = kind
        if kind == "text":
            self._in_text(_text_head(self._index))
        out.append(
            b'event: content_block_start\ndata: {"type":"content_block_start","index":'
            + str(self._index).encode()
            + b',"content_block":'
            + block
            + b"}\n\n"
        )

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
            + str(self._index).encode()
            + b"}\n\n"
        )
        if self._open == "tool" and self._open_call is not None:
            self._done_calls.add(self._open_call)
            self._open_call = None
        self._open = None
        self._in_text(None)

    def _end(self, out: list[bytes]) -> None:
        if self._ended:
            return
        if not self._started:
            self._start(O.Chunk(), out)
        self._close(out)
        for index in sorted(self._held):
            held = self._held.pop(index)
            self._block("tool", _tool_block(held.id, held.name), out)
            if held.arguments:
                out.append(
                    _block_delta(
                        self._index, {"type": "input_json_delta", "partial_json": held.arguments}
                    )
                )
            self._close(out)
        self._ended = True
        stop_reason = "refusal" if self._refused else self._stop_reason
        out.append(
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
            + _encode(stop_reason)
            + b',"stop_sequence":'
            + _encode(self._stop_sequence)
            + b'},"usage":'
            + _encode(self._usage)  # (the figures it has: UNSET ones are not written)
            + b"}\n\n"
        )
        out.append(_MESSAGE_STOP)

    def _fail(self, error: object, out: list[bytes]) -> None:
        message = error.get("message") if isinstance(error, dict) else error
        self._ended = True
        self._in_text(None)
        body = {"type": "error", "error": {"type": "api_error", "message": str(message)}}
        out.append(event("error", body))


_PING = event("ping", {"type": "ping"})
_MESSAGE_STOP = event("message_stop", {"type": "message_stop"})
_TEXT_BLOCK = b'{"type":"text","text":""}'
_THINKING_BLOCK = b'{"type":"thinking","thinking":"","signature":""}'


def _tool_block(call_id: str, name: str) -> bytes:
    return _encode({"type": "tool_use", "id": call_id, "name": name, "input": {}})


def _block_delta(index: int, delta: Mapping[str, object]) -> bytes:
    return event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


_TEXT_TAIL = b"}}\n\n"  # a text delta's bytes after its text


def _text_head(index: int) -> bytes:
    """The bytes of a text delta of block `index` before its text (the most
    common event of a stream, written without building its dict)."""
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"text_delta","text":'
    )


def _str(value: object) -> str:
    return value if type(value) is str else ""
