"""The live credentials of a gateway's short-lived keys, kept fresh.

Theory of operation
-------------------
One ``Credential`` per source (an OAuth credential file, a token command),
however many keys name it, outliving reloads that keep it.  An attempt asks
``Credentials.token(source)``: a valid token is given at once, with
no await; an expired one (or none yet) is renewed first, and every other
request for it waits for that one renewal (a trio lock: single-flight).  A
renewal is shielded from its caller's cancellation: a refresh whose answer
is lost after the endpoint rotated the refresh token would lose the
account.

Renewing an OAuth file: read the file again (the vendor's CLI, or another
worker, may have refreshed it); if its token is still the stale one, take
the host lock (locks.py) and read again; with a cluster, take its lock and
the tokens another replica left there (shared.py); only then spend the
refresh token at the token endpoint (oauth.py), write the new tokens back
in the file's shape (files.py) and leave them for the other replicas.
Renewing a command: run it (command.py).

``run()`` does the rest in the background: every WATCH_INTERVAL it looks
at each file's signature and reads a changed file (a refresh or a sign-in
by the vendor's CLI is taken without a restart, and a key that a refused
credential had blocked is restored at once, through ``on_renewed``); and it
renews each token whose expiry is within its margin (the provider's
``refresh_margin``, at most half the token's life), so that requests seldom
wait.  A renewal that failed is not tried again before a backoff (30 s,
doubling to 15 min) unless forced (re-validation); meanwhile the same error
is given at once, so a flood of requests does not become a flood of
refreshes.  One refused for good (``blocks``: a revoked refresh token) is
not tried again in the background at all: its keys are blocked, and the
revalidator's check (forced) or a new file brings them back.

Times here are wall-clock epoch seconds from ``wall`` (time.time; a test
hands a virtual one), since expiries are; sleeps are on trio's clock.
Every token seen goes into ``book`` (the redactor's), a few per source.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ..http.egress import EgressSettings
from ..http.upstream import Upstream
from . import command, files, oauth
from .book import SecretBook
from .errors import CredentialError
from .locks import host_lock
from .shared import SharedRenewal, SharedTokens, SharedUnavailable
from .sources import OAuthFile, TokenCommand, TokenSource

log = logging.getLogger("byok.credentials")

WATCH_INTERVAL = 1.0  # seconds between two looks at the files and the expiries
COMMAND_MARGIN = 60.0  # a command's token is renewed this long before its ttl ends
BACKOFF_FIRST, BACKOFF_MAX = 30.0, 900.0
KEPT_PER_SOURCE = 4  # old tokens kept in the redactor's book (a relayed answer may hold one)


@dataclass(frozen=True)
class Use:
    """A key that takes its secret from `source`, as the store is told of it."""

    provider: str
    label: str
    source: TokenSource
    egress: EgressSettings | None


@dataclass(frozen=True)
class Held:
    """A credential's token now."""

    token: str
    expires_at: float | None  # None: unknown (valid until refused)
    obtained_at: float


