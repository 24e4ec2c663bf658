# cython: language_level=3, freethreading_compatible=True
# cython: boundscheck=False, wraparound=False, cdivision=True
"""A health table in shared memory: HealthSegment.

Theory of operation
-------------------
A segment is a file mapped into every process that attaches it (the layout
is in _region.py): a header, a registry that files each (scope, member id)
under a slot, the member records (the same member_t as a private table's,
each in its own cache lines) and, per worker, the calls in flight it counted
on each slot.

``Selector(ids, shared=segment, scope="pool")`` (or a HealthTable) looks its
members up in the registry, allocating a slot for a pair it has not seen,
under the registry's spinlock in the header; from then on its table reaches
each member through a pointer to the record in the segment (``records[i]``,
as a private table reaches its own array) and drives it with the same atomics
and member spinlocks as ever.  So every process whose selector has that scope
and id reads and writes one record: a 429 reported in one process cools the
key in all of them at once, a half-open probe is claimed by exactly one, the
total in flight is checked against max_inflight, and the counters are totals.
A selector built on a reload finds the same slots again: kept members keep
their health without a copy, and the new max_inflight is written into the
record.

Times.  Deadlines in the records are nanoseconds of the caller's ``now``:
every process must take `now` from the same clock, CLOCK_MONOTONIC, which is
time.monotonic() and what the engine reads when `now` is None.

In flight.  Each process attaches as a worker (an index below ``workers``)
and counts its acquire() and release() in its own word per slot beside the
total that max_inflight is checked against (the pick path reads the total
only).  When a worker dies holding calls, ``reclaim(worker)`` subtracts its
counts from the totals and zeroes them.  The worker's word moves first on
acquire() and last on release(): a worker killed between the two moves leaves
the total one short rather than a slot taken forever.

A process that dies holding a member's spinlock does not wedge the member:
the lock word names the process and a waiter frees it once the OS says the
process is gone (see _platform.h).

The mapping stays while anything uses it: close() lets go of this handle,
and a table built on the segment keeps the memory mapped until it is freed
itself, so a record pointer never outlives its mapping.
"""

cimport cython
from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport int64_t

from byok_core._health cimport (
    HealthTable, byok_cas, byok_fetch_add, byok_forget_self, byok_load, byok_lock,
    byok_store, byok_unlock, member_t,
)

import mmap
import os

from byok_core import _region

MEMBER_WORDS = sizeof(member_t) // 8  # member_t is whole 64-bit words
cdef Py_ssize_t H_LOCK = _region.H_LOCK
cdef Py_ssize_t H_USED = _region.H_USED
cdef Py_ssize_t H_MAGIC = _region.H_MAGIC


@cython.final
cdef class Mapping:
    """One mapping of a segment's file, held as a writable buffer: its memory
    stays mapped as long as this object lives."""

    cdef object mm
    cdef Py_buffer view
    cdef bint held

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef Mapping map_file(int fd, Py_ssize_t size):
    cdef Mapping mapping = Mapping.__new__(Mapping)
    mapping.mm = mmap.mmap(fd, size)
    PyObject_GetBuffer(mapping.mm, &mapping.view, PyBUF_WRITABLE)
    mapping.held = True
    return mapping


