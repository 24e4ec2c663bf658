"""Which headers cross byok, in each direction.

Upstream: the client's headers, less its credentials and what belongs to its
connection, plus the key's credentials as its provider kind takes them
(byok.providers); a short-lived key's token goes as a Bearer authorization,
with the headers its source names (Anthropic's OAuth beta flag: a list, so
it joins the client's anthropic-beta rather than replacing it).  The
upstream is offered only content codings byok can read, since byok reads
the usage of every answer it relays: for a whole answer, gzip and deflate if
the client accepts them (br and zstd are left out: the client gets a coding
it named, or none); for a stream, none, as byok reads it event by event (and
takes an event out of some).  Back to the client: the upstream's headers,
less cookies, with the upstream's request id renamed; the server drops the
hop-by-hop ones.
"""

from __future__ import annotations

from functools import lru_cache

from ..config import Key, Provider
from ..credentials import TokenSource
from ..http.coding import INFLATABLE
from ..http.server import Request

# Request headers never sent upstream: the client's credentials, and what
# belongs to the client's connection.
DROP_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "expect",
    }
)
# Response headers never relayed to the client.  Hop-by-hop headers (and the
# upstream's content-length) are the server's to drop, on every response.
DROP_RESPONSE_HEADERS = frozenset({"set-cookie"})
# The upstream's own request id is worth keeping (a provider's support asks
# for it), under another name: x-request-id is byok's, one per answer.
RENAMED_RESPONSE_HEADERS = {"x-request-id": "x-upstream-request-id"}
# The content codings byok can read an answer in (http/coding.py).
_READABLE = INFLATABLE | {"identity"}
# Headers whose value is a comma-separated list: a source's values join the client's.
_LISTS = frozenset({"anthropic-beta"})
# A client's headers that belong to its own API, not sent to a target of the
# other (through translation): an OpenAI server has no use for
# anthropic-beta, and an Anthropic one would read a stray version header.
_OWN_API_PREFIXES = {"anthropic": "anthropic-", "openai": "openai-"}


def upstream_headers(
    request: Request,
    provider: Provider,
    secret: str,
    stream: bool = False,
    translated_from: str | None = None,
    source: TokenSource | None = None,
) -> list[tuple[str, str]]:
    """The headers of an attempt on `secret`, for the client's `request`
    (`stream`: the client asked for a stream; `translated_from`: the
    client's dialect, when the request was translated for `provider`;
    `source`: where `secret` came from, for a short-lived key's token)."""
    headers = [(k, v) for k, v in request.headers if k not in DROP_REQUEST_HEADERS]
    if translated_from is not None:
        # byok reads a translated answer whole, so it asks for no coding
        prefix = _OWN_API_PREFIXES[translated_from]
        headers = [(k, v) for k, v in headers if not k.startswith(prefix)]
        stream = True
    accepted = "identity" if stream else readable_codings(request.header("accept-encoding"))
    headers.append(("accept-encoding", accepted))
    spec = provider.spec
    chosen = ""
    if spec.version_header and translated_from is None:
        chosen = request.header(spec.version_header)
    headers += spec.credentials(
        secret, provider.anthropic_version, chosen, bearer=source is not None
    )
    if source is not None and source.headers:
        headers = with_source_headers(headers, source.headers)
    return headers


def key_headers(provider: Provider, key: Key, secret: str) -> list[tuple[str, str]]:
    """The headers that carry `key` on a request byok makes of its own (a
    probe, a models listing): `secret` is its secret, or its token now."""
    source = key.source
    headers = provider.spec.credentials(
        secret, provider.anthropic_version, bearer=source is not None
    )
    return headers if source is None else with_source_headers(headers, source.headers)


def with_source_headers(
    headers: list[tuple[str, str]], extra: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    """`headers` with a short-lived key's own: each replaces the client's
    header of its name, or joins it when the header is a list."""
    for name, value in extra:
        given = [v for k, v in headers if k == name]
        if name in _LISTS and given:
            items = (item.strip() for v in [*given, value] for item in v.split(","))
            value = ",".join(dict.fromkeys(item for item in items if item))
        headers = [(k, v) for k, v in headers if k != name]
        headers.append((name, value))
    return headers


@lru_cache(maxsize=64)  # clients send a few values, over and over
def readable_codings(accept_encoding: str) -> str:
    """The client's accept-encoding less the codings byok cannot read
    (br, zstd, ``*``), weights kept; identity when none is left."""
    kept = [
        item.strip()
        for item in accept_encoding.split(",")
        if item.split(";", 1)[0].strip().lower() in _READABLE
    ]
    return ", ".join(kept) or "identity"


def client_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers as the client gets them."""
    return [
        (RENAMED_RESPONSE_HEADERS.get(k, k), v)
        for k, v in headers
        if k not in DROP_RESPONSE_HEADERS
    ]
