"""An OpenAI Chat Completions request served by an Anthropic Messages target,
natively (``/v1/messages``, not Anthropic's OpenAI-compatibility endpoint,
which lacks much of its API).

Request (OpenAI → Anthropic)
    system and developer messages        system (before the conversation only)
    user text, image_url, file           text, image (a data: URL as base64, else by
                                         URL), document (a PDF's file_data)
    assistant content, tool_calls        text and tool_use blocks (arguments as input)
    tool messages                        tool_result blocks, with the user turn after
                                         them, in one user turn
    tools, tool_choice                   tools with input_schema; none, auto, any, tool;
                                         parallel_tool_calls false as
                                         disable_parallel_tool_use
    response_format json_schema          a tool whose input is the answer, which the
                                         model is made to call (with other tools: to
                                         call some tool); its input comes back as the
                                         message's content.  json_object: the same
                                         with any object
    max_completion_tokens, max_tokens    max_tokens (Anthropic requires one: 4,096
                                         when the client names none)
    stop, temperature, top_p, top_k      stop_sequences, temperature (0 to 1 only),
                                         top_p, top_k
    user (or safety_identifier)          metadata.user_id
    reasoning_effort                     thinking, with a budget from the effort (low
                                         2,048, medium 8,192, high 24,576 tokens),
                                         below max_tokens
    stream, stream_options               stream; the usage chunk only when asked

Dropped and counted: seed, penalties, logit_bias, metadata, store,
service_tier, prediction, prompt_cache_key, verbosity, an image's detail, a
function's strict, a message's name, reasoning_content sent back, and
beside thinking the sampling hints Anthropic refuses then (a temperature
other than 1, top_p under 0.95, top_k); reasoning_effort itself in a tool
loop (Anthropic wants the signed thinking behind the last tool call back,
which an OpenAI conversation does not carry), or where max_tokens leaves no
room for Anthropic's least budget.  Empty texts and empty assistant turns
are left out (Anthropic refuses them; they say nothing).  Refused
by name: n above 1 (one choice per request), logprobs, audio, uploaded
files, a system message in mid-conversation, a temperature above 1,
arguments that are not a JSON object, reasoning_effort beside a tool_choice
that forces a tool call, an empty user message.

Answer (Anthropic → OpenAI): text blocks join into content, thinking into
reasoning_content (as DeepSeek and vLLM send it), tool_use blocks into
tool_calls; stop_reason becomes finish_reason (end_turn and stop_sequence →
stop, max_tokens → length, tool_use → tool_calls, refusal →
content_filter); usage becomes prompt tokens (cache reads and writes
included, as OpenAI counts them), completion tokens and cached tokens.

Stream (Anthropic events → OpenAI chunks): ``ChunksFromEvents`` is fed the
upstream's bytes and hands back chunks: the role first, then content,
reasoning_content and tool_calls deltas (each tool call's index counted from
0, its id and name in its first delta), a last chunk with finish_reason, the
usage chunk if the client asked for it, and ``[DONE]``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import msgspec
from msgspec import UNSET

from . import anthropic_shapes as A
from . import fast_text
from . import openai_shapes as O
from .common import Dropped, Untranslatable, json_text
from .sse import data_only
from .streams import EventStream

__all__ = ["Answering", "ChunksFromEvents", "chat_answer", "messages_request"]

_encode = msgspec.json.Encoder().encode

DEFAULT_MAX_TOKENS = 4096
_BUDGETS = {"low": 2048, "medium": 8192, "high": 24576}
_MIN_BUDGET = 1024  # Anthropic's least thinking budget
_DROPPED_HINTS = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "metadata",
    "store",
    "service_tier",
    "prediction",
    "prompt_cache_key",
    "verbosity",
)
_hints_of = attrgetter(*_DROPPED_HINTS)  # their values, in one call


class Answering(msgspec.Struct, frozen=True):
    """What the answer's translation needs to know of the request."""

    created: int  # the chunks' and answer's `created`: when the request came
    schema_tool: str | None = None  # the tool whose input is the answer (response_format)
    include_usage: bool = False  # the client asked for a stream's usage chunk


