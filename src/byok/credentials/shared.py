"""One refresh of a credential at a time across replicas, and its result for all.

Replicas on several hosts each hold a copy of an account's credential file
(or share one over a network volume, where flock is not to be trusted).
Both big vendors rotate refresh tokens: once one replica has refreshed, the
others' copies hold a spent refresh token, and using it would be refused and
block the account.  So with a [cluster], a replica refreshes only under the
cluster's lock of the credential, and first takes the tokens another replica
got and left in the cluster (Redis: byok.cluster), if they descend from its
own refresh token; only if there are none does it spend its refresh token,
and then it leaves the new tokens there for the others.

This module says what the store needs of such a cluster; byok.cluster makes
it of Redis.  Without a cluster, or while it is away, a replica refreshes on
its own (the host lock still holds on its host).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol


class SharedUnavailable(Exception):
    """The cluster cannot answer now: the credential is renewed on this host alone."""


@dataclass(frozen=True)
class SharedTokens:
    """A credential's tokens as a replica left them in the cluster."""

    access: str = field(repr=False)
    refresh: str = field(repr=False)
    expires_at: float | None  # wall-clock epoch seconds
    obtained_at: float
    # digests of the refresh tokens spent in this account's chain, latest
    # last: a replica takes the entry only if its own refresh token is one
    # of them (or the entry's), so that another account's, or a chain that
    # went its own way, is never taken
    lineage: tuple[str, ...] = ()


class SharedRenewal(Protocol):
    def held(self, name: str) -> AbstractAsyncContextManager[None]:
        """The cluster's lock of the credential `name`, for the block
        (SharedUnavailable if it cannot be had)."""
        ...

    async def latest(self, name: str) -> SharedTokens | None:
        """The tokens a replica left for `name`, if any (SharedUnavailable)."""
        ...

    async def publish(self, name: str, tokens: SharedTokens) -> None:
        """Leave `tokens` for the other replicas (SharedUnavailable)."""
        ...
