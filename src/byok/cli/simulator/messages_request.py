"""The body of Anthropic's /v1/messages (and /v1/messages/count_tokens, the
same less max_tokens and stream), as the API reads it: its parameters,
messages and content blocks, each refusing fields it does not know, with
the API's bounds; and the rules that span blocks and turns (blocks only in
the turns that may hold them, each tool_use answered in the next turn,
thinking's budget under max_tokens).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from msgspec import Meta, Struct

from .refusals import Invalid, Strict, decode

PositiveInt = Annotated[int, Meta(ge=1)]


class CacheControl(Strict):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(Strict, tag_field="type", tag="text"):
    text: str
    cache_control: CacheControl | None = None
    citations: Any = None


class Base64Source(Strict, tag_field="type", tag="base64"):
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLSource(Strict, tag_field="type", tag="url"):
    url: str


class ImageBlock(Strict, tag_field="type", tag="image"):
    source: Base64Source | URLSource
    cache_control: CacheControl | None = None


class DocumentBlock(Struct, tag_field="type", tag="document"):
    """Accepted as it comes: nothing here reads documents."""


class ToolUseBlock(Strict, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None


class ToolResultBlock(Strict, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: CacheControl | None = None


class ThinkingBlock(Strict, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class RedactedThinkingBlock(Strict, tag_field="type", tag="redacted_thinking"):
    data: str


Block = Union[
    TextBlock,
    ImageBlock,
    DocumentBlock,
    ToolUseBlock,
    ToolResultBlock,
    ThinkingBlock,
    RedactedThinkingBlock,
]


class Message(Strict):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Metadata(Strict):
    user_id: str | None = None


class ToolChoiceAuto(Strict, tag_field="type", tag="auto"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Strict, tag_field="type", tag="any"):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Strict, tag_field="type", tag="none"):
    pass


class ToolChoiceTool(Strict, tag_field="type", tag="tool"):
    name: str
    disable_parallel_tool_use: bool | None = None


class ThinkingEnabled(Strict, tag_field="type", tag="enabled"):
    budget_tokens: Annotated[int, Meta(ge=1024)]


class ThinkingDisabled(Strict, tag_field="type", tag="disabled"):
    pass


class InputSchema(Struct):
    """A JSON Schema of an object (its other keywords pass as they come)."""

    type: Literal["object"]
    properties: dict[str, Any] | None = None
    required: list[str] | None = None


class CustomTool(Strict):
    """A tool of the client's own; server tools (with another `type`) pass."""

    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,128}$")]
    input_schema: InputSchema
    description: str | None = None
    cache_control: CacheControl | None = None
    type: Literal["custom"] | None = None


class CountTokensRequest(Strict, kw_only=True):
    model: str
    messages: Annotated[list[Message], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    # dicts, each decoded on its own: a union cannot tell a custom tool
    # (often without a `type`) from a server tool
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoiceAuto | ToolChoiceAny | ToolChoiceNone | ToolChoiceTool | None = None
    thinking: ThinkingEnabled | ThinkingDisabled | None = None
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    metadata: Metadata | None = None
    service_tier: Any = None
    container: Any = None
    mcp_servers: Any = None


class MessagesRequest(CountTokensRequest, kw_only=True):
    max_tokens: PositiveInt
    stream: bool | None = None


def custom_tools(request: CountTokensRequest) -> list[dict[str, Any]]:
    """The request's tools of the client's own, as sent (server tools left
    out); each one a valid `CustomTool` once `check_messages` passed."""
    return [tool for tool in request.tools or [] if _is_custom(tool)]


def _is_custom(tool: dict[str, Any]) -> bool:
    return bool(tool.get("type", "custom") == "custom")


_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def check_messages(request: CountTokensRequest) -> None:
    """The rules no field's type tells: the custom tools' shape, the tool
    choice among them, thinking's budget and company, the turns."""
    for at, tool in enumerate(request.tools or []):
        if _is_custom(tool):
            decode("anthropic", CustomTool, tool, ("tools", at, "custom"))
    choice = request.tool_choice
    names = [tool["name"] for tool in custom_tools(request)]
    if isinstance(choice, ToolChoiceTool) and choice.name not in names:
        raise Invalid(f"tool_choice.tool.name: Tool '{choice.name}' not found in tools")
    thinking = request.thinking
    if isinstance(thinking, ThinkingEnabled):
        if isinstance(request, MessagesRequest) and request.max_tokens <= thinking.budget_tokens:
            raise Invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our"
                f" documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
            )
        if request.temperature is not None and request.temperature != 1:
            raise Invalid(
                "`temperature` may only be set to 1 when thinking is enabled. Please consult"
                f" our documentation at {_THINKING_DOCS}#feature-compatibility"
            )
        if isinstance(choice, (ToolChoiceAny, ToolChoiceTool)):
            raise Invalid("Thinking may not be enabled when tool_choice forces tool use.")
    if isinstance(request.system, list) and any(not block.text for block in request.system):
        raise Invalid("system: text content blocks must be non-empty")
    _check_turns(request.messages, isinstance(thinking, ThinkingEnabled))


