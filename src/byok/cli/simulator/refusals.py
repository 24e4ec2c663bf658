"""msgspec's refusals of a body, rewritten in the words of the API whose
shape refused it.

msgspec says what was wrong (a kind, such as an unknown field or a value
out of bounds) and where (``$.messages[0].content``).  The real APIs say it
differently:

- OpenAI names the parameter in its own path syntax
  (``messages[0].content``), in the message and in ``param``, with a
  ``code`` such as ``invalid_type``; an unknown top-level field is
  "Unrecognized request argument supplied: X".
- Anthropic validates with pydantic and writes ``<loc>: <what>``, where the
  loc joins the steps with dots (``messages.0.content``) and names the tag
  of each member of a tagged union it went through
  (``messages.0.content.0.image.source.base64.media_type``).

To write these, the path is followed through the body and the Struct types
together (msgspec.inspect), which finds the tags of the union members on
the way and the values a field accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

import msgspec
import msgspec.inspect as inspect
from msgspec import Struct


class Invalid(Exception):
    """A request the real API refuses with a 400: its message, and for
    OpenAI the parameter it names and the error's code."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class Strict(Struct, forbid_unknown_fields=True):
    """An object of the API that refuses fields it does not know."""


Path = tuple[Union[str, int], ...]


def decode(dialect: str, shape: type[Any], body: dict[str, Any], at: Path = ()) -> Any:
    """`body` as a `shape`, or the `Invalid` the API of `dialect` answers;
    `at`: where `body` sits in the request, when it is a part of it."""
    try:
        return msgspec.convert(body, shape)
    except msgspec.ValidationError as error:
        raise _refusal(dialect, shape, body, str(error), at) from None


_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


@dataclass(frozen=True)
class _Tags:
    """A tagged union's tag field, as if it were a field of its own."""

    field: str
    values: tuple[str, ...]


@dataclass
class _Place:
    steps: list[str | int]  # as msgspec gave them
    loc: list[str]  # as pydantic names them: with the union members' tags
    info: Any  # msgspec.inspect's type found there (or _Tags)
    value: Any  # the body's value there (None when absent)


def _refusal(dialect: str, shape: type[Any], body: Any, error: str, at: Path) -> Invalid:
    matched = _ERROR.match(error)
    assert matched is not None  # the pattern matches any text
    what = matched["what"]
    place = _walk(shape, body, _steps(matched["path"] or ""))
    place.steps[:0] = list(at)
    place.loc[:0] = [str(step) for step in at]
    if dialect == "anthropic":
        return Invalid(_anthropic_message(what, place))
    message, param, code = _openai_message(what, place)
    return Invalid(message, param, code)


def _steps(path: str) -> list[str | int]:
    """msgspec's ``.messages[0].content`` as ["messages", 0, "content"]
    ("..." stands for a value of a dict, whose key msgspec does not tell)."""
    steps: list[str | int] = []
    for name, index in _STEP.findall(path):
        if name or index == "...":
            steps.append(name or index)
        else:
            steps.append(int(index))
    return steps


def _walk(shape: type[Any], body: Any, steps: list[str | int]) -> _Place:
    """Follow `steps` through the body and the type that decodes it."""
    info: Any = _type_info(shape)
    value: Any = body
    loc: list[str] = []
    for step in steps:
        info = _member(info, value, loc)
        if isinstance(step, int):
            info = info.item_type if isinstance(info, inspect.ListType) else inspect.AnyType()
            value = value[step] if isinstance(value, list) and step < len(value) else None
        elif step == "...":  # a value of a dict
            info = info.value_type if isinstance(info, inspect.DictType) else inspect.AnyType()
            value = None
        else:
            info = _field(info, step)
            value = value.get(step) if isinstance(value, dict) else None
        loc.append(str(step))
    return _Place(list(steps), loc, info, value)


_TYPE_INFO: dict[type[Any], Any] = {}  # shape -> what msgspec.inspect says of it


def _type_info(shape: type[Any]) -> Any:
    if shape not in _TYPE_INFO:  # a walk of every annotation in the tree: once
        _TYPE_INFO[shape] = inspect.type_info(shape)
    return _TYPE_INFO[shape]


