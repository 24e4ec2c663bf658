"""What both directions of translation share: the refusal of a request that
cannot be translated faithfully, the record of the hints that were dropped,
and the Struct settings of the two APIs' shapes."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Dropped", "Untranslatable", "decode_error", "json_text"]


class Untranslatable(ValueError):
    """A request whose meaning the target's API cannot carry: answered 400,
    naming the field (`field`, as the client wrote it: ``messages[2].content[0]``)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


class Dropped(list[str]):
    """The hints a translation left out (cache_control, a sampling penalty,
    ...): fields that do not change what the answer means, counted in a
    metric by name so that an operator sees what their clients send in vain.
    A list of their names (made per translated request: a list is made in C,
    an object of a Python class through its __init__)."""

    __slots__ = ()

    def add(self, name: str) -> None:
        if name not in self:
            self.append(name)

    @property
    def names(self) -> list[str]:
        return self


_encode = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    """`value` as compact JSON text (a tool call's arguments)."""
    return _encode(value).decode()


def decode_error(error: msgspec.ValidationError | msgspec.DecodeError, target: str) -> str:
    """msgspec's message about a request body, said as the client's to fix.

    The shapes are strict where the target's API is: a field byok does not
    know could change what the answer means, so it is refused rather than
    dropped.  msgspec names it with its path (``- at `$.messages[0]```)."""
    text = str(error)
    if not text[1:2].isupper():  # "Expected ..." reads on after a colon; "JSON ..." stays
        text = text[:1].lower() + text[1:]
    if "unknown field" in text:
        return (
            f"{text}; byok knows no faithful translation of it for "
            f"{target}: remove it, or send the request to a model served in its own API"
        )
    return text
