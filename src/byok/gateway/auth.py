"""Who may use byok: the key a request presents, compared in constant time.

The proxy checks client keys with these, the admin API its admin keys.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from ..http.server import Request


def credential(request: Request) -> str:
    """The key a request presents: x-api-key, else a bearer token."""
    presented = request.header("x-api-key")
    if not presented:
        bearer = request.header("authorization")
        if bearer[:7].lower() == "bearer ":
            presented = bearer[7:].strip()
    return presented


def matches(presented: str, secrets: Sequence[bytes]) -> bool:
    """Constant-time: compared with every key, always, so the time taken
    says nothing about which one matched or how much of it."""
    given = presented.encode("utf-8")
    found = [hmac.compare_digest(given, secret) for secret in secrets]
    return bool(presented) and any(found)
