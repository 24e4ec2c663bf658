"""The shapes of Anthropic's Messages API that byok translates from and to.

A request is decoded strictly, as Anthropic's API reads it (an unknown field
is refused, never dropped unseen: it might change what the answer means).
An answer or a stream event is decoded leniently: an upstream adds fields
over time, and what byok does not read it need not understand.  A field that
is absent stays UNSET, and is absent again when encoded, so that a request
translated there and back is the request the client sent.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

# ---- requests: strict --------------------------------------------------------------


class _In(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    pass


class Base64Source(_In, tag_field="type", tag="base64"):
    media_type: str
    data: str


class UrlSource(_In, tag_field="type", tag="url"):
    url: str


class TextBlock(_In, tag_field="type", tag="text"):
    text: str
    cache_control: Any = UNSET  # a hint: dropped
    citations: Any = UNSET  # of an earlier answer's text: dropped


class ImageBlock(_In, tag_field="type", tag="image"):
    source: Base64Source | UrlSource
    cache_control: Any = UNSET


class DocumentBlock(_In, tag_field="type", tag="document"):
    # base64 (a PDF), text, url, content: read by hand, so that a source
    # with no OpenAI equivalent is refused by name
    source: dict[str, Any]
    title: str | UnsetType | None = UNSET
    context: str | UnsetType | None = UNSET
    citations: Any = UNSET
    cache_control: Any = UNSET


class ToolUseBlock(_In, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: Any = UNSET


class ToolResultBlock(_In, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | UnsetType = UNSET
    is_error: bool | UnsetType = UNSET
    cache_control: Any = UNSET


class ThinkingBlock(_In, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class RedactedThinkingBlock(_In, tag_field="type", tag="redacted_thinking"):
    data: str


RequestBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class InputMessage(_In):
    role: Literal["user", "assistant"]
    content: str | list[RequestBlock]


class Tool(_In):
    name: str
    input_schema: dict[str, Any] | UnsetType = UNSET
    description: str | UnsetType = UNSET
    # "custom" for a tool the client runs; a server tool (web_search_..., bash_...)
    # has no OpenAI equivalent and is refused by name
    type: str | UnsetType | None = UNSET
    cache_control: Any = UNSET
    # Anthropic's fine-grained tool streaming: a hint
    eager_input_streaming: Any = UNSET


class ToolChoiceAuto(_In, tag_field="type", tag="auto"):
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceAny(_In, tag_field="type", tag="any"):
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceTool(_In, tag_field="type", tag="tool"):
    name: str
    disable_parallel_tool_use: bool | UnsetType = UNSET


class ToolChoiceNone(_In, tag_field="type", tag="none"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Thinking(_In):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | UnsetType = UNSET


class Metadata(_In):
    user_id: str | UnsetType | None = UNSET


class MessagesRequest(_In):
    model: str
    messages: list[InputMessage]
    max_tokens: int | UnsetType = UNSET  # required by /v1/messages, not by count_tokens
    system: str | list[TextBlock] | UnsetType = UNSET
    stop_sequences: list[str] | UnsetType = UNSET
    stream: bool | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    tool_choice: ToolChoice | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    thinking: Thinking | UnsetType = UNSET
    service_tier: Any = UNSET  # a hint: dropped


# ---- answers and stream events: lenient ----------------------------------------------


class _Out(msgspec.Struct, gc=False):
    pass


class AnswerBlock(_Out):
    """A content block of an answer, of any type (the fields of each are optional)."""

    type: str
    text: str | UnsetType = UNSET
    thinking: str | UnsetType = UNSET
    signature: str | UnsetType = UNSET
    data: str | UnsetType = UNSET
    id: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    input: Any = UNSET


class Usage(_Out):
    input_tokens: int | UnsetType | None = UNSET  # a message_delta may carry only the output
    output_tokens: int | UnsetType | None = UNSET
    cache_creation_input_tokens: int | UnsetType | None = UNSET
    cache_read_input_tokens: int | UnsetType | None = UNSET


class Message(_Out):
    id: str
    model: str
    content: list[AnswerBlock]
    usage: Usage
    type: str = "message"
    role: str = "assistant"
    stop_reason: str | None = None
    stop_sequence: str | None = None


class Delta(_Out):
    """The delta of a content_block_delta, or of a message_delta."""

    type: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    thinking: str | UnsetType = UNSET
    signature: str | UnsetType = UNSET
    partial_json: str | UnsetType = UNSET
    stop_reason: str | UnsetType | None = UNSET
    stop_sequence: str | UnsetType | None = UNSET


class Event(_Out):
    """One event of a stream: the fields of every type, optional."""

    type: str
    message: Message | UnsetType = UNSET  # message_start
    index: int | UnsetType = UNSET
    content_block: AnswerBlock | UnsetType = UNSET  # content_block_start
    delta: Delta | UnsetType = UNSET  # content_block_delta, message_delta
    usage: Usage | UnsetType = UNSET  # message_delta
    error: Any = UNSET  # error


class ErrorBody(_Out):
    error: Any = UNSET
