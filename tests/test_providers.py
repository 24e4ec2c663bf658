"""The table of provider kinds: what each kind serves, where, with which
credentials; and that everything else asks the table."""

from __future__ import annotations

import pytest

from byok.gateway import dialects
from byok.gateway.outcomes import rate_limit_delay
from byok.providers import (
    ANTHROPIC,
    KINDS,
    MODELS_PATH,
    OPENAI,
    OPENAI_COMPATIBLE,
    ProviderKind,
)


def test_kinds_are_the_config_names() -> None:
    assert set(KINDS) == {"openai", "anthropic", "openai_compatible"}
    assert all(name == kind.name for name, kind in KINDS.items())


def test_every_client_endpoint_is_served_by_some_kind_in_its_dialect() -> None:
    for path, dialect in dialects.ENDPOINTS.items():
        assert any(path in k.native and k.dialect == dialect for k in KINDS.values()), path


@pytest.mark.parametrize(
    ("kind", "base", "path", "url"),
    [
        (OPENAI, "https://api.openai.com/v1", "/v1/chat/completions",
         "https://api.openai.com/v1/chat/completions"),
        (OPENAI_COMPATIBLE, "http://127.0.0.1:8000/v1", MODELS_PATH,
         "http://127.0.0.1:8000/v1/models"),
        (ANTHROPIC, "https://api.anthropic.com", "/v1/messages",
         "https://api.anthropic.com/v1/messages"),
        (ANTHROPIC, "https://api.anthropic.com", MODELS_PATH,
         "https://api.anthropic.com/v1/models"),
    ],
)  # fmt: skip
def test_urls_follow_the_base_url_rule(kind: ProviderKind, base: str, path: str, url: str) -> None:
    assert kind.url(base, path) == url


def test_openai_kinds_take_a_bearer_token_and_no_version() -> None:
    for kind in (OPENAI, OPENAI_COMPATIBLE):
        assert kind.credentials("sk-1") == [("authorization", "Bearer sk-1")]


def test_anthropic_takes_its_own_header_and_version() -> None:
    assert ANTHROPIC.credentials("sk-ant") == [
        ("x-api-key", "sk-ant"),
        ("anthropic-version", "2023-06-01"),
    ]
    # the configured version, unless the client chose one itself
    assert ANTHROPIC.credentials("sk-ant", "2024-01-01")[1] == ("anthropic-version", "2024-01-01")
    assert ANTHROPIC.credentials("sk-ant", "2024-01-01", "2023-06-01") == [("x-api-key", "sk-ant")]


def test_each_kind_serves_its_own_api_natively_and_the_other_through_translation() -> None:
    # Anthropic's OpenAI-compatibility endpoint is not used: byok translates
    assert "/v1/chat/completions" not in ANTHROPIC.native
    assert "/v1/messages" not in OPENAI.native


def test_outcomes_read_every_kinds_reset_headers() -> None:
    """A 429's delay comes from whichever family of reset headers it carries,
    whoever sent it: the names are the table's."""
    openai_remaining, openai_reset = OPENAI.rate_limits.limits[0]
    assert rate_limit_delay({openai_remaining: "0", openai_reset: "1m30s"}, 0.0) == 90.0
    remaining, reset = ANTHROPIC.rate_limits.limits[1]
    headers = {remaining: "0", reset: "1970-01-01T00:00:42Z"}
    assert rate_limit_delay(headers, 0.0) == 42.0
