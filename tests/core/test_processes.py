"""A shared health segment across real processes: each peer is a Python
process of its own (segment_peer.py) that attaches the segment and drives a
selector on it, as byok's worker processes do.

Races start at one moment of the common monotonic clock; the assertions
hold however the processes are scheduled."""

from __future__ import annotations

import json
import mmap
import queue
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from byok_core import _region

PEER = Path(__file__).with_name("segment_peer.py")
T = 1000.0
ANSWER_WITHIN = 60.0  # seconds: a bound on a stuck peer, never a measure of speed


class Peer:
    """One process attached to the segment, answering commands."""

    def __init__(self, implementation: str, name: str, worker: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PEER), implementation, name, str(worker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pid = self._next()["ready"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _next(self, timeout: float = ANSWER_WITHIN) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"peer {self.process.pid} gave no answer") from None

    def send(self, **command) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = ANSWER_WITHIN):
        reply = self._next(timeout)
        assert "error" not in reply, reply["error"]
        return reply["ok"]

    def selector(self, ids, **options) -> None:
        self.send(selector={"ids": list(ids), **options})
        self.answer()

    def call(self, method, *args, **kwargs):
        self.send(call=method, args=list(args), kwargs=kwargs)
        return self.answer()

    def kill(self) -> None:
        """kill -9 (TerminateProcess on Windows): no cleanup of any kind."""
        self.process.kill()
        self.process.wait(timeout=ANSWER_WITHIN)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=ANSWER_WITHIN)
        else:
            self.process.stdin.close()
        self.reader.join(timeout=ANSWER_WITHIN)
        self.process.stdout.close()


@pytest.fixture
def group(impl):
    """(segment, start): the segment this process created as worker 0, and
    start(worker) for a peer process attached as that worker."""
    peers: list[Peer] = []
    with impl.HealthSegment.create(capacity=64, workers=16) as segment:

        def start(worker: int) -> Peer:
            peer = Peer(impl.name, segment.name, worker)
            peers.append(peer)
            return peer

        try:
            yield segment, start
        finally:
            for peer in peers:
                peer.stop()


def race(peers, method, *args, repeat=1, **kwargs):
    """Every peer calls `method` `repeat` times from one moment on: the
    answers, peer by peer."""
    at = time.monotonic() + 0.2
    for peer in peers:
        peer.send(call=method, args=list(args), kwargs=kwargs, repeat=repeat, at=at)
    return [peer.answer() for peer in peers]


def test_a_429_in_one_process_cools_the_key_in_another_at_once(impl, group):
    segment, start = group
    a, b = start(1), start(2)
    a.selector(["k1", "k2"], scope="gpt-4o/openai")
    b.selector(["k2", "k1"], scope="gpt-4o/openai")
    assert a.call("report_rate_limited", "k1", retry_after=30, now=T) == "cooled"
    assert b.call("state", "k1", now=T + 0.001) == "cooldown"
    assert [b.call("pick", now=T + 1) for _ in range(4)] == ["k2"] * 4
    assert b.call("state", "k1", now=T + 30) == "half_open"
    mine = impl.Selector(["k1", "k2"], shared=segment, scope="gpt-4o/openai")
    assert mine.snapshot(now=T + 10)[0]["cooldown_remaining"] == pytest.approx(20)


def test_the_real_clock_is_common_to_every_process(impl, group):
    """now=None reads CLOCK_MONOTONIC (time.monotonic()) in every process."""
    segment, start = group
    peer = start(1)
    peer.selector(["k"], scope="pool")
    peer.call("report_rate_limited", "k", retry_after=60)
    mine = impl.Selector(["k"], shared=segment, scope="pool")
    assert mine.state("k") == "cooldown"
    remaining = mine.snapshot(now=time.monotonic())[0]["cooldown_remaining"]
    assert 0 < remaining <= 60


def test_a_half_open_probe_is_claimed_by_exactly_one_process(impl, group):
    segment, start = group
    peers = [start(worker) for worker in range(1, 9)]
    for peer in peers:
        peer.selector(["k"], scope="pool", cooldown=1)
    mine = impl.Selector(["k"], shared=segment, scope="pool", cooldown=1)
    for round in range(8):
        t = T + 10 * round
        mine.report_rate_limited("k", retry_after=1, now=t)  # half-open at t + 1
        picks = [answer for (answer,) in race(peers, "pick", now=t + 1)]
        assert (picks.count("k"), picks.count(None)) == (1, 7), picks
        assert mine.snapshot(now=t + 1)[0]["probing"] is True


def test_racing_processes_never_own_one_probe_at_once(impl, group):
    """Processes in tight loops pick a half-open key at one `now`; whoever
    wins its probe holds a one-slot token until it gives the probe up
    (report_abandoned), so two processes owning the probe at once would
    find the token taken."""
    segment, start = group
    peers = [start(worker) for worker in range(1, 5)]
    for peer in peers:
        peer.selector(["k"], scope="pool", cooldown=1)
    impl.Selector(["k"], shared=segment, scope="pool").report_rate_limited(
        "k", retry_after=1, now=T
    )
    picks = 200_000 if impl.name == "compiled" else 20_000
    at = time.monotonic() + 0.2
    for peer in peers:
        peer.send(probe_race={"id": "k", "now": T + 1, "picks": picks, "at": at})
    answers = [peer.answer() for peer in peers]
    assert sum(won for won, _ in answers) > 0
    assert [overlaps for _, overlaps in answers] == [0] * len(peers)


