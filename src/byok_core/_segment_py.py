"""Pure-Python twin of ``byok_core._segment``: the same segments, registry and
results, with one lock over the whole segment where the compiled module has
atomics and a spinlock per member.

Read the theory of operation at the top of ``_segment.pyx``.  The records
are the compiled member_t's words, reached through a memoryview cast to
int64 ('q', and 'd' for the latency EWMA).  The lock is the file's: an
exclusive lockf() (POSIX) or msvcrt.locking() (Windows) across processes,
and a thread lock within one.  A process holds one mapping of a segment for
all its handles (POSIX record locks belong to the process, and closing any
descriptor of the file would drop them), and the OS lets go of the file lock
of a process that dies.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from . import _region
from ._health_py import _FIELDS, BUCKETS, LIMITS, HealthTable, _Member

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

# member_t's words, in its order (see _health.pxd): its lock, then the
# fields a _Member of the twin carries, which _health_py lists in that order
FIELDS = ("lock", *_FIELDS)
WINDOW = len(FIELDS)  # the window's buckets follow: (epoch, attempts, failures) each
LIMITS_AT = WINDOW + 3 * BUCKETS  # then the limits: (interval, capacity, period, tat) each
MEMBER_WORDS = LIMITS_AT + 4 * LIMITS

if sys.platform == "win32":
    import msvcrt

    def _lock_file(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:  # LK_LOCK gives up after ten seconds: wait on
                continue

    def _unlock_file(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_file(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_EX)

    def _unlock_file(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN)


class _Mapping:
    """This process's mapping of one segment file, and its lock (a context
    manager: the thread lock, then the file lock)."""

    __slots__ = ("__weakref__", "_thread_lock", "fd", "floats", "layout", "mm", "words")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd  # the mapping's now: __del__ closes it, even if mmap() fails
        self.mm = mmap.mmap(fd, size)
        self.words = memoryview(self.mm).cast("q")
        self.floats = memoryview(self.mm).cast("d")
        self.layout: Optional[_region.Layout] = None
        self._thread_lock = threading.Lock()

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            _lock_file(self.fd)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            _unlock_file(self.fd)
        finally:
            self._thread_lock.release()

    def __del__(self, close: Callable[[int], None] = os.close) -> None:
        # Nothing in this process holds the lock once the mapping is
        # unreferenced, so closing the descriptor drops no one's lock.
        # (`close` is bound early: at interpreter exit `os` may be gone.)
        close(self.fd)


# one mapping per file per process, by (device, inode)
_mappings: weakref.WeakValueDictionary[tuple[int, int], _Mapping] = weakref.WeakValueDictionary()
_mappings_lock = threading.Lock()


def _mapping_of(fd: int, size: int) -> _Mapping:
    """The process's mapping of the file open as `fd` (which it takes over,
    or closes if the file was mapped already)."""
    stat = os.fstat(fd)
    with _mappings_lock:
        # an inode stays allocated while its file is open: the key cannot
        # name another file as long as the mapping (and its fd) lives
        mapping = _mappings.get((stat.st_dev, stat.st_ino))
        if mapping is not None:
            os.close(fd)
            return mapping
        mapping = _Mapping(fd, size)
        _mappings[stat.st_dev, stat.st_ino] = mapping
        return mapping


def _word(offset: int) -> Any:
    def get(self: _SharedMember) -> int:
        return self._words[self._base + offset]

    def put(self: _SharedMember, value: int) -> None:
        self._words[self._base + offset] = value

    return property(get, put)


def _window(offset: int) -> Any:
    """One column of the window: a strided view of its ten words."""

    def get(self: _SharedMember) -> memoryview:
        start = self._base + WINDOW + offset
        return self._words[start : start + 3 * BUCKETS : 3]

    def put(self: _SharedMember, values: list[int]) -> None:
        view = get(self)
        for k, value in enumerate(values):
            view[k] = value

    return property(get, put)


def _limit(offset: int, floats: bool = False) -> Any:
    """One field of the limits: a strided view of its word in each limit_t."""

    def get(self: _SharedMember) -> memoryview[Any]:
        start = self._base + LIMITS_AT + offset
        view: memoryview[Any] = self._floats if floats else self._words
        return view[start : start + 4 * LIMITS : 4]

    def put(self: _SharedMember, values: list[Any]) -> None:
        view = get(self)
        for k, value in enumerate(values):
            view[k] = value

    return property(get, put)


class _SharedMember(_Member):
    """A member whose record is a slot of a shared segment: _Member's fields,
    read and written in the segment's words (callers hold the segment lock,
    as _health_py's callers hold the table lock)."""

    __slots__ = ("_base", "_counted_at", "_floats", "_mapping", "_words")

    state = _word(FIELDS.index("state"))
    until = _word(FIELDS.index("until"))
    probe_until = _word(FIELDS.index("probe_until"))
    level = _word(FIELDS.index("level"))
    consecutive_failures = _word(FIELDS.index("consecutive_failures"))
    picks = _word(FIELDS.index("picks"))
    successes = _word(FIELDS.index("successes"))
    failures = _word(FIELDS.index("failures"))
    rate_limits = _word(FIELDS.index("rate_limits"))
    inflight = _word(FIELDS.index("inflight"))
    max_inflight = _word(FIELDS.index("max_inflight"))
    latency_samples = _word(FIELDS.index("latency_samples"))
    cause = _word(FIELDS.index("cause"))
    limited = _word(FIELDS.index("limited"))
    pending_tokens = _word(FIELDS.index("pending_tokens"))
    learned_sent = _word(FIELDS.index("learned_sent"))
    lim_interval = _limit(0, floats=True)
    lim_capacity = _limit(1)
    lim_period = _limit(2)
    lim_tat = _limit(3)
    epochs = _window(0)
    attempts = _window(1)
    failed = _window(2)

    def __init__(self, mapping: _Mapping, base: int, counted_at: int) -> None:
        # no _Member.__init__: the fields are the record's, not attributes
        self._mapping = mapping
        self._words = mapping.words
        self._floats = mapping.floats
        self._base = base
        self._counted_at = counted_at

    @property
    def latency_ewma(self) -> float:
        return float(self._floats[self._base + FIELDS.index("latency_ewma")])

    @latency_ewma.setter
    def latency_ewma(self, value: float) -> None:
        self._floats[self._base + FIELDS.index("latency_ewma")] = value

    @property
    def counted(self) -> int:
        """This worker's calls in flight on the slot."""
        return int(self._words[self._counted_at])

    @counted.setter
    def counted(self, value: int) -> None:
        self._words[self._counted_at] = value

    def same(self, other: _Member) -> bool:
        return (
            isinstance(other, _SharedMember)
            and other._mapping is self._mapping
            and other._base == self._base
        )


