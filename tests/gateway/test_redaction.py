"""Redaction of what an upstream answer relays: its body (bytes) and headers."""

from __future__ import annotations

import pytest

from byok import config
from byok.config import Redactor

SECRET = "sk-proj-Zq7T9wLmN3vB5xK1"
OTHER = "opaque4Vb8Nq2Lw6Zt0Yc"  # not key-shaped: found only as a configured secret
SHORT = "opaque4Vb8"  # contained in OTHER: the longer one goes first
redact = Redactor([SECRET, OTHER, SHORT, ""])

# (name, body, expected)
BODIES = [
    (
        "json echo",
        b'{"error":{"message":"Incorrect API key provided: ' + SECRET.encode() + b'",'
        b'"type":"invalid_request_error","code":"invalid_api_key"}}',
        b'{"error":{"message":"Incorrect API key provided: [redacted]",'
        b'"type":"invalid_request_error","code":"invalid_api_key"}}',
    ),
    (
        "echoed authorization header",
        b'{"received_headers":{"Authorization":"Bearer ' + OTHER.encode() + b'"}}',
        b'{"received_headers":{"Authorization":"Bearer [redacted]"}}',
    ),
    ("plain text", b"bad key " + OTHER.encode() + b"!", b"bad key [redacted]!"),
    ("twice", (OTHER + OTHER + " " + OTHER).encode(), b"[redacted][redacted] [redacted]"),
    ("contained secret", f"{SHORT} {OTHER}".encode(), b"[redacted] [redacted]"),
    (
        "not utf-8 around it",
        b"\xff\xfe\x00" + OTHER.encode() + b"\x80\xc3(\xe9" + SECRET.encode() + b"\xed\xa0\x80",
        b"\xff\xfe\x00[redacted]\x80\xc3(\xe9[redacted]\xed\xa0\x80",
    ),
    (
        "utf-8 around it",
        "clé «".encode() + OTHER.encode() + "» 日本".encode(),
        "clé «[redacted]» 日本".encode(),
    ),
    (
        "key-shaped, not configured",
        b'{"message":"Incorrect API key provided: sk-abc1***********wxyz."}',
        b'{"message":"Incorrect API key provided: [redacted]"}',
    ),
    ("google key", b"key=AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU", b"key=[redacted]"),
    ("bearer token", b"got bearer abcdefgh12345678 from you", b"got [redacted] from you"),
    ("key-shaped in latin-1", b"cl\xe9: sess-0123456789\xe9", b"cl\xe9: [redacted]\xe9"),
]


@pytest.mark.parametrize(
    ("body", "expected"), [case[1:] for case in BODIES], ids=[case[0] for case in BODIES]
)
def test_body_is_redacted(body: bytes, expected: bytes) -> None:
    assert redact.bytes(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"error":{"message":"max_tokens is too large: 100000 > 4096","type":"invalid"}}',
        b"\xff\xfe\x00\x01 gpt-4o-mini sk- sk-short Bearer x \x80\x81",
        "ünïcödé — 日本語 \U0001f600".encode() + b"\xc3",
        bytes(range(256)) * 8,
    ],
    ids=["empty", "json", "binary", "unicode", "all bytes"],
)
def test_body_without_secrets_is_the_same_bytes(body: bytes) -> None:
    assert redact.bytes(body) is body


def test_text_and_bytes_agree() -> None:
    for _, body, expected in BODIES:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            continue
        assert redact(text).encode() == expected


def test_text_keeps_its_behaviour() -> None:
    said = f"Incorrect API key provided: {SECRET}"
    assert redact(said) == "Incorrect API key provided: [redacted]"
    assert redact("nothing here") == "nothing here"


def test_header_values_are_redacted() -> None:
    headers = [
        ("content-type", "application/json"),
        ("x-echo-authorization", f"Bearer {OTHER}"),
        ("x-echo-api-key", SECRET),
        ("x-debug", f"key={OTHER}; sk-live-abcdefgh1234 seen"),
        ("x-upstream-request-id", "req_0123456789abcdef"),
    ]
    assert redact.headers(headers) == [
        ("content-type", "application/json"),
        ("x-echo-authorization", "Bearer [redacted]"),
        ("x-echo-api-key", "[redacted]"),
        ("x-debug", "key=[redacted]; [redacted] seen"),
        ("x-upstream-request-id", "req_0123456789abcdef"),
    ]
    assert headers[1] == ("x-echo-authorization", f"Bearer {OTHER}")  # a copy, not in place


def test_headers_without_secrets_are_the_same_list() -> None:
    headers = [
        ("content-type", "application/json"),
        ("x-ratelimit-remaining-requests", "59"),
        ("openai-organization", "user-abc123"),
        ("cf-ray", "8a1b2c3d4e5f6789-SJC"),
    ]
    assert redact.headers(headers) is headers
    assert redact.headers([]) == []


def test_headers_across_values_are_not_joined() -> None:
    # the fast path looks at all values at once; a match that only exists
    # across two values changes none of them
    headers = [("a", "Bearer"), ("b", "abcdefgh12345678")]
    assert redact.headers(headers) == headers


def test_no_secrets_configured() -> None:
    bare = Redactor([])
    assert bare.bytes(b"ok " + OTHER.encode()) == b"ok " + OTHER.encode()
    assert bare.bytes(b"ok " + SECRET.encode()) == b"ok [redacted]"  # still key-shaped
    assert bare.headers([("x", OTHER)]) == [("x", OTHER)]


@pytest.mark.parametrize(
    "token",
    [
        "sk-abcdef",
        "rk-abc.def",
        "pk-ab_cd*f",
        "ak-abcdef",
        "key-abcdef",
        "sess-abcdef",
        "AIza" + "Xy_-" * 5,
        "bearer abcdefgh",
        "BeArEr\tab*d.f-h",
        "BEARER\r\n abcdefgh",
    ],
)
def test_every_kind_of_key_shaped_token_is_caught(token: str) -> None:
    # bytes() skips the regex when a body holds none of _KEY_SHAPED_MARKS:
    # each alternative of the pattern must hold one of them
    assert redact.bytes(f"<{token}>".encode()) == b"<[redacted]>"
    assert redact.headers([("x", token)]) == [("x", "[redacted]")]
    assert redact(token) == "[redacted]"


def test_marks_follow_the_pattern() -> None:
    # a tripwire: change _KEY_SHAPED, then Redactor._KEY_SHAPED_MARKS with it
    assert config._KEY_SHAPED.pattern == (
        r"\b(?:sk|rk|pk|ak|key|sess)-[A-Za-z0-9_*.\-]{6,}|\bAIza[A-Za-z0-9_\-]{20,}"
        r"|(?i:bearer)\s+[A-Za-z0-9_*.\-]{8,}"
    )
    assert Redactor._KEY_SHAPED_MARKS == (b"k-", b"y-", b"s-", b"aiza", b"bearer")
