"""The request shapes the real APIs accept, and their refusals, word for word.

A translation from one dialect to the other must fail here as the real API
would fail it: an unknown field, a value of the wrong type, a role or block
where the API accepts none, a tool call left unanswered.  So the bodies of
/v1/chat/completions (`chat_request`), /v1/messages and
/v1/messages/count_tokens (`messages_request`) are decoded into msgspec
Structs that forbid unknown fields where the API does, with the API's
bounds, then checked for the rules that span messages; a refusal is an
`Invalid` in the words of the API (`refusals`).  The other OpenAI endpoints
keep one rule of OpenAI's: ``stream_options`` only with ``stream``.
"""

from __future__ import annotations

from typing import Any, Union

from .chat_request import STREAM_OPTIONS, ChatRequest, check_chat
from .messages_request import CountTokensRequest, MessagesRequest, check_messages
from .refusals import Invalid, decode

Request = Union[ChatRequest, MessagesRequest, CountTokensRequest]

__all__ = ["Invalid", "Request", "parse"]


def parse(path: str, body: dict[str, Any]) -> Request | None:
    """The request `body` sent to `path` as the API reads it (None for an
    endpoint whose body is not decoded here); raises `Invalid`."""
    if path == "/v1/chat/completions":
        chat: ChatRequest = decode("openai", ChatRequest, body)
        check_chat(chat)
        return chat
    if path in ("/v1/messages", "/v1/messages/count_tokens"):
        shape = MessagesRequest if path == "/v1/messages" else CountTokensRequest
        request: CountTokensRequest = decode("anthropic", shape, body)
        check_messages(request)
        return request
    if body.get("stream_options") is not None and not body.get("stream"):
        raise Invalid(STREAM_OPTIONS, "stream_options")
    return None
