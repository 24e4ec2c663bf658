"""The models listing (``GET /v1/models``): the configured model names and,
in passthrough mode, the models the passthrough provider lists itself.

Theory of operation
-------------------
A passthrough provider serves any model name a client sends, so a client
that discovers its models with ``GET /v1/models`` must see what the provider
offers, not an empty list.  The provider of the listing's dialect (an
Anthropic client sends ``anthropic-version``; requests of each dialect go to
the passthrough provider of that dialect) is asked for its own listing, as
``byok keys check`` asks it (``GET {base_url}/models``), with one of its
ready keys: never a key that is cooling, half-open (its probe belongs to a
real request), blocked or disabled.  Its answer is kept for ``FRESH_SECONDS``.

The fetch runs on demand, once for all the requests that want it at that
moment (single flight): the first one fetches, the others wait for its
result.  Every fetch has a deadline.  A fetch that fails keeps the last
list it had (none at first) for ``RETRY_SECONDS`` before the next try, and
logs why once, until a fetch succeeds again; the listing always answers,
with at least the configured names, and names no key but by its label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import msgspec
import trio

from byok_core import State

from .. import __version__
from ..config import Provider
from ..credentials import CredentialError, Credentials
from ..http.upstream import Upstream, UpstreamError
from ..providers import MODELS_PATH
from .headers import key_headers
from .probe import LISTING_LIMIT
from .routing import Pool
from .runtime import Runtime

log = logging.getLogger("byok.proxy")

FRESH_SECONDS = 300.0  # a provider's listing is kept this long
RETRY_SECONDS = 60.0  # after a failed fetch, the next try waits this long
FETCH_SECONDS = 10.0  # one fetch, every key it tries included
# keys asked in one fetch: a listing that this many keys cannot get is not
# about the keys, and a big pool must not spend a request of each on it
KEYS_PER_FETCH = 3
# Anthropic pages its listing (20 by default); one page of its maximum holds them all
ANTHROPIC_PAGE = "?limit=1000"


class _Model(msgspec.Struct):
    id: str


class _Listing(msgspec.Struct):
    """Both APIs' listings: ``{"data": [{"id": ...}, ...], ...}``."""

    data: list[_Model]


class _Failed(Exception):
    """A fetch that brought no listing; the message says why, with no secret."""


@dataclass
class _Entry:
    """What is known of one provider's listing."""

    ids: list[str] = field(default_factory=list)  # the last listing it gave
    fresh_until: float = float("-inf")  # trio time: fetch again from then on
    failing: bool = False  # the last fetch failed (and said so in the log)
    fetching: trio.Event | None = None  # set when the fetch in flight ends


class ModelListing:
    """The names ``GET /v1/models`` lists, per dialect."""

    def __init__(self, upstream: Upstream, credentials: Credentials) -> None:
        self.upstream = upstream
        self.credentials = credentials  # where short-lived keys' tokens come from
        self._entries: dict[tuple[str, str, str], _Entry] = {}

    async def names(self, runtime: Runtime, dialect: str) -> list[str]:
        """The configured model names, then those the passthrough provider of
        `dialect` lists (if there is one) that are not among them."""
        names = runtime.router.known_models()
        for model, pools in runtime.router.pools_by_model():
            if model is None and pools[0].provider.dialect == dialect:
                listed = await self._listed(pools[0])
                configured = set(names)
                names += [n for n in dict.fromkeys(listed) if n not in configured]
        return names

    async def _listed(self, pool: Pool) -> list[str]:
        provider = pool.provider
        # a reload that points the provider elsewhere makes its listing another one
        where = (provider.name, provider.kind, provider.base_url)
        entry = self._entries.setdefault(where, _Entry())
        if trio.current_time() < entry.fresh_until:
            return entry.ids
        if entry.fetching is not None:  # another request fetches it: its result serves both
            await entry.fetching.wait()
            return entry.ids
        entry.fetching = trio.Event()
        try:
            with trio.move_on_after(FETCH_SECONDS):
                entry.ids = await self._fetch(pool)
                entry.fresh_until = trio.current_time() + FRESH_SECONDS
                if entry.failing:
                    log.info("the models listing of provider %s answers again", provider.name)
                entry.failing = False
                return entry.ids
            self._failed(provider, entry, f"no answer within {FETCH_SECONDS:g}s")
        except _Failed as failure:
            self._failed(provider, entry, str(failure))
        finally:
            # a fetch cut short (its client left) wakes the others too; they
            # answer with what there is, and the next request fetches again
            entry.fetching.set()
            entry.fetching = None
        return entry.ids

    def _failed(self, provider: Provider, entry: _Entry, why: str) -> None:
        entry.fresh_until = trio.current_time() + RETRY_SECONDS
        if not entry.failing:
            entry.failing = True
            kept = "the last one it gave" if entry.ids else "the configured models only"
            log.warning(
                "could not fetch the models listing of provider %s: %s; /v1/models lists "
                "%s, and tries again in %gs at the earliest (this is logged once until it "
                "answers)",
                provider.name,
                why,
                kept,
                RETRY_SECONDS,
            )

    async def _fetch(self, pool: Pool) -> list[str]:
        """The model ids the provider lists, asked with its ready keys in turn
        (KEYS_PER_FETCH at most) until one answers; a failure to reach the
        provider ends it at once."""
        provider = pool.provider
        now = trio.current_time()
        ready = [v["id"] for v in pool.selector.snapshot(now=now) if v["state"] is State.READY]
        if not ready:
            raise _Failed("no key of it is ready (each one is cooling, blocked or disabled)")
        spec = provider.spec
        url = spec.url(provider.base_url, MODELS_PATH)
        if provider.dialect == "anthropic":
            url += ANTHROPIC_PAGE
        refused = []
        for label in ready[:KEYS_PER_FETCH]:
            key = pool.keys[label]
            secret = key.secret
            if key.source is not None:
                try:
                    secret = await self.credentials.token(self.upstream, key.source)
                except CredentialError as error:
                    refused.append(f"key {label} ({key.fingerprint}): {error.reason}")
                    continue
            headers = [("accept", "application/json"), ("user-agent", f"byok/{__version__}")]
            headers += key_headers(provider, key, secret)
            try:
                answer = await self.upstream.send(
                    provider.base_url, "GET", url, headers, b"", egress=provider.egress
                )
            except UpstreamError as error:  # its message names the host, never a header
                raise _Failed(str(error)) from None
            try:
                body = await answer.read(limit=LISTING_LIMIT)
            except UpstreamError as error:
                raise _Failed(f"the listing could not be read: {error}") from None
            finally:
                await answer.aclose()
            if answer.status // 100 != 2:
                # the body is not shown: some servers echo the credential in it
                refused.append(f"key {label} ({key.fingerprint}) got {answer.status}")
                continue
            try:
                return [m.id for m in msgspec.json.decode(body, type=_Listing).data]
            except msgspec.DecodeError as error:
                raise _Failed(f"its answer is not a models listing: {error}") from None
        raise _Failed("; ".join(refused))
