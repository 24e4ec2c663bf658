"""The usage ledger on real SQLite files: rows add up per hour, survive a
restart, count once in spent() whether written or not, add up across
processes, and are kept (not lost) while another connection holds the file.

Time is given: every book gets a `wall` clock and every add an `at`; the
writer thread is driven by flush(), never waited for."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from byok.telemetry.usage_book import (
    HORIZON_DAYS,
    HOUR,
    SCHEMA_VERSION,
    Tally,
    Totals,
    UsageBook,
    UsageBookError,
)

T = 1_800_000_000.0  # 2027-01-15 08:00 UTC, the start of an hour
DAY = 24 * HOUR
NEVER = 10 * DAY  # a flush_every that leaves the writer to flush() alone


class Clock:
    def __init__(self, now: float = T + 600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


Opener = Callable[..., UsageBook]


@pytest.fixture
def open_book(tmp_path: Path) -> Iterator[Opener]:
    """UsageBook(tmp_path / "usage.sqlite3", ...) by default; each closed at the end."""
    books: list[UsageBook] = []

    def opener(path: Path | None = None, **options: object) -> UsageBook:
        options.setdefault("flush_every", NEVER)
        options.setdefault("wall", Clock())
        book = UsageBook(path or tmp_path / "usage.sqlite3", **options)
        books.append(book)
        return book

    yield opener
    for book in books:
        book.close()


def add(book: UsageBook, client: str = "alice", at: float = T + 60, **counts: float) -> None:
    book.add(client=client, provider="openai", key="team-a", model="gpt-4o", at=at, **counts)


def table(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            'SELECT hour, client, provider, "key", model, requests, input_tokens, '
            "output_tokens, errors, cost FROM usage ORDER BY hour, client, model"
        ).fetchall()
    connection.close()
    return rows


# ---- rows add up -------------------------------------------------------------------


def test_adds_aggregate_into_one_row_per_hour_client_provider_key_model(open_book, tmp_path):
    book = open_book()
    add(book, at=T + 1, input_tokens=10, output_tokens=1, cost=0.25)
    add(book, at=T + 1800, input_tokens=20, output_tokens=2, errors=1, cost=0.5)
    add(book, at=T + HOUR - 0.001, input_tokens=30, output_tokens=3)  # the same hour, its end
    add(book, at=T + HOUR, input_tokens=5)  # the next hour
    book.add(client="alice", provider="openai", key="team-a", model="o3", at=T + 2, requests=2)
    book.add(client="bob", provider="anthropic", key="b", model="claude", at=T + 3, requests=0)
    book.flush()
    hour = int(T)
    assert table(tmp_path / "usage.sqlite3") == [
        (hour, "alice", "openai", "team-a", "gpt-4o", 3, 60, 6, 1, 0.75),
        (hour, "alice", "openai", "team-a", "o3", 2, 0, 0, 0, 0.0),
        (hour, "bob", "anthropic", "b", "claude", 0, 0, 0, 0, 0.0),
        (hour + HOUR, "alice", "openai", "team-a", "gpt-4o", 1, 5, 0, 0, 0.0),
    ]


def test_each_flush_adds_onto_the_rows_already_written(open_book, tmp_path):
    book = open_book()
    add(book, input_tokens=100)
    book.flush()
    add(book, input_tokens=1)
    add(book, input_tokens=2)
    book.flush()
    book.flush()  # nothing pending: nothing changes
    assert table(tmp_path / "usage.sqlite3") == [
        (int(T), "alice", "openai", "team-a", "gpt-4o", 3, 103, 0, 0, 0.0)
    ]


def test_add_takes_the_time_of_its_wall_clock_when_not_given(open_book, tmp_path):
    clock = Clock(T + 3 * HOUR + 59)
    book = open_book(wall=clock)
    book.add(client="alice", provider="p", key="k", model="m", input_tokens=7)
    clock.now = T + 4 * HOUR
    book.add(client="alice", provider="p", key="k", model="m", input_tokens=8)
    book.flush()
    hours = [(row[0], row[6]) for row in table(tmp_path / "usage.sqlite3")]
    assert hours == [(int(T) + 3 * HOUR, 7), (int(T) + 4 * HOUR, 8)]


# ---- spent() -----------------------------------------------------------------------


def test_spent_counts_pending_and_written_rows_once_each(open_book):
    book = open_book()
    assert book.spent("alice", T) == Totals(0, 0, 0, 0, 0.0)
    add(book, input_tokens=10, output_tokens=1, cost=0.5)
    add(book, input_tokens=10, output_tokens=1, cost=0.5)
    assert book.spent("alice", T) == Totals(2, 20, 2, 0, 1.0)  # pending only
    book.flush()
    assert book.spent("alice", T) == Totals(2, 20, 2, 0, 1.0)  # written only
    add(book, input_tokens=5, errors=1)
    assert book.spent("alice", T) == Totals(3, 25, 2, 1, 1.0)  # both
    book.flush()
    assert book.spent("alice", T) == Totals(3, 25, 2, 1, 1.0)
    assert book.spent("bob", T) == Totals(0, 0, 0, 0, 0.0)
    assert book.rows(by=("client",))[0]["requests"] == 3


def test_a_tally_counts_without_the_book_until_it_hands_over(open_book, tmp_path):
    clock = Clock()
    book = open_book(wall=clock)
    tally = Tally(book, wall=clock)
    tally.add("alice", "openai", "team-a", "gpt-4o", 1, 10, 1, 0, 0.5)
    tally.add("alice", "openai", "team-a", "gpt-4o", 1, 10, 1, 1, 0.5)
    clock.now += HOUR  # the next hour: a row of its own
    tally.add("alice", "openai", "team-a", "gpt-4o", 1, 5, 0, 0, 0.0)
    tally.add("bob", "openai", "team-b", "gpt-4o", 1, 1, 1, 0, 0.0)
    assert book.spent("alice", T) == Totals(0, 0, 0, 0, 0.0)  # the book has nothing yet
    assert tally.spent("alice", T) == Totals(3, 25, 2, 1, 1.0)
    assert tally.spent("alice", T + HOUR) == Totals(1, 5, 0, 0, 0.0)  # from its hour on
    tally.hand_over()
    assert tally.spent("alice", T) == Totals(3, 25, 2, 1, 1.0)  # counted once, in the book
    tally.add("alice", "openai", "team-a", "gpt-4o", 1, 1, 0, 0, 0.0)
    book.merge({})  # nothing to merge changes nothing
    tally.hand_over()
    book.flush()
    assert tally.spent("alice", T) == Totals(4, 26, 2, 1, 1.0)
    assert table(tmp_path / "usage.sqlite3") == [
        (T, "alice", "openai", "team-a", "gpt-4o", 2, 20, 2, 1, 1.0),
        (T + HOUR, "alice", "openai", "team-a", "gpt-4o", 2, 6, 0, 0, 0.0),
        (T + HOUR, "bob", "openai", "team-b", "gpt-4o", 1, 1, 1, 0, 0.0),
    ]
    book.close()
    with pytest.raises(UsageBookError, match="closed"):
        book.merge({"alice": {(T, "p", "k", "m"): [1, 0, 0, 0, 0.0]}})


def test_spent_counts_the_hours_from_the_one_holding_since(open_book):
    book = open_book(wall=Clock(T + HOUR + 60))
    add(book, at=T - 0.001, input_tokens=1)  # the last instant of the hour before
    add(book, at=T, input_tokens=10)  # the first of the next
    add(book, at=T + HOUR, input_tokens=100)
    for written in (False, True):
        assert book.spent("alice", T - HOUR).input_tokens == 111, written
        assert book.spent("alice", T).input_tokens == 110, written
        assert book.spent("alice", T + 1800).input_tokens == 110, written  # aligned down
        assert book.spent("alice", T + HOUR).input_tokens == 100, written
        assert book.spent("alice", T + 2 * HOUR).input_tokens == 0, written
        book.flush()


def test_spent_sees_what_another_book_on_the_file_wrote_after_a_cycle(open_book, tmp_path):
    mine = open_book()
    other = open_book()
    mine.want_totals()  # the totals kept up to the file at every cycle, from now
    add(mine, input_tokens=1)
    add(other, input_tokens=100)
    other.flush()
    assert mine.spent("alice", T).input_tokens == 1  # not read yet
    mine.flush()  # writes its own, then reads what changed
    assert mine.spent("alice", T).input_tokens == 101
    add(other, input_tokens=1000, client="bob")
    other.flush()
    mine.flush()  # nothing of its own to write: it still reads
    assert mine.spent("bob", T).input_tokens == 1000
    assert mine.spent("alice", T).input_tokens == 101


def test_totals_are_read_back_only_once_someone_wants_them(open_book, tmp_path):
    mine = open_book()
    other = open_book()
    add(other, input_tokens=100)
    other.flush()
    add(mine, input_tokens=1)
    mine.flush()  # written; the file not read back: nobody asked for totals
    assert mine._unseen == []  # and nothing kept for a reader that is not there
    # the first spent() reads the file at once: every row, once
    assert mine.spent("alice", T).input_tokens == 101
    add(other, input_tokens=1000)
    other.flush()
    mine.flush()  # from now on every cycle reads what changed
    assert mine.spent("alice", T).input_tokens == 1101


def test_spent_before_the_horizon_reads_the_file_and_pending_once(open_book):
    clock = Clock()
    book = open_book(wall=clock)
    old = T - (HORIZON_DAYS + 8) * DAY
    add(book, at=old, input_tokens=1)
    add(book, at=T, input_tokens=10)
    assert book.spent("alice", old).input_tokens == 11  # from the file (empty) and pending
    book.flush()
    assert book.spent("alice", old).input_tokens == 11  # from the file
    assert book.spent("alice", T - DAY).input_tokens == 10  # from memory
    add(book, at=old, input_tokens=100)
    assert book.spent("alice", old).input_tokens == 111
    # the clock moves on: the cache lets the old hours go, the file keeps them
    clock.now = T + (HORIZON_DAYS + 5) * DAY
    book.flush()
    assert book.spent("alice", old).input_tokens == 111
    assert book.spent("alice", T).input_tokens == 10
    assert book.spent("alice", clock.now - DAY).input_tokens == 0


def test_spent_stays_exact_while_threads_add_and_the_writer_flushes(open_book):
    # a writer cycle every millisecond, racing four adding threads
    book = open_book(flush_every=0.001)
    per_thread, threads = 2000, 4

    def adding(n: int) -> None:
        for i in range(per_thread):
            add(book, at=T + (i % 2) * HOUR, input_tokens=1, cost=0.5)
            if i % 500 == 0:
                assert book.spent("alice", T).requests >= i  # this thread's own, at least

    workers = [threading.Thread(target=adding, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = per_thread * threads
    assert book.spent("alice", T) == Totals(total, total, 0, 0, total * 0.5)
    book.flush()
    assert book.spent("alice", T) == Totals(total, total, 0, 0, total * 0.5)
    assert sum(row["requests"] for row in book.rows(by=("hour",))) == total


# ---- several processes -------------------------------------------------------------

WRITER = """
import sys
from byok.telemetry.usage_book import UsageBook
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
T = 1_800_000_000.0
book = UsageBook(path, flush_every=0.005, wall=lambda: T + 60)
for i in range(count):
    client = "shared" if i % 2 else name
    book.add(client=client, provider="openai", key="k" + str(i % 3), model="m",
             input_tokens=i, output_tokens=1, cost=0.25, at=T + (i % 4) * 900 + (i % 2) * 3600)
    if i % 50 == 49:
        book.flush()