def test_max_inflight_holds_across_processes(impl, group):
    segment, start = group
    peers = [start(worker) for worker in range(1, 7)]
    for peer in peers:
        peer.selector(["k"], scope="pool", max_inflight=5)
    results = race(peers, "acquire", "k", repeat=3)
    assert sum(result.count(True) for result in results) == 5
    mine = impl.Selector(["k"], shared=segment, scope="pool", max_inflight=5)
    assert mine.snapshot(now=T)[0]["inflight"] == 5
    assert not mine.acquire("k")
    for peer, result in zip(peers, results):
        for _ in range(result.count(True)):
            peer.call("release", "k")
    assert mine.snapshot(now=T)[0]["inflight"] == 0


def test_counters_are_totals_across_processes(impl, group):
    segment, start = group
    peers = [start(worker) for worker in range(1, 5)]
    for peer in peers:
        peer.selector(["a", "b", "c"], scope="pool", strategy="least_used")
    race(peers, "pick", now=T, repeat=30)
    race(peers, "report_success", "a", latency=0.1, now=T, repeat=10)
    race(peers, "report_rate_limited", "b", retry_after=0, now=T, repeat=5)
    rows = impl.Selector(["a", "b", "c"], shared=segment, scope="pool").snapshot(now=T)
    assert sum(row["picks"] for row in rows) == 4 * 30
    a, b = rows[0], rows[1]
    assert (a["successes"], a["window_attempts"]) == (40, 40)
    assert (b["failures"], b["rate_limits"]) == (20, 20)


def test_a_reload_in_every_process_keeps_the_health(impl, group):
    segment, start = group
    a, b = start(1), start(2)
    for peer in (a, b):
        peer.selector(["k1", "k2"], scope="pool", cooldown=5)
    a.call("report_rate_limited", "k1", now=T)  # backoff: 5 s, level 1
    for peer in (a, b):  # each process reloads: a new selector over the same slots
        peer.selector(["k2", "k1", "k3"], scope="pool", cooldown=5)
    assert b.call("state", "k1", now=T + 4) == "cooldown"
    assert a.call("snapshot", now=T)[1]["backoff_level"] == 1
    assert segment.used == 3


def test_a_killed_worker_leaves_no_slot_taken_once_reclaimed(impl, group):
    segment, start = group
    mine = impl.Selector(["k"], shared=segment, scope="pool", max_inflight=3)
    assert mine.acquire("k")
    doomed = start(5)
    doomed.selector(["k"], scope="pool", max_inflight=3)
    assert [doomed.call("acquire", "k") for _ in range(2)] == [True, True]
    doomed.kill()  # kill -9 with two calls in flight
    assert not mine.acquire("k")  # the dead worker's calls still count
    assert segment.reclaim(5) == 2
    assert mine.snapshot(now=T)[0]["inflight"] == 1  # this process's call stays
    assert [mine.acquire("k"), mine.acquire("k"), mine.acquire("k")] == [True, True, False]
    survivor = start(6)  # the group goes on: a new worker attaches and serves
    survivor.selector(["k"], scope="pool", max_inflight=4)
    assert survivor.call("acquire", "k") is True


@pytest.mark.parametrize("impl", ["compiled"], indirect=True)
def test_a_lock_left_by_a_dead_process_is_freed(impl, group):
    """A process killed while it held a member's lock (the lock word names
    it) wedges nobody: the next process to need the lock frees it once the
    OS says the holder is gone.  (The twin locks with the OS's file lock,
    which the OS releases when its process dies.)"""
    segment, start = group
    peer = start(1)
    peer.selector(["k"], scope="pool")
    mine = impl.Selector(["k"], shared=segment, scope="pool")
    lock_word = lock_offset(segment, "pool", "k")
    holder = start(2)  # a live process holding the lock: never robbed
    write_word(segment.name, lock_word, holder.pid)
    peer.send(call="report_error", args=["k"], kwargs={"now": T})
    with pytest.raises(queue.Empty):
        peer.lines.get(timeout=0.5)
    holder.kill()  # dies holding it
    assert peer.answer() is None
    assert read_word(segment.name, lock_word) == 0
    assert mine.snapshot(now=T)[0]["failures"] == 1


def lock_offset(segment, scope: str, id: str) -> int:
    """The byte offset of the lock word of (scope, id)'s record, found in the
    registry as the engine finds it: from the key's home slot onwards."""
    from byok_core._segment import MEMBER_WORDS

    layout = _region.Layout(segment.capacity, segment.workers, MEMBER_WORDS)
    *key, home = _region.slot_key(scope, id, segment.capacity)
    key = tuple(key)
    for n in range(segment.capacity):
        slot = (home + n) % segment.capacity
        entry = layout.registry + 2 * slot
        if (read_word(segment.name, entry * 8), read_word(segment.name, entry * 8 + 8)) == key:
            return (layout.records + slot * layout.stride) * 8  # the lock: word 0
    raise AssertionError(f"({scope!r}, {id!r}) has no slot")


def read_word(name: str, offset: int) -> int:
    with (
        open(_region.path_of(name), "rb") as file,
        mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm,
    ):
        return struct.unpack_from("<q", mm, offset)[0]


def write_word(name: str, offset: int, value: int) -> None:
    with open(_region.path_of(name), "r+b") as file, mmap.mmap(file.fileno(), 0) as mm:
        struct.pack_into("<q", mm, offset, value)
