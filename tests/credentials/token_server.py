"""A simulated OAuth token endpoint, speaking HTTP for real on loopback.

It answers the refresh-token grant (RFC 6749 section 6) as the vendors' do:
a new access token, a new refresh token (the old one is spent: a second use
is refused with invalid_grant, as Anthropic and OpenAI rotate them) and
expires_in.  Each access token it issues is handed to `issued` (a test adds
it to the simulated upstream's keys), so a refreshed key works upstream."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import trio

from byok.http.server import Request, Response

JSON = [("content-type", "application/json")]


@dataclass
class Grant:
    """One grant request as it arrived."""

    form: str  # "json" or "form"
    fields: dict[str, str]
    at: float  # trio's clock


@dataclass
class TokenServer:
    issued: Callable[[str], None] = lambda token: None
    lifetime: int = 3600  # expires_in of each grant
    rotate: bool = True  # a new refresh token with each grant, the old one spent
    valid: set[str] = field(default_factory=set)  # refresh tokens it accepts
    revoked: set[str] = field(default_factory=set)  # ... and those it refuses
    mode: str = "ok"  # "ok", "500", "no_access" (a 200 without access_token), "slow"
    delay: float = 0.0  # seconds before each answer
    grants: list[Grant] = field(default_factory=list)
    prefix: str = "at-sim"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def accept(self, refresh_token: str) -> None:
        self.valid.add(refresh_token)

    async def __call__(self, request: Request) -> Response:
        if request.path != "/oauth/token" or request.method != "POST":
            return Response(404, list(JSON), b'{"error":"not_found"}')
        kind = request.header("content-type")
        if kind.startswith("application/json"):
            fields = {k: str(v) for k, v in json.loads(request.body).items()}
            form = "json"
        else:
            fields = dict(parse_qsl(request.body.decode()))
            form = "form"
        self.grants.append(Grant(form, fields, trio.current_time()))
        if self.delay:
            await trio.sleep(self.delay)
        if self.mode == "500":
            return Response(500, list(JSON), b'{"error":"server_error"}')
        if fields.get("grant_type") != "refresh_token":
            return _error(400, "unsupported_grant_type", "only refresh_token")
        token = fields.get("refresh_token", "")
        if token in self.revoked or token not in self.valid:
            return _error(400, "invalid_grant", f"refresh token {token} is invalid or revoked")
        if self.mode == "no_access":
            return Response(200, list(JSON), b'{"token_type":"bearer"}')
        n = next(self._ids)
        access = f"{self.prefix}-access-{n:04d}-QWERTYUIOPASDFGH"
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.lifetime,
        }
        if self.rotate:
            self.valid.discard(token)
            new_refresh = f"{self.prefix}-refresh-{n:04d}-ZXCVBNMLKJHGFDSA"
            self.valid.add(new_refresh)
            answer["refresh_token"] = new_refresh
        self.issued(access)
        return Response(200, list(JSON), json.dumps(answer).encode())


def _error(status: int, code: str, description: str) -> Response:
    body = json.dumps({"error": code, "error_description": description}).encode()
    return Response(status, list(JSON), body)
