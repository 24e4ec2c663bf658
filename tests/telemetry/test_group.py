"""The counters of a group of workers, read from whichever worker answers."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from byok.telemetry.group import GroupShare, publish_every
from byok.telemetry.ledger import Ledger
from byok.telemetry.metrics import Metrics


def metrics_of(directory: Path, index: int) -> Metrics:
    metrics = Metrics(lambda: [])
    metrics.group = GroupShare(directory, index)
    return metrics


def line(page: bytes, start: str) -> str:
    return next(x for x in page.decode().splitlines() if x.startswith(start))


def test_each_worker_shows_the_groups_counts(tmp_path: Path) -> None:
    one, two = metrics_of(tmp_path, 0), metrics_of(tmp_path, 1)
    for _ in range(3):
        one.request("m", "/v1/chat/completions", 200, 0.0003)
    two.request("m", "/v1/chat/completions", 200, 0.002)
    two.tokens("p", "k", "m", "p/x", 10, 4)
    assert one.group is not None
    assert two.group is not None
    one.group.publish("metrics", one.export())
    two.group.publish("metrics", two.export())
    for page in (one.render(), two.render()):
        requests = 'byok_requests_total{endpoint="/v1/chat/completions",model="m",status="200"}'
        assert line(page, requests).endswith(" 4.0")
        overhead = 'byok_proxy_overhead_seconds_bucket{endpoint="/v1/chat/completions",le="0.0005"}'
        assert line(page, overhead).endswith(" 3.0")  # 0.002 is in a later bucket
        assert line(page, "byok_proxy_overhead_seconds_count").endswith(" 4.0")
        assert line(page, 'byok_tokens_total{key="k",kind="input"').endswith(" 10.0")


def test_a_worker_started_again_keeps_its_predecessors_counts(tmp_path: Path) -> None:
    before = metrics_of(tmp_path, 1)
    before.request("m", "/v1/chat/completions", 200, None)
    before.request("m", "/v1/chat/completions", 502, None)
    assert before.group is not None
    before.group.publish("metrics", before.export())
    after = metrics_of(tmp_path, 1)  # the same index: the restarted worker
    assert after.group is not None
    previous = after.group.previous("metrics")
    assert previous is not None
    after.absorb(previous)
    after.request("m", "/v1/chat/completions", 200, None)
    ok = 'byok_requests_total{endpoint="/v1/chat/completions",model="m",status="200"}'
    failed = 'byok_requests_total{endpoint="/v1/chat/completions",model="m",status="502"}'
    assert line(after.render(), ok).endswith(" 2.0")
    after.group.publish("metrics", after.export())
    # its own file is not read as a peer's: nothing counted twice
    assert line(after.render(), ok).endswith(" 2.0")
    assert line(after.render(), failed).endswith(" 1.0")


def test_a_damaged_peer_file_is_skipped(tmp_path: Path) -> None:
    one = metrics_of(tmp_path, 0)
    one.request("m", "/v1/x", 200, None)
    (tmp_path / "metrics-3.json").write_bytes(b"{not json")
    (tmp_path / "ledger-3.json").write_bytes(b"[1,2")
    assert line(one.render(), "byok_requests_total{").endswith(" 1.0")
    ledger = Ledger()
    ledger.group = GroupShare(tmp_path, 0)
    assert ledger.seen("p", "k").input_tokens == 0


def test_the_ledger_shows_the_groups_tokens_latest_reason_and_traffic(tmp_path: Path) -> None:
    one, two = Ledger(), Ledger()
    one.group, two.group = GroupShare(tmp_path, 0), GroupShare(tmp_path, 1)
    one.used("p", "k", "p/m", 10, 1)
    one.failed("p", "k", 429, "rate limited (older)")
    time.sleep(0.01)  # wall clock: the reasons' times must differ
    two.used("p", "k", "p/m", 5, 2)
    two.failed("p", "k", 401, "revoked (newer)")
    one.answered(200)
    two.answered(503)
    one.group.publish("ledger", one.export())
    two.group.publish("ledger", two.export())
    for ledger in (one, two):
        notes = ledger.seen("p", "k")
        assert (notes.input_tokens, notes.output_tokens) == (15, 3)
        assert notes.reason is not None
        assert notes.reason.message == "revoked (newer)"
        recent = ledger.recent()
        assert sum(b.requests for b in recent) == 2
        assert sum(b.errors for b in recent) == 1
        assert sum(b.failed_attempts for b in recent) == 2
    assert one.seen("p", "other").input_tokens == 0


def test_a_ledger_started_again_takes_over_its_predecessors_notes(tmp_path: Path) -> None:
    before = Ledger()
    before.used("p", "k", "p/m", 7, 3)
    before.failed("p", "k", 500, "boom")
    before.answered(500)
    after = Ledger()
    after.answered(200)
    after.absorb(before.export())
    notes = after.seen("p", "k")
    assert (notes.input_tokens, notes.output_tokens) == (7, 3)
    assert notes.reason is not None
    assert notes.reason.status == 500
    assert sum(b.requests for b in after.recent()) == 2


def test_a_keys_tokens_per_target_add_up_over_the_group_and_a_restart(tmp_path: Path) -> None:
    one, two = Ledger(), Ledger()
    one.group, two.group = GroupShare(tmp_path, 0), GroupShare(tmp_path, 1)
    one.used("p", "k", "p/a", 10, 1)
    one.used("p", "k", "p/b", 3, 3)
    two.used("p", "k", "p/a", 5, 2)
    two.used("p", "other", "p/a", 100, 100)
    one.group.publish("ledger", one.export())
    two.group.publish("ledger", two.export())
    for ledger in (one, two):
        notes = ledger.seen("p", "k")
        assert notes.targets == {"p/a": [15, 3], "p/b": [3, 3]}
        assert (notes.input_tokens, notes.output_tokens) == (18, 6)
    assert one.keys["p", "k"].targets == {"p/a": [10, 1], "p/b": [3, 3]}  # reading added nothing
    after = Ledger()
    after.used("p", "k", "p/b", 1, 1)
    after.absorb(one.export())
    assert after.seen("p", "k").targets == {"p/a": [10, 1], "p/b": [4, 4]}


async def test_publish_every_writes_each_second_and_once_more_when_stopped(
    tmp_path: Path, autojump_clock: object
) -> None:
    share = GroupShare(tmp_path, 2)
    count = 0

    def snapshot() -> bytes:
        nonlocal count
        count += 1
        return str(count).encode()

    async with trio.open_nursery() as nursery:
        await nursery.start(publish_every, share, {"metrics": snapshot})
        await trio.sleep(3.5)
        assert (tmp_path / "metrics-2.json").read_bytes() == b"3"
        nursery.cancel_scope.cancel()
    assert (tmp_path / "metrics-2.json").read_bytes() == b"4"  # the final counts
    assert not list(tmp_path.glob("*.tmp"))