class Credential:
    """One source's token, renewed when it expires or is refused."""

    def __init__(
        self, source: TokenSource, egress: EgressSettings | None, wall: Callable[[], float]
    ) -> None:
        self.source = source
        self.egress = egress
        self.names = ""  # the keys it serves, for the log: "key a of p, key b of q"
        self.name = ""  # its name in the cluster: "provider/label" of its first key
        self.shared: SharedRenewal | None = None  # the cluster's, with a [cluster]
        self._wall = wall
        self._lock = trio.Lock()
        self.held: Held | None = None
        self.refresh_token = ""  # an OAuth file's
        self.refreshed_at: float | None = None  # by byok (wall)
        self.error: CredentialError | None = None  # the last renewal's, until one succeeds
        self.retry_at = 0.0  # no renewal before this (wall), unless forced
        self._failures = 0
        self._file: files.CredentialFile | None = None
        self.signature: tuple[int, int, int] | None = None
        self.seen: list[str] = []  # tokens of this source, newest last (the book's)

    # ---- reading ----------------------------------------------------------------------

    def valid(self, now: float) -> str | None:
        """The token, if it has not expired at `now`."""
        held = self.held
        if held is None or not held.token:
            return None
        if held.expires_at is not None and now >= held.expires_at:
            return None
        return held.token

    def due(self, now: float) -> bool:
        """Whether the token should be renewed now (within its margin of expiry)."""
        held = self.held
        if held is None or not held.token:
            return True
        if held.expires_at is None:
            return False
        margin = COMMAND_MARGIN
        if isinstance(self.source, OAuthFile) and self.source.client is not None:
            margin = self.source.client.refresh_margin
        life = max(held.expires_at - held.obtained_at, 0.0)
        return now >= held.expires_at - min(margin, life / 2)

    def load_file(self) -> bool:
        """Read an OAuth file: True if it holds another token than before.
        CredentialFileError if it cannot serve."""
        assert isinstance(self.source, OAuthFile)
        path = Path(self.source.path)
        parsed, tokens, signature = files.read(path)
        self._file, self.signature = parsed, signature
        before = self.held.token if self.held else None
        if tokens.refresh:
            self.refresh_token = tokens.refresh
            self._remember(tokens.refresh)
        if tokens.access != before:
            self.held = Held(tokens.access, tokens.expires_at, self._wall())
            if tokens.access:
                self._remember(tokens.access)
        return bool(tokens.access) and tokens.access != before

    def _remember(self, token: str) -> None:
        if token in self.seen:
            return
        self.seen.append(token)
        del self.seen[: -2 * KEPT_PER_SOURCE]

    # ---- renewing ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a renewal is under way (or waited on)."""
        return self._lock.locked()

    async def token(self, upstream: Upstream, *, force: bool = False) -> str:
        """A valid token: the one held, or a renewed one (`force`: even
        within the backoff of a renewal that failed)."""
        found = self.valid(self._wall())
        if found is not None:
            return found
        return await self.renew(upstream, self.held.token if self.held else "", force=force)

    async def renew(self, upstream: Upstream, stale: str, *, force: bool = False) -> str:
        """A token other than `stale` (refused, or expired), renewed once for
        every caller that waits on it.  A renewal that failed lately is not
        tried again before its backoff unless `force`."""
        async with self._lock:
            now = self._wall()
            current = self.valid(now)
            if current is not None and current != stale:
                return current  # another caller renewed it while this one waited
            if self.error is not None and now < self.retry_at and not force:
                raise self.error
            with trio.CancelScope(shield=True):
                try:
                    await self._renew(upstream, stale)
                except files.CredentialFileError as error:
                    self._failed(CredentialError(str(error), blocks=True))
                except CredentialError as error:
                    self._failed(error)
            if self.error is not None:
                raise self.error
            assert self.held is not None
            return self.held.token

    def _failed(self, error: CredentialError) -> None:
        first = self.error is None or self.error.reason != error.reason
        self.error = error
        self._failures += 1
        self.retry_at = self._wall() + min(BACKOFF_FIRST * 2 ** (self._failures - 1), BACKOFF_MAX)
        if first:
            log.warning("credential of %s: %s", self.names or self.source.shown, error.reason)

    def succeeded(self, how: str) -> None:
        if self.error is not None:
            log.warning("credential of %s works again (%s)", self.names or self.source.shown, how)
        self.error = None
        self._failures = 0
        self.retry_at = 0.0

    async def _renew(self, upstream: Upstream, stale: str) -> None:
        source = self.source
        if isinstance(source, TokenCommand):
            now = self._wall()
            token, said = await command.run(source, now)
            expires_at = now + source.ttl if said is None else min(now + source.ttl, said)
            self.held = Held(token, expires_at, now)
            self._remember(token)
            self.refreshed_at = now
            self.succeeded("the command printed a token")
            return
        # someone else's refresh (the vendor's CLI, another worker) is taken first
        if self._taken_from_file(stale):
            return
        async with host_lock(source.path):
            if self._taken_from_file(stale):
                return
            shared = self.shared
            if shared is None:
                await self._refresh(upstream, source)
                return
            refreshed = False
            try:
                async with shared.held(self.name):
                    if await self._taken_from_cluster(shared, source, stale):
                        return
                    refreshed = True
                    await self._refresh(upstream, source)
                    await self._publish(shared)
            except SharedUnavailable as error:
                if refreshed:  # the lock's release failed: it expires on its own
                    return
                log.warning(
                    "credential of %s: the cluster is away (%s): refreshed by this replica alone",
                    self.names or source.path,
                    error,
                )
                await self._refresh(upstream, source)

    async def _taken_from_cluster(
        self, shared: SharedRenewal, source: OAuthFile, stale: str
    ) -> bool:
        """Whether another replica left valid tokens other than `stale`
        (then they are this one's too, and its file's)."""
        latest = await shared.latest(self.name)
        now = self._wall()
        if latest is None or latest.access in (stale, "") or not latest.refresh:
            return False
        if latest.expires_at is not None and now >= latest.expires_at:
            return False
        self.held = Held(latest.access, latest.expires_at, latest.obtained_at)
        self.refresh_token = latest.refresh
        self._remember(latest.access)
        self._remember(latest.refresh)
        self._write_back(source, latest.refresh, None, {}, now)
        self.succeeded("another replica refreshed it")
        return True

    async def _publish(self, shared: SharedRenewal) -> None:
        assert self.held is not None
        tokens = SharedTokens(
            self.held.token, self.refresh_token, self.held.expires_at, self.held.obtained_at
        )
        try:
            await shared.publish(self.name, tokens)
        except SharedUnavailable as error:
            log.warning(
                "credential of %s: refreshed, but the cluster did not take the new tokens "
                "(%s): another replica will find its refresh token spent",
                self.names,
                error,
            )

    def _taken_from_file(self, stale: str) -> bool:
        """Whether the file now holds a valid token other than `stale`."""
        self.load_file()
        found = self.valid(self._wall())
        if found is None or found == stale:
            return False
        self.succeeded("its file holds a new token")
        return True

    async def _refresh(self, upstream: Upstream, source: OAuthFile) -> None:
        client = source.client
        if client is None:
            raise CredentialError(
                f"the token in {source.path} is expired or refused, and byok has no token "
                "endpoint to refresh it ([providers.NAME.oauth] token_url and client_id): "
                "sign in again with the provider's CLI",
                blocks=True,
            )
        if not self.refresh_token:
            raise CredentialError(
                f"the token in {source.path} is expired or refused, and the file holds no "
                "refresh token: sign in again with the provider's CLI",
                blocks=True,
            )
        grant = await oauth.refresh(upstream, client, self.refresh_token, self.egress)
        now = self._wall()
        expires_at = now + grant.lifetime if grant.lifetime is not None else None
        if expires_at is None:
            expires_at = files.jwt_expiry(grant.access)
        self.held = Held(grant.access, expires_at, now)
        self._remember(grant.access)
        if grant.refresh:
            self.refresh_token = grant.refresh
            self._remember(grant.refresh)
        self.refreshed_at = now
        self._write_back(source, grant.refresh, grant.lifetime, grant.extra, now)
        lasts = "" if expires_at is None else f", valid for {expires_at - now:.0f}s"
        log.info("credential of %s refreshed%s", self.names or source.path, lasts)
        self.succeeded("refreshed")

    def _write_back(
        self,
        source: OAuthFile,
        refresh: str,
        lifetime: float | None,
        extra: dict[str, str],
        now: float,
    ) -> None:
        """The held token (and `refresh`, when the grant rotated it) into the
        file, in its shape: the vendor's CLI reads it too, and the old refresh
        token is spent.  `lifetime` and `extra` are what the grant said."""
        assert self._file is not None
        assert self.held is not None
        tokens = files.Tokens(self.held.token, refresh, self.held.expires_at)
        data = files.updated(self._file, tokens, now, lifetime, extra)
        path = Path(source.path)
        try:
            files.write_atomically(path, data)
        except OSError as error:
            log.error(
                "credential of %s: refreshed, but %s could not be written (%s): the new "
                "tokens are in this process only, and the vendor's CLI holds a spent "
                "refresh token",
                self.names or source.path,
                path,
                error.strerror,
            )
            return
        self.signature = files.signature(path)

    def view(self, now: float) -> dict[str, Any]:
        """What the admin API shows: where the token comes from and how it
        stands, never a token."""
        held = self.held
        source = self.source
        shown: dict[str, Any]
        if isinstance(source, OAuthFile):
            shown = {"type": "oauth", "file": source.path, "refreshes": source.client is not None}
        else:
            shown = {"type": "command", "program": source.shown, "ttl": source.ttl}
        expires_at = held.expires_at if held is not None else None
        shown.update(
            {
                "expires_at": expires_at,
                "expires_in": None if expires_at is None else round(expires_at - now, 3),
                "refreshed_at": self.refreshed_at,
                "error": None if self.error is None else self.error.reason,
                "blocks": None if self.error is None else self.error.blocks,
            }
        )
        return shown


