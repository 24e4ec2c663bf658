"""Where a short-lived key's token comes from, as the config describes it.

Plain frozen values, no I/O: the config builds them (and checks them at
load), the store (store.py) turns each one into a live credential.  Two
keys whose sources are equal share one credential: one refresh, one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TokenFormat = Literal["form", "json"]


@dataclass(frozen=True)
class OAuthClient:
    """How an OAuth credential's tokens are refreshed: the provider's token
    endpoint and client (the [providers.NAME.oauth] table, or its kind's
    defaults)."""

    token_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)  # most CLIs' clients have none
    scope: str = ""  # "": the grant asks for no scope (the token keeps its own)
    refresh_margin: float = 300.0  # seconds before expiry that a refresh is due
    token_format: TokenFormat = "form"  # the grant as a form (RFC 6749) or as JSON


@dataclass(frozen=True)
class OAuthFile:
    """A key whose token is an OAuth access token kept in a credential file,
    as a vendor's CLI keeps it (files.py reads the shapes)."""

    path: str  # absolute
    client: OAuthClient | None  # None: never refreshed here (the vendor's CLI does)
    # what a request made with the token needs besides its Bearer authorization
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def identity(self) -> str:
        """The same file is the same key across reloads (never a secret)."""
        return f"oauth:{self.path}"

    @property
    def shown(self) -> str:
        return self.path


@dataclass(frozen=True)
class TokenCommand:
    """A key whose token a command prints (`gcloud auth print-access-token`):
    run without a shell, its output kept for `ttl` seconds."""

    argv: tuple[str, ...]
    ttl: float = 300.0
    timeout: float = 30.0  # a run that takes longer fails, and is killed
    # what a request made with the token needs besides its Bearer authorization
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def identity(self) -> str:
        return "command:" + "\0".join(self.argv)

    @property
    def shown(self) -> str:
        """The program's name alone: its arguments may name an account."""
        return self.argv[0]


TokenSource = OAuthFile | TokenCommand
