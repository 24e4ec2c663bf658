"""The counters of a group of workers (``byok serve --workers N``), seen from any of them.

The keys' health is one table in shared memory; the counters (metrics, the
ledger's tokens, reasons and recent traffic) are each worker's, updated on
its request path without any lock.  So that ``/metrics`` and the admin API
show the whole group whichever worker answers, each worker writes a
snapshot of its counters to a file of its own, once a second and when it
stops, in a directory the supervisor made for the group; a worker that
answers adds the others' latest snapshots to its own live counters.  The
others' part is at most about a second old.

A worker that dies and is started again takes over the file of its index
(`previous`) and adds it to its own counters first, so that totals never go
down: Prometheus reads a counter that shrinks as a restart of the whole
process, which the group was not.

This is prometheus-client's multiprocess mode in spirit (a file per process,
summed when read) without its per-update file writes, which the request
path cannot afford.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import trio

log = logging.getLogger("byok.group")
T = TypeVar("T")

PUBLISH_SECONDS = 1.0
# peers' files are read and decoded again at most this often (an admin page asks per key)
_READ_AGAIN_SECONDS = 0.5


class GroupShare:
    """This worker's place in its group's directory: `index` among the workers."""

    def __init__(self, directory: str | os.PathLike[str], index: int) -> None:
        self.directory = Path(directory)
        self.index = index
        self._cache: dict[str, tuple[float, list[Any]]] = {}

    def _file(self, name: str, index: int) -> Path:
        return self.directory / f"{name}-{index}.json"

    def publish(self, name: str, data: bytes) -> None:
        """This worker's latest snapshot `name`, replacing the one before in
        one rename (a reader never sees half a file)."""
        target = self._file(name, self.index)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        os.replace(partial, target)

    def previous(self, name: str) -> bytes | None:
        """The snapshot the last process at this index left, if any."""
        try:
            return self._file(name, self.index).read_bytes()
        except FileNotFoundError:
            return None

    def peers(self, name: str, decode: Callable[[bytes], T]) -> list[T]:
        """The other workers' latest snapshots `name` (those that wrote one),
        each through `decode`; a file it refuses (another version's, or
        damaged) is left out."""
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < _READ_AGAIN_SECONDS:
            return cached[1]
        mine = self._file(name, self.index).name
        found = []
        for path in sorted(self.directory.glob(f"{name}-*.json")):
            if path.name == mine:
                continue
            try:
                found.append(decode(path.read_bytes()))
            except FileNotFoundError:  # the directory went with the group
                continue
            except msgspec.DecodeError:
                continue
        self._cache[name] = (now, found)
        return found


async def publish_every(
    share: GroupShare,
    snapshots: dict[str, Callable[[], bytes]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write each of `snapshots` every PUBLISH_SECONDS until cancelled, and
    once more then (a worker that stops leaves its final counts)."""
    task_status.started()
    try:
        while True:
            await trio.sleep(PUBLISH_SECONDS)
            _publish(share, snapshots)
    finally:
        _publish(share, snapshots)


def _publish(share: GroupShare, snapshots: dict[str, Callable[[], bytes]]) -> None:
    for name, snapshot in snapshots.items():
        try:
            share.publish(name, snapshot())
        except OSError as error:  # a full disk costs the group view, not a request
            log.warning("cannot write this worker's %s for the group: %s", name, error)