def messages_request(
    request: O.ChatRequest, upstream_model: str, created: int, dropped: Dropped
) -> tuple[A.MessagesRequest, Answering]:
    # A decoded request holds the exact Struct types (never subclasses), and
    # a field left out is UNSET (or None, which OpenAI takes for most of
    # them): tested by identity here, as isinstance() against a Struct class
    # that does not match costs ten times as much, and this walk runs for
    # every translated request.
    _refuse_what_changes_the_answer(request)
    system, messages = _conversation(request.messages, dropped)
    max_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    out = A.MessagesRequest(model=upstream_model, messages=messages, max_tokens=max_tokens)
    if system is not None:
        out.system = system
    stop = request.stop
    if stop is not UNSET and stop is not None:
        out.stop_sequences = [stop] if type(stop) is str else list(stop)
    temperature = request.temperature
    if temperature is not UNSET and temperature is not None:
        if temperature > 1:
            raise Untranslatable(
                "temperature",
                "an Anthropic target takes 0 to 1; OpenAI's range above 1 has no equivalent",
            )
        out.temperature = temperature
    if request.top_p is not UNSET and request.top_p is not None:
        out.top_p = request.top_p
    if request.top_k is not UNSET and request.top_k is not None:
        out.top_k = request.top_k
    user = request.user
    if user is UNSET or user is None:
        user = request.safety_identifier
    elif request.safety_identifier is not UNSET:
        dropped.add("safety_identifier")
    if type(user) is str:
        out.metadata = A.Metadata(user_id=user)
    if request.stream is not UNSET and request.stream is not None:
        out.stream = request.stream
    include_usage = False
    options = request.stream_options
    if options is not UNSET and options is not None:
        include_usage = options.include_usage is True
        if options.include_obfuscation is not UNSET:
            dropped.add("include_obfuscation")
    if request.tools:
        out.tools = [_tool(tool, dropped) for tool in request.tools]
    if request.tool_choice is not UNSET or request.parallel_tool_calls is not UNSET:
        _tool_choice(request, out, dropped)
    schema_tool = None
    if request.response_format is not UNSET and request.response_format is not None:
        schema_tool = _response_format(request, out, dropped)
    if request.reasoning_effort is not UNSET and request.reasoning_effort is not None:
        _thinking(request, out, dropped)
    given = _hints_of(request)
    if given.count(UNSET) != len(_DROPPED_HINTS):  # most requests carry none of them
        for hint, value in zip(_DROPPED_HINTS, given, strict=True):
            if value is not UNSET:
                dropped.add(hint)
    return out, Answering(created, schema_tool, include_usage)


def _refuse_what_changes_the_answer(request: O.ChatRequest) -> None:
    if request.n not in (UNSET, None, 1):
        raise Untranslatable(
            "n", "an Anthropic target gives one choice per request: send n=1, or several requests"
        )
    if request.logprobs or request.top_logprobs not in (UNSET, None):
        field = "logprobs" if request.logprobs else "top_logprobs"
        raise Untranslatable(field, "an Anthropic target gives no log probabilities")
    if request.modalities and any(m != "text" for m in request.modalities):
        raise Untranslatable("modalities", "an Anthropic target answers in text only")


