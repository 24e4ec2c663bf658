"""One source's token (an OAuth credential file, a token command), renewed
when it expires or is refused.

A caller asks ``token()``: the token held, while it is valid; else a
renewal, one at a time, which every caller that needs it waits for.  The
renewal runs as a task of the store's (``nursery``), not of its caller, so
a caller that goes away (a client that disconnects) stops waiting at once,
while the renewal goes on: a refresh whose answer were lost after the
endpoint rotated the refresh token would lose the account.  Without the
store's nursery (``byok keys check``) it runs in the caller, shielded.
Every wait in it has a deadline, and the whole renewal RENEWAL_TIMEOUT.

Renewing an OAuth file: read the file again (the vendor's CLI, or another
worker, may have refreshed it; a read that finds it half written is tried
once more); if its token is still the stale one, take the host lock
(locks.py) and read again; with a cluster, take its lock and the tokens
another replica of the same lineage left there (shared.py); only then spend
the refresh token at the token endpoint (oauth.py), write the new tokens
back in the file's shape (files.py) and leave them for the other replicas.
Renewing a command: run it (command.py).

A renewal that failed is not tried again before a backoff (30 s, doubling
to 15 min) unless forced (re-validation); meanwhile the same error is given
at once, so a flood of requests does not become a flood of refreshes.
Times are wall-clock epoch seconds from ``wall``, since expiries are.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from ..http.egress import EgressSettings
from ..http.upstream import Upstream
from . import command, files, oauth
from .errors import CredentialError
from .locks import host_lock
from .shared import SharedRenewal, SharedTokens, SharedUnavailable
from .sources import OAuthFile, TokenCommand, TokenSource

log = logging.getLogger("byok.credentials")

COMMAND_MARGIN = 60.0  # a command's token is renewed this long before its ttl ends
BACKOFF_FIRST, BACKOFF_MAX = 30.0, 900.0
RENEWAL_TIMEOUT = 180.0  # the host lock, the cluster's, the refresh: all of it
HALF_WRITTEN = 0.25  # seconds before a file caught mid-write is read again
KEPT_PER_SOURCE = 4  # old tokens kept in the redactor's book (a relayed answer may hold one)
LINEAGE = 32  # refresh tokens of an account's chain that a cluster entry remembers


@dataclass(frozen=True)
class Held:
    """A credential's token now."""

    token: str = field(repr=False)
    expires_at: float | None  # None: unknown (valid until refused)
    obtained_at: float


