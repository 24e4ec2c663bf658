"""One refresh of a credential at a time on this host, whatever process asks.

The workers of ``byok serve --workers N`` (and a second byok on the same
files) each keep a credential of their own: the one that refreshes it holds
an exclusive ``flock`` on a lock file of that credential, and the others,
waiting on it, then find the file refreshed and take its tokens instead of
spending the refresh token again (both big vendors rotate refresh tokens:
a second refresh with the old one would be refused, and block the key).

The lock files live in a directory of the system's temporary one, named by
a hash of the credential file's path: the vendor's directory is left as it
is.  Where there is no flock (Windows) or the lock file cannot be opened,
the lock is this process's alone, and says so once in the log.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("byok.credentials")

POLL = 0.05  # seconds between two tries of a lock another process holds
_warned: set[str] = set()


def lock_path(name: str) -> str:
    """The lock file of the credential `name` (a path, or any stable name)."""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"byok-credential-{digest}.lock")


@asynccontextmanager
async def host_lock(name: str) -> AsyncIterator[None]:
    """Held by one process of this host at a time for the credential `name`."""
    path = lock_path(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        if path not in _warned:
            _warned.add(path)
            log.warning(
                "cannot open the lock file %s (%s): refreshes of this credential are "
                "single-flight in this process only",
                path,
                error.strerror,
            )
        yield
        return
    try:
        if fcntl is not None:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await trio.sleep(POLL)
        yield
    finally:
        os.close(fd)  # releases the flock
