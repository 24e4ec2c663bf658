"""The refresh-token grant (RFC 6749, section 6) at a provider's token endpoint.

One POST of ``grant_type=refresh_token`` with the refresh token and the
client id (and the client secret and scope when configured), as a form or
as JSON (``token_format``: Claude Code and the Codex CLI post JSON), sent
by byok's own upstream client with the provider's egress (its proxy and
trust).  A 2xx with an ``access_token`` is a new grant; the endpoint may
send a new refresh token too (both vendors rotate them: the old one is
spent), and ``expires_in``.

A 400, 401 or 403 is a refusal that will not pass by itself (the refresh
token is revoked, spent by another program, or the client is wrong): the
key is blocked with the endpoint's ``error`` code.  A 429, a 5xx, no answer
or an answer that is not a grant may pass: the key counts a failure and the
refresh is tried again later.  No token, and nothing the endpoint sent back
but its error code and description (tokens taken out), appears in a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import trio

from .. import __version__
from ..http.egress import EgressSettings
from ..http.upstream import Upstream, UpstreamError
from . import files
from .errors import CredentialError
from .sources import OAuthClient

ANSWER_LIMIT = 64 * 1024  # bytes of a token endpoint's answer read
MAX_LIFETIME = 10 * 365 * 86400.0  # an expires_in beyond ten years is not believed
REFRESH_TIMEOUT = 30.0  # seconds for the whole exchange
_REFUSALS = (400, 401, 403)
_EXTRA = ("id_token", "scope", "token_type")  # written back where the file has them


@dataclass(frozen=True)
class Grant:
    access: str = field(repr=False)
    refresh: str = field(repr=False)  # "": the endpoint kept the refresh token as it was
    lifetime: float | None  # expires_in, seconds; None: not said
    extra: dict[str, str] = field(default_factory=dict, repr=False)


def request_body(client: OAuthClient, refresh_token: str) -> tuple[str, bytes]:
    """The grant's content type and body."""
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client.client_id,
    }
    if client.client_secret:
        fields["client_secret"] = client.client_secret
    if client.scope:
        fields["scope"] = client.scope
    if client.token_format == "json":
        return "application/json", json.dumps(fields).encode("utf-8")
    return "application/x-www-form-urlencoded", urlencode(fields).encode("ascii")


async def refresh(
    upstream: Upstream,
    client: OAuthClient,
    refresh_token: str,
    egress: EgressSettings | None = None,
    timeout: float = REFRESH_TIMEOUT,
) -> Grant:
    """A new grant for `refresh_token`; CredentialError if none came."""
    parts = urlsplit(client.token_url)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no user:password to show
    kind, body = request_body(client, refresh_token)
    headers = [
        ("content-type", kind),
        ("accept", "application/json"),
        ("user-agent", f"byok/{__version__}"),
    ]
    where = f"the token endpoint {origin}"
    status, answer = None, b""
    with trio.move_on_after(timeout):
        try:
            response = await upstream.send(
                origin, "POST", client.token_url, headers, body, egress=egress
            )
            try:
                status = response.status
                answer = await response.read(limit=ANSWER_LIMIT)
            finally:
                await response.aclose()
        except UpstreamError as error:  # its message names the host, never a header
            raise CredentialError(f"{where} could not be reached: {error}", blocks=False) from None
    if status is None:
        raise CredentialError(f"{where} did not answer within {timeout:g}s", blocks=False)
    secrets = (refresh_token, client.client_secret)
    if status in _REFUSALS:
        raise CredentialError(
            f"{where} refused the refresh token ({status}{_said(answer, secrets)}): "
            "sign in again with the provider's CLI, or give a fresh credential file",
            blocks=True,
        )
    if status // 100 != 2:
        raise CredentialError(
            f"{where} answered {status}{_said(answer, secrets)}; the refresh is tried again",
            blocks=False,
        )
    return grant_of(answer, where)


def grant_of(answer: bytes, where: str) -> Grant:
    """The grant in a token endpoint's 2xx answer."""
    document = _json(answer)
    access = _token(document, "access_token")
    if not access:
        raise CredentialError(f"{where} answered without an access_token", blocks=False)
    assert isinstance(document, dict)
    lifetime = files.number(document.get("expires_in"))
    if lifetime is not None and not 0 < lifetime <= MAX_LIFETIME:
        lifetime = None  # none said, or nothing to believe: the token's own, if a JWT
    extra = {name: document[name] for name in _EXTRA if isinstance(document.get(name), str)}
    return Grant(access, _token(document, "refresh_token"), lifetime, extra)


def _json(answer: bytes) -> object:
    try:
        return json.loads(answer)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return None


def _token(document: object, name: str) -> str:
    """The token `name` of a grant, if it is one a header can carry."""
    found = document.get(name) if isinstance(document, dict) else None
    if not isinstance(found, str) or not files.is_token(found.strip()):
        return ""
    return found.strip()


def _said(answer: bytes, secrets: tuple[str, ...]) -> str:
    """The endpoint's error code and description, secrets taken out, short."""
    document = _json(answer)
    if not isinstance(document, dict):
        return ""
    error = document.get("error")
    if isinstance(error, dict):  # {"error": {"type", "message"}}, as Anthropic's APIs say it
        code, description = error.get("type"), error.get("message")
    else:
        code, description = error, document.get("error_description")
    said = ": ".join(part for part in (code, description) if isinstance(part, str))
    for secret in secrets:  # before it is cut short: a cut secret would not be found
        if secret:
            said = said.replace(secret, "[redacted]")
    return f", {said[:300]}" if said else ""