def _member(info: Any, value: Any, loc: list[str]) -> Any:
    """The member of a union that decodes `value` (its tag added to `loc`)."""
    if not isinstance(info, inspect.UnionType):
        return info
    tagged = _tagged(info)
    if tagged and isinstance(value, dict):
        for member in tagged:
            if value.get(member.tag_field) == member.tag:
                loc.append(str(member.tag))
                return member
    for member in info.types:
        if isinstance(value, list) and isinstance(member, inspect.ListType):
            return member
        if isinstance(value, dict) and _untagged_object(member):
            return member
    return info


def _untagged_object(info: Any) -> bool:
    """A dict's type, or a struct's that no tag picks (a tagged one goes by its tag alone)."""
    if isinstance(info, inspect.StructType):
        return info.tag_field is None
    return isinstance(info, inspect.DictType)


def _field(info: Any, name: str) -> Any:
    if isinstance(info, inspect.StructType):
        for field in info.fields:
            if field.encode_name == name:
                return field.type
        if info.tag_field == name:  # a tagged struct of its own: its tag, a literal
            return inspect.LiteralType((info.tag,))
    tagged = _tagged(info)
    if tagged and tagged[0].tag_field == name:
        return _Tags(name, tuple(str(member.tag) for member in tagged))
    return inspect.AnyType()


def _tagged(info: Any) -> list[Any]:
    """The members of a tagged union (none for any other type)."""
    if not isinstance(info, inspect.UnionType):
        return []
    return [m for m in info.types if isinstance(m, inspect.StructType) and m.tag_field]


def _choices(info: Any) -> tuple[str, ...]:
    if isinstance(info, _Tags):
        return info.values
    members = info.types if isinstance(info, inspect.UnionType) else (info,)
    return tuple(
        str(value)
        for member in members
        if isinstance(member, inspect.LiteralType)
        for value in member.values
    )


_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_TYPE = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_BOUND = re.compile(r"Expected `(?P<kind>int|float)` (?P<op>>=|<=|>|<) (?P<bound>\S+)")
_LENGTH = re.compile(r"Expected `(?P<kind>array|str)` of length (?P<op>>=|<=) (?P<bound>\d+)")
_PATTERN = re.compile(r"Expected `str` matching regex '(?P<pattern>.*)'")
_VALUE = re.compile(r"Invalid (?:enum )?value (?P<value>.*)")

_OPENAI_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a decimal",
    "bool": "a boolean",
    "array": "an array",
    "object": "an object",
    "null": "null",
}
_PYDANTIC_TYPES = {
    "str": "a valid string",
    "int": "a valid integer",
    "float": "a valid number",
    "bool": "a valid boolean",
    "array": "a valid list",
    "object": "a valid dictionary",
}


def _openai_param(steps: list[str | int]) -> str:
    text = ""
    for step in steps:
        if isinstance(step, int) or step == "...":  # "...": a value of a dict, key untold
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def _number(text: str) -> str:
    number = float(text)
    return str(int(number)) if number.is_integer() else text


