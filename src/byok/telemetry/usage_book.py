"""The usage ledger: requests, tokens, errors and cost per hour, client,
provider, key and model, kept in an SQLite file that outlives restarts.

Theory of operation.  `add()` only adds into an in-memory aggregate
(``pending``) under a small lock.  The proxy counts through a `Tally` instead:
its event loop is one thread, so a request's row goes into the tally's own
aggregate with no lock at all, and the loop hands the whole aggregate to the
book a few times a second (`Tally.hand_over`, one `merge` under the lock);
measured under callgrind, a lock and a call with keyword arguments per
request were 3% of everything byok does for a request.  A writer
thread moves that aggregate to the file every ``flush_every`` seconds: it
takes ``pending`` whole (it becomes an ``unseen`` batch), upserts it in one
``BEGIN IMMEDIATE`` transaction (the upsert adds, so the processes of a
`byok serve --workers N` group, each with its own book on the same file,
add up), then reads back what changed in the file since its last look and
updates its cache of per-(client, hour) totals.  Only then, in the same
step under the lock, are the unseen batches dropped: a row is counted by
`spent()` in exactly one place at any moment (pending, unseen, or the
cache).  A write that fails puts its batch back into ``pending``; nothing is
lost, and the next cycle tries again.

What changed is found without rescanning the file: every upsert stamps its
rows with the transaction's ``seq`` (one more than the file's highest, taken
under the write lock, so it grows in commit order across processes), and a
reader asks for the (client, hour) pairs of rows stamped after the highest
``seq`` it has seen.  Other processes' rows so reach `spent()` within about
``flush_every``, at the cost of one indexed query per cycle.

The cache holds the hours of the last HORIZON_DAYS days: a budget reads a
day or a month.  `spent()` with an older ``since`` queries the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("byok.usage")

SCHEMA_VERSION = 1  # PRAGMA user_version of a file this module wrote
HOUR = 3600
HORIZON_DAYS = 32  # the days of hours that spent() serves from memory
BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's transaction
MEMO_LIMIT = 4096  # memoized (client, since) sums kept between two cache changes

_SCHEMA = (
    """CREATE TABLE usage (
        hour INTEGER NOT NULL,  -- start of the hour, Unix seconds (UTC)
        client TEXT NOT NULL,
        provider TEXT NOT NULL,
        "key" TEXT NOT NULL,  -- the upstream key's label, never the key
        model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL,  -- the write that last changed the row
        PRIMARY KEY (hour, client, provider, "key", model)
    ) WITHOUT ROWID""",
    "CREATE INDEX usage_seq ON usage (seq)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_UPSERT = """
    INSERT INTO usage (hour, client, provider, "key", model,
                       requests, input_tokens, output_tokens, errors, cost, seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (hour, client, provider, "key", model) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        errors = errors + excluded.errors,
        cost = cost + excluded.cost,
        seq = excluded.seq
"""
_SUMS = "SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(errors), SUM(cost)"
_CLIENT_HOURS = f"SELECT client, hour, {_SUMS} FROM usage WHERE hour >= ? GROUP BY hour, client"
_CHANGED_CLIENT_HOURS = f"""
    SELECT client, hour, {_SUMS} FROM usage
    WHERE (hour, client) IN (SELECT hour, client FROM usage WHERE seq > ? AND hour >= ?)
    GROUP BY hour, client
"""
# what rows() groups by: a name, and the columns (name, SQL) it brings
GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "hour": (("hour", "strftime('%Y-%m-%dT%H:00', hour, 'unixepoch')"),),
    "day": (("day", "strftime('%Y-%m-%d', hour, 'unixepoch')"),),
    "month": (("month", "strftime('%Y-%m', hour, 'unixepoch')"),),
    "client": (("client", "client"),),
    "provider": (("provider", "provider"),),
    "key": (("provider", "provider"), ("key", '"key"')),  # a label names a key within a provider
    "model": (("model", "model"),),
}
MEASURES = ("requests", "input_tokens", "output_tokens", "errors", "cost")

# client -> (hour, provider, key, model) -> [requests, input, output, errors, cost]
_Row = tuple[float, str, str, str]
_Batch = dict[str, dict[_Row, list[Any]]]
_NONE: dict[_Row, list[Any]] = {}  # a client's rows in a batch without them
_Sums = tuple[Any, ...]  # requests, input tokens, output tokens, errors, cost


class UsageBookError(Exception):
    """The usage file cannot be used: one line naming it and what to do."""


@dataclass(frozen=True, slots=True)
class Totals:
    """What a client spent: sums over rows of the ledger."""

    requests: int
    input_tokens: int
    output_tokens: int
    errors: int
    cost: float


def hour_of(moment: float) -> int:
    """The start of the hour holding `moment` (Unix seconds, UTC)."""
    return int(moment // HOUR) * HOUR


class UsageBook:
    """One process's view of a usage file: adds are cheap, writes happen in
    a background thread, totals since a time come from memory."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: float = 1.0,
        wall: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        if not flush_every > 0:
            raise ValueError(f"flush_every must be above 0 seconds, got {flush_every!r}")
        self.path = Path(path).expanduser()
        self._flush_every = flush_every
        self._wall = wall
        self._connection = _open(self.path, busy_timeout)
        self._connected = True  # until close()
        self._lock = threading.Lock()  # guards what add() and spent() touch
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._db_lock = threading.Lock()  # one user of the connection at a time
        self._pending: _Batch = {}
        self._unseen: list[_Batch] = []  # taken by the writer, not yet in the cache
        self._cache: dict[str, dict[int, _Sums]] = {}  # client -> hour -> sums
        self._memo: dict[tuple[str, float], Totals] = {}  # (client, since) -> the cache's sums
        self._seen = -1  # the highest seq the cache holds (-1: none read yet)
        self._horizon = 0  # the first hour the cache holds
        self._closed = False
        self._failing = False  # the last cycle failed (said once, not every cycle)
        # whether anyone reads totals (spent()): until then a cycle writes and
        # does not read the file back (the refresh is most of its cost)
        self._totals_wanted = False
        self._trouble = ""  # what the last failed write said
        # flush() asks for a cycle with a ticket; the writer says which it served
        self._cycle_done = threading.Condition()
        self._asked = self._served = self._written_through = 0
        self._stopping = False
        try:
            self._refresh()
        except sqlite3.Error as error:
            self._connection.close()
            raise UsageBookError(_problem(self.path, error)) from None
        self._writer = threading.Thread(target=self._run, name="byok-usage-writer", daemon=True)
        self._writer.start()

    def add(
        self,
        *,
        client: str,
        provider: str,
        key: str,
        model: str,
        requests: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        errors: int = 0,
        cost: float = 0.0,
        at: float | None = None,
    ) -> None:
        """Count a request (or a part of one) at wall-clock time `at` (default
        now).  Never blocks on the file; a UsageBookError once closed."""
        # on every request: no call that can be spared (an int() costs as much
        # as the rest of the line, so the hour stays a float until written)
        moment = self._wall() if at is None else at
        row = (moment - moment % HOUR, provider, key, model)
        self._acquire()  # `with` costs twice as much
        try:
            if self._closed:
                raise UsageBookError(f"{self.path}: the usage book is closed")
            _count_into(
                self._pending, client, row, requests, input_tokens, output_tokens, errors, cost
            )
        finally:
            self._release()

    def merge(self, batch: _Batch) -> None:
        """Add a whole aggregate of rows ({client: {row: sums}}, as a Tally
        keeps them) under one acquisition of the lock."""
        self._acquire()
        try:
            if self._closed:
                raise UsageBookError(f"{self.path}: the usage book is closed")
            pending = self._pending
            for client, rows in batch.items():
                if client not in pending:
                    pending[client] = rows
                    continue
                for row, sums in rows.items():
                    _count_into(pending, client, row, *sums)
        finally:
            self._release()

    def flush(self) -> None:
        """Return once everything added before the call is in the file; a
        UsageBookError if it could not be written (the rows stay pending and
        the writer tries again).  Nothing to do once closed."""
        with self._cycle_done:
            if self._stopping:
                return
            self._asked += 1
            ticket = self._asked
            self._cycle_done.notify_all()
            self._cycle_done.wait_for(lambda: self._served >= ticket)
            if self._written_through < ticket:
                raise UsageBookError(
                    f"{self.path}: usage not written ({self._trouble}); "
                    "it is kept and written at the next try"
                )

    def close(self) -> None:
        """Write what is pending, stop the writer, close the file.  A final
        write that fails is logged (an error line), not raised.  Idempotent."""
        with self._lock:
            self._closed = True  # add() refuses from now on: the last cycle takes all
        with self._cycle_done:
            if self._stopping:
                return
            self._stopping = True
            self._cycle_done.notify_all()
        self._writer.join()
        with self._lock:
            lost = _count(self._pending)
        if lost:
            log.error(
                "usage ledger %s: %d row(s) could not be written and are lost", self.path, lost
            )
        with self._db_lock:
            self._connection.close()
            self._connected = False

    def spent(self, client: str, since: float) -> Totals:
        """What `client` spent in the hours from the one holding `since` (this
        method aligns it down to its hour) to now: what every process wrote to
        the file, as of the last cycle, and this process's rows not yet
        written.  From memory when `since` is within the last HORIZON_DAYS
        days; else from the file."""
        since -= since % HOUR  # as hour_of, without its int(): this is on every request
        if not self._totals_wanted:
            self.want_totals()
        self._acquire()
        try:
            if since >= self._horizon:
                flushed = self._memo.get((client, since)) or self._cached(client, since)
                pending = self._pending.get(client)
                if pending is None and not self._unseen:
                    return flushed
                return _plus(flushed, (self._pending, *self._unseen), client, since)
        finally:
            self._release()
        return self._spent_from_file(client, int(since))

    def want_totals(self) -> None:
        """From now on, keep the totals that spent() reads up to the file at
        every cycle; brought up to it at once the first time (a read of the
        file: call it where a moment's wait is fine, as budgets are loaded).
        spent() calls it itself if no one did."""
        if self._totals_wanted:
            return
        with self._db_lock:
            if not self._connected:
                return
            try:
                self._refresh()
            except sqlite3.Error as error:  # the next cycle tries again
                log.warning("usage ledger %s: cannot read the totals: %s", self.path, error)
            self._totals_wanted = True

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        by: Sequence[str] = ("day", "client", "model", "key"),
    ) -> list[dict[str, Any]]:
        """The file's rows (this process's within about flush_every), summed
        by `by` over the hours that overlap [since, until); see `grouped`."""
        with self._db_lock:
            try:
                return grouped(self._connected_to(), since, until, by)
            except sqlite3.Error as error:
                raise UsageBookError(_problem(self.path, error)) from None

    # ---- the writer -------------------------------------------------------------

    def _run(self) -> None:
        """The writer thread: a cycle every flush_every seconds, or at once
        when flush() or close() asks; it never dies of an exception."""
        while True:
            with self._cycle_done:
                self._cycle_done.wait_for(
                    lambda: self._asked > self._served or self._stopping, self._flush_every
                )
                tickets, stopping = self._asked, self._stopping
            written = self._cycle()
            with self._cycle_done:
                self._served = tickets
                if written:
                    self._written_through = tickets
                self._cycle_done.notify_all()
            if stopping:
                return

    def _cycle(self) -> bool:
        """Write pending, then read what changed; whether the write went
        through (or there was nothing to write).  Never raises."""
        written = False
        with self._db_lock:
            try:
                self._write_pending()
                written = True
                if self._totals_wanted:
                    self._refresh()
                else:  # what was written is in the file: a later refresh reads it there
                    with self._lock:
                        self._unseen.clear()
            except Exception as error:  # whatever it is, the writer must live on
                if not written:
                    self._trouble = f"{type(error).__name__}: {error}"
                if not self._failing:
                    with self._lock:
                        rows = _count(self._pending)
                    what = (
                        "cannot read the totals back" if written else f"cannot write {rows} row(s)"
                    )
                    log.warning(
                        "usage ledger %s: %s (%s: %s); kept in memory, retried every %gs",
                        self.path,
                        what,
                        type(error).__name__,
                        error,
                        self._flush_every,
                    )
                self._failing = True
                return written
        if self._failing:
            log.info("usage ledger %s: written and read again", self.path)
            self._failing = False
        return True

    def _write_pending(self) -> None:
        """Upsert the pending rows in one transaction; on failure they are
        pending again and the error is raised."""
        with self._lock:
            batch, self._pending = self._pending, {}
            if batch:
                self._unseen.append(batch)
        if not batch:
            return
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                (seq,) = connection.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM usage"
                ).fetchone()
                connection.executemany(_UPSERT, _upserts(batch, seq))
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        except BaseException:
            with self._lock:
                self._unseen = [b for b in self._unseen if b is not batch]
                _merge(self._pending, batch)
            raise

    def _refresh(self) -> None:
        """Bring the cache up to the file: the (client, hour) sums that changed
        since the highest seq seen, within the horizon."""
        # never back: the hours before the horizon are not in the cache (a
        # wall clock set back would otherwise seem to serve them)
        horizon = max(hour_of(self._wall()) - HORIZON_DAYS * 24 * HOUR, self._horizon)
        connection = self._connection
        connection.execute("BEGIN")  # one snapshot for both reads
        try:
            (top,) = connection.execute("SELECT COALESCE(MAX(seq), 0) FROM usage").fetchone()
            everything = top < self._seen or self._seen < 0  # the first look, or a file replaced
            if everything:
                changes = connection.execute(_CLIENT_HOURS, (horizon,)).fetchall()
            elif top > self._seen:
                changes = connection.execute(
                    _CHANGED_CLIENT_HOURS, (self._seen, horizon)
                ).fetchall()
            else:
                changes = []
        finally:
            connection.execute("COMMIT")
        with self._lock:
            if everything:
                self._cache = {}
            for client, hour, *sums in changes:
                self._cache.setdefault(client, {})[hour] = tuple(sums)
            if horizon != self._horizon:
                for hours in self._cache.values():
                    for old in [h for h in hours if h < horizon]:
                        del hours[old]
            if changes or horizon != self._horizon:
                self._memo.clear()
            self._seen, self._horizon = top, horizon
            self._unseen.clear()  # every unseen batch is committed, and now in the cache

    # ---- reading ----------------------------------------------------------------

    def _cached(self, client: str, since: float) -> Totals:
        """The cache's sums for `client` from hour `since`, memoized until the
        cache changes.  Called under the lock."""
        counts: list[Any] = [0, 0, 0, 0, 0.0]
        for hour, sums in self._cache.get(client, {}).items():
            if hour >= since:
                for n in range(5):
                    counts[n] += sums[n]
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        found = self._memo[(client, since)] = Totals(*counts)
        return found

    def _connected_to(self) -> sqlite3.Connection:
        """The connection, if not closed (called under its lock)."""
        if not self._connected:
            raise UsageBookError(f"{self.path}: the usage book is closed")
        return self._connection

    def _spent_from_file(self, client: str, since: int) -> Totals:
        # under the connection's lock no cycle runs: every unseen batch is in
        # the file already, and only pending is not
        with self._db_lock:
            try:
                sums = (
                    self._connected_to()
                    .execute(
                        f"SELECT {_SUMS} FROM usage WHERE client = ? AND hour >= ?", (client, since)
                    )
                    .fetchone()
                )
            except sqlite3.Error as error:
                raise UsageBookError(_problem(self.path, error)) from None
            counts = [0 if value is None else value for value in sums]
            with self._lock:
                _add_rows(counts, self._pending.get(client, {}), since)
        return Totals(*counts)