@cython.final
cdef class HealthSegment:
    """Health records in shared memory, for selectors in many processes.

    ``HealthSegment.create(capacity)`` makes one (its ``name`` goes to the
    other processes), ``HealthSegment.attach(name, worker=i)`` maps it in
    another; ``Selector(ids, shared=segment, scope="pool")`` keeps its
    members' health there.  See the module docstring.
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("use HealthSegment.create() or HealthSegment.attach(name)")

    @classmethod
    def create(cls, capacity=4096, *, workers=64, worker=0):
        """A new segment for ``capacity`` distinct (scope, member id) pairs and
        ``workers`` worker indexes; this handle counts as worker ``worker``.
        Its creator removes it: ``unlink()``, or leaving its ``with`` block."""
        cdef HealthSegment segment
        capacity = _region.check_capacity(capacity)
        workers = _region.check_workers(workers)
        worker = _region.check_worker(worker, workers)
        layout = _region.Layout(capacity, workers, MEMBER_WORDS)
        name, fd = _region.create_file(layout.size)
        try:
            segment = opened(name, map_file(fd, layout.size), layout, worker)
        except BaseException:
            _region.unlink(name)
            raise
        finally:
            os.close(fd)
        words = _region.header(layout, MEMBER_WORDS, _region.COMPILED)
        for k in range(1, len(words)):
            byok_store(&segment.header[k], words[k])
        byok_store(&segment.header[H_MAGIC], words[H_MAGIC])  # last: the header is whole
        segment.creator = True
        return segment

    @classmethod
    def attach(cls, name, *, worker=0):
        """Map the segment ``name`` (from its creator's ``name``) into this
        process, counting calls in flight as worker ``worker`` (each process
        its own index, for reclaim()).  FileNotFoundError if there is none;
        ValueError if the file is no byok segment, has another layout
        version, or was made by the other implementation (the compiled
        engine and the pure-Python twin do not mix)."""
        cdef Mapping mapping
        fd, size = _region.open_file(name)
        try:
            if size < _region.HEADER_WORDS * _region.WORD:
                raise _region.not_byok(name)
            mapping = map_file(fd, size)
        finally:
            os.close(fd)
        cdef int64_t *header = <int64_t *>mapping.view.buf
        words = tuple(byok_load(&header[k]) for k in range(_region.HEADER_WORDS))
        layout = _region.check_header(name, words, size, _region.COMPILED, MEMBER_WORDS)
        return opened(name, mapping, layout, _region.check_worker(worker, layout.workers))

    # ---- handle ------------------------------------------------------------

    def close(self):
        """This handle is done with the segment.  Selectors built on it keep
        working: the memory is unmapped once the last of them is freed."""
        self.mapping = None
        self.header = NULL
        self.registry = NULL
        self.records = NULL
        self.counted = NULL

    def unlink(self):
        """Remove the segment's name: no process can attach it any more,
        those attached keep it (POSIX; on Windows a file still mapped cannot
        be removed, so every process closes first).  Nothing if it is gone."""
        _region.unlink(self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        if self.creator:
            self.unlink()

    @property
    def closed(self):
        """True once close() was called."""
        return self.mapping is None

    @property
    def used(self):
        """Slots taken so far, of ``capacity``."""
        self.check_open()
        return byok_load(&self.header[H_USED])

    def __repr__(self):
        state = "closed" if self.mapping is None else f"{self.used}/{self.capacity} slots"
        return f"<HealthSegment {self.name!r} {state}, worker {self.worker}>"

    # ---- workers ---------------------------------------------------------

    def reclaim(self, worker):
        """Give back the calls in flight that worker ``worker`` counted and
        never released, because it died (kill -9, a crash): they are taken
        off the totals that max_inflight is checked against.  Call it for a
        dead worker only (the supervisor before restarting it, or the new
        process before it builds its selectors).  Returns how many."""
        self.check_open()
        cdef Py_ssize_t w = _region.check_worker(worker, self.workers)
        cdef int64_t freed
        with nogil:
            freed = self.give_back(w)
        return freed

    cdef int64_t give_back(self, Py_ssize_t worker) noexcept nogil:
        cdef int64_t *counts = self.counted + worker * self.capacity
        cdef int64_t count, current, taken, freed = 0
        cdef member_t *m
        cdef Py_ssize_t s
        for s in range(self.capacity):
            count = byok_load(&counts[s])
            if count == 0:
                continue
            while not byok_cas(&counts[s], count, 0):
                count = byok_load(&counts[s])
            if count <= 0:
                continue
            m = slot_record(self, s)
            while True:  # the total never goes below 0 (see "In flight")
                current = byok_load(&m.inflight)
                taken = count if count < current else current
                if byok_cas(&m.inflight, current, current - taken):
                    break
            freed += taken
        return freed

    # ---- slots -----------------------------------------------------------

    def _bind(self, HealthTable table, str scope, tuple ids):
        """Point each member of ``table`` at the record of (scope, its id)."""
        self.check_open()
        cdef Py_ssize_t i, s
        for i in range(table.size):
            s = self.slot(scope, ids[i])
            table.records[i] = slot_record(self, s)
            table.counted[i] = &self.counted[self.worker * self.capacity + s]
        table.mapping = self.mapping

    cdef Py_ssize_t slot(self, str scope, str id) except -1:
        key0, key1, home = _region.slot_key(scope, id, self.capacity)
        cdef Py_ssize_t found = self.find_slot(key0, key1, home)
        if found < 0:
            raise _region.full(self.name, self.capacity)
        return found

    cdef Py_ssize_t find_slot(self, int64_t key0, int64_t key1, Py_ssize_t home) noexcept nogil:
        # Open addressing from the scope's home, under the registry's lock:
        # construction time only, never on the pick path.
        cdef Py_ssize_t n, s, found = -1
        cdef int64_t *entry
        byok_lock(&self.header[H_LOCK])
        for n in range(self.capacity):
            s = (home + n) % self.capacity
            entry = &self.registry[2 * s]
            if byok_load(&entry[0]) == 0:
                byok_store(&entry[1], key1)
                byok_store(&entry[0], key0)
                byok_fetch_add(&self.header[H_USED], 1)
                found = s
                break
            if byok_load(&entry[0]) == key0 and byok_load(&entry[1]) == key1:
                found = s
                break
        byok_unlock(&self.header[H_LOCK])
        return found

    cdef int check_open(self) except -1:
        if self.mapping is None:
            raise _region.closed(self.name)
        return 0


cdef HealthSegment opened(str name, Mapping mapping, object layout, Py_ssize_t worker):
    cdef HealthSegment segment = HealthSegment.__new__(HealthSegment)
    cdef char *base = <char *>mapping.view.buf
    segment.name = name
    segment.capacity = layout.capacity
    segment.workers = layout.workers
    segment.worker = worker
    segment.mapping = mapping
    segment.header = <int64_t *>base
    segment.registry = <int64_t *>base + <Py_ssize_t>layout.registry
    segment.records = base + <Py_ssize_t>layout.records * 8
    segment.stride = <Py_ssize_t>layout.stride * 8
    segment.counted = <int64_t *>base + <Py_ssize_t>layout.counted
    return segment


def _forget_process_id():
    """After fork(): lock words name the child, not its parent (_platform.h)."""
    byok_forget_self()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_process_id)
