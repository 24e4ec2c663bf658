"""What an answer says, whatever the dialect it is said in.

A plain request is answered "Hello from <key's name> word word ..." (the
key's ``chunks`` words, one token each).  A richer request shapes its reply
as a model would:

- Tools, not forbidden by the tool choice, and a last message from the user
  that is not (only) tool results: the reply calls tools instead of writing
  text.  ``Behaviour.tool_calls`` calls, one per tool in order (one when
  parallel calls are off); a forced tool choice calls the tool it names, or
  the first.  The arguments are the simplest document the tool's JSON
  schema accepts (`sample`).
- A last message of tool results: "Result: <the first result's text>".
- OpenAI's ``response_format``: a JSON document of its schema
  (``{"sim": true}`` for a json_object).
- Thinking (Anthropic's ``thinking``, OpenAI's ``reasoning_effort``): the
  reply thinks "Let me think." (3 tokens) first.
- A stop sequence found in the text cuts it before the sequence; a
  max_tokens under the text's tokens truncates it, thinking included
  (whichever comes first, as in generation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .chat_request import (
    ChatRequest,
    JSONObjectFormat,
    JSONSchemaFormat,
    NamedToolChoice,
    ToolMessage,
    UserMessage,
)
from .messages_request import (
    MessagesRequest,
    TextBlock,
    ThinkingEnabled,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    custom_tools,
)

if TYPE_CHECKING:
    from .behaviour import Behaviour
    from .validation import Request

THINKING = "Let me think."
THINKING_TOKENS = len(THINKING.split())
BEFORE_TOOLS = "Let me use a tool."  # the text before tool calls, when the key says so
ARGUMENT_PIECE = 8  # characters of a tool call's arguments in one stream event


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str  # the JSON text of the arguments

    def pieces(self) -> list[str]:
        """The arguments as a stream sends them, a few characters at a time."""
        text = self.arguments
        return [text[at : at + ARGUMENT_PIECE] for at in range(0, len(text), ARGUMENT_PIECE)]


@dataclass
class Reply:
    pieces: list[str]  # the text, token by token: "Hello", " from", ...
    calls: list[Call] = field(default_factory=list)
    ending: str = "end"  # end | stop (a stop sequence) | length (max_tokens) | tools
    stop_sequence: str | None = None
    thinking: bool = False  # it thinks first
    choices: int = 1  # OpenAI's n: as many choices, alike

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        """The tokens of one choice: text, tool calls and thinking."""
        called = sum(len(call.pieces()) for call in self.calls)
        return len(self.pieces) + called + (THINKING_TOKENS if self.thinking else 0)


def compose(request: Request | None, behaviour: Behaviour, name: str) -> Reply:
    """The reply to `request` (None: a body not read, such as an embedding's)."""
    hello = f"Hello from {name}".split() + ["word"] * max(behaviour.chunks - 3, 0)
    if isinstance(request, ChatRequest):
        return _chat(request, behaviour, hello)
    if isinstance(request, MessagesRequest):
        return _messages(request, behaviour, hello)
    return Reply(_pieces(hello))


def _chat(request: ChatRequest, behaviour: Behaviour, hello: list[str]) -> Reply:
    thinking = request.reasoning_effort is not None
    choices = request.n or 1
    tools, choice, last = request.tools or [], request.tool_choice, request.messages[-1]
    if tools and choice != "none" and isinstance(last, UserMessage):
        if isinstance(choice, NamedToolChoice):
            chosen = [tool for tool in tools if tool.function.name == choice.function.name]
        else:
            count = 1 if request.parallel_tool_calls is False else behaviour.tool_calls
            chosen = tools[:count]
        calls = [Call(tool.function.name, _arguments(tool.function.parameters)) for tool in chosen]
        return _calling(calls, behaviour, thinking, choices)
    if isinstance(last, ToolMessage):
        first = len(request.messages) - 1
        while first > 0 and isinstance(request.messages[first - 1], ToolMessage):
            first -= 1
        result = request.messages[first]
        assert isinstance(result, ToolMessage)
        content = result.content
        said = content if isinstance(content, str) else "".join(p.text for p in content[:1])
        pieces = _pieces(f"Result: {said}".split(" "))
    elif isinstance(request.response_format, JSONSchemaFormat):
        pieces = _chunks(_encoded(sample(request.response_format.json_schema.schema or {})))
    elif isinstance(request.response_format, JSONObjectFormat):
        pieces = _chunks(_encoded({"sim": True}))
    else:
        pieces = _pieces(hello)
    stops = [request.stop] if isinstance(request.stop, str) else request.stop or []
    most = request.max_completion_tokens or request.max_tokens
    return _ended(pieces, stops, most, thinking, choices)


def _messages(request: MessagesRequest, behaviour: Behaviour, hello: list[str]) -> Reply:
    thinking = isinstance(request.thinking, ThinkingEnabled)
    tools, choice, last = custom_tools(request), request.tool_choice, request.messages[-1]
    blocks = [] if isinstance(last.content, str) else last.content
    results = [block for block in blocks if isinstance(block, ToolResultBlock)]
    asking = last.role == "user" and len(results) < max(len(blocks), 1)
    if tools and not isinstance(choice, ToolChoiceNone) and asking:
        if isinstance(choice, ToolChoiceTool):
            chosen = [tool for tool in tools if tool["name"] == choice.name]
        else:
            single = getattr(choice, "disable_parallel_tool_use", None)
            chosen = tools[: 1 if single else behaviour.tool_calls]
        calls = [Call(tool["name"], _arguments(tool["input_schema"])) for tool in chosen]
        return _calling(calls, behaviour, thinking, 1)
    if results:
        content = results[0].content
        if isinstance(content, list):
            content = next((b.text for b in content if isinstance(b, TextBlock)), "")
        pieces = _pieces(f"Result: {content or ''}".split(" "))
    else:
        pieces = _pieces(hello)
    return _ended(pieces, request.stop_sequences or [], request.max_tokens, thinking, 1)


def _calling(calls: list[Call], behaviour: Behaviour, thinking: bool, choices: int) -> Reply:
    words = BEFORE_TOOLS.split() if behaviour.text_before_tools else []
    return Reply(_pieces(words), calls, "tools", thinking=thinking, choices=choices)


def _ended(
    pieces: list[str], stops: list[str], most: int | None, thinking: bool, choices: int
) -> Reply:
    """The text as generation leaves it: cut before the first stop sequence
    it wrote, or at max_tokens (thinking's tokens count against it)."""
    budget = None if most is None else max(most - (THINKING_TOKENS if thinking else 0), 0)
    allowed = pieces if budget is None else pieces[:budget]
    text, reach = "".join(pieces), len("".join(allowed))
    found = sorted((text.find(stop), stop) for stop in stops if stop and stop in text)
    if found and found[0][0] + len(found[0][1]) <= reach:
        at, stop = found[0]
        return Reply(_cut(pieces, at), [], "stop", stop, thinking, choices)
    if len(allowed) < len(pieces):
        return Reply(allowed, [], "length", None, thinking, choices)
    return Reply(pieces, [], "end", None, thinking, choices)


def _cut(pieces: list[str], at: int) -> list[str]:
    """The pieces of the text's first `at` characters (the last one partly)."""
    kept: list[str] = []
    for piece in pieces:
        room = at - sum(len(p) for p in kept)
        if room <= 0:
            break
        kept.append(piece[:room])
    return kept


def _pieces(words: list[str]) -> list[str]:
    """Words as tokens: "Hello", " from", " alpha"."""
    return [word if n == 0 else " " + word for n, word in enumerate(words)]


def _chunks(text: str) -> list[str]:
    return [text[at : at + ARGUMENT_PIECE] for at in range(0, len(text), ARGUMENT_PIECE)]


def _encoded(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _arguments(schema: dict[str, Any] | None) -> str:
    return _encoded(sample(schema or {"type": "object"}))


_SIMPLEST = {"string": "sim", "integer": 1, "number": 1.5, "boolean": True, "null": None}


def sample(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """The simplest value a JSON schema accepts: "sim", 1, 1.5, true, [],
    an object of its required properties; an enum's first value; the first
    choice of anyOf/oneOf that is not null; $ref followed."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:  # 32: a recursive schema stops somewhere
        return None
    if isinstance(schema.get("$ref"), str):
        target: Any = root
        for step in schema["$ref"].removeprefix("#/").split("/"):
            target = target.get(step, {}) if isinstance(target, dict) else {}
        return sample(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [option for option in schema.get(key) or [] if option != {"type": "null"}]
        if options:
            return sample(options[0], root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind in _SIMPLEST:
        return _SIMPLEST[kind]
    if kind == "array":
        return []
    if kind == "object":
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required") or [] if name in properties]
        return {name: sample(properties[name], root, depth + 1) for name in required}
    return None