def read_rows(
    path: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    by: Sequence[str] = ("day", "client", "model", "key"),
    busy_timeout: float = BUSY_TIMEOUT,
) -> list[dict[str, Any]]:
    """`UsageBook.rows` of a file opened read-only, with no writer (the
    `byok usage` command).  A UsageBookError if it is missing, unreadable,
    or not a usage file."""
    where = Path(path).expanduser()
    if where.is_dir():
        raise UsageBookError(f"{where} is a directory: name the usage file in it")
    try:
        connection = sqlite3.connect(
            where.absolute().as_uri() + "?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
        )
    except sqlite3.Error as error:
        raise UsageBookError(_problem(where, error)) from None
    try:
        version = _version(connection, where)
        if version == 0:
            raise UsageBookError(f"{where}: not a byok usage file (no usage table in it)")
        return grouped(connection, since, until, by)
    except sqlite3.Error as error:
        raise UsageBookError(_problem(where, error)) from None
    finally:
        connection.close()


def grouped(
    connection: sqlite3.Connection,
    since: float | None,
    until: float | None,
    by: Sequence[str],
) -> list[dict[str, Any]]:
    """The sums of MEASURES over the hours that overlap [since, until)
    (either open), one dict per group of `by` (names of GROUPS: the time
    ones as UTC text, "2026-12-02T10:00", "2026-12-02", "2026-12"; "key" is
    the provider and the key's label), sorted by the group columns."""
    unknown = [name for name in by if name not in GROUPS]
    if unknown:
        raise ValueError(
            f"cannot group by {', '.join(map(repr, unknown))}: expected some of {', '.join(GROUPS)}"
        )
    columns = dict(column for name in by for column in GROUPS[name])  # in order, once each
    selected = [f'{sql} AS "{name}"' for name, sql in columns.items()]
    where: list[str] = []
    bounds: list[float] = []
    if since is not None:
        where.append("hour >= ?")
        bounds.append(hour_of(since))
    if until is not None:
        where.append("hour < ?")
        bounds.append(until)
    positions = ", ".join(str(n + 1) for n in range(len(columns)))
    query = (
        f"SELECT {', '.join([*selected, _SUMS, 'COUNT(*)'])} FROM usage"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + (f" GROUP BY {positions} ORDER BY {positions}" if columns else "")
    )
    names = [*columns, *MEASURES]
    return [
        dict(zip(names, row))
        for row in connection.execute(query, bounds).fetchall()
        if row[-1]  # with no grouping, no rows is one row of NULLs
    ]