def _conversation(
    messages: list[O.ChatMessage], dropped: Dropped
) -> tuple[str | list[A.TextBlock] | None, list[A.InputMessage]]:
    system: list[str | list[O.TextPart]] = []
    turns: list[A.InputMessage] = []
    # the last turn when it is a user turn of tool results: a user or tool
    # message that follows joins it (Anthropic wants a call's results in the
    # very next turn)
    results: list[A.RequestBlock] | None = None
    last = len(messages) - 1
    for n, message in enumerate(messages):
        if type(message) is O.UserMessage:
            given = message.content
            content = (
                given if isinstance(given, str) and given else _user_content(given, n, dropped)
            )
            if results is None:
                turns.append(A.InputMessage(role="user", content=content))
            elif isinstance(content, str):
                results.append(A.TextBlock(text=content))
            else:
                results += content
        elif type(message) is O.AssistantMessage:
            said = _assistant(message, n, dropped)
            # an empty turn says nothing, and Anthropic refuses one but the last
            if said or n == last:
                turns.append(A.InputMessage(role="assistant", content=said))
            results = None
        elif type(message) is O.ToolMessage:
            result = A.ToolResultBlock(
                tool_use_id=message.tool_call_id,
                content=message.content
                if isinstance(message.content, str)
                else [A.TextBlock(text=part.text) for part in message.content],
            )
            if results is None:
                results = [result]
                turns.append(A.InputMessage(role="user", content=results))
            else:
                results.append(result)
            continue
        else:
            assert isinstance(message, (O.SystemMessage, O.DeveloperMessage))
            if turns:
                raise Untranslatable(
                    f"messages[{n}]",
                    "an Anthropic target takes system instructions only before the "
                    "conversation: move this message to the start",
                )
            system.append(message.content)
        if message.name is not UNSET:
            dropped.add("name")
    return _system(system) if system else None, turns


def _system(parts: list[str | list[O.TextPart]]) -> str | list[A.TextBlock] | None:
    if len(parts) == 1 and type(parts[0]) is str:
        return parts[0]
    blocks = []
    for part in parts:
        if isinstance(part, str):
            blocks.append(A.TextBlock(text=part))
        else:
            blocks += [A.TextBlock(text=text.text) for text in part]
    # an empty text says nothing, and Anthropic refuses an empty block
    return [block for block in blocks if block.text] or None


def _user_content(
    content: str | list[O.UserPart], message: int, dropped: Dropped
) -> str | list[A.RequestBlock]:
    if isinstance(content, str):
        if not content:
            raise Untranslatable(f"messages[{message}].content", _EMPTY)
        return content
    blocks: list[A.RequestBlock] = []
    for n, part in enumerate(content):
        if type(part) is O.TextPart:
            if part.text:  # an empty part says nothing, and Anthropic refuses it
                blocks.append(A.TextBlock(text=part.text))
        elif type(part) is O.ImagePart:
            if part.image_url.detail is not UNSET:
                dropped.add("detail")
            at = f"messages[{message}].content[{n}]"
            blocks.append(A.ImageBlock(source=_image_source(part.image_url.url, at)))
        elif type(part) is O.FilePart:
            blocks.append(_document(part.file, f"messages[{message}].content[{n}]"))
        else:
            raise Untranslatable(
                f"messages[{message}].content[{n}]", "an Anthropic target takes no audio input"
            )
    if not blocks:
        raise Untranslatable(f"messages[{message}].content", _EMPTY)
    return blocks


_EMPTY = "is empty, and an Anthropic target takes no empty message"


def _image_source(url: str, where: str) -> A.Base64Source | A.UrlSource:
    if not url.startswith("data:"):
        return A.UrlSource(url=url)
    media, marker, data = url[5:].partition(";base64,")
    if not marker:
        raise Untranslatable(f"{where}.image_url.url", "a data: URL must be base64")
    return A.Base64Source(media_type=media, data=data)


def _document(file: O.FileRef, where: str) -> A.DocumentBlock:
    if not isinstance(file.file_data, str):
        raise Untranslatable(
            f"{where}.file",
            "an Anthropic target cannot read files uploaded to OpenAI: send file_data",
        )
    media, marker, data = file.file_data.removeprefix("data:").partition(";base64,")
    if not marker or media != "application/pdf":
        raise Untranslatable(
            f"{where}.file.file_data", "an Anthropic target takes a PDF, as a base64 data: URL"
        )
    block = A.DocumentBlock(source={"type": "base64", "media_type": media, "data": data})
    if file.filename is not UNSET:
        block.title = file.filename
    return block


