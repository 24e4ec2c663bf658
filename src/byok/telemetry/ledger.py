"""What byok remembers beyond the engine's health table: each key's last
failure and the tokens it served, and the recent traffic in time buckets.

The engine (byok_core) keeps health per pool; these notes are per key
(provider and label), and they outlive config reloads, so that an operator
still sees why a key went out and what it has cost since the process started.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Reason:
    status: int | None  # None: no HTTP answer (timeout, connection failure)
    message: str  # already redacted
    at: float  # wall-clock time


@dataclass
class KeyNotes:
    reason: Reason | None = None
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class Bucket:
    t: int  # wall-clock start, whole seconds
    requests: int = 0
    errors: int = 0  # answers of 429 or 5xx
    failed_attempts: int = 0  # upstream attempts that failed, retried or not


class Ledger:
    BUCKET_SECONDS = 5
    BUCKETS = 120  # ten minutes

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], KeyNotes] = {}
        self._buckets: deque[Bucket] = deque(maxlen=self.BUCKETS)

    def notes(self, provider: str, label: str) -> KeyNotes:
        found = self.keys.get((provider, label))
        if found is None:
            found = self.keys[(provider, label)] = KeyNotes()
        return found

    def seen(self, provider: str, label: str) -> KeyNotes:
        """The notes of a key, for reading: a key never noted gets empty ones."""
        return self.keys.get((provider, label)) or _NOTHING_NOTED

    def failed(self, provider: str, label: str, status: int | None, message: str) -> None:
        self.notes(provider, label).reason = Reason(status, message, time.time())
        self._bucket().failed_attempts += 1

    def used(self, provider: str, label: str, taken: int, given: int) -> None:
        notes = self.notes(provider, label)
        notes.input_tokens += taken
        notes.output_tokens += given

    def answered(self, status: int) -> None:
        bucket = self._bucket()
        bucket.requests += 1
        if status == 429 or status >= 500:
            bucket.errors += 1

    def forget(self, provider: str, label: str) -> None:
        """The label now names another secret: its history is not the new key's."""
        self.keys.pop((provider, label), None)

    def recent(self, now: float | None = None) -> list[Bucket]:
        """The last ten minutes, oldest first, empty buckets included."""
        size = self.BUCKET_SECONDS
        now = time.time() if now is None else now
        current = int(now // size) * size
        filled = {b.t: b for b in self._buckets}
        return [filled.get(t) or Bucket(t) for t in _starts(current, size, self.BUCKETS)]

    def _bucket(self) -> Bucket:
        now = time.time()
        start = int(now // self.BUCKET_SECONDS) * self.BUCKET_SECONDS
        buckets = self._buckets
        if not buckets or buckets[-1].t != start:
            buckets.append(Bucket(start))
        return buckets[-1]


_NOTHING_NOTED = KeyNotes()  # shared and never written: only seen() hands it out


def _starts(current: int, size: int, count: int) -> list[int]:
    return [current - size * n for n in range(count - 1, -1, -1)]