# ---- the file --------------------------------------------------------------------


def _open(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """The file at `path`, created with its directory and schema if missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # FileExistsError: a file where the directory should be
        why = "a file is there" if isinstance(error, FileExistsError) else error.strerror
        raise UsageBookError(
            f"{path}: cannot create the directory {path.parent} ({why}): "
            "choose a path in a directory byok can write"
        ) from None
    try:
        # the writer thread and the callers of rows() share it, one at a time
        connection = sqlite3.connect(
            path, timeout=busy_timeout, check_same_thread=False, isolation_level=None
        )
    except sqlite3.Error as error:
        raise UsageBookError(_problem(path, error)) from None
    try:
        # readers never wait for the writer, nor the writer for readers
        connection.execute("PRAGMA journal_mode = WAL")
        # in WAL, a crash cannot corrupt the file; a power loss may cost the last second
        connection.execute("PRAGMA synchronous = NORMAL")
        _create(connection, path)
    except sqlite3.Error as error:
        connection.close()
        raise UsageBookError(_problem(path, error)) from None
    except BaseException:
        connection.close()
        raise
    return connection


def _create(connection: sqlite3.Connection, path: Path) -> None:
    """The schema, unless there already (another process may be creating it
    now: the check is repeated under the write lock)."""
    if _version(connection, path) == SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if _version(connection, path) == 0:
            for statement in _SCHEMA:
                connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _version(connection: sqlite3.Connection, path: Path) -> int:
    """The file's schema version: 0 for an empty file, else SCHEMA_VERSION;
    a UsageBookError for a newer one or another program's file."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise UsageBookError(
            f"{path}: a usage file of a newer byok (schema {version}; this one knows "
            f"{SCHEMA_VERSION}): upgrade byok, or choose another path"
        )
    if version == 0 and connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        raise UsageBookError(
            f"{path}: an SQLite file of another program (no byok usage schema): choose another path"
        )
    return int(version)