def _assistant(message: O.AssistantMessage, n: int, dropped: Dropped) -> str | list[A.RequestBlock]:
    if message.reasoning_content is not UNSET:
        dropped.add("reasoning_content")
    if message.refusal is not UNSET and message.refusal is not None:
        dropped.add("refusal")
    content = message.content
    if type(content) is str and not message.tool_calls:
        return content
    blocks: list[A.RequestBlock] = []
    if isinstance(content, str):
        if content:
            blocks.append(A.TextBlock(text=content))
    elif isinstance(content, list):
        for part in content:
            text = part.text if isinstance(part, O.TextPart) else part.refusal
            if text:  # Anthropic refuses an empty text block
                blocks.append(A.TextBlock(text=text))
    for m, call in enumerate(message.tool_calls or ()):
        try:
            value = msgspec.json.decode(call.function.arguments)
        except msgspec.DecodeError:
            value = None
        if type(value) is not dict:
            raise Untranslatable(
                f"messages[{n}].tool_calls[{m}].function.arguments",
                "is not a JSON object, which an Anthropic target takes as a tool call's input",
            )
        blocks.append(A.ToolUseBlock(id=call.id, name=call.function.name, input=value))
    return blocks


def _tool(tool: O.Tool, dropped: Dropped) -> A.Tool:
    function = tool.function
    if function.strict is not UNSET:
        dropped.add("strict")
    schema = function.parameters
    if schema is UNSET:
        schema = {"type": "object", "properties": {}}
    out = A.Tool(name=function.name, input_schema=schema)
    out.description = function.description
    return out


def _tool_choice(request: O.ChatRequest, out: A.MessagesRequest, dropped: Dropped) -> None:
    choice = request.tool_choice
    picked: A.ToolChoice | None = None
    if choice == "none":
        picked = A.ToolChoiceNone()
    elif choice == "auto":
        picked = A.ToolChoiceAuto()
    elif choice == "required":
        picked = A.ToolChoiceAny()
    elif isinstance(choice, O.NamedToolChoice):
        picked = A.ToolChoiceTool(name=choice.function.name)
    parallel = request.parallel_tool_calls
    if isinstance(parallel, bool):
        if request.tools and not isinstance(picked, A.ToolChoiceNone):
            picked = picked or A.ToolChoiceAuto()
            picked.disable_parallel_tool_use = not parallel
        else:  # no tool may be called: nothing for it to say
            dropped.add("parallel_tool_calls")
    if picked is not None:
        out.tool_choice = picked


def _response_format(
    request: O.ChatRequest, out: A.MessagesRequest, dropped: Dropped
) -> str | None:
    """A json_schema (or json_object) answer as a tool the model must call:
    the name of that tool, whose input the answer's content will be."""
    shape = request.response_format
    if isinstance(shape, O.JsonSchemaFormat):
        if shape.json_schema.strict is not UNSET:
            dropped.add("strict")  # the schema binds the tool's input as it stands
        name = shape.json_schema.name
        schema = shape.json_schema.schema
        if schema is UNSET:
            schema = {"type": "object"}
        description = shape.json_schema.description
        if description is UNSET:
            description = "Give your answer as this tool's input, which the JSON schema describes."
    elif isinstance(shape, O.JsonObjectFormat):
        name, schema = "json_answer", {"type": "object"}
        description = "Give your answer as this tool's input: a JSON object."
    else:
        return None
    if request.reasoning_effort not in (UNSET, None, "minimal"):
        raise Untranslatable(
            "response_format",
            "an Anthropic target cannot be made to answer in a schema while it thinks: "
            "send response_format or reasoning_effort, not both",
        )
    tools = out.tools if out.tools is not UNSET else []
    if any(tool.name == name for tool in tools):
        raise Untranslatable("response_format.json_schema.name", f"{name!r} is also a tool's name")
    answer = A.Tool(name=name, input_schema=schema, description=description)
    choice = out.tool_choice
    if not tools or isinstance(choice, A.ToolChoiceNone):
        out.tools = [answer]
        out.tool_choice = A.ToolChoiceTool(name=name)
    else:
        out.tools = [*tools, answer]
        if not isinstance(choice, A.ToolChoiceTool):
            # answer, or call a tool first: some tool call it must be
            disable = choice.disable_parallel_tool_use if choice is not UNSET else UNSET
            out.tool_choice = A.ToolChoiceAny(disable_parallel_tool_use=disable)
    return name


