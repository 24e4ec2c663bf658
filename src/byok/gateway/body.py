"""A request body: what routing reads, and the body to send for an upstream model.

Theory of operation
-------------------
Routing needs two top-level fields, ``model`` and ``stream``.  ``parse``
decodes them into a msgspec Struct, in C, skipping everything else unparsed:
the hot path, and all that a request whose model needs no rewrite costs
(``with_model`` then hands back the client's bytes object itself, unless
byok asks the stream for its usage: below).

When a target's upstream model differs from the requested one, ``with_model``
decodes the body again, into ``dict[str, Raw]``: each top-level value stays
the exact bytes the client sent (``msgspec.Raw`` is a view of the body, not a
copy), only the new ``model`` is encoded, and the dict is encoded back in the
client's order.  Every value but the model's is byte-identical; what may
change is the whitespace between the top-level members and the spelling of
their names (``"mod\\u0065l"`` goes out as ``"model"``).  A name the client
repeated goes out once, with its last value: the one the Struct routed on,
since msgspec keeps the last of duplicate keys in both decodes (the tests hold
it to that).  No regex reads the body: an escaped name, a nested ``model`` or
a string that says ``"model"`` cannot fool either decode.

An OpenAI-style stream (chat/completions, completions) reports its usage
only when asked (``stream_options.include_usage``), and the openai SDK does
not ask by default.  byok asks for every such stream the client did not ask
for (``ask_usage``), so that every streamed token is counted; the relay
takes the extra usage event out again.  ``stream_options`` is read by the
same Struct decode (it is rare: a request without it pays nothing).  The
common case, no ``stream_options`` at all, is one member spliced in front of
the client's bytes; a ``stream_options`` the client sent (without
``include_usage``) goes through the dict decode above, its other fields kept.

The one body ``parse`` accepts and ``with_model`` cannot rewrite has a
top-level field name that is not UTF-8 (the Struct decode skips an unknown
name without reading it; JSON must be UTF-8): ``with_model`` raises
BodyError for it, to be answered like any other BodyError.  Checking that up
front would cost every non-ASCII body a second decode.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "USAGE_ENDPOINTS",
    "AskUsage",
    "BodyError",
    "RoutingFields",
    "ask_usage",
    "parse",
    "with_model",
]

# The OpenAI-style endpoints whose streams carry usage only when asked.
# Anthropic's OpenAI compatibility layer takes stream_options as OpenAI
# does (its documentation: "fully supported"), so every provider kind that
# serves one of these paths is asked alike.  The responses API and
# Anthropic's messages report a stream's usage unasked.
USAGE_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions"})


class BodyError(ValueError):
    """A body byok cannot forward; the message says what to fix (answer 400)."""


class RoutingFields(msgspec.Struct, gc=False):
    """All that routing reads from a body."""

    model: str
    stream: bool = False
    # read only to know whether the client asked for a stream's usage (UNSET:
    # absent); Any, so that a wrong type is the upstream's to refuse, as before
    stream_options: Any = msgspec.UNSET
    # the answer's length the client allows, for the token estimate
    # (estimate.py); Any, so that a wrong type is the upstream's to refuse
    max_tokens: Any = msgspec.UNSET
    max_completion_tokens: Any = msgspec.UNSET  # OpenAI's newer name
    max_output_tokens: Any = msgspec.UNSET  # the responses API's


# Whether byok asks the upstream for a stream's usage, and how the body changes:
#   "no"      not an OpenAI-style stream, or the client asked (or sent a value
#             byok leaves for the upstream to judge)
#   "insert"  no stream_options: one member goes in front of the client's
#   "merge"   stream_options null, or without include_usage: include_usage added
# Strings, not an Enum: read on every request, and an Enum member's lookup
# costs five times a string comparison.
AskUsage = Literal["no", "insert", "merge"]


def ask_usage(fields: RoutingFields, path: str) -> AskUsage:
    """How byok asks for the usage of this request's stream, the client having not."""
    if not fields.stream or path not in USAGE_ENDPOINTS:
        return "no"
    options = fields.stream_options
    if options is _UNSET:
        return "insert"
    if options is None:
        return "merge"
    if isinstance(options, dict):
        asked = options.get("include_usage")
        # false is as good as unsaid: the client gets no usage event either way
        return "merge" if asked is None or asked is False else "no"
    return "no"  # not an object: the upstream says what is wrong with it


_fields = msgspec.json.Decoder(RoutingFields)
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode
_UNSET = msgspec.UNSET
_OPTIONS_ASKED = msgspec.Raw(b'{"include_usage":true}')
_USAGE_ASKED = b'{"stream_options":' + bytes(_OPTIONS_ASKED) + b","


def parse(body: bytes) -> RoutingFields:
    """The body's top-level ``model``, ``stream`` (and ``stream_options``), or
    BodyError saying what is wrong."""
    try:
        return _fields.decode(body)
    except msgspec.ValidationError as error:
        raise BodyError(_invalid(str(error))) from None
    except msgspec.DecodeError as error:
        raise BodyError(_malformed(body, str(error))) from None
    except RecursionError:
        raise BodyError("request body is nested too deeply") from None


def with_model(body: bytes, requested: str, upstream: str, usage: AskUsage = "no") -> bytes:
    """`body` (which `parse` read `requested` from) with its top-level ``model``
    set to `upstream`, and asking for a stream's usage as `usage` (from
    ``ask_usage``) says: `body` itself when nothing changes."""
    if requested == upstream:
        if usage == "no":
            return body
        if usage == "insert":
            # the body is an object (parse read it) with a model member to
            # follow this one; only whitespace precedes its brace
            return _USAGE_ASKED + memoryview(body)[body.index(b"{") + 1 :]
    try:
        members = _members.decode(body)
    except msgspec.DecodeError as error:  # parse() passed: a field name is not UTF-8
        raise BodyError(_malformed(body, str(error))) from None
    except RecursionError:  # parse() read the same depth; here for completeness
        raise BodyError("request body is nested too deeply") from None
    if requested != upstream:
        members["model"] = msgspec.Raw(_encode(upstream))  # keeps the first one's place
    if usage == "insert":
        members["stream_options"] = _OPTIONS_ASKED
    elif usage == "merge":
        options = _decode_any(members["stream_options"])  # null, or an object
        asked = {**options, "include_usage": True} if options else {"include_usage": True}
        members["stream_options"] = msgspec.Raw(_encode(asked))
    return _encode(members)


def _invalid(message: str) -> str:
    """msgspec's validation message, said about the request body."""
    if message.startswith("Expected `object`, got "):
        got = message.removeprefix("Expected `object`, got ")
        return f'request body: expected a JSON object with a "model" field, got {got}'
    # "Expected `str`, got `int` - at `$.model`", "Object missing required
    # field `model`": both name the field
    return f"request body: {message[:1].lower()}{message[1:]}"


def _malformed(body: bytes, message: str) -> str:
    if not body.strip():
        return 'request body is empty: send a JSON object with a "model" field'
    if message == "Invalid UTF-8 encoded string":
        return "request body is not valid JSON: a field name or the model is not UTF-8"
    return f"request body is not valid JSON: {message}"
