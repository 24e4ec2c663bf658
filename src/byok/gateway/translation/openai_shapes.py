"""The shapes of OpenAI's Chat Completions API that byok translates from and to.

As with anthropic_shapes: a request is decoded strictly (a field byok does
not know is refused by name), an answer or a stream chunk leniently; absent
fields stay UNSET and absent.  OpenAI takes ``null`` for most optional
request fields, and clients send it (LangChain's ``"stop": null``), so the
request's optional fields take None too.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

# ---- requests: strict --------------------------------------------------------------


class _In(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    pass


class TextPart(_In, tag_field="type", tag="text"):
    text: str


class ImageUrl(_In):
    url: str
    detail: str | UnsetType = UNSET  # a hint: dropped by an Anthropic target


class ImagePart(_In, tag_field="type", tag="image_url"):
    image_url: ImageUrl


class AudioPart(_In, tag_field="type", tag="input_audio"):
    input_audio: dict[str, Any]


class FileRef(_In):
    file_data: str | UnsetType = UNSET
    file_id: str | UnsetType = UNSET
    filename: str | UnsetType = UNSET


class FilePart(_In, tag_field="type", tag="file"):
    file: FileRef


class RefusalPart(_In, tag_field="type", tag="refusal"):
    refusal: str


UserPart = TextPart | ImagePart | AudioPart | FilePart


class FunctionCall(_In):
    name: str
    arguments: str


class ToolCall(_In):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(_In, tag_field="role", tag="system"):
    content: str | list[TextPart]
    name: str | UnsetType = UNSET


class DeveloperMessage(_In, tag_field="role", tag="developer"):
    content: str | list[TextPart]
    name: str | UnsetType = UNSET


class UserMessage(_In, tag_field="role", tag="user"):
    content: str | list[UserPart]
    name: str | UnsetType = UNSET


class AssistantMessage(_In, tag_field="role", tag="assistant"):
    content: str | list[TextPart | RefusalPart] | UnsetType | None = UNSET
    tool_calls: list[ToolCall] | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    name: str | UnsetType = UNSET
    # what some OpenAI-compatible servers answer (DeepSeek, vLLM), sent back
    # by clients that keep the whole message
    reasoning_content: str | UnsetType | None = UNSET


class ToolMessage(_In, tag_field="role", tag="tool"):
    tool_call_id: str
    content: str | list[TextPart]


ChatMessage = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDef(_In):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class Tool(_In):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_In):
    name: str


class NamedToolChoice(_In):
    type: Literal["function"]
    function: NamedFunction


class JsonSchema(_In):
    name: str
    schema: dict[str, Any] | UnsetType = UNSET
    description: str | UnsetType = UNSET
    strict: bool | UnsetType | None = UNSET


class TextFormat(_In, tag_field="type", tag="text"):
    pass


class JsonObjectFormat(_In, tag_field="type", tag="json_object"):
    pass


class JsonSchemaFormat(_In, tag_field="type", tag="json_schema"):
    json_schema: JsonSchema


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


class StreamOptions(_In):
    include_usage: bool | UnsetType | None = UNSET
    include_obfuscation: bool | UnsetType | None = UNSET  # a hint


class ChatRequest(_In):
    model: str
    messages: list[ChatMessage]
    max_tokens: int | UnsetType | None = UNSET
    max_completion_tokens: int | UnsetType | None = UNSET
    n: int | UnsetType | None = UNSET
    stop: str | list[str] | UnsetType | None = UNSET
    temperature: float | UnsetType | None = UNSET
    top_p: float | UnsetType | None = UNSET
    stream: bool | UnsetType | None = UNSET
    stream_options: StreamOptions | UnsetType | None = UNSET
    tools: list[Tool] | UnsetType | None = UNSET
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | UnsetType | None = UNSET
    parallel_tool_calls: bool | UnsetType | None = UNSET
    response_format: ResponseFormat | UnsetType | None = UNSET
    user: str | UnsetType | None = UNSET
    reasoning_effort: str | UnsetType | None = UNSET
    # top_k: not OpenAI's, but what OpenAI-compatible servers (vLLM, Ollama) take
    top_k: int | UnsetType | None = UNSET
    # fields that do not change what the answer means, dropped by an
    # Anthropic target; any other field is refused there, by name
    metadata: Any = UNSET
    store: Any = UNSET
    seed: Any = UNSET
    presence_penalty: Any = UNSET
    frequency_penalty: Any = UNSET
    logit_bias: Any = UNSET
    service_tier: Any = UNSET
    prediction: Any = UNSET
    safety_identifier: Any = UNSET
    prompt_cache_key: Any = UNSET
    verbosity: Any = UNSET
    # fields that change the answer's shape: refused by an Anthropic target
    logprobs: bool | UnsetType | None = UNSET
    top_logprobs: int | UnsetType | None = UNSET
    modalities: list[str] | UnsetType | None = UNSET


# ---- answers and stream chunks: lenient ----------------------------------------------


class _Out(msgspec.Struct, gc=False):
    pass


class AnswerFunction(_Out):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class AnswerToolCall(_Out):
    """A tool call of an answer, or a piece of one in a stream's delta."""

    index: int | UnsetType = UNSET
    id: str | UnsetType | None = UNSET
    type: str | UnsetType | None = UNSET
    function: AnswerFunction | UnsetType = UNSET


class AnswerMessage(_Out):
    """A choice's message, or a stream chunk's delta."""

    role: str | UnsetType | None = UNSET
    content: str | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[AnswerToolCall] | UnsetType | None = UNSET
    reasoning_content: str | UnsetType | None = UNSET


class Choice(_Out):
    index: int = 0
    message: AnswerMessage | UnsetType = UNSET
    delta: AnswerMessage | UnsetType = UNSET  # in a stream chunk
    finish_reason: str | None = None
    # vLLM's: the stop string that ended the answer (OpenAI says only "stop")
    stop_reason: str | int | UnsetType | None = UNSET
    logprobs: Any = None


class PromptDetails(_Out):
    cached_tokens: int | UnsetType | None = UNSET


class CompletionDetails(_Out):
    reasoning_tokens: int | UnsetType | None = UNSET


class Usage(_Out):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    prompt_tokens_details: PromptDetails | UnsetType | None = UNSET
    completion_tokens_details: CompletionDetails | UnsetType | None = UNSET


class ChatCompletion(_Out):
    """A whole answer, or one chunk of a stream (`object` tells which)."""

    id: str = ""
    model: str = ""
    choices: list[Choice] = []
    object: str = "chat.completion"
    created: int = 0
    usage: Usage | UnsetType | None = UNSET
    system_fingerprint: str | UnsetType | None = UNSET
    error: Any = UNSET  # an OpenAI-compatible server's error in a stream


class ChunkChoice(_Out):
    """A stream chunk's choice: what its translation reads (a chunk is
    decoded per delta, and each field left out is one less to build)."""

    index: int = 0
    delta: AnswerMessage | UnsetType = UNSET
    finish_reason: str | None = None
    stop_reason: str | int | UnsetType | None = UNSET  # vLLM's, as in Choice


class Chunk(_Out):
    """One chunk of a stream, as its translation reads it."""

    id: str = ""
    model: str = ""
    choices: list[ChunkChoice] = []
    usage: Usage | UnsetType | None = UNSET
    error: Any = UNSET  # an OpenAI-compatible server's error in a stream


class ErrorBody(_Out):
    error: Any = UNSET