book.close()
print("done")
"""


def test_processes_writing_one_file_add_up_exactly(open_book, tmp_path):
    path = tmp_path / "usage.sqlite3"
    watcher = open_book(path)  # open before the others write: it must see their rows
    count, names = 500, ["w0", "w1", "w2", "w3"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert (process.returncode, out, err) == (0, "done\n", "")
    half = count // 2
    odd = sum(range(1, count, 2))  # the input tokens of each process's "shared" adds
    even = sum(range(0, count, 2))
    watcher.flush()
    assert watcher.spent("shared", T) == Totals(
        half * len(names), odd * len(names), half * len(names), 0, 0.25 * half * len(names)
    )
    for name in names:
        assert watcher.spent(name, T) == Totals(half, even, half, 0, 0.25 * half)
    rows = watcher.rows(by=("client",))
    assert [(row["client"], row["requests"]) for row in rows] == [
        ("shared", 4 * half),
        *((name, half) for name in names),
    ]
    # hours: even i are in T's hour, odd ones in the next
    assert [(r["hour"], r["requests"]) for r in watcher.rows(by=("hour",))] == [
        ("2027-01-15T08:00", count * 2),
        ("2027-01-15T09:00", count * 2),
    ]
    restarted = open_book(path)
    assert restarted.spent("shared", T).requests == 4 * half


# ---- restarts, closing -------------------------------------------------------------


def test_rows_survive_close_and_reopen(open_book, tmp_path):
    path = tmp_path / "deep" / "er" / "usage.sqlite3"  # its directories are created
    book = open_book(path)
    add(book, input_tokens=42, cost=1.5)  # pending at close: close writes it
    book.close()
    book.close()  # idempotent
    book.flush()  # nothing to do
    with pytest.raises(UsageBookError, match="closed"):
        add(book)
    with pytest.raises(UsageBookError, match="closed"):
        book.rows()
    reopened = open_book(path)
    assert reopened.spent("alice", T) == Totals(1, 42, 0, 0, 1.5)
    add(reopened, input_tokens=8)
    reopened.flush()
    assert reopened.rows(by=("client", "key")) == [
        {
            "client": "alice",
            "provider": "openai",
            "key": "team-a",
            "requests": 2,
            "input_tokens": 50,
            "output_tokens": 0,
            "errors": 0,
            "cost": 1.5,
        }
    ]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


# ---- rows() ------------------------------------------------------------------------


def test_rows_group_by_time_and_names_and_filter_by_whole_hours(open_book):
    book = open_book()
    jan31 = T + 16 * DAY  # 2027-01-31 08:00
    add(book, at=jan31 + 60, input_tokens=1)
    add(book, at=jan31 + 2 * HOUR, input_tokens=2, client="bob")
    add(book, at=jan31 + DAY, input_tokens=4)  # 2027-02-01
    book.add(client="alice", provider="anthropic", key="team-a", model="claude", at=T)
    book.flush()

    def summed(**options: object) -> list[tuple[object, ...]]:
        return [tuple(row.values()) for row in book.rows(**options)]

    assert summed(by=("month",)) == [
        ("2027-01", 3, 3, 0, 0, 0.0),
        ("2027-02", 1, 4, 0, 0, 0.0),
    ]
    assert summed(by=("day", "client")) == [
        ("2027-01-15", "alice", 1, 0, 0, 0, 0.0),
        ("2027-01-31", "alice", 1, 1, 0, 0, 0.0),
        ("2027-01-31", "bob", 1, 2, 0, 0, 0.0),
        ("2027-02-01", "alice", 1, 4, 0, 0, 0.0),
    ]
    # key: the provider and the label (the same label under two providers is two keys)
    assert summed(by=("key",)) == [
        ("anthropic", "team-a", 1, 0, 0, 0, 0.0),
        ("openai", "team-a", 3, 7, 0, 0, 0.0),
    ]
    assert summed(by=("model", "provider")) == [
        ("claude", "anthropic", 1, 0, 0, 0, 0.0),
        ("gpt-4o", "openai", 3, 7, 0, 0, 0.0),
    ]
    # the hours that overlap [since, until)
    assert summed(by=("hour",), since=jan31 + 1800, until=jan31 + 2 * HOUR + 1) == [
        ("2027-01-31T08:00", 1, 1, 0, 0, 0.0),
        ("2027-01-31T10:00", 1, 2, 0, 0, 0.0),
    ]
    assert summed(by=("hour",), since=jan31 + HOUR, until=jan31 + 2 * HOUR) == []
    assert summed(by=()) == [(4, 7, 0, 0, 0.0)]
    assert summed(by=(), since=T + 100 * DAY) == []
    with pytest.raises(ValueError, match="cannot group by 'week'"):
        book.rows(by=("day", "week"))


# ---- problems ----------------------------------------------------------------------


def test_a_path_that_cannot_hold_the_file_is_said_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cases = {
        blocker / "usage.sqlite3": "cannot create the directory",
        tmp_path: "check that it is a file, not a directory",
        blocker: "not an SQLite file",
    }
    for path, fix in cases.items():
        with pytest.raises(UsageBookError) as caught:
            UsageBook(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: "), message
        assert fix in message
        assert "\n" not in message


def test_files_of_a_newer_byok_or_another_program_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(UsageBookError, match="of a newer byok"):
        UsageBook(newer)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE notes (text)")
    connection.close()
    with pytest.raises(UsageBookError, match="another program"):
        UsageBook(foreign)


def test_the_writer_keeps_rows_while_the_file_is_locked_and_writes_them_after(
    open_book, tmp_path, caplog
):
    path = tmp_path / "usage.sqlite3"
    book = open_book(path, busy_timeout=0.05)
    add(book, input_tokens=1)
    book.flush()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write, held past busy_timeout
    caplog.set_level(logging.INFO, logger="byok.usage")
    try:
        add(book, input_tokens=10)
        with pytest.raises(UsageBookError, match="database is locked"):
            book.flush()
        add(book, input_tokens=100)
        with pytest.raises(UsageBookError, match="database is locked"):
            book.flush()
        assert book.spent("alice", T).input_tokens == 111  # kept, counted once
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # said once, not at every retry
    assert str(path) in warnings[0].getMessage()
    assert "cannot write 1 row(s)" in warnings[0].getMessage()
    book.flush()  # the same writer thread: alive, and the rows are written now
    assert book.spent("alice", T).input_tokens == 111
    assert table(path)[0][5:7] == (3, 111)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"usage ledger {path}: written and read again"
    ]