class HealthSegment:
    """Health records in shared memory, for selectors in many processes
    (see ``_segment.pyx``)."""

    __slots__ = ("_capacity", "_creator", "_mapping", "_name", "_worker", "_workers")

    _implementation = _region.PURE  # what _health_py.HealthTable recognises it by

    _name: str
    _capacity: int
    _workers: int
    _worker: int
    _mapping: Optional[_Mapping]
    _creator: bool

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use HealthSegment.create() or HealthSegment.attach(name)")

    @classmethod
    def create(cls, capacity: int = 4096, *, workers: int = 64, worker: int = 0) -> Self:
        capacity = _region.check_capacity(capacity)
        workers = _region.check_workers(workers)
        worker = _region.check_worker(worker, workers)
        layout = _region.Layout(capacity, workers, MEMBER_WORDS)
        name, fd = _region.create_file(layout.size)
        try:
            mapping = _mapping_of(fd, layout.size)
        except BaseException:
            _region.unlink(name)
            raise
        mapping.layout = layout
        words = _region.header(layout, MEMBER_WORDS, _region.PURE)
        with mapping:
            for k in range(1, len(words)):
                mapping.words[k] = words[k]
            mapping.words[_region.H_MAGIC] = words[_region.H_MAGIC]
        return cls._opened(name, mapping, worker, creator=True)

    @classmethod
    def attach(cls, name: str, *, worker: int = 0) -> Self:
        fd, size = _region.open_file(name)
        if size < _region.HEADER_WORDS * _region.WORD:
            os.close(fd)
            raise _region.not_byok(name)
        mapping = _mapping_of(fd, size)
        with mapping:
            words = tuple(mapping.words[: _region.HEADER_WORDS])
        layout = _region.check_header(name, words, size, _region.PURE, MEMBER_WORDS)
        mapping.layout = layout
        return cls._opened(name, mapping, _region.check_worker(worker, layout.workers))

    @classmethod
    def _opened(cls, name: str, mapping: _Mapping, worker: int, creator: bool = False) -> Self:
        assert mapping.layout is not None
        segment = object.__new__(cls)
        segment._name = name
        segment._capacity = mapping.layout.capacity
        segment._workers = mapping.layout.workers
        segment._worker = worker
        segment._mapping = mapping
        segment._creator = creator
        return segment

    @property
    def name(self) -> str:
        """What other processes attach() it by."""
        return self._name

    @property
    def capacity(self) -> int:
        """How many distinct (scope, member id) pairs it can hold."""
        return self._capacity

    @property
    def workers(self) -> int:
        """How many worker indexes it counts calls in flight for."""
        return self._workers

    @property
    def worker(self) -> int:
        """The worker index this handle counts calls in flight as."""
        return self._worker

    # ---- handle ------------------------------------------------------------

    def close(self) -> None:
        self._mapping = None

    def unlink(self) -> None:
        _region.unlink(self.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()
        if self._creator:
            self.unlink()

    @property
    def closed(self) -> bool:
        return self._mapping is None

    @property
    def used(self) -> int:
        mapping = self._open()
        return int(mapping.words[_region.H_USED])

    def __repr__(self) -> str:
        state = "closed" if self._mapping is None else f"{self.used}/{self.capacity} slots"
        return f"<HealthSegment {self.name!r} {state}, worker {self.worker}>"

    # ---- workers -----------------------------------------------------------

    def reclaim(self, worker: int) -> int:
        mapping = self._open()
        layout = mapping.layout
        assert layout is not None
        w = _region.check_worker(worker, self.workers)
        words, freed = mapping.words, 0
        first = layout.counted + w * layout.capacity
        with mapping:
            for s in range(layout.capacity):
                count = words[first + s]
                if count == 0:
                    continue
                words[first + s] = 0
                total = layout.records + s * layout.stride + FIELDS.index("inflight")
                taken = max(0, min(count, words[total]))
                words[total] -= taken
                freed += taken
        return freed

    # ---- slots -------------------------------------------------------------

    def _bind(self, table: HealthTable, scope: str, ids: tuple[str, ...]) -> None:
        """Point each member of ``table`` at the record of (scope, its id)."""
        mapping = self._open()
        layout = mapping.layout
        assert layout is not None
        members: list[_Member] = []
        for member in ids:
            s = self._slot(mapping, layout, scope, member)
            counted_at = layout.counted + self.worker * layout.capacity + s
            members.append(_SharedMember(mapping, layout.records + s * layout.stride, counted_at))
        table._share(members, mapping)

    def _slot(self, mapping: _Mapping, layout: _region.Layout, scope: str, member: str) -> int:
        words, capacity = mapping.words, layout.capacity
        key0, key1, home = _region.slot_key(scope, member, capacity)
        with mapping:
            for n in range(capacity):
                s = (home + n) % capacity
                entry = layout.registry + 2 * s
                if words[entry] == 0:
                    words[entry + 1] = key1
                    words[entry] = key0
                    words[_region.H_USED] += 1
                    return s
                if words[entry] == key0 and words[entry + 1] == key1:
                    return s
        raise _region.full(self.name, capacity)

    def _open(self) -> _Mapping:
        if self._mapping is None:
            raise _region.closed(self.name)
        return self._mapping


if TYPE_CHECKING:
    # mypy holds this twin to the compiled module's stub (_segment.pyi), both
    # ways: see the end of _selector_py.py.
    from . import _segment

    class _TwinAsStub(HealthSegment, _segment.HealthSegment): ...

    class _StubAsTwin(_segment.HealthSegment, HealthSegment): ...