def _problem(path: Path, error: sqlite3.Error) -> str:
    """A line for an SQLite error on the file at `path`."""
    text = str(error)
    if "unable to open" in text:
        fix = "check that it is a file, not a directory, and that byok can write its directory"
    elif "not a database" in text or "malformed" in text:
        fix = "not an SQLite file, or a damaged one: move it away, or choose another path"
    elif "readonly" in text or "read-only" in text:
        fix = "check the permissions of the file and of its directory"
    elif "locked" in text or "busy" in text:
        fix = "another process held it longer than the busy timeout"
    else:
        fix = ""
    return f"{path}: {text}" + (f" ({fix})" if fix else "")


# ---- batches ---------------------------------------------------------------------


def _upserts(batch: _Batch, seq: int) -> Iterable[tuple[Any, ...]]:
    for client, rows in batch.items():
        for (hour, provider, key, model), counts in rows.items():
            yield (int(hour), client, provider, key, model, *counts, seq)


def _merge(into: _Batch, batch: _Batch) -> None:
    for client, rows in batch.items():
        target = into.setdefault(client, {})
        for row, counts in rows.items():
            found = target.get(row)
            if found is None:
                target[row] = counts
            else:
                for n in range(5):
                    found[n] += counts[n]


def _add_rows(counts: list[Any], rows: dict[_Row, list[Any]], since: float) -> None:
    """Add to `counts` the pending `rows` of hour `since` and later."""
    for row, sums in rows.items():
        if row[0] >= since:
            for n in range(5):
                counts[n] += sums[n]


