"""One refresh of a credential at a time on this host, whatever process asks.

The workers of ``byok serve --workers N`` (and a second byok on the same
files, or ``byok keys check``) each keep a credential of their own: the one
that refreshes it holds an exclusive ``flock`` on a lock file of that
credential, and the others, waiting on it, then find the file refreshed and
take its tokens instead of spending the refresh token again (both big
vendors rotate refresh tokens: a second refresh with the old one would be
refused, and block the key).

The lock files live in a directory of this user's alone (mode 0700, owned
by it, checked; in $XDG_RUNTIME_DIR, else the system's temporary
directory), named by a hash of the credential file's path: the vendor's
directory is left as it is, and no other user can hold byok's locks.  A
lock held past LOCK_WAIT is a failure of the renewal.  Where there is no
flock (Windows) or no such directory, the lock is this process's alone,
and says so once in the log.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import trio

from .errors import CredentialError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("byok.credentials")

POLL = 0.05  # seconds between two tries of a lock another process holds
LOCK_WAIT = 60.0  # seconds another process may hold it, at most
_warned = False


def lock_directory() -> str:
    """This user's directory of lock files, made if need be; OSError if the
    one there is not this user's alone."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    directory = os.path.join(base, f"byok-locks-{uid}")
    with suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    found = os.lstat(directory)
    private = stat.S_ISDIR(found.st_mode) and not found.st_mode & 0o077
    if not private or (hasattr(os, "getuid") and found.st_uid != uid):
        raise OSError(f"{directory} is not a directory of this user's alone")
    return directory


def lock_path(name: str) -> str:
    """The lock file of the credential `name` (a path, or any stable name)."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    return os.path.join(lock_directory(), f"{digest}.lock")


@asynccontextmanager
async def host_lock(name: str) -> AsyncIterator[None]:
    """Held by one process of this host at a time for the credential `name`."""
    global _warned
    try:
        fd = os.open(lock_path(name), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as error:
        if not _warned:
            _warned = True
            log.warning(
                "no lock file for credential refreshes (%s): each is single-flight in its "
                "process only",
                error.strerror or error,
            )
        yield
        return
    try:
        if fcntl is not None:
            with trio.move_on_after(LOCK_WAIT) as waiting:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await trio.sleep(POLL)
            if waiting.cancelled_caught:
                raise CredentialError(
                    f"another process of this host held its refresh lock for over {LOCK_WAIT:g}s",
                    blocks=False,
                )
        yield
    finally:
        os.close(fd)  # releases the flock
