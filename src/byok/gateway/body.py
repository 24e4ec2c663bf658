"""A request body, decoded once: what routing reads, and the body to send on.

Theory of operation
-------------------
Routing needs two top-level fields, ``model`` and ``stream``.  They are
decoded into a msgspec Struct, in C, skipping everything else unparsed: the
hot path, and all that a request whose model needs no rewrite ever costs.

When a target's upstream model differs from the requested one, the top-level
``model`` is replaced by decoding the body again, into ``dict[str, Raw]``: each
top-level value stays the exact bytes the client sent (``msgspec.Raw``, a view
of the body, not a copy), and only the new ``model`` is encoded.  The other
values are byte-identical; what may change is the whitespace between the
top-level members and the spelling of their names (``"mod\\u0065l"`` goes out
as ``"model"``).  A field the client repeated goes out once, with its last
value: the one msgspec's Struct decode routed on, since both decodes keep
the last of duplicate keys (the tests hold them to it).  No regex reads the
body, so an escaped name or a value that says ``"model"`` cannot fool it.

The routing decode does not check that field names it skips are UTF-8; the
dict decode does.  A body with a byte above 0x7f is therefore decoded as a
dict up front (and the result kept for the rewrite), so that every error is
raised here, by the constructor, and ``with_model`` never raises for a body
that was accepted.  An all-ASCII body (the common case) skips that.
"""

from __future__ import annotations

import msgspec

__all__ = ["BodyError", "RequestBody"]


class BodyError(ValueError):
    """A body byok cannot route; the message says what to fix (answer 400)."""


class _Routing(msgspec.Struct):
    model: str
    stream: bool = False


_routing = msgspec.json.Decoder(_Routing)
_members = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


class RequestBody:
    """``RequestBody(raw)``: the body's ``model`` and ``stream``, or BodyError.

    ``with_model(name)`` is the body to send for upstream model ``name``:
    ``raw`` itself when the name is the requested one, else a rewrite (the
    last one is kept: the attempts of one target share it)."""

    __slots__ = ("_last", "_members", "model", "raw", "stream")

    def __init__(self, raw: bytes) -> None:
        try:
            fields = _routing.decode(raw)
            members = None if raw.isascii() else _members.decode(raw)
        except msgspec.ValidationError as error:
            raise BodyError(_invalid(str(error))) from None
        except msgspec.DecodeError as error:
            raise BodyError(_malformed(raw, str(error))) from None
        except RecursionError:
            raise BodyError("request body is nested too deeply") from None
        self.raw = raw
        self.model: str = fields.model
        self.stream: bool = fields.stream
        self._members = members
        self._last: tuple[str, bytes] | None = None

    def with_model(self, model: str) -> bytes:
        """The body with its top-level ``model`` set to `model`."""
        if model == self.model:
            return self.raw
        last = self._last
        if last is not None and last[0] == model:
            return last[1]
        members = self._members
        if members is None:
            # An ASCII body the routing decode accepted decodes as a dict too.
            members = self._members = _members.decode(self.raw)
        members["model"] = msgspec.Raw(_encoder.encode(model))
        body = _encoder.encode(members)
        self._last = (model, body)
        return body

    def __repr__(self) -> str:
        return f"RequestBody(model={self.model!r}, stream={self.stream}, {len(self.raw)} bytes)"


def _invalid(message: str) -> str:
    """msgspec's validation message, said about the request body."""
    if message.startswith("Expected `object`, got "):
        got = message.removeprefix("Expected `object`, got ")
        return f'request body: expected a JSON object with a "model" field, got {got}'
    # "Expected `str`, got `int` - at `$.model`", "Object missing required
    # field `model`": both name the field
    return f"request body: {message[:1].lower()}{message[1:]}"


def _malformed(raw: bytes, message: str) -> str:
    if not raw.strip():
        return 'request body is empty: send a JSON object with a "model" field'
    if message == "Invalid UTF-8 encoded string":
        return "request body is not valid JSON: a field name or the model is not valid UTF-8"
    return f"request body is not valid JSON: {message}"