class Tally:
    """Rows counted by one thread (the proxy's event loop) without a lock,
    handed to the book in batches by that same thread (see the module doc)."""

    __slots__ = ("_rows", "_wall", "book")

    def __init__(self, book: UsageBook, wall: Callable[[], float] = time.time) -> None:
        self.book = book
        self._wall = wall
        self._rows: _Batch = {}

    def add(
        self,
        client: str,
        provider: str,
        key: str,
        model: str,
        requests: int,
        input_tokens: int,
        output_tokens: int,
        errors: int,
        cost: float,
    ) -> None:
        """As UsageBook.add, now, positionally: only from the owning thread."""
        moment = self._wall()
        row = (moment - moment % HOUR, provider, key, model)
        _count_into(self._rows, client, row, requests, input_tokens, output_tokens, errors, cost)

    def hand_over(self) -> None:
        """Give what was counted to the book (its writer takes it from there)."""
        if self._rows:
            batch, self._rows = self._rows, {}
            self.book.merge(batch)

    def spent(self, client: str, since: float) -> Totals:
        """As UsageBook.spent, with what this tally holds and has not handed over."""
        totals = self.book.spent(client, since)
        if client not in self._rows:
            return totals
        return _plus(totals, (self._rows,), client, since - since % HOUR)


def _count_into(
    batch: _Batch,
    client: str,
    row: _Row,
    requests: int,
    input_tokens: int,
    output_tokens: int,
    errors: int,
    cost: float,
) -> None:
    """Add one row's counts into `batch`: how pending rows and a tally's add up."""
    rows = batch.get(client)
    if rows is None:
        rows = batch[client] = {}
    counts = rows.get(row)
    if counts is None:
        rows[row] = [requests, input_tokens, output_tokens, errors, cost]
    else:
        counts[0] += requests
        counts[1] += input_tokens
        counts[2] += output_tokens
        counts[3] += errors
        counts[4] += cost


def _plus(totals: Totals, batches: Iterable[_Batch], client: str, since: float) -> Totals:
    """`totals` and what `batches` hold of `client` from hour `since` on."""
    requests = input_tokens = output_tokens = errors = 0
    cost = 0.0
    for batch in batches:
        for row, sums in batch.get(client, _NONE).items():
            if row[0] >= since:
                requests += sums[0]
                input_tokens += sums[1]
                output_tokens += sums[2]
                errors += sums[3]
                cost += sums[4]
    return Totals(
        totals.requests + requests,
        totals.input_tokens + input_tokens,
        totals.output_tokens + output_tokens,
        totals.errors + errors,
        totals.cost + cost,
    )


def _count(batch: _Batch) -> int:
    return sum(len(rows) for rows in batch.values())