def _thinking(request: O.ChatRequest, out: A.MessagesRequest, dropped: Dropped) -> None:
    effort = request.reasoning_effort
    if effort in (UNSET, None, "minimal", "none"):
        return
    budget = _BUDGETS.get(str(effort))
    if budget is None:
        raise Untranslatable("reasoning_effort", "expected minimal, low, medium or high")
    assert isinstance(out.max_tokens, int)
    budget = min(budget, out.max_tokens - 1)
    if budget < _MIN_BUDGET:  # no room to think in this answer's length
        dropped.add("reasoning_effort")
        return
    if _in_a_tool_loop(out.messages):
        # Anthropic wants the thinking that led to the last tool call back
        # (its signed block), which an OpenAI conversation does not carry
        dropped.add("reasoning_effort")
        return
    if isinstance(out.tool_choice, (A.ToolChoiceAny, A.ToolChoiceTool)):
        raise Untranslatable(
            "reasoning_effort",
            "an Anthropic target cannot think while tool_choice forces a tool call: "
            "send tool_choice auto or none, or no reasoning_effort",
        )
    out.thinking = A.Thinking(type="enabled", budget_tokens=budget)
    # Anthropic samples a thinking answer its own way, and refuses these then
    # (as OpenAI's reasoning models refuse them): hints the thinking outranks
    if isinstance(out.temperature, (int, float)) and out.temperature != 1:
        out.temperature = UNSET
        dropped.add("temperature")
    if isinstance(out.top_p, (int, float)) and out.top_p < 0.95:
        out.top_p = UNSET
        dropped.add("top_p")
    if out.top_k is not UNSET:
        out.top_k = UNSET
        dropped.add("top_k")


def _in_a_tool_loop(turns: list[A.InputMessage]) -> bool:
    """Whether the last assistant turn called a tool (its results follow)."""
    for turn in reversed(turns):
        if turn.role == "assistant":
            return not isinstance(turn.content, str) and any(
                isinstance(block, A.ToolUseBlock) for block in turn.content
            )
    return False


# ---- the answer --------------------------------------------------------------------

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def chat_answer(message: A.Message, answering: Answering) -> O.ChatCompletion:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[O.AnswerToolCall] = []
    for block in message.content:
        kind = block.type
        if kind == "text":
            if block.text is not UNSET:
                texts.append(block.text)
        elif kind == "thinking":
            if block.thinking is not UNSET:
                thoughts.append(block.thinking)
        elif kind == "tool_use":
            arguments = json_text(block.input if block.input is not UNSET else {})
            if block.name == answering.schema_tool:
                texts.append(arguments)
                continue
            function = O.AnswerFunction(name=_str(block.name), arguments=arguments)
            calls.append(O.AnswerToolCall(id=_str(block.id), type="function", function=function))
    answer = O.AnswerMessage(
        role="assistant", content="".join(texts) if texts else None, refusal=None
    )
    if calls:
        answer.tool_calls = calls
    if thoughts:
        answer.reasoning_content = "".join(thoughts)
    reason = _finish_reason(message.stop_reason, bool(calls))
    choice = O.Choice(index=0, message=answer, finish_reason=reason)
    return O.ChatCompletion(
        id=message.id,
        model=message.model,
        choices=[choice],
        object="chat.completion",
        created=answering.created,
        usage=openai_usage(message.usage),
    )


def _finish_reason(stop_reason: str | None, called: bool) -> str:
    reason = FINISH_REASONS.get(stop_reason or "end_turn", "stop")
    if reason == "tool_calls" and not called:  # the schema's tool: an answer
        return "stop"
    return reason


