"""The body of OpenAI's /v1/chat/completions, as the API reads it: its
parameters, messages and content parts, each refusing fields it does not
know, with the API's bounds; and the rules that span messages (each tool
call answered by a tool message before anything else, each tool message
answering a call; a tool_choice among the tools).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from msgspec import Meta

from .refusals import Invalid, Strict

PositiveInt = Annotated[int, Meta(ge=1)]


class TextPart(Strict, tag_field="type", tag="text"):
    text: str


class ImageURL(Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Strict, tag_field="type", tag="image_url"):
    image_url: ImageURL


class InputAudio(Strict):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(Strict, tag_field="type", tag="input_audio"):
    input_audio: InputAudio


class FileData(Strict):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(Strict, tag_field="type", tag="file"):
    file: FileData


class RefusalPart(Strict, tag_field="type", tag="refusal"):
    refusal: str


class FunctionCall(Strict):
    name: str
    arguments: str  # the JSON text of the arguments, never an object


class ToolCall(Strict):
    id: str
    type: Literal["function"]
    function: FunctionCall


# OpenAI takes no empty array of content parts
_Texts = Annotated[list[TextPart], Meta(min_length=1)]


class SystemMessage(Strict, tag_field="role", tag="system"):
    content: str | _Texts
    name: str | None = None


class DeveloperMessage(Strict, tag_field="role", tag="developer"):
    content: str | _Texts
    name: str | None = None


class UserMessage(Strict, tag_field="role", tag="user"):
    content: str | Annotated[list[TextPart | ImagePart | AudioPart | FilePart], Meta(min_length=1)]
    name: str | None = None


class AssistantMessage(Strict, tag_field="role", tag="assistant"):
    content: str | list[TextPart | RefusalPart] | None = None
    tool_calls: Annotated[list[ToolCall], Meta(min_length=1)] | None = None
    refusal: str | None = None
    name: str | None = None
    audio: Any = None
    function_call: Any = None  # deprecated, still accepted


class ToolMessage(Strict, tag_field="role", tag="tool"):
    tool_call_id: str
    content: str | _Texts


ChatMessage = Union[SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage]


class Function(Strict):
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Strict):
    type: Literal["function"]
    function: Function


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"]
    function: NamedFunction


class TextFormat(Strict, tag_field="type", tag="text"):
    pass


class JSONObjectFormat(Strict, tag_field="type", tag="json_object"):
    pass


class JSONSchema(Strict):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JSONSchemaFormat(Strict, tag_field="type", tag="json_schema"):
    json_schema: JSONSchema


class StreamOptions(Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(Strict):
    model: str
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    tools: Annotated[list[Tool], Meta(min_length=1)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: TextFormat | JSONObjectFormat | JSONSchemaFormat | None = None
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    n: PositiveInt | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    # documented, and taken as they come: nothing here depends on them
    seed: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    service_tier: Any = None
    store: Any = None
    modalities: Any = None
    prediction: Any = None
    audio: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    prompt_cache_key: Any = None
    safety_identifier: Any = None
    functions: Any = None  # deprecated, still accepted
    function_call: Any = None


STREAM_OPTIONS = "The 'stream_options' parameter is only allowed when 'stream' is enabled."


def check_chat(request: ChatRequest) -> None:
    """The rules no field's type tells: stream_options with stream, a tool
    choice among the tools, the tool calls and their answers."""
    if request.stream_options is not None and not request.stream:
        raise Invalid(STREAM_OPTIONS, "stream_options")
    for name in ("tool_choice", "parallel_tool_calls"):
        if getattr(request, name) is not None and not request.tools:
            only = f"'{name}' is only allowed when 'tools' are specified."
            raise Invalid(f"Invalid value for '{name}': {only}", name)
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        names = [tool.function.name for tool in request.tools or []]
        if choice.function.name not in names:
            message = (
                f"Invalid value for 'tool_choice': function '{choice.function.name}'"
                " is not among the functions in 'tools'."
            )
            raise Invalid(message, "tool_choice", "invalid_value")
    _check_tool_messages(request.messages)


def _check_tool_messages(messages: list[ChatMessage]) -> None:
    """Each assistant message with tool_calls is followed by a tool message
    for each call before any other message; a tool message answers a call."""
    waiting: list[str] = []  # the calls of the last assistant message not answered yet
    asked_at = 0
    for at, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            if message.tool_call_id not in waiting:
                raise Invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a"
                    " preceeding message with 'tool_calls'.",  # sic: OpenAI's spelling
                    f"messages.[{at}].role",
                )
            waiting.remove(message.tool_call_id)
            continue
        if waiting:
            break
        if isinstance(message, AssistantMessage):
            if message.tool_calls:
                waiting = [call.id for call in message.tool_calls]
                asked_at = at
            elif _says_nothing(message):
                null = "Invalid value for 'content': expected a string, got null."
                raise Invalid(null, f"messages.[{at}].content")
    if waiting:
        raise Invalid(
            "An assistant message with 'tool_calls' must be followed by tool messages"
            " responding to each 'tool_call_id'. The following tool_call_ids did not have"
            f" response messages: {', '.join(waiting)}",
            f"messages.[{asked_at}].role",
        )


def _says_nothing(message: AssistantMessage) -> bool:
    """An assistant message with neither content nor any stand-in for it."""
    said = (message.content, message.refusal, message.function_call, message.audio)
    return all(part is None for part in said)
