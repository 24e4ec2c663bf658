"""The kinds of provider byok speaks to, and everything byok knows about each.

One row per kind.  Every module that needs to know something about a
provider asks this table: the config for a kind's name and default base URL,
routing for the endpoints a target serves and their URLs, the proxy and the
key probe for the headers that carry a key, outcome classification for the
rate-limit headers, the dialects for the error shape.  A new kind of
provider (Azure OpenAI, Vertex, ...) is a new row here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

# The client-facing endpoints of each API dialect.
OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
ANTHROPIC_ENDPOINTS = ("/v1/messages", "/v1/messages/count_tokens")
# The models listing: the cheapest authenticated call, no tokens spent.
MODELS_PATH = "/v1/models"

Dialect = Literal["openai", "anthropic"]
ANTHROPIC_VERSION = "2023-06-01"  # the API version byok sends when the client names none


@dataclass(frozen=True)
class RateLimitHeaders:
    """Where a kind tells how much of each limit is left, and when it resets."""

    limits: tuple[tuple[str, str], ...]  # (remaining, reset) header names, one pair per limit
    reset_format: Literal["duration", "timestamp"]  # "6m0s" durations, or RFC 3339 times


@dataclass(frozen=True)
class OAuthDefaults:
    """How a kind's subscription accounts refresh their OAuth tokens, as its
    vendor's own CLI does (byok.credentials): the token endpoint, the CLI's
    public client id, how the grant is posted, and the headers a request made
    with such a token needs besides its Bearer authorization."""

    token_url: str
    client_id: str
    token_format: Literal["form", "json"]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ProviderKind:
    name: str
    dialect: Dialect  # the API of its own endpoints, and the shape of its errors
    native: frozenset[str]  # endpoints it serves (the other dialect's: through translation)
    default_base_url: str | None  # None: the config must give one
    # OpenAI-style base URLs end in /v1 (as the OpenAI SDKs take them), so the
    # endpoint's /v1 is not repeated; Anthropic's base URL is the bare host.
    base_url_has_version: bool
    auth_header: Literal["authorization", "x-api-key"]  # on its native endpoints
    version_header: str | None  # the API version it wants on each request
    default_version: str | None
    rate_limits: RateLimitHeaders
    oauth: OAuthDefaults | None = None  # None: an OAuth key names its token endpoint itself

    @property
    def base_url_rule(self) -> str:
        """How this kind's base URL is written, for error messages and docs."""
        if self.base_url_has_version:
            return "the API root with its version, e.g. https://host/v1"
        return "the bare host, without /v1, e.g. https://api.anthropic.com"

    def url(self, base_url: str, path: str) -> str:
        """The upstream URL of a client endpoint `path` (or MODELS_PATH)."""
        if self.base_url_has_version:
            return base_url + path.removeprefix("/v1")
        return base_url + path

    def credentials(
        self,
        secret: str,
        version: str | None = None,
        chosen_version: str = "",
        *,
        bearer: bool = False,
    ) -> list[tuple[str, str]]:
        """The headers that carry `secret`: the kind's own auth header (a
        Bearer authorization with `bearer`, as an OAuth or command token
        always goes), and the API version header (`version`, else the kind's
        default) unless the client chose one (`chosen_version`)."""
        if self.auth_header == "x-api-key" and not bearer:
            headers = [("x-api-key", secret)]
        else:
            headers = [("authorization", f"Bearer {secret}")]
        if self.version_header is not None and not chosen_version:
            headers.append((self.version_header, version or self.default_version or ""))
        return headers


_OPENAI_LIMITS = RateLimitHeaders(
    (
        ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ),
    "duration",
)
_ANTHROPIC_LIMITS = RateLimitHeaders(
    tuple(
        (f"anthropic-ratelimit-{limit}-remaining", f"anthropic-ratelimit-{limit}-reset")
        for limit in ("requests", "tokens", "input-tokens", "output-tokens")
    ),
    "timestamp",
)

OPENAI = ProviderKind(
    name="openai",
    dialect="openai",
    native=frozenset(OPENAI_ENDPOINTS),
    default_base_url="https://api.openai.com/v1",
    base_url_has_version=True,
    auth_header="authorization",
    version_header=None,
    default_version=None,
    rate_limits=_OPENAI_LIMITS,
    # the Codex CLI's: a ChatGPT subscription signs in and refreshes there
    oauth=OAuthDefaults(
        token_url="https://auth.openai.com/oauth/token",
        client_id="app_EMoamEEZ73f0CkXaXp7hrann",
        token_format="json",
    ),
)
ANTHROPIC = ProviderKind(
    name="anthropic",
    dialect="anthropic",
    native=frozenset(ANTHROPIC_ENDPOINTS),
    default_base_url="https://api.anthropic.com",
    base_url_has_version=False,
    auth_header="x-api-key",
    version_header="anthropic-version",
    default_version=ANTHROPIC_VERSION,
    rate_limits=_ANTHROPIC_LIMITS,
    # Claude Code's: a Claude subscription's token is refreshed there, and is
    # taken on the API with this beta flag
    oauth=OAuthDefaults(
        token_url="https://console.anthropic.com/v1/oauth/token",
        client_id="9d1c250a-e61b-44d9-88ed-5944d1962f5e",
        token_format="json",
        headers=(("anthropic-beta", "oauth-2025-04-20"),),
    ),
)
# vLLM, Ollama, LM Studio, OpenRouter, Groq, ...: OpenAI's API on another host
OPENAI_COMPATIBLE = ProviderKind(
    name="openai_compatible",
    dialect="openai",
    native=frozenset(OPENAI_ENDPOINTS),
    default_base_url=None,
    base_url_has_version=True,
    auth_header="authorization",
    version_header=None,
    default_version=None,
    rate_limits=_OPENAI_LIMITS,
)

KINDS: dict[str, ProviderKind] = {k.name: k for k in (OPENAI, ANTHROPIC, OPENAI_COMPATIBLE)}

# A path segment that names an API version: v1, v2, v1beta, v1alpha2
_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*")


def base_url_problem(kind_name: str, base_url: str) -> str | None:
    """Why `base_url` is probably wrong for a provider of kind `kind_name`, or
    None.  Such a URL is accepted (a server may serve its API elsewhere) but
    worth a warning: an OpenAI-style base URL with no version segment in its
    path (each request would miss /v1 and answer 404), an Anthropic one that
    ends in /v1 (each request would ask for /v1/v1/...)."""
    spec = KINDS.get(kind_name)
    if spec is None:
        return None
    segments = urlsplit(base_url).path.strip("/").split("/")
    if spec.base_url_has_version:
        if any(_VERSION_SEGMENT.fullmatch(segment) for segment in segments):
            return None
        return (
            f"base_url {base_url} has no /v1: OpenAI-style base URLs end in the API version, "
            f"e.g. {base_url.rstrip('/')}/v1"
        )
    if _VERSION_SEGMENT.fullmatch(segments[-1]):
        return f"base_url {base_url} ends in /{segments[-1]}: its base URL is {spec.base_url_rule}"
    return None
