"""The request body: routing fields and the model rewrite come from one parser."""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from byok.gateway.body import AskUsage, BodyError, RoutingFields, ask_usage, parse, with_model

UPSTREAM = "gpt-4o-2024-08-06"


def top(body: bytes) -> dict[str, object]:
    """What a (last-wins) JSON parser sees in a body."""
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def utf8(body: bytes) -> bool:
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


# (name, body, requested model, stream)
ACCEPTED = [
    ("plain", b'{"model":"gpt","messages":[{"role":"user","content":"hi"}]}', "gpt", False),
    ("spaced", b' {\n  "model" : "gpt" ,\n  "stream" : true\n}\n', "gpt", True),
    ("escaped name", b'{"mod\\u0065l":"gpt","str\\u0065am":true}', "gpt", True),
    ("escaped value", b'{"model":"g\\u0070t\\/4"}', "gpt/4", False),
    ("duplicate model", b'{"model":"a","stream":false,"model":"b"}', "b", False),
    ("duplicate stream", b'{"model":"a","stream":true,"x":1,"stream":false}', "a", False),
    ("escaped duplicate", b'{"model":"a","mod\\u0065l":"b"}', "b", False),
    (
        "nested model keys",
        b'{"messages":[{"role":"user","model":"inner","content":{"model":"deep"}}],'
        b'"tools":[{"model":"t"}],"model":"gpt","metadata":{"model":"meta"}}',
        "gpt",
        False,
    ),
    (
        "content says model",
        b'{"messages":[{"role":"user","content":"\\"model\\": \\"x\\", model"}],"model":"gpt"}',
        "gpt",
        False,
    ),
    (
        "model before a string key named model",
        b'{"note":"model","model":"gpt","x":["model",{"model":1}]}',
        "gpt",
        False,
    ),
    (
        "unicode",
        '{"model":"modèle-日本","messages":[{"content":"héllo 😀 \\u00e9"}],"é":"ü"}'.encode(),
        "modèle-日本",
        False,
    ),
    ("no stream", b'{"model":"m","n":null}', "m", False),
    ("invalid utf-8 in a value", b'{"model":"m","x":"\xff\xfe"}', "m", False),
]


@pytest.mark.parametrize(
    ("body", "model", "stream"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_routing_fields_and_rewrite(body: bytes, model: str, stream: bool) -> None:
    fields = parse(body)
    assert (fields.model, fields.stream) == (model, stream)
    assert with_model(body, model, model) is body  # identity: the same object, no work
    out = with_model(body, model, UPSTREAM)
    # a last-wins JSON parser agrees with the routing on every field but the model
    expected = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    rewritten = msgspec.json.decode(out, type=dict[str, msgspec.Raw])
    assert list(rewritten) == list(expected)  # names, in the client's order
    assert rewritten.pop("model") == msgspec.Raw(msgspec.json.encode(UPSTREAM))
    expected.pop("model")
    for name, value in expected.items():  # every other value byte for byte
        assert bytes(rewritten[name]) == bytes(value), name
    assert parse(out) == RoutingFields(UPSTREAM, stream)


def test_nested_model_keys_are_left_alone() -> None:
    body = next(case[1] for case in ACCEPTED if case[0] == "nested model keys")
    data = top(with_model(body, "gpt", UPSTREAM))
    assert data["model"] == UPSTREAM
    assert data["messages"] == [{"role": "user", "model": "inner", "content": {"model": "deep"}}]
    assert data["tools"] == [{"model": "t"}]
    assert data["metadata"] == {"model": "meta"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"a","stream":true,"messages":[],"model":"b","stream":false}',
        b'{"model":"a","mod\\u0065l":"b","str\\u0065am":true,"stream":false}',
        '{"model":"a","é":1,"model":"b","stream":true,"stream":false}'.encode(),
    ],
    ids=["plain", "escaped", "non-ascii"],
)
def test_duplicates_route_and_rewrite_on_the_same_value(body: bytes) -> None:
    # msgspec keeps the last of duplicate keys in both decodes: the Struct that
    # routes and the dict that rewrites must agree, or a client could route on
    # one model and be served another.
    routed = msgspec.json.decode(body, type=RoutingFields)
    members = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    assert routed.model == "b" == msgspec.json.decode(members["model"])
    assert parse(body) == RoutingFields("b", False)
    out = with_model(body, "b", UPSTREAM)
    assert out.count(b'"model"') == 1  # one of each goes on
    assert out.count(b'"stream"') == 1
    assert top(body)["stream"] is False  # Python's json keeps the last one too
    assert top(out) == {**top(body), "model": UPSTREAM}
    assert out.startswith(b'{"model":"gpt-4o')  # in the first one's place


def test_big_body_is_rewritten_whole() -> None:
    message = {"role": "user", "content": "Lorem ipsum dolor sit amet, é 日本 " * 30}
    data = {"model": "big", "messages": [message] * 1100, "stream": True, "temperature": 0.5}
    body = msgspec.json.encode(data)
    assert len(body) > 1_000_000
    assert parse(body) == RoutingFields("big", True)
    out = with_model(body, "big", UPSTREAM)
    assert top(out) == {**data, "model": UPSTREAM}
    assert len(out) == len(body) + len(UPSTREAM) - len("big")  # compact in, compact out
    assert with_model(body, "big", "big") is body


