"""The one way a credential fails."""

from __future__ import annotations


class CredentialError(Exception):
    """A key's token could not be had.  `blocks`: it will not come by itself
    (a refresh token refused, a file gone, a command that fails), so the key
    is blocked until it is re-validated; otherwise it may come at the next
    try (a token endpoint that is down, a command that timed out), and the
    key counts a failure.  The message says why and what to do, never a token."""

    def __init__(self, reason: str, *, blocks: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.blocks = blocks