def _check_turns(messages: list[Message], thinking: bool) -> None:
    """Blocks only in the turns that may hold them; content in every turn
    but a final assistant one; each tool_use answered at the start of the
    next turn, and each tool_result answering the turn before."""
    asked: list[str] = []  # the tool_use ids of the previous assistant turn
    for at, message in enumerate(messages):
        blocks = [] if isinstance(message.content, str) else message.content
        last = at == len(messages) - 1
        if message.content in ("", []) and not (last and message.role == "assistant"):
            raise Invalid(
                f"messages.{at}: all messages must have non-empty content except for the"
                " optional final assistant message"
            )
        for index, block in enumerate(blocks):
            _check_block(message.role, block, f"messages.{at}.content.{index}")
        answered = _leading_results(blocks)
        for index, block in enumerate(blocks):
            if isinstance(block, ToolResultBlock) and block.tool_use_id not in asked:
                raise Invalid(
                    f"messages.{at}.content.{index}: unexpected `tool_use_id` found in"
                    f" `tool_result` blocks: {block.tool_use_id}. Each `tool_result` block"
                    " must have a corresponding `tool_use` block in the previous message."
                )
        if missing := [id_ for id_ in asked if id_ not in answered]:
            raise _unanswered(at - 1, missing)
        asked = [b.id for b in blocks if isinstance(b, ToolUseBlock)]
        if thinking and answered and last and at >= 1:
            _check_thinking_first(messages[at - 1], at - 1)
    if asked:
        raise _unanswered(len(messages) - 1, asked)


def _unanswered(at: int, ids: list[str]) -> Invalid:
    return Invalid(
        f"messages.{at}: `tool_use` ids were found without `tool_result` blocks immediately"
        f" after: {', '.join(ids)}. Each `tool_use` block must have a corresponding"
        " `tool_result` block in the next message."
    )


def _leading_results(blocks: list[Block]) -> list[str]:
    """The ids the turn's tool_result blocks answer: those before anything
    else in it (a result after text answers nothing, as the API reads it)."""
    answered = []
    for block in blocks:
        if not isinstance(block, ToolResultBlock):
            break
        answered.append(block.tool_use_id)
    return answered


_ASSISTANT_ONLY = (ToolUseBlock, ThinkingBlock, RedactedThinkingBlock)


def _check_block(role: str, block: Block, where: str) -> None:
    """A block in a turn that may hold it, text not empty."""
    if isinstance(block, TextBlock) and not block.text:
        raise Invalid("messages: text content blocks must be non-empty")
    kind = type(block).__struct_config__.tag
    if role == "user" and isinstance(block, _ASSISTANT_ONLY):
        raise Invalid(f"{where}: `{kind}` blocks may only be in `assistant` messages")
    if role == "assistant" and isinstance(block, ToolResultBlock):
        raise Invalid(f"{where}: `{kind}` blocks may only be in `user` messages")


def _check_thinking_first(message: Message, at: int) -> None:
    """With thinking on, the assistant turn whose tools were just answered
    must start with its thinking, as the model wrote it."""
    blocks = [] if isinstance(message.content, str) else message.content
    if blocks and isinstance(blocks[0], (ThinkingBlock, RedactedThinkingBlock)):
        return
    found = type(blocks[0]).__struct_config__.tag if blocks else "text"
    raise Invalid(
        f"messages.{at}.content.0.type: Expected `thinking` or `redacted_thinking`, but found"
        f" `{found}`. When `thinking` is enabled, a final `assistant` message must start with"
        " a thinking block (preceeding the lastmost set of `tool_use` and `tool_result`"
        " blocks). We recommend you include thinking blocks from previous turns. To avoid"
        " this requirement, disable `thinking`. Please consult our documentation at"
        f" {_THINKING_DOCS}"
    )