def openai_usage(usage: A.Usage) -> O.Usage:
    read = _count(usage.cache_read_input_tokens)
    prompt = _count(usage.input_tokens) + read + _count(usage.cache_creation_input_tokens)
    output = _count(usage.output_tokens)
    found = O.Usage(prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output)
    if usage.cache_read_input_tokens is not UNSET:
        found.prompt_tokens_details = O.PromptDetails(cached_tokens=read)
    return found


def _count(value: int | msgspec.UnsetType | None) -> int:
    return value if type(value) is int else 0


def _str(value: object) -> str:
    return value if type(value) is str else ""


# ---- the stream ----------------------------------------------------------------------

_decode_event = msgspec.json.Decoder(A.Event).decode
_decode_text = msgspec.json.Decoder(str).decode

# A text delta as Anthropic writes it (compact, in this order): the most
# common event of a stream, whose text goes on as the JSON string it came
# as, unparsed.  Any other shape takes the general way.
_TEXT_DELTA = b'{"type":"content_block_delta","index":'
_TEXT_FIELD = b',"delta":{"type":"text_delta","text":'
_TEXT_END = b'},"finish_reason":null}]}\n\n'


def _text_of(data: bytes) -> bytes | None:
    """The JSON string of a text delta written as _TEXT_DELTA says, or None."""
    field = data.find(_TEXT_FIELD, len(_TEXT_DELTA))
    if field < 0 or data[-2:] != b"}}" or not data[len(_TEXT_DELTA) : field].isdigit():
        return None
    text = data[field + len(_TEXT_FIELD) : -2]
    try:
        _decode_text(text)  # one JSON string, and nothing more
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return text


_DONE = b"data: [DONE]\n\n"
_MESSAGE_STOP = b'{"type":"message_stop"}'