def _shown(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _openai_message(what: str, place: _Place) -> tuple[str, str | None, str | None]:
    """OpenAI's words for msgspec's `what` at `place`: message, param, code."""
    param = _openai_param(place.steps)
    if found := _UNKNOWN.match(what):
        if not place.steps:
            return f"Unrecognized request argument supplied: {found['field']}", None, None
        inner = _openai_param([*place.steps, found["field"]])
        return f"Unknown parameter: '{inner}'.", inner, "unknown_parameter"
    if found := _MISSING.match(what):
        inner = _openai_param([*place.steps, found["field"]])
        return f"Missing required parameter: '{inner}'.", inner, "missing_required_parameter"
    if found := _TYPE.match(what):
        wanted = [_OPENAI_TYPES.get(kind, kind) for kind in found["want"].split(" | ")]
        expected = wanted[0] if len(wanted) == 1 else "one of " + _listed(wanted, "or")
        got = _OPENAI_TYPES.get(found["got"], found["got"])
        message = f"Invalid type for '{param}': expected {expected}, but got {got} instead."
        return message, param, "invalid_type"
    if found := _BOUND.match(what):
        kind = "integer" if found["kind"] == "int" else "decimal"
        below = found["op"].startswith(">")
        side, limit = ("below minimum", "min") if below else ("above maximum", "max")
        message = (
            f"Invalid '{param}': {kind} {side} value. Expected a value {found['op']}"
            f" {_number(found['bound'])}, but got {_shown(place.value)} instead."
        )
        return message, param, f"{kind}_{side.split()[0]}_{limit}_value"
    if found := _LENGTH.match(what):
        noun = "array" if found["kind"] == "array" else "string"
        size = len(place.value) if isinstance(place.value, (list, str)) else 0
        if found["op"] == ">=" and size == 0 and noun == "array":
            message = (
                f"Invalid '{param}': empty array. Expected an array with minimum length"
                f" {found['bound']}, but got an empty array instead."
            )
            return message, param, "empty_array"
        short = found["op"] == ">="
        one = "an array" if noun == "array" else "a string"
        message = (
            f"Invalid '{param}': {noun} too {'short' if short else 'long'}. Expected {one}"
            f" with {'minimum' if short else 'maximum'} length {found['bound']}, but got"
            f" {one} with length {size} instead."
        )
        code = f"{noun}_{'below_min' if short else 'above_max'}_length"
        return message, param, code
    if found := _PATTERN.match(what):
        message = (
            f"Invalid '{param}': string does not match pattern. Expected a string that"
            f" matches the pattern '{found['pattern']}'."
        )
        return message, param, "invalid_value"
    if found := _VALUE.match(what):
        choices = [f"'{choice}'" for choice in _choices(place.info)]
        supported = _listed(choices, "and")
        message = f"Invalid value: {found['value']}. Supported values are: {supported}."
        return message, param, "invalid_value"
    return f"Invalid '{param}': {what}.", param, None


def _anthropic_message(what: str, place: _Place) -> str:
    """pydantic's words for msgspec's `what` at `place`, as Anthropic writes them."""
    loc = ".".join(place.loc)
    if found := _UNKNOWN.match(what):
        return f"{_loc_of_field(place, found['field'])}: Extra inputs are not permitted"
    if found := _MISSING.match(what):
        tagged = _tagged(place.info)
        if tagged and tagged[0].tag_field == found["field"]:
            return f"{loc}: Unable to extract tag using discriminator '{found['field']}'"
        return f"{_loc_of_field(place, found['field'])}: Field required"
    if found := _TYPE.match(what):
        wanted = [kind for kind in found["want"].split(" | ") if kind != "null"]
        return f"{loc}: Input should be {_PYDANTIC_TYPES.get(wanted[0], wanted[0])}"
    if found := _BOUND.match(what):
        relation = {">=": "greater than or equal to", "<=": "less than or equal to"}
        words = relation.get(found["op"], "greater than" if found["op"] == ">" else "less than")
        return f"{loc}: Input should be {words} {_number(found['bound'])}"
    if found := _LENGTH.match(what):
        size = len(place.value) if isinstance(place.value, (list, str)) else 0
        least = found["op"] == ">="
        at = f"at {'least' if least else 'most'} {found['bound']}"
        if found["kind"] == "str":
            return f"{loc}: String should have {at} characters"
        items = "item" if found["bound"] == "1" else "items"
        return f"{loc}: List should have {at} {items} after validation, not {size}"
    if found := _PATTERN.match(what):
        return f"{loc}: String should match pattern '{found['pattern']}'"
    if found := _VALUE.match(what):
        role = place.loc[:1] == ["messages"] and place.loc[-1:] == ["role"]
        if role and place.value == "system":
            return (
                'messages: Unexpected role "system". The Messages API accepts a top-level'
                ' `system` parameter, not "system" as an input message role.'
            )
        choices = [f"'{choice}'" for choice in _choices(place.info)]
        if isinstance(place.info, _Tags):
            return (
                f"{'.'.join(place.loc[:-1])}: Input tag {found['value']} found using"
                f" '{place.info.field}' does not match any of the expected tags:"
                f" {', '.join(choices)}"
            )
        return f"{loc}: Input should be {_listed(choices, 'or', oxford=False)}"
    return f"{loc}: {what}"


def _loc_of_field(place: _Place, field: str) -> str:
    """The loc of a field of the object at `place` (through its union tag)."""
    loc = list(place.loc)
    _member(place.info, place.value, loc)
    return ".".join([*loc, field])


def _listed(items: list[str], last: str, oxford: bool = True) -> str:
    """'a', 'b', and 'c' (OpenAI) or 'a', 'b' or 'c' (pydantic)."""
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} {last} {items[1]}"
    comma = "," if oxford else ""
    return f"{', '.join(items[:-1])}{comma} {last} {items[-1]}"