class Credentials:
    """Every short-lived key's credential, by source; outlives reloads."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        on_renewed: Callable[[TokenSource], None] | None = None,
    ) -> None:
        """`on_renewed(source)` hears of a token that a file's change brought
        (the keys a refused credential blocked may come back)."""
        self.wall = wall
        self._on_renewed = on_renewed
        self._by_source: dict[TokenSource, Credential] = {}
        self.book = SecretBook()
        self._changed = trio.Event()
        self.shared: SharedRenewal | None = None  # the cluster's (share())

    def __len__(self) -> int:
        return len(self._by_source)

    def adopt(self, keys: Iterable[Use]) -> None:
        """Make the credentials of `keys` (keeping those already made for the
        same source, with their tokens) and drop the others.  A file that
        cannot be read now is logged; its keys fail until it can."""
        kept: dict[TokenSource, Credential] = {}
        uses: dict[TokenSource, list[Use]] = {}
        for use in keys:
            source = use.source
            found = kept.get(source) or self._by_source.get(source)
            if found is None:
                found = Credential(source, use.egress, self.wall)
                if isinstance(source, OAuthFile):
                    try:
                        found.load_file()
                    except files.CredentialFileError as error:
                        found.error = CredentialError(str(error), blocks=True)
                        log.warning("key %s of %s: %s", use.label, use.provider, error)
            found.egress = use.egress
            kept[source] = found
            uses.setdefault(source, []).append(use)
        for source, credential in kept.items():
            first, *_ = found_uses = uses[source]
            credential.names = ", ".join(f"key {u.label} of {u.provider}" for u in found_uses)
            credential.name = f"{first.provider}/{first.label}"
            credential.shared = self.shared
        self._by_source = kept
        self._update_book()
        self._changed.set()

    async def token(self, upstream: Upstream, source: TokenSource, *, force: bool = False) -> str:
        """The source's token now: the one held while valid, else renewed
        (`force`: even within the backoff of a renewal that failed)."""
        credential = self._by_source.get(source)
        if credential is None:  # a reload removed it while a request held it
            raise CredentialError("the key was removed from the config", blocks=False)
        found = credential.valid(self.wall())
        if found is not None:
            return found
        try:
            return await credential.token(upstream, force=force)
        finally:
            self._update_book()

    async def renew(
        self, upstream: Upstream, source: TokenSource, stale: str, *, force: bool = False
    ) -> str:
        """A token of `source` other than the refused `stale` one."""
        credential = self._by_source.get(source)
        if credential is None:
            raise CredentialError("the key was removed from the config", blocks=False)
        try:
            return await credential.renew(upstream, stale, force=force)
        finally:
            self._update_book()

    def share(self, shared: SharedRenewal | None) -> None:
        """Refresh under the cluster's lock from now on (None: no longer)."""
        self.shared = shared
        for credential in self._by_source.values():
            credential.shared = shared

    def view(self, source: TokenSource) -> dict[str, Any] | None:
        """The admin view of a source's credential (None: not one of them)."""
        credential = self._by_source.get(source)
        return None if credential is None else credential.view(self.wall())

    def _update_book(self) -> None:
        self.book.replace(t for c in self._by_source.values() for t in c.seen)

    async def run(self, upstream: Upstream) -> None:
        """Until cancelled: changed files read, tokens renewed before they expire."""
        async with trio.open_nursery() as nursery:
            while True:
                # no credentials: nothing to look at until a reload brings some
                with trio.move_on_after(WATCH_INTERVAL if self._by_source else math.inf):
                    await self._changed.wait()
                self._changed = trio.Event()
                for credential in list(self._by_source.values()):
                    self._watch(credential)
                    now = self.wall()
                    # a credential refused for good waits for re-validation (the
                    # revalidator's schedule) or a new file; one that failed
                    # otherwise is tried again after its backoff
                    refused = credential.error is not None and credential.error.blocks
                    if (
                        credential.due(now)
                        and now >= credential.retry_at
                        and not refused
                        and not credential.busy
                    ):
                        nursery.start_soon(self._renew_quietly, upstream, credential)
                self._update_book()

    def _watch(self, credential: Credential) -> None:
        source = credential.source
        if not isinstance(source, OAuthFile):
            return
        signature = files.signature(Path(source.path))
        if signature is None or signature == credential.signature:
            return
        try:
            new = credential.load_file()
        except files.CredentialFileError as error:
            credential.signature = signature  # said once per change of the file
            log.warning("credential of %s: %s", credential.names or source.path, error)
            return
        if new and credential.valid(self.wall()) is not None:
            log.info("credential of %s: its file holds a new token", credential.names)
            credential.succeeded("its file holds a new token")
            if self._on_renewed is not None:
                self._on_renewed(source)

    async def _renew_quietly(self, upstream: Upstream, credential: Credential) -> None:
        stale = credential.held.token if credential.held else ""
        # a failure is logged by the credential; requests on the key meet it
        with contextlib.suppress(CredentialError):
            await credential.renew(upstream, stale)
        self._update_book()
