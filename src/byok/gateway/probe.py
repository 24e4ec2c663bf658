"""The key probe: one authenticated request that spends no tokens.

The models listing (``GET {base_url}/models`` for OpenAI-style base URLs,
``GET {base_url}/v1/models`` for Anthropic's), with the key's credentials as
its provider kind takes them (byok.providers).  ``byok keys check`` probes
every key with it; the revalidator asks a blocked key again with it.

Verdicts follow the proxy's own classification of an answer
(gateway/outcomes.py): ``valid`` (2xx), ``invalid`` (401, 403: blocked),
``rate-limited`` (429: the key is valid, just at its limit now),
``unreachable`` (no HTTP answer: connection refused, TLS failure, timeout)
and ``error`` (any other status).  A 404 is an error of the base URL, not of
the key: the check's note says which part of the URL is probably wrong.

A short-lived key is probed with its token now (renewed first if it has
expired, even within the backoff of a renewal that failed): a token that
cannot be had is ``invalid`` when it will not mend by itself (a refused
refresh token, a command that prints no token) and ``unreachable``
otherwise (a token endpoint that is down, a command that fails), with the
credential's reason as its note.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from .. import __version__
from ..config import Key, Provider
from ..credentials import CredentialError, Credentials
from ..http.upstream import Upstream, UpstreamError
from ..providers import MODELS_PATH, base_url_problem
from .headers import key_headers
from .outcomes import Kind, classify

VERDICTS = ("valid", "invalid", "rate-limited", "unreachable", "error")
LISTING_LIMIT = 4 * 1024 * 1024  # bytes of a models listing read


@dataclass(frozen=True)
class Check:
    """One key's verdict: names and numbers only, never the secret."""

    provider: str
    label: str
    fingerprint: str
    verdict: str
    status: int | None = None  # None: no HTTP answer
    latency_ms: float | None = None  # to the response head
    # what the verdict does not say: why a key is unreachable (host and
    # cause), what a 404 means; never a secret
    detail: str = ""


_VERDICTS = {
    Kind.SUCCESS: "valid",
    Kind.BLOCKED: "invalid",
    Kind.RATE_LIMITED: "rate-limited",  # valid, at its limit for now
}


def verdict(status: int) -> str:
    """What a status of the models listing says about the key, as the proxy
    would judge an answer (outcomes.classify); anything else is "error"."""
    return _VERDICTS.get(classify(status, (), 0.0).kind, "error")


def explain(provider: Provider, status: int) -> str:
    """What a status of the models listing means beyond its verdict, or "":
    a 404 says that the listing is not where the base URL points."""
    if status != 404:
        return ""
    said = "the models listing answered 404"
    if base_url_problem(provider.kind, provider.base_url) is None:
        return f"{said}: is the base URL right? (or this server lists no models)"
    if provider.spec.base_url_has_version:
        return f"{said}: the base URL probably lacks /v1"
    return f"{said}: the base URL probably should not end in /v1"


def probe_request(
    provider: Provider, key: Key, secret: str | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """The URL and headers of the models listing for this key (`secret`: a
    short-lived key's token now)."""
    headers = [("accept", "application/json"), ("user-agent", f"byok/{__version__} keys-check")]
    headers += key_headers(provider, key, key.secret if secret is None else secret)
    return provider.spec.url(provider.base_url, MODELS_PATH), headers


async def check_key(
    upstream: Upstream,
    provider: Provider,
    key: Key,
    timeout: float,
    credentials: Credentials | None = None,
) -> Check:
    """Probe one key with the models listing, within `timeout` seconds
    (`credentials`: where a short-lived key's token comes from)."""
    secret = None
    if key.source is not None:
        assert credentials is not None  # a config with such keys has them
        try:
            with trio.fail_after(timeout):
                secret = await credentials.token(upstream, key.source, force=True)
        except (CredentialError, trio.TooSlowError) as error:
            blocks = isinstance(error, CredentialError) and error.blocks
            reason = error.reason if isinstance(error, CredentialError) else "no token in time"
            judged = "invalid" if blocks else "unreachable"
            return Check(provider.name, key.label, key.fingerprint, judged, detail=reason)
    url, headers = probe_request(provider, key, secret)
    status: int | None = None
    latency: float | None = None
    started = trio.current_time()
    with trio.move_on_after(timeout):
        try:
            response = await upstream.send(
                provider.base_url, "GET", url, headers, b"", egress=provider.egress
            )
        except UpstreamError as error:  # its message names the host, never a header
            return Check(
                provider.name, key.label, key.fingerprint, "unreachable", detail=str(error)
            )
        status, latency = response.status, (trio.current_time() - started) * 1000
        try:
            # to the end, so the connection can serve the next probe (bounded:
            # a listing is small, and nothing unbounded is held in memory)
            await response.read(limit=LISTING_LIMIT)
        except UpstreamError:
            pass  # the status is in; the body does not matter
        finally:
            await response.aclose()
    if status is None:
        detail = f"no answer within {timeout:g}s"
        return Check(provider.name, key.label, key.fingerprint, "unreachable", detail=detail)
    return Check(
        provider.name,
        key.label,
        key.fingerprint,
        verdict(status),
        status,
        latency,
        explain(provider, status),
    )
