"""A request body: what routing reads, and the body to send for an upstream model.

Theory of operation
-------------------
Routing needs two top-level fields, ``model`` and ``stream``.  ``parse``
decodes them into a msgspec Struct, in C, skipping everything else unparsed:
the hot path, and all that a request whose model needs no rewrite costs
(``with_model`` then hands back the client's bytes object itself).

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

The one body ``parse`` accepts and ``with_model`` cannot rewrite has a
top-level field name that is not UTF-8 (the Struct decode skips an unknown
name without reading it; JSON must be UTF-8): ``with_model`` raises
BodyError for it, to be answered like any other BodyError.  Checking that up
front would cost every non-ASCII body a second decode.
"""

from __future__ import annotations

import msgspec

__all__ = ["BodyError", "RoutingFields", "parse", "with_model"]


class BodyError(ValueError):
    """A body byok cannot forward; the message says what to fix (answer 400)."""


class RoutingFields(msgspec.Struct, gc=False):
    """All that routing reads from a body."""

    model: str
    stream: bool = False


_fields = msgspec.json.Decoder(RoutingFields)
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


def parse(body: bytes) -> RoutingFields:
    """The body's top-level ``model`` and ``stream``, or BodyError saying what is wrong."""
    try:
        return _fields.decode(body)
    except msgspec.ValidationError as error:
        raise BodyError(_invalid(str(error))) from None
    except msgspec.DecodeError as error:
        raise BodyError(_malformed(body, str(error))) from None
    except RecursionError:
        raise BodyError("request body is nested too deeply") from None


def with_model(body: bytes, requested: str, upstream: str) -> bytes:
    """`body` (which `parse` read `requested` from) with its top-level ``model``
    set to `upstream`: `body` itself when they are the same name."""
    if requested == upstream:
        return body
    try:
        members = _members.decode(body)
    except msgspec.DecodeError as error:  # parse() passed: a field name is not UTF-8
        raise BodyError(_malformed(body, str(error))) from None
    except RecursionError:  # parse() read the same depth; here for completeness
        raise BodyError("request body is nested too deeply") from None
    members["model"] = msgspec.Raw(_encode(upstream))  # keeps the first one's place
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
