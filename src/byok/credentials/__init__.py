"""Short-lived keys: OAuth credential files with refresh, and token commands.

Most keys are static secrets.  A key may instead take its secret from a
source whose token expires: an OAuth credential file as a vendor's CLI
keeps it (Claude Code's, the Codex CLI's, the Gemini CLI's, any file of
the same shapes), refreshed at the provider's token endpoint and written
back; or a command that prints a token (gcloud, az, a script), run again
before its ttl ends.  Such a key's requests carry the token as a Bearer
authorization, whatever the provider kind's own header (providers.py).

    sources.py  what the config says: OAuthFile, OAuthClient, TokenCommand
    files.py    the credential files' shapes, read and written back
    oauth.py    the refresh-token grant
    command.py  running a token command
    locks.py    one refresh per credential on this host
    shared.py   ... and across replicas, through the cluster
    credential.py  one source's token: single-flight renewal, write-back
    store.py    every credential of a config; the file watch, early renewals
    book.py     the tokens seen lately, for the redactor
"""

from .book import SecretBook
from .credential import Credential
from .errors import CredentialError
from .files import CredentialFileError
from .sources import OAuthClient, OAuthFile, TokenCommand, TokenSource
from .store import Credentials, Use

__all__ = [
    "Credential",
    "CredentialError",
    "CredentialFileError",
    "Credentials",
    "OAuthClient",
    "OAuthFile",
    "SecretBook",
    "TokenCommand",
    "TokenSource",
    "Use",
]
