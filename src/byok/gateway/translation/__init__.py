"""Translation between OpenAI's Chat Completions and Anthropic's Messages:
any client on any key, and fallbacks that cross providers.

Theory of operation
-------------------
A route whose target speaks the other API (routing.py) carries a crossing:
``messages→chat`` (an Anthropic client, an OpenAI or OpenAI-compatible
target) or ``chat→messages`` (the reverse).  At admission the proxy asks for
a ``Translation`` per crossing and target traits: the client's body is
decoded once, strictly, into msgspec Structs and translated into the
target's request, which is encoded per attempt with the target's upstream
model.  A request that cannot be translated faithfully raises
``Untranslatable`` naming the field: the proxy leaves that route out, and
answers 400 with the reason when no route is left.  The hints a translation
drops are counted (``Translation.dropped``).

The answer goes back the other way: a whole body through ``answer``, an
error body through ``error`` (the client's dialect, the upstream's status
and message), a stream through the incremental state machine that
``stream`` makes, fed the upstream's bytes as they come and handing back
the client's events (it counts the usage on the way, as gateway.usage does
for a stream relayed as it is).

Every function here is pure: no I/O, no clock (the caller passes the time).
The two directions are told in messages_via_chat.py and chat_via_messages.py.
Text, the commonest thing to cross, takes a compiled path (fast_text.py:
a whole answer of text, and a stream's events of text, see streams.py),
held to the Python path, which takes everything else and all of it where
the extension is not built.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Literal

import msgspec

from ...providers import ProviderKind
from .. import dialects
from . import anthropic_shapes as A
from . import fast_text
from . import openai_shapes as O
from .chat_via_messages import Answering, ChunksFromEvents, chat_answer, messages_request
from .common import Dropped, Untranslatable, decode_error
from .messages_via_chat import (
    BadAnswer,
    ChatTarget,
    EventsFromChunks,
    chat_request,
    message_answer,
    server_tool,
)

__all__ = [
    "BadAnswer",
    "ChatTarget",
    "Crossing",
    "Translation",
    "Untranslatable",
    "chat_target",
    "crossing",
    "estimate_input_tokens",
]

Crossing = Literal["messages→chat", "chat→messages"]
MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
COUNT_TOKENS = "/v1/messages/count_tokens"

# the crossings there are: (client path, target dialect) → (crossing, upstream path)
_CROSSINGS: dict[tuple[str, str], tuple[Crossing, str]] = {
    (MESSAGES, "openai"): ("messages→chat", CHAT),
    (CHAT, "anthropic"): ("chat→messages", MESSAGES),
    # counted by byok, not sent: no OpenAI endpoint counts a Messages request
    (COUNT_TOKENS, "openai"): ("messages→chat", ""),
}


def crossing(path: str, kind: ProviderKind) -> tuple[Crossing, str] | None:
    """How a target of `kind` serves the client's `path` in the other API:
    (crossing, upstream path: "" when byok answers itself), or None."""
    return _CROSSINGS.get((path, kind.dialect))


# OpenAI's models that take reasoning_effort: the o-series and GPT-5
_REASONING_MODELS = re.compile(r"^(o\d|gpt-5)")


def chat_target(kind: ProviderKind, upstream_model: str, reasoning: bool | None) -> ChatTarget:
    """The traits of a Chat Completions target: OpenAI's own API, or a server
    that copies it (vLLM, Ollama, ...).  `reasoning`: the provider's setting
    (None: OpenAI's reasoning models by name; an OpenAI-compatible server takes none).
    One object per value, asked for per translated request: cached."""
    return _chat_target(kind.name, upstream_model, reasoning)


@lru_cache(maxsize=256)
def _chat_target(kind: str, upstream_model: str, reasoning: bool | None) -> ChatTarget:
    if kind == "openai":
        takes = (
            _REASONING_MODELS.match(upstream_model) is not None if reasoning is None else reasoning
        )
        return ChatTarget(
            "max_completion_tokens", takes, top_k=False, max_stop=4, name="an OpenAI target"
        )
    return ChatTarget(
        "max_tokens", bool(reasoning), top_k=True, max_stop=None, name="an OpenAI-compatible target"
    )


_decode_messages = msgspec.json.Decoder(A.MessagesRequest).decode
_decode_chat = msgspec.json.Decoder(O.ChatRequest).decode
_decode_message = msgspec.json.Decoder(A.Message).decode
_decode_completion = msgspec.json.Decoder(O.ChatCompletion).decode
_encode = msgspec.json.Encoder().encode


class Translation(msgspec.Struct, gc=False):
    """One client request as a target of the other API takes it.  (A Struct,
    not a dataclass, for its __init__ in C: one is made per request.)"""

    crossing: Crossing
    upstream_path: str
    dropped: Dropped
    request: A.MessagesRequest | O.ChatRequest  # the target's, model left to body()
    answering: Answering | None = None  # chat→messages: what the answer needs
    client_request: A.MessagesRequest | None = None  # messages→chat: for count_tokens
    reported: bool = False

    def unreported_drops(self) -> list[str]:
        """The hints it dropped, the first time it is asked (once a request)."""
        if self.reported:
            return []
        self.reported = True
        return self.dropped

    @classmethod
    def of(
        cls, body: bytes, path: str, crossing: Crossing, target: ChatTarget | None, created: int
    ) -> Translation:
        """The client's `body` for `path`, translated; Untranslatable (its
        message says which field and why) when its meaning cannot be kept."""
        dropped = Dropped()
        upstream_path = _CROSSINGS.get(
            (path, "openai" if crossing == "messages→chat" else "anthropic")
        )
        where = upstream_path[1] if upstream_path else ""
        if crossing == "messages→chat":
            assert target is not None
            try:
                request = _decode_messages(body)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                # a server tool's own fields fail the strict decode: say what it is
                raise server_tool(body) or Untranslatable(
                    "request body", decode_error(error, target.name)
                ) from None
            if path == MESSAGES and request.max_tokens is msgspec.UNSET:
                raise Untranslatable("max_tokens", "a Messages request needs max_tokens")
            chat = chat_request(request, request.model, target, dropped)
            return cls(crossing, where, dropped, chat, client_request=request)
        try:
            chat_body = _decode_chat(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise Untranslatable(
                "request body", decode_error(error, "an Anthropic target")
            ) from None
        messages, answering = messages_request(chat_body, chat_body.model, created, dropped)
        return cls(crossing, where, dropped, messages, answering)

    def body(self, upstream_model: str) -> bytes:
        """The request to send, for the target's upstream model."""
        self.request.model = upstream_model
        return _encode(self.request)

    def answer(self, body: bytes) -> bytes:
        """The upstream's whole 2xx answer in the client's API; BadAnswer
        when it cannot be read or told there."""
        try:
            if self.crossing == "messages→chat":
                if fast_text.message_answer is not None:  # an answer of text, in C
                    said = fast_text.message_answer(body)
                    if said is not None:
                        return said
                return _encode(message_answer(_decode_completion(body)))
            assert self.answering is not None
            if fast_text.chat_answer is not None:  # an answer of text, in C
                said = fast_text.chat_answer(body, self.answering.created)
                if said is not None:
                    return said
            return _encode(chat_answer(_decode_message(body), self.answering))
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise BadAnswer(f"the upstream's answer cannot be read: {error}") from None

    def stream(self) -> EventsFromChunks | ChunksFromEvents:
        """A translator for the upstream's stream, fed its bytes as they come."""
        if self.crossing == "messages→chat":
            return EventsFromChunks()
        assert self.answering is not None
        return ChunksFromEvents(self.answering)

    @property
    def client_dialect(self) -> str:
        return "anthropic" if self.crossing == "messages→chat" else "openai"