class Credential:
    def __init__(
        self,
        source: TokenSource,
        egress: EgressSettings | None,
        wall: Callable[[], float],
        may_refresh: bool = True,
    ) -> None:
        """`may_refresh`: whether an OAuth file's refresh token may be spent
        here (not by `byok keys check` on a cluster's credentials)."""
        self.source = source
        self.egress = egress
        self.may_refresh = may_refresh
        self.names = ""  # the keys it serves, for the log: "key a of p, key b of q"
        self.name = ""  # its name in the cluster: "provider/label" of its first key
        self.shared: SharedRenewal | None = None  # the cluster's, with a [cluster]
        # where renewals run (the store's), so that no caller's cancel stops one
        self.nursery: trio.Nursery | None = None
        self._wall = wall
        self._renewal: trio.Event | None = None  # set when the renewal under way ends
        self.held: Held | None = None
        self.refresh_token = ""  # an OAuth file's
        self.refreshed_at: float | None = None  # by byok (wall)
        self.error: CredentialError | None = None  # the last renewal's, until one succeeds
        self.retry_at = 0.0  # no renewal before this (wall), unless forced
        self._failures = 0
        self._file: files.CredentialFile | None = None
        self.signature: tuple[int, int, int] | None = None
        self.seen: list[str] = []  # tokens of this source, newest last (the book's)
        self._lineage: list[str] = []  # digests of the refresh tokens it spent, for the cluster

    @property
    def busy(self) -> bool:
        """Whether a renewal is under way."""
        return self._renewal is not None

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
        """Whether the token should be renewed now (within its margin of
        expiry).  A file that byok cannot refresh is only read again."""
        held = self.held
        if held is None or not held.token:
            return True
        if held.expires_at is None:
            return False
        margin = COMMAND_MARGIN
        if isinstance(self.source, OAuthFile):
            if self.source.client is None:
                return now >= held.expires_at
            margin = self.source.client.refresh_margin
        life = max(held.expires_at - held.obtained_at, 0.0)
        return now >= held.expires_at - min(margin, life / 2)

    def load_file(self) -> bool:
        """Read an OAuth file: True if it holds another token than before.
        A file older than the tokens held (a write-back that failed, then a
        change of the file) is left unread.  CredentialFileError if it
        cannot serve."""
        assert isinstance(self.source, OAuthFile)
        path = Path(self.source.path)
        parsed, tokens, signature = files.read(path)
        self.signature = signature
        before = self.held.token if self.held else None
        if tokens.access and tokens.access != before and tokens.access in self.seen:
            return False
        self._file = parsed
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
        now = self._wall()
        current = self.valid(now)
        if current is not None and current != stale:
            return current  # renewed meanwhile
        done = self._renewal
        if done is None:
            if self.error is not None and now < self.retry_at and not force:
                raise self._error()
            done = self._renewal = trio.Event()
            if self.nursery is not None:
                self.nursery.start_soon(self._renewing, upstream, stale, done)
            else:
                with trio.CancelScope(shield=True):
                    await self._renewing(upstream, stale, done)
        await done.wait()
        if self.error is not None:
            raise self._error()
        found = self.valid(self._wall())
        if found is None:  # the renewal was cancelled: byok is stopping
            raise CredentialError("the renewal was cancelled", blocks=False)
        return found

    def _error(self) -> CredentialError:
        """The last renewal's error, to raise anew (a raise of the one
        instance would chain every raiser's frames to it)."""
        assert self.error is not None
        return CredentialError(self.error.reason, blocks=self.error.blocks)

    async def _renewing(self, upstream: Upstream, stale: str, done: trio.Event) -> None:
        try:
            with trio.move_on_after(RENEWAL_TIMEOUT) as deadline:
                await self._renew(upstream, stale)
            if deadline.cancelled_caught:
                self._failed(
                    CredentialError(f"renewal took over {RENEWAL_TIMEOUT:g}s", blocks=False)
                )
        except files.CredentialFileError as error:
            self._failed(CredentialError(str(error), blocks=True))
        except CredentialError as error:
            self._failed(error)
        except (OSError, ValueError, ArithmeticError, RecursionError) as error:
            # not foreseen: said by its kind only (its text might quote a file)
            self._failed(CredentialError(f"renewal failed: {type(error).__name__}", blocks=False))
        finally:
            self._renewal = None
            done.set()

    def _failed(self, error: CredentialError) -> None:
        first = self.error is None or self.error.reason != error.reason
        self.error = error
        self._failures += 1
        steps = min(self._failures - 1, 10)  # 2**10 steps of 30 s are past the cap already
        self.retry_at = self._wall() + min(BACKOFF_FIRST * 2**steps, BACKOFF_MAX)
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
            await self._run(source)
            return
        # someone else's refresh (the vendor's CLI, another worker) is taken first
        if await self._taken_from_file(stale):
            return
        async with host_lock(source.path):
            if await self._taken_from_file(stale):
                return
            shared = self.shared
            if shared is None:
                await self._refresh(upstream, source)
                return
            try:
                async with shared.held(self.name):
                    if await self._taken_from_cluster(shared, source, stale):
                        return
                    await self._refresh(upstream, source)
                    await self._publish(shared)
                    return
            except SharedUnavailable as error:  # the lock or the entry: nothing spent yet
                log.warning(
                    "credential of %s: the cluster is away (%s): refreshed by this replica alone",
                    self.names or source.path,
                    error,
                )
            await self._refresh(upstream, source)

    async def _run(self, source: TokenCommand) -> None:
        now = self._wall()
        token, said = await command.run(source, now)
        expires_at = now + source.ttl
        if said is not None and said > now + COMMAND_MARGIN:
            expires_at = min(expires_at, said)
        elif said is not None:  # az's local times read as UTC, west of it: in the past
            log.warning(
                "credential of %s: the command says its token expires within a minute or "
                "before now; its ttl of %gs is used instead",
                self.names or source.shown,
                source.ttl,
            )
        self.held = Held(token, expires_at, now)
        self._remember(token)
        self.refreshed_at = now
        self.succeeded("the command printed a token")

    async def _taken_from_file(self, stale: str) -> bool:
        """Whether the file now holds a valid token other than `stale`."""
        try:
            self.load_file()
        except files.CredentialFileError:
            await trio.sleep(HALF_WRITTEN)  # perhaps caught mid-write: once more
            self.load_file()
        found = self.valid(self._wall())
        if found is None or found == stale:
            return False
        self.succeeded("its file holds a new token")
        return True

    async def _taken_from_cluster(
        self, shared: SharedRenewal, source: OAuthFile, stale: str
    ) -> bool:
        """Whether another replica left valid tokens other than `stale`, got
        with this account's refresh token or one it led to (then they are
        this one's too, and its file's)."""
        latest = await shared.latest(self.name)
        now = self._wall()
        if latest is None or latest.access in (stale, "") or not latest.refresh:
            return False
        ours = self.refresh_token
        if ours != latest.refresh and _digest(ours) not in latest.lineage:
            return False  # another account's, or another chain: not to be taken
        if latest.expires_at is not None and now >= latest.expires_at:
            return False
        self.held = Held(latest.access, latest.expires_at, latest.obtained_at)
        self.refresh_token = latest.refresh
        self._lineage = list(latest.lineage)
        self._remember(latest.access)
        self._remember(latest.refresh)
        self._write_back(source, latest.refresh, {}, now)
        self.succeeded("another replica refreshed it")
        return True

    async def _publish(self, shared: SharedRenewal) -> None:
        assert self.held is not None
        tokens = SharedTokens(
            self.held.token,
            self.refresh_token,
            self.held.expires_at,
            self.held.obtained_at,
            tuple(self._lineage),
        )
        try:
            await shared.publish(self.name, tokens)
        except SharedUnavailable as error:
            log.warning(
                "credential of %s: refreshed, but the cluster did not take the new tokens "
                "(%s): another replica will find its refresh token spent",
                self.names or self.source.shown,
                error,
            )

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
        if not self.may_refresh:
            raise CredentialError(
                f"the token in {source.path} is expired; `byok keys check` leaves a "
                "cluster's refreshes to its replicas (under the cluster's lock)",
                blocks=False,
            )
        spent = self.refresh_token
        # once asked, the answer is the account's: it must reach the file
        with trio.CancelScope(shield=True):
            grant = await oauth.refresh(upstream, client, spent, self.egress)
            self._granted(source, grant, spent)

    def _granted(self, source: OAuthFile, grant: oauth.Grant, spent: str) -> None:
        now = self._wall()
        expires_at = now + grant.lifetime if grant.lifetime is not None else None
        if expires_at is None:
            expires_at = files.jwt_expiry(grant.access)
        self.held = Held(grant.access, expires_at, now)
        self._remember(grant.access)
        if grant.refresh:
            self.refresh_token = grant.refresh
            self._remember(grant.refresh)
            self._lineage = [*self._lineage, _digest(spent)][-LINEAGE:]
        self.refreshed_at = now
        self._write_back(source, grant.refresh, grant.extra, now)
        lasts = "" if expires_at is None else f", valid for {expires_at - now:.0f}s"
        log.info("credential of %s refreshed%s", self.names or source.path, lasts)
        self.succeeded("refreshed")

    def _write_back(
        self, source: OAuthFile, refresh: str, extra: dict[str, str], now: float
    ) -> None:
        """The held token (and `refresh`, when the grant rotated it) into the
        file, in its shape: the vendor's CLI reads it too, and the old refresh
        token is spent.  `extra` is what else the grant said."""
        assert self._file is not None
        assert self.held is not None
        tokens = files.Tokens(self.held.token, refresh, self.held.expires_at)
        path = Path(source.path)
        try:
            files.write_atomically(path, files.updated(self._file, tokens, now, extra))
        except (OSError, ValueError) as error:
            why = error.strerror if isinstance(error, OSError) else type(error).__name__
            log.error(
                "credential of %s: refreshed, but %s could not be written (%s): the new "
                "tokens are in this process only, and the vendor's CLI holds a spent "
                "refresh token",
                self.names or source.path,
                path,
                why,
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


def _digest(token: str) -> str:
    """A refresh token's name in the cluster's lineage: never the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]