def test_rewrite_keeps_values_byte_for_byte() -> None:
    body = b'{"model" : "m",\n "x": [1.0e+2, "\\u00e9\\/", {"a" : 1}],  "y":1.50}'
    out = with_model(body, "m", "n")
    assert out == b'{"model":"n","x":[1.0e+2, "\\u00e9\\/", {"a" : 1}],"y":1.50}'


# (name, body, words the message must hold)
REFUSED = [
    ("empty", b"", ["empty", '"model"']),
    ("blank", b" \r\n ", ["empty"]),
    ("invalid json", b'{"model": "a",}', ["not valid JSON", "trailing comma"]),
    ("truncated", b'{"model": "a"', ["not valid JSON"]),
    ("not json", b"model=gpt", ["not valid JSON"]),
    ("array", b'[{"model":"a"}]', ["JSON object", "array"]),
    ("string", b'"gpt"', ["JSON object", "str"]),
    ("null", b"null", ["JSON object", "null"]),
    ("missing model", b'{"messages":[{"model":"x"}]}', ["missing", "`model`"]),
    ("model not a string", b'{"model":42}', ["`str`", "`int`", "$.model"]),
    ("model null", b'{"model":null}', ["`str`", "$.model"]),
    ("stream not a bool", b'{"model":"a","stream":"yes"}', ["`bool`", "`str`", "$.stream"]),
    ("stream null", b'{"model":"a","stream":null}', ["`bool`", "$.stream"]),
    ("last duplicate wrong", b'{"model":"a","model":1}', ["`str`", "$.model"]),
    ("model not utf-8", b'{"model":"\xff"}', ["UTF-8"]),
    ("lone surrogate", b'{"model":"a","x":"\\ud800"}', ["not valid JSON"]),
    ("too deep", b'{"model":"a","x":' + b"[" * 5000 + b"]" * 5000 + b"}", ["too deeply"]),
    ("bom", b'\xef\xbb\xbf{"model":"a"}', ["not valid JSON"]),
]


@pytest.mark.parametrize(
    ("body", "words"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_refused_with_a_reason(body: bytes, words: list[str]) -> None:
    with pytest.raises(BodyError) as caught:
        parse(body)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message.startswith("request body")
    for word in words:
        assert word in message


def test_a_field_name_not_utf8_is_refused_on_rewrite() -> None:
    # The routing decode skips an unknown name unread; the rewrite must read
    # it, and says so in a BodyError (a 400), never anything else.
    body = b'{"model":"a","\xff":1}'
    assert parse(body) == RoutingFields("a")
    assert with_model(body, "a", "a") is body
    with pytest.raises(BodyError, match="not valid JSON: a field name or the model is not UTF-8"):
        with_model(body, "a", UPSTREAM)


def test_whatever_is_routed_can_be_rewritten() -> None:
    """Mangled bodies: each one accepted routes and rewrites on the same model."""
    seeds = [
        b'{"model":"a","stream":true,"messages":[{"content":"\\"model\\""}],"x":{"model":1}}',
        b'{"mod\\u0065l":"g\\u0070t","\\u00e9":1,"stream":false,"model":"z"}',
        '{"model":"é","ü":"日本"}'.encode(),
    ]
    alphabet = b'{}[]",:\\u0123456789abelnrt. \x00\x7f\xc3\xa9\xff'
    rng = random.Random(7)
    rewritten = 0
    refused: list[tuple[bytes, str]] = []
    for _ in range(20_000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body) + 1)
            roll = rng.random()
            if roll < 0.4 and at < len(body):
                body[at] = rng.choice(alphabet)
            elif roll < 0.7:
                body[at:at] = bytes([rng.choice(alphabet)])
            elif at < len(body):
                del body[at]
        mangled = bytes(body)
        try:
            fields = parse(mangled)
        except BodyError:
            continue
        try:
            out = with_model(mangled, fields.model, UPSTREAM)
        except BodyError as error:
            refused.append((mangled, str(error)))
            continue
        assert parse(out) == RoutingFields(UPSTREAM, fields.stream)
        rewritten += 1
    assert rewritten > 1000
    for mangled, message in refused:  # only the one case parse lets through
        assert "not UTF-8" in message
        assert not utf8(mangled)


# ---- asking an OpenAI-style stream for its usage ------------------------------------

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("body", "path", "asked"),
    [
        (b'{"model":"m","stream":true}', CHAT, "insert"),
        (b'{"model":"m","stream":true}', "/v1/completions", "insert"),
        (b'{"model":"m","stream":false}', CHAT, "no"),
        (b'{"model":"m"}', CHAT, "no"),
        (b'{"model":"m","stream":true}', "/v1/responses", "no"),
        (b'{"model":"m","stream":true}', "/v1/messages", "no"),
        (b'{"model":"m","stream":true,"stream_options":null}', CHAT, "merge"),
        (b'{"model":"m","stream":true,"stream_options":{}}', CHAT, "merge"),
        (b'{"model":"m","stream":true,"stream_options":{"x":1}}', CHAT, "merge"),
        (
            b'{"model":"m","stream":true,"stream_options":{"include_usage":false}}',
            CHAT,
            "merge",
        ),
        (
            b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
            CHAT,
            "no",
        ),
        # a value OpenAI refuses is the upstream's to refuse, not byok's to mend
        (b'{"model":"m","stream":true,"stream_options":{"include_usage":1}}', CHAT, "no"),
        (b'{"model":"m","stream":true,"stream_options":"yes"}', CHAT, "no"),
        # an escaped name is the same name: not absent
        (b'{"model":"m","stream":true,"stream_opti\\u006fns":{}}', CHAT, "merge"),
        (
            b'{"model":"m","stream":true,"stream_options":{"include_\\u0075sage":true}}',
            CHAT,
            "no",
        ),
        # the last of duplicates, as for the model
        (
            b'{"model":"m","stream":true,"stream_options":{"include_usage":true},'
            b'"stream_options":null}',
            CHAT,
            "merge",
        ),
    ],
)
def test_when_byok_asks_for_a_streams_usage(body: bytes, path: str, asked: AskUsage) -> None:
    assert ask_usage(parse(body), path) == asked


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}',
        b' \n{ "model" : "m" , "stream" : true }',
        '{"model":"m","stream":true,"é":"日本","x":[1.0e+2]}'.encode(),
    ],
    ids=["compact", "spaced", "unicode"],
)
def test_usage_is_asked_by_splicing_when_the_model_stays(body: bytes) -> None:
    fields = parse(body)
    out = with_model(body, "m", "m", ask_usage(fields, CHAT))
    start = body.index(b"{") + 1
    assert out == b'{"stream_options":{"include_usage":true},' + body[start:]
    assert top(out) == {"stream_options": {"include_usage": True}, **top(body)}
    again = parse(out)
    assert (again.model, again.stream) == ("m", True)
    assert ask_usage(again, CHAT) == "no"  # asked now


