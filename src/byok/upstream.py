"""The HTTP client that talks to upstream providers: one module, so that the
choice of client can change in one place.

httpx2 (pydantic's maintained fork of httpx, which the openai and anthropic
SDKs use) over httpx: on trio, one pooled client, concurrency 16 against the
simulated upstream, it carried 844 requests/s to httpx's 504 (median of five
interleaved rounds, `python benchmarks/bench_upstream_client.py`).  Issue 4
measures httpcore and pooled h11 connections of our own on the hot path.

Each provider gets its own pooled keep-alive client.  Network failures of every
kind map to ``UpstreamError`` here, at the edge, so the proxy deals with one
exception and a message that names no secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2 as httpx  # the same API; see the module docstring


class UpstreamError(Exception):
    """The upstream could not be reached or broke off; the message is safe to log."""


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[str, str]]  # lower-cased names
    _response: httpx.Response

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, undecoded (content-encoding passes through)."""
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as error:
            raise UpstreamError(_describe(error)) from None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        await self._response.aclose()


class Upstream:
    """Pooled clients, one per provider base URL."""

    def __init__(self, max_connections: int = 512) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        )

    def _client(self, base_url: str) -> httpx.AsyncClient:
        client = self._clients.get(base_url)
        if client is None:
            # Timeouts are cancel scopes in the proxy; httpx's own are off.
            client = httpx.AsyncClient(
                limits=self._limits, timeout=None, follow_redirects=False, trust_env=False
            )
            self._clients[base_url] = client
        return client

    async def send(
        self, base_url: str, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send and return once the response head is in; the body streams later."""
        client = self._client(base_url)
        request = client.build_request(method, url, headers=headers, content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise UpstreamError(_describe(error)) from None
        headers_out = [
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw
        ]
        return UpstreamResponse(response.status_code, headers_out, response)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _describe(error: httpx.HTTPError) -> str:
    # The class name and the host say what failed; the request (with its
    # credentials) is never part of the message.
    host = ""
    with contextlib.suppress(RuntimeError):  # an error raised before a request existed
        host = error.request.url.host
    return f"{type(error).__name__} talking to {host or 'upstream'}"
