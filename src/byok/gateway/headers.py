"""Which headers cross byok, in each direction.

Upstream: the client's headers, less its credentials and what belongs to its
connection, plus the key's credentials as its provider kind takes them
(byok.providers).  Back to the client: the upstream's headers, less cookies,
with the upstream's request id renamed; the server drops the hop-by-hop ones.
"""

from __future__ import annotations

from ..config import Provider
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


def upstream_headers(
    request: Request, provider: Provider, secret: str, path: str
) -> list[tuple[str, str]]:
    """The headers of an attempt on `secret`, for the client's `request`."""
    headers = [(k, v) for k, v in request.headers if k not in DROP_REQUEST_HEADERS]
    headers.append(("accept-encoding", request.header("accept-encoding") or "identity"))
    spec = provider.spec
    chosen = request.header(spec.version_header) if spec.version_header else ""
    headers += spec.credentials(secret, path, provider.anthropic_version, chosen)
    return headers


def client_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers as the client gets them."""
    return [
        (RENAMED_RESPONSE_HEADERS.get(k, k), v)
        for k, v in headers
        if k not in DROP_RESPONSE_HEADERS
    ]