class ChunksFromEvents(EventStream):
    """Feed it an Anthropic stream's bytes; it hands back OpenAI's chunks.

    ``input``/``output`` are the stream's tokens (input with cache reads and
    writes, as gateway.usage counts them), for the ledger."""

    def __init__(self, answering: Answering, compiled: bool = True) -> None:
        super().__init__(fast_text.of_events if compiled else None, _TEXT_END)
        self.input = 0
        self.output = 0
        self._answering = answering
        self._head = b""  # every chunk's first members, once message_start told them
        # a text chunk's bytes before its text (its head once message_start told it)
        self._text_head = b'data: {"index":0,"delta":{"content":'
        self._usage = A.Usage(input_tokens=0, output_tokens=0)
        self._calls = 0  # tool calls begun
        self._blocks: dict[
            int, int | None
        ] = {}  # a tool_use block's index → its call's (None: the schema's)
        self._finish: str | None = None

    def _ended_by_upstream(self, out: list[bytes]) -> None:
        if not self._ended and self._head:
            self._end(out)  # the upstream ended without message_stop

    def _unreadable(self, message: str, out: list[bytes]) -> None:
        self._fail(message, "api_error", out)

    def _take(self, data: bytes, out: list[bytes]) -> None:
        if self._ended:
            return
        if data[: len(_TEXT_DELTA)] == _TEXT_DELTA and self._head:
            text = _text_of(data)
            if text is not None:
                out.append(self._text_head + text + _TEXT_END)
                return
        if data == _MESSAGE_STOP:  # the stream's end, as Anthropic writes it: nothing to read
            self._end(out)
            return
        try:
            found = _decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        kind = found.type
        if kind == "content_block_delta":
            self._delta(found, out)
        elif kind == "content_block_start":
            self._block_start(found, out)
        elif kind == "message_start" and found.message is not UNSET:
            self._start(found.message, out)
        elif kind == "message_delta":
            if found.usage is not UNSET:
                self._count(found.usage)
            delta = found.delta
            if delta is not UNSET and type(delta.stop_reason) is str:
                self._finish = _finish_reason(delta.stop_reason, self._calls > 0)
        elif kind == "message_stop":
            self._end(out)
        elif kind == "error":
            error = found.error if isinstance(found.error, dict) else {}
            message = error.get("message", "the upstream's stream failed")
            self._fail(message, error.get("type", "api_error"), out)

    def _fail(self, message: object, kind: object, out: list[bytes]) -> None:
        """The stream ends with an error, as an OpenAI-compatible server tells one."""
        self._ended = True
        self._in_text(None)
        out.append(data_only({"error": {"message": message, "type": kind}}))

    def _start(self, message: A.Message, out: list[bytes]) -> None:
        self._head = (
            b'{"id":'
            + _encode(message.id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self._answering.created).encode()
            + b',"model":'
            + _encode(message.model)
            + b',"choices":['
        )
        self._in_text(b"data: " + self._head + b'{"index":0,"delta":{"content":')
        self._count(message.usage)
        out.append(
            self._chunk(
                b'{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}'
            )
        )

    def _count(self, usage: A.Usage) -> None:
        # each figure the event gives replaces the last (a message_delta
        # often gives the output alone); field by field, not by a loop over
        # the Struct's fields: twice as fast, and this runs twice a stream
        mine = self._usage
        if usage.input_tokens is not UNSET:
            mine.input_tokens = usage.input_tokens
        if usage.output_tokens is not UNSET:
            mine.output_tokens = usage.output_tokens
        if usage.cache_read_input_tokens is not UNSET:
            mine.cache_read_input_tokens = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not UNSET:
            mine.cache_creation_input_tokens = usage.cache_creation_input_tokens
        self.input = (
            _count(mine.input_tokens)
            + _count(mine.cache_read_input_tokens)
            + _count(mine.cache_creation_input_tokens)
        )
        self.output = _count(mine.output_tokens)

    def _block_start(self, found: A.Event, out: list[bytes]) -> None:
        block = found.content_block
        if not isinstance(block, A.AnswerBlock) or block.type != "tool_use":
            return
        index = found.index if isinstance(found.index, int) else -1
        if block.name == self._answering.schema_tool:
            self._blocks[index] = None
            return
        call = self._calls
        self._calls += 1
        self._blocks[index] = call
        first = {
            "index": call,
            "id": _str(block.id),
            "type": "function",
            "function": {"name": _str(block.name), "arguments": ""},
        }
        out.append(self._delta_chunk({"tool_calls": [first]}))

    def _delta(self, found: A.Event, out: list[bytes]) -> None:
        delta = found.delta
        if delta is UNSET:
            return
        if delta.text is not UNSET:
            out.append(self._text(delta.text))
        elif delta.partial_json is not UNSET:
            index = found.index if found.index is not UNSET else -1
            if index not in self._blocks:
                return
            call = self._blocks[index]
            if call is None:
                out.append(self._text(delta.partial_json))
            else:
                piece = {"index": call, "function": {"arguments": delta.partial_json}}
                out.append(self._delta_chunk({"tool_calls": [piece]}))
        elif delta.thinking is not UNSET:
            out.append(self._delta_chunk({"reasoning_content": delta.thinking}))

    def _end(self, out: list[bytes]) -> None:
        self._ended = True
        self._in_text(None)
        finish = self._finish or "stop"
        out.append(self._chunk(b'{"index":0,"delta":{},"finish_reason":' + _encode(finish) + b"}"))
        if self._answering.include_usage:
            usage = _encode(openai_usage(self._usage))
            out.append(b"data: " + self._head + b'],"usage":' + usage + b"}\n\n")
        out.append(_DONE)

    def _chunk(self, choice: bytes) -> bytes:
        return b"data: " + self._head + choice + b"]}\n\n"

    def _text(self, text: str) -> bytes:
        # the common chunk of a stream, written without building its dict
        return self._text_head + _encode(text) + _TEXT_END

    def _delta_chunk(self, delta: dict[str, Any]) -> bytes:
        return self._chunk(b'{"index":0,"delta":' + _encode(delta) + b',"finish_reason":null}')
