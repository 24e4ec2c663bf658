"""The live credentials of a gateway's short-lived keys, kept fresh.

Theory of operation
-------------------
One ``Credential`` (credential.py) per source, an OAuth credential file or a
token command, however many keys name it, outliving the reloads that keep
it.  An attempt asks ``Credentials.token(source)``: a valid token is given
at once, with no await; an expired one (or none yet) is renewed first, once
for every request that needs it.

``run()`` does the rest in the background, and holds the nursery where
renewals run.  Every WATCH_INTERVAL it looks at each file's signature and
reads a changed file: a refresh or a sign-in by the vendor's CLI is taken
without a restart, and the keys that a refused credential had blocked are
ready again at once (``on_renewed``).  And it renews each token whose
expiry is within its margin (the provider's ``refresh_margin``, at most half
the token's life), so that requests seldom wait.  One that failed is tried
again after its backoff; one refused for good (``blocks``: a revoked
refresh token) is not tried again in the background at all: its keys are
blocked, and the revalidator's check (forced) or a new file brings them
back.  A credential's failure, of whatever kind, never stops the loop.

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
from . import files
from .book import SecretBook
from .credential import Credential
from .errors import CredentialError
from .shared import SharedRenewal
from .sources import OAuthFile, TokenSource

log = logging.getLogger("byok.credentials")

WATCH_INTERVAL = 1.0  # seconds between two looks at the files and the expiries


@dataclass(frozen=True)
class Use:
    """A key that takes its secret from `source`, as the store is told of it."""

    provider: str
    label: str
    source: TokenSource
    egress: EgressSettings | None


class Credentials:
    """Every short-lived key's credential, by source; outlives reloads."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        on_renewed: Callable[[TokenSource], None] | None = None,
        *,
        may_refresh: bool = True,
    ) -> None:
        """`on_renewed(source)` hears of a token that a file's change brought
        (the keys a refused credential blocked may come back); without
        `may_refresh`, no OAuth refresh token is spent (`byok keys check` of
        a cluster's config: its replicas refresh)."""
        self.wall = wall
        self._on_renewed = on_renewed
        self._may_refresh = may_refresh
        self._by_source: dict[TokenSource, Credential] = {}
        self.book = SecretBook()
        self._changed = trio.Event()
        self.shared: SharedRenewal | None = None  # the cluster's (share())
        self._nursery: trio.Nursery | None = None  # run()'s, where renewals run

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
                found = self._made(use)
            found.egress = use.egress
            kept[source] = found
            uses.setdefault(source, []).append(use)
        for source, credential in kept.items():
            first, *_ = found_uses = uses[source]
            credential.names = ", ".join(f"key {u.label} of {u.provider}" for u in found_uses)
            credential.name = f"{first.provider}/{first.label}"
            credential.shared = self.shared
            credential.nursery = self._nursery
        self._by_source = kept
        self._update_book()
        self._changed.set()

    def _made(self, use: Use) -> Credential:
        credential = Credential(use.source, use.egress, self.wall, self._may_refresh)
        source = use.source
        if not isinstance(source, OAuthFile):
            return credential
        try:
            credential.load_file()
        except files.CredentialFileError as error:
            credential.error = CredentialError(str(error), blocks=True)
            log.warning("key %s of %s: %s", use.label, use.provider, error)
            return credential
        held = credential.held
        if source.client is None and held is not None and held.expires_at is not None:
            until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(held.expires_at))
            log.info(
                "key %s of %s: byok has no token endpoint to refresh %s; its token expires "
                "at %s unless the provider's CLI refreshes the file",
                use.label,
                use.provider,
                source.path,
                until,
            )
        return credential

    def share(self, shared: SharedRenewal | None) -> None:
        """Refresh under the cluster's lock from now on (None: no longer)."""
        self.shared = shared
        for credential in self._by_source.values():
            credential.shared = shared

    def _credential(self, source: TokenSource) -> Credential:
        credential = self._by_source.get(source)
        if credential is None:  # a reload removed it while a request held it
            raise CredentialError("the key was removed from the config", blocks=False)
        return credential

    async def token(self, upstream: Upstream, source: TokenSource, *, force: bool = False) -> str:
        """The source's token now: the one held while valid, else renewed
        (`force`: even within the backoff of a renewal that failed)."""
        credential = self._credential(source)
        found = credential.valid(self.wall())
        if found is not None:
            return found
        try:
            return await credential.token(upstream, force=force)
        finally:
            self._update_book()

    async def renew(self, upstream: Upstream, source: TokenSource, stale: str) -> str:
        """A token of `source` other than the refused `stale` one."""
        try:
            return await self._credential(source).renew(upstream, stale)
        finally:
            self._update_book()

    def view(self, source: TokenSource) -> dict[str, Any] | None:
        """The admin view of a source's credential (None: not one of them)."""
        credential = self._by_source.get(source)
        return None if credential is None else credential.view(self.wall())

    def _update_book(self) -> None:
        self.book.replace(t for c in self._by_source.values() for t in c.seen)

    async def run(
        self, upstream: Upstream, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Until cancelled: changed files read, tokens renewed before they
        expire; started once renewals run in its nursery."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for credential in self._by_source.values():
                credential.nursery = nursery
            task_status.started()
            try:
                await self._look(upstream, nursery)
            finally:
                self._nursery = None
                for credential in self._by_source.values():
                    credential.nursery = None

    async def _look(self, upstream: Upstream, nursery: trio.Nursery) -> None:
        while True:
            # no credentials: nothing to look at until a reload brings some
            with trio.move_on_after(WATCH_INTERVAL if self._by_source else math.inf):
                await self._changed.wait()
            self._changed = trio.Event()
            for credential in list(self._by_source.values()):
                try:
                    self._watch(credential)
                except (OSError, ValueError, ArithmeticError, RecursionError) as error:
                    log.error("credential of %s: %s", credential.names, type(error).__name__)
                now = self.wall()
                # one refused for good waits for re-validation or a new file
                refused = credential.error is not None and credential.error.blocks
                wanted = credential.due(now) and now >= credential.retry_at
                if wanted and not refused and not credential.busy:
                    nursery.start_soon(self._renew_quietly, upstream, credential)
            self._update_book()

    def _watch(self, credential: Credential) -> None:
        source = credential.source
        if not isinstance(source, OAuthFile) or credential.busy:
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
        # a new token, or the one held made good again (a file that had failed to read)
        if credential.valid(self.wall()) is not None and (new or credential.error is not None):
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