def error_body(client_dialect: str, status: int, body: bytes) -> bytes:
    """An upstream's error answer (either API's shape, or a server's own) in
    the client's dialect, with its status and message."""
    message = _error_message(body) or f"the upstream answered {status} with no message"
    return dialects.error_body(client_dialect, status, message)


def _error_message(body: bytes) -> str | None:
    try:
        found: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:2000] or None
    if not isinstance(found, dict):
        return None
    error = found.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    for value in (error, found.get("message"), found.get("detail")):  # vLLM, FastAPI
        if isinstance(value, str):
            return value
    return None


# ---- count_tokens over an OpenAI target: byok's own estimate ------------------------

IMAGE_TOKENS = 1600  # Anthropic's most for an image (about 1.15 megapixels)


def estimate_input_tokens(request: A.MessagesRequest) -> int:
    """The input tokens of a Messages request, estimated as byok's token
    estimate does (gateway/estimate.py): its text's UTF-8 bytes / 4, rounded
    up; an image as Anthropic's most, 1,600; tools by their JSON."""
    size = 0
    images = 0
    if request.system is not msgspec.UNSET:
        size += _text_size(request.system)
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            size += len(content.encode())
            continue
        for block in content:
            if isinstance(block, A.ImageBlock):
                images += 1
            elif isinstance(block, A.ToolResultBlock) and isinstance(block.content, list):
                images += sum(isinstance(item, A.ImageBlock) for item in block.content)
                size += _text_size(block.content)
            else:
                size += _text_size(block)
    if request.tools is not msgspec.UNSET:
        size += len(_encode(request.tools))
    return math.ceil(size / 4) + images * IMAGE_TOKENS


def _text_size(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list):
        return sum(_text_size(item) for item in value)
    if isinstance(value, A.TextBlock):
        return len(value.text.encode())
    if isinstance(value, A.ToolResultBlock):
        return _text_size(value.content)
    if isinstance(value, A.ToolUseBlock):
        return len(_encode(value.input))
    if isinstance(value, A.DocumentBlock):
        data = value.source.get("data")
        return len(data.encode()) if isinstance(data, str) else 0
    if isinstance(value, A.ThinkingBlock):
        return len(value.thinking.encode())
    return 0