def test_usage_is_asked_in_the_rewrite_when_the_model_changes() -> None:
    body = b'{"model":"m","stream":true,"messages":[]}'
    out = with_model(body, "m", UPSTREAM, "insert")
    assert out == (
        b'{"model":"gpt-4o-2024-08-06","stream":true,"messages":[],'
        b'"stream_options":{"include_usage":true}}'
    )


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        (b"null", {"include_usage": True}),
        (b"{}", {"include_usage": True}),
        (
            b'{"include_obfuscation":false, "x":[1,2]}',
            {"include_obfuscation": False, "x": [1, 2], "include_usage": True},
        ),
        (b'{"include_usage":false,"y":1}', {"include_usage": True, "y": 1}),
    ],
)
@pytest.mark.parametrize("upstream", ["m", UPSTREAM])
def test_the_clients_other_stream_options_are_kept(
    options: bytes, sent: dict[str, object], upstream: str
) -> None:
    body = b'{"model":"m","stream":true,"stream_options":' + options + b',"n":1}'
    out = with_model(body, "m", upstream, ask_usage(parse(body), CHAT))
    assert top(out) == {"model": upstream, "stream": True, "stream_options": sent, "n": 1}
    assert list(top(out)) == ["model", "stream", "stream_options", "n"]  # in its place
    assert out.count(b"stream_options") == 1


def test_an_escaped_stream_options_goes_out_once() -> None:
    body = b'{"model":"m","stream":true,"stream_opti\\u006fns":{"a":1}}'
    out = with_model(body, "m", "m", ask_usage(parse(body), CHAT))
    assert out == b'{"model":"m","stream":true,"stream_options":{"a":1,"include_usage":true}}'


def test_streams_of_mangled_bodies_ask_for_usage_once() -> None:
    """Whatever stream is routed goes out asking for its usage, once."""
    seed = b'{"model":"a","stream":true,"stream_options":{"x":1},"messages":[{"content":"b"}]}'
    alphabet = b'{}[]",:\\u0123456789abelnrt. \xc3\xa9'
    rng = random.Random(12)
    asked = 0
    for _ in range(5000):
        body = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body) + 1)
            body[at:at] = bytes([rng.choice(alphabet)])
        mangled = bytes(body)
        try:
            fields = parse(mangled)
        except BodyError:
            continue
        how = ask_usage(fields, CHAT)
        if how == "no":
            continue
        for upstream in (fields.model, UPSTREAM):
            try:
                out = with_model(mangled, fields.model, upstream, how)
            except BodyError:  # a field name not UTF-8, as for any rewrite
                assert not utf8(mangled)
                continue
            again = parse(out)
            assert (again.model, again.stream) == (upstream, True)
            assert again.stream_options["include_usage"] is True
            if utf8(out):  # Python's json reads only UTF-8
                assert top(out)["stream_options"]["include_usage"] is True
        asked += 1
    assert asked > 500
