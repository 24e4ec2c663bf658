"""What byok remembers beyond the engine's health table: each key's last
failure and the tokens it served, and the recent traffic in time buckets.

The engine (byok_core) keeps health per pool; these notes are per key
(provider and label), and they outlive config reloads, so that an operator
still sees why a key went out and what it has cost since the process started.
A key serves every target (pool) of its provider that lists it, so its
tokens are also kept per target: the dashboard's row of a key under a model
shows what it spent there, and its total over all of them.
In a group of workers, what `seen` and `recent` say adds the other workers'
latest snapshots (byok.telemetry.group) to this one's notes.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import msgspec

from .group import GroupShare


@dataclass
class Reason:
    status: int | None  # None: no HTTP answer (timeout, connection failure)
    message: str  # already redacted
    at: float  # wall-clock time
    # a subscription's 429: the quota window it spent, and when that resets (wall)
    window: str | None = None
    resets_at: float | None = None


@dataclass
class KeyNotes:
    reason: Reason | None = None
    input_tokens: int = 0  # over all its targets
    output_tokens: int = 0
    # target (pool name, "provider/upstream-model") -> [input, output]: these
    # add up to the two above
    targets: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Bucket:
    t: int  # wall-clock start, whole seconds
    requests: int = 0
    errors: int = 0  # answers of 429 or 5xx
    failed_attempts: int = 0  # upstream attempts that failed, retried or not


class _Snapshot(msgspec.Struct, frozen=True):
    """One process's notes, as its group's other workers read them."""

    # provider, label, input tokens, output tokens, last reason (status, message, at)
    keys: list[tuple[str, str, int, int, tuple[int | None, str, float] | None]]
    buckets: list[tuple[int, int, int, int]]  # t, requests, errors, failed attempts
    # provider, label, target, input tokens, output tokens (a snapshot of a
    # byok from before targets has none: its tokens count in the totals only)
    targets: list[tuple[str, str, str, int, int]] = []
    # provider, label, window, resets at: of a last reason that spent a quota window
    windows: list[tuple[str, str, str, float]] = []


_encode_snapshot = msgspec.json.Encoder().encode
_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode


class Ledger:
    BUCKET_SECONDS = 5
    BUCKETS = 120  # ten minutes

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], KeyNotes] = {}
        self._buckets: deque[Bucket] = deque(maxlen=self.BUCKETS)
        # the other workers' notes, when this process is one of a group
        self.group: GroupShare | None = None

    def notes(self, provider: str, label: str) -> KeyNotes:
        found = self.keys.get((provider, label))
        if found is None:
            found = self.keys[(provider, label)] = KeyNotes()
        return found

    def seen(self, provider: str, label: str) -> KeyNotes:
        """The notes of a key, for reading (never to write: they may be
        shared); a key never noted gets empty ones.  In a group: the group's
        tokens, and the latest reason of any worker."""
        mine = self.keys.get((provider, label)) or _NOTHING_NOTED
        peers = self._peers()
        if not peers:
            return mine
        targets = {target: list(counts) for target, counts in mine.targets.items()}
        seen = KeyNotes(mine.reason, mine.input_tokens, mine.output_tokens, targets)
        for peer in peers:
            for their_provider, their_label, taken, given, reason in peer.keys:
                if their_label != label or their_provider != provider:
                    continue
                seen.input_tokens += taken
                seen.output_tokens += given
                if reason is not None and (seen.reason is None or reason[2] > seen.reason.at):
                    seen.reason = _reason(reason, peer, provider, label)
            for their_provider, their_label, target, taken, given in peer.targets:
                if their_label == label and their_provider == provider:
                    _add(targets, target, taken, given)
        return seen

    def failed(
        self,
        provider: str,
        label: str,
        status: int | None,
        message: str,
        window: str | None = None,
        resets_at: float | None = None,
    ) -> None:
        """An attempt on the key failed (`window`: the quota window a 429
        spent, which resets at `resets_at`, wall-clock)."""
        reason = Reason(status, message, time.time(), window, resets_at)
        self.notes(provider, label).reason = reason
        self._bucket().failed_attempts += 1

    def used(self, provider: str, label: str, target: str, taken: int, given: int) -> None:
        """Tokens the key spent serving `target` (a pool's name)."""
        notes = self.notes(provider, label)
        notes.input_tokens += taken
        notes.output_tokens += given
        _add(notes.targets, target, taken, given)

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
        filled = {b.t: Bucket(b.t, b.requests, b.errors, b.failed_attempts) for b in self._buckets}
        for peer in self._peers():
            for t, requests, errors, failed in peer.buckets:
                bucket = filled.get(t)
                if bucket is None:
                    bucket = filled[t] = Bucket(t)
                bucket.requests += requests
                bucket.errors += errors
                bucket.failed_attempts += failed
        return [filled.get(t) or Bucket(t) for t in _starts(current, size, self.BUCKETS)]

    def export(self) -> bytes:
        """This process's notes, for the other workers of its group."""
        return _encode_snapshot(
            _Snapshot(
                keys=[
                    (
                        provider,
                        label,
                        notes.input_tokens,
                        notes.output_tokens,
                        None
                        if notes.reason is None
                        else (notes.reason.status, notes.reason.message, notes.reason.at),
                    )
                    for (provider, label), notes in self.keys.items()
                ],
                buckets=[(b.t, b.requests, b.errors, b.failed_attempts) for b in self._buckets],
                targets=[
                    (provider, label, target, taken, given)
                    for (provider, label), notes in self.keys.items()
                    for target, (taken, given) in notes.targets.items()
                ],
                windows=[
                    (provider, label, notes.reason.window, notes.reason.resets_at)
                    for (provider, label), notes in self.keys.items()
                    if notes.reason is not None
                    and notes.reason.window is not None
                    and notes.reason.resets_at is not None
                ],
            )
        )

    def absorb(self, exported: bytes) -> None:
        """Take over notes `export` made (this worker's predecessor's): the
        tokens add up, the latest reason stays, the buckets add up."""
        snapshot = _decode_snapshot(exported)
        for provider, label, taken, given, reason in snapshot.keys:
            notes = self.notes(provider, label)
            notes.input_tokens += taken
            notes.output_tokens += given
            if reason is not None and (notes.reason is None or reason[2] > notes.reason.at):
                notes.reason = _reason(reason, snapshot, provider, label)
        for provider, label, target, taken, given in snapshot.targets:
            _add(self.notes(provider, label).targets, target, taken, given)
        buckets = {b.t: b for b in self._buckets}
        for t, requests, errors, failed in snapshot.buckets:
            bucket = buckets.get(t)
            if bucket is None:
                bucket = buckets[t] = Bucket(t)
            bucket.requests += requests
            bucket.errors += errors
            bucket.failed_attempts += failed
        self._buckets.clear()
        self._buckets.extend(sorted(buckets.values(), key=lambda b: b.t))  # the latest kept

    def _peers(self) -> list[_Snapshot]:
        return [] if self.group is None else self.group.peers("ledger", _decode_snapshot)

    def _bucket(self) -> Bucket:
        now = time.time()
        start = int(now // self.BUCKET_SECONDS) * self.BUCKET_SECONDS
        buckets = self._buckets
        if not buckets or buckets[-1].t != start:
            buckets.append(Bucket(start))
        return buckets[-1]


_NOTHING_NOTED = KeyNotes()  # shared and never written: only seen() hands it out


def _reason(
    said: tuple[int | None, str, float], snapshot: _Snapshot, provider: str, label: str
) -> Reason:
    """A reason as a snapshot gives it, with the quota window it names."""
    for their_provider, their_label, window, resets_at in snapshot.windows:
        if their_provider == provider and their_label == label:
            return Reason(*said, window, resets_at)
    return Reason(*said)


def _add(targets: dict[str, list[int]], target: str, taken: int, given: int) -> None:
    counts = targets.get(target)
    if counts is None:
        targets[target] = [taken, given]
    else:
        counts[0] += taken
        counts[1] += given


def _starts(current: int, size: int, count: int) -> list[int]:
    return [current - size * n for n in range(count - 1, -1, -1)]
