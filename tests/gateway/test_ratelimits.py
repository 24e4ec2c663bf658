"""What an answer's rate-limit headers say its key has left: real header sets
as the providers' docs and recorded answers show them, partial sets, garbage
read field by field, and answers that say nothing.

Sources of the header sets (values as shown there):
- OpenAI, the "Rate limits in headers" table of the rate limits guide:
  https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
- OpenAI, a real chat completion's head quoted on the OpenAI forum:
  https://community.openai.com/t/how-to-get-rate-limit-reset-time-for-response-api/1268905
- Groq: https://console.groq.com/docs/rate-limits ("values are illustrative")
- Azure OpenAI, a real head (the two remaining-* headers only):
  https://github.com/EvolvingPrograms/oaib/issues/11
- Azure OpenAI's Responses API sending -1 and 0:
  https://github.com/openai/openai-dotnet/issues/838
- Anthropic, the header table of https://docs.anthropic.com/en/api/rate-limits
  (names and formats: RFC 3339 resets), and a real /v1/messages head recorded
  in tidyllm's test fixtures:
  https://rdrr.io/cran/tidyllm/src/tests/testthat/claude/api.anthropic.com/v1/messages-e050b5-POST.R
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byok.gateway.ratelimits import Headroom, headroom

WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z
FIELDS = [f.name for f in fields(Headroom)]


def iso(offset: float) -> str:
    """An RFC 3339 time `offset` seconds from WALL, as Anthropic writes it."""
    return datetime.fromtimestamp(WALL + offset, timezone.utc).isoformat().replace("+00:00", "Z")


OPENAI_GUIDE = [
    ("x-ratelimit-limit-requests", "60"),
    ("x-ratelimit-limit-tokens", "150000"),
    ("x-ratelimit-remaining-requests", "59"),
    ("x-ratelimit-remaining-tokens", "149984"),
    ("x-ratelimit-reset-requests", "1s"),
    ("x-ratelimit-reset-tokens", "6m0s"),
]
OPENAI_ANSWER = [  # with the *_usage_based variants, which are not read
    ("date", "Mon, 26 May 2025 05:00:04 GMT"),
    ("content-type", "application/json"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    ("x-ratelimit-limit-requests", "5000"),
    ("x-ratelimit-limit-tokens", "160000"),
    ("x-ratelimit-limit-tokens_usage_based", "160000"),
    ("x-ratelimit-remaining-requests", "4999"),
    ("x-ratelimit-remaining-tokens", "159976"),
    ("x-ratelimit-remaining-tokens_usage_based", "159976"),
    ("x-ratelimit-reset-requests", "12ms"),
    ("x-ratelimit-reset-tokens", "9ms"),
    ("x-ratelimit-reset-tokens_usage_based", "9ms"),
]
GROQ = [
    ("retry-after", "2"),
    ("x-ratelimit-limit-requests", "14400"),
    ("x-ratelimit-limit-tokens", "18000"),
    ("x-ratelimit-remaining-requests", "14370"),
    ("x-ratelimit-remaining-tokens", "17997"),
    ("x-ratelimit-reset-requests", "2m59.56s"),
    ("x-ratelimit-reset-tokens", "7.66s"),
]
AZURE = [
    ("cache-control", "no-cache, must-revalidate"),
    ("content-length", "831"),
    ("content-type", "application/json"),
    ("access-control-allow-origin", "*"),
    ("apim-request-id", "bb943c68-99ed-46ab-bda9-a5efbdf5897a"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("x-content-type-options", "nosniff"),
    ("x-ms-region", "North Central US"),
    ("x-ratelimit-remaining-requests", "79"),
    ("x-ratelimit-remaining-tokens", "61353"),
    ("x-accel-buffering", "no"),
    ("x-request-id", "3a8b1a44-a02c-4a07-b51d-1c88acec4c4f"),
    ("x-ms-client-request-id", "bb943c68-99ed-46ab-bda9-a5efbdf5897a"),
    ("azureml-model-session", "d008-20240215231538"),
    ("date", "Sat, 02 Mar 2024 21:35:09 GMT"),
]
AZURE_RESPONSES = [
    ("x-ratelimit-limit-tokens", "-1"),
    ("x-ratelimit-remaining-tokens", "-1"),
    ("x-ratelimit-reset-tokens", "0"),
]
# recorded at 2025-08-21T12:41:00Z (its date header): every reset just past
ANTHROPIC_ANSWER_WALL = datetime(2025, 8, 21, 12, 41, 0, tzinfo=timezone.utc).timestamp()
ANTHROPIC_ANSWER = [
    ("date", "Thu, 21 Aug 2025 12:41:00 GMT"),
    ("content-type", "application/json"),
    ("content-encoding", "gzip"),
    ("anthropic-ratelimit-input-tokens-limit", "80000"),
    ("anthropic-ratelimit-input-tokens-remaining", "80000"),
    ("anthropic-ratelimit-input-tokens-reset", "2025-08-21T12:40:59Z"),
    ("anthropic-ratelimit-output-tokens-limit", "16000"),
    ("anthropic-ratelimit-output-tokens-remaining", "16000"),
    ("anthropic-ratelimit-output-tokens-reset", "2025-08-21T12:41:00Z"),
    ("anthropic-ratelimit-requests-limit", "1000"),
    ("anthropic-ratelimit-requests-remaining", "999"),
    ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
    ("anthropic-ratelimit-tokens-limit", "96000"),
    ("anthropic-ratelimit-tokens-remaining", "96000"),
    ("anthropic-ratelimit-tokens-reset", "2025-08-21T12:40:59Z"),
    ("request-id", "req_011CSLsW7mFqvHHnzrKdKjAE"),
    ("anthropic-organization-id", "36562039-1ae4-48e6-ae28-1e517e3d2d12"),
    ("x-envoy-upstream-service-time", "690"),
    ("via", "1.1 google"),
    ("cf-cache-status", "DYNAMIC"),
    ("server", "cloudflare"),
]
# the docs' full family, resets ahead of WALL
ANTHROPIC_FULL = [
    ("anthropic-ratelimit-requests-limit", "50"),
    ("anthropic-ratelimit-requests-remaining", "49"),
    ("anthropic-ratelimit-requests-reset", iso(1)),
    ("anthropic-ratelimit-tokens-limit", "38000"),
    ("anthropic-ratelimit-tokens-remaining", "37000"),
    ("anthropic-ratelimit-tokens-reset", iso(2)),
    ("anthropic-ratelimit-input-tokens-limit", "30000"),
    ("anthropic-ratelimit-input-tokens-remaining", "29000"),
    ("anthropic-ratelimit-input-tokens-reset", iso(2)),
    ("anthropic-ratelimit-output-tokens-limit", "8000"),
    ("anthropic-ratelimit-output-tokens-remaining", "8000"),
    ("anthropic-ratelimit-output-tokens-reset", iso(0)),
]
ANTHROPIC_INPUT_ONLY = [(n, v) for n, v in ANTHROPIC_FULL if "-ratelimit-tokens-" not in n]


def without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n not in names]


def replaced(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in headers]


@pytest.mark.parametrize(
    ("headers", "wall", "expected"),
    [
        pytest.param(
            OPENAI_GUIDE, WALL, Headroom(59, 60, 1.0, 149984, 150000, 360.0), id="openai-guide"
        ),
        pytest.param(
            OPENAI_ANSWER, WALL, Headroom(4999, 5000, 0.012, 159976, 160000, 0.009), id="openai"
        ),
        pytest.param(GROQ, WALL, Headroom(14370, 14400, 179.56, 17997, 18000, 7.66), id="groq"),
        pytest.param(AZURE, WALL, Headroom(79, None, None, 61353, None, None), id="azure"),
        pytest.param(
            AZURE_RESPONSES, WALL, Headroom(None, None, None, None, None, 0.0), id="azure-minus-1"
        ),
        pytest.param(
            ANTHROPIC_ANSWER,
            ANTHROPIC_ANSWER_WALL,  # its resets are a second old: 0, never negative
            Headroom(999, 1000, 0.0, 96000, 96000, 0.0),
            id="anthropic-recorded",
        ),
        pytest.param(
            ANTHROPIC_ANSWER,
            ANTHROPIC_ANSWER_WALL - 29,
            Headroom(999, 1000, 28.0, 96000, 96000, 28.0),
            id="anthropic-recorded-earlier",
        ),
        pytest.param(
            ANTHROPIC_FULL, WALL, Headroom(49, 50, 1.0, 37000, 38000, 2.0), id="anthropic-tokens"
        ),
        pytest.param(  # no tokens-* family: input tokens bind, output tokens are not read
            ANTHROPIC_INPUT_ONLY,
            WALL,
            Headroom(49, 50, 1.0, 29000, 30000, 2.0),
            id="anthropic-input-tokens",
        ),
        pytest.param(  # part of the tokens-* family still beats the input-tokens one
            without(
                ANTHROPIC_FULL,
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-reset",
            ),
            WALL,
            Headroom(49, 50, 1.0, 37000, None, None),
            id="anthropic-partial-tokens",
        ),
        pytest.param(
            [("x-ratelimit-remaining-requests", "3")],
            WALL,
            Headroom(3, None, None, None, None, None),
            id="one-header",
        ),
        pytest.param(
            [("anthropic-ratelimit-requests-reset", iso(-5))],
            WALL,
            Headroom(None, None, 0.0, None, None, None),
            id="anthropic-reset-past",
        ),
        pytest.param(  # a bare number past 1e9 is an epoch time, not a duration
            [("x-ratelimit-reset-requests", f"{WALL + 30:.0f}")],
            WALL,
            Headroom(None, None, 30.0, None, None, None),
            id="epoch-reset",
        ),
        pytest.param(
            [("x-ratelimit-reset-tokens", f"{WALL - 30:.3f}")],
            WALL,
            Headroom(None, None, None, None, None, 0.0),
            id="epoch-reset-past",
        ),
        pytest.param(
            [("x-ratelimit-reset-requests", "20"), ("x-ratelimit-reset-tokens", "0.5")],
            WALL,
            Headroom(None, None, 20.0, None, None, 0.5),
            id="bare-seconds",
        ),
        pytest.param(
            [("x-ratelimit-reset-requests", "1h2m3.5s"), ("x-ratelimit-reset-tokens", " 20ms ")],
            WALL,
            Headroom(None, None, 3723.5, None, None, 0.02),
            id="durations",
        ),
        pytest.param(
            [("x-ratelimit-reset-requests", "1m5s"), ("x-ratelimit-reset-tokens", "2.5ms")],
            WALL,
            Headroom(None, None, 65.0, None, None, 0.0025),
            id="durations-fractions",
        ),
    ],
)
def test_header_sets(headers, wall, expected):
    assert headroom(headers, wall) == expected


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="empty"),
        pytest.param(without(AZURE, *(n for n, _ in AZURE if "ratelimit" in n)), id="local"),
        pytest.param([("retry-after", "2"), ("retry-after-ms", "2000")], id="retry-after"),
        pytest.param(  # neither read nor a rate limit of its own
            [(n, v) for n, v in ANTHROPIC_FULL if "output-tokens" in n], id="output-tokens"
        ),
        pytest.param(
            [("x-ratelimit-remaining-tokens_usage_based", "1"), ("x-ratelimit-limit", "9")],
            id="unknown-x-ratelimit",
        ),
        pytest.param([("X-RateLimit-Remaining-Requests", "59")], id="not-lowercased"),
    ],
)
def test_answers_without_rate_limit_headers_say_nothing(headers):
    assert headroom(headers, WALL) is None


COUNT_GARBAGE = ["-1", "-5", "NaN", "nan", "inf", "-inf", "abc", "", " ", "1.5", "12e3x", "0x10"]
DURATION_GARBAGE = ["-5s", "-5", "NaN", "inf", "-inf", "abc", "", "6m0x", "1s1s", "5 s", "1d"]
TIME_GARBAGE = ["abc", "", "-5", "NaN", "2024-13-45T00:00:00Z", "12:00:05", "1s"]


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        *(
            (name, field, value)
            for name, field in [
                ("x-ratelimit-remaining-requests", "requests_remaining"),
                ("x-ratelimit-limit-tokens", "tokens_limit"),
                ("anthropic-ratelimit-requests-limit", "requests_limit"),
                ("anthropic-ratelimit-tokens-remaining", "tokens_remaining"),
            ]
            for value in COUNT_GARBAGE
        ),
        *(("x-ratelimit-reset-requests", "requests_reset", v) for v in DURATION_GARBAGE),
        *(("anthropic-ratelimit-tokens-reset", "tokens_reset", v) for v in TIME_GARBAGE),
    ],
)
def test_garbage_loses_its_own_field_only(name, field, value):
    headers = OPENAI_GUIDE if name.startswith("x-") else ANTHROPIC_FULL
    expected = headroom(headers, WALL)
    assert expected is not None
    assert getattr(expected, field) is not None
    got = headroom(replaced(headers, name, value), WALL)
    assert got is not None
    assert getattr(got, field) is None
    for other in FIELDS:
        if other != field:
            assert getattr(got, other) == getattr(expected, other)


def test_the_headers_are_read_in_one_pass():
    """Any iterable will do, a generator too: the headers are not walked twice."""
    assert headroom((pair for pair in OPENAI_GUIDE), WALL) == headroom(OPENAI_GUIDE, WALL)


NAMES = [n for n, _ in OPENAI_GUIDE] + [n for n, _ in ANTHROPIC_FULL] + ["date", "x-request-id"]


VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            *COUNT_GARBAGE,
            *DURATION_GARBAGE,
            *TIME_GARBAGE,
            "1s",
            "6m0s",
            "12ms",
            "59",
            iso(5),
            iso(-5),
            f"{WALL:.0f}",
        ]
    ),
    st.integers().map(str),
    st.floats().map(str),
    st.from_regex(r"[0-9]{1,400}(ms|h|m|s)?", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=20),
    st.floats(min_value=0, max_value=4e9),
)
def test_never_raises_and_says_only_sane_figures(headers, wall):
    found = headroom(headers, wall)
    if found is None:
        return
    for field in FIELDS:
        value = getattr(found, field)
        assert value is None or (value >= 0 and math.isfinite(value))
