# The contract of byok_core._segment: a health table's records in shared
# memory, for every process that attaches the segment.  The layout is in
# _region.py.

from libc.stdint cimport int64_t

from byok_core._health cimport member_t


cdef class HealthSegment:
    cdef readonly str name
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t workers
    cdef readonly Py_ssize_t worker     # whose in-flight calls this handle counts
    cdef object mapping                 # keeps the file mapped; None once closed
    cdef bint creator                   # made it: leaving its `with` block unlinks it
    cdef int64_t *header
    cdef int64_t *registry              # capacity x (key word 0, key word 1)
    cdef char *records                  # slot 0's record; `stride` bytes to the next
    cdef Py_ssize_t stride
    cdef int64_t *counted               # workers x capacity: calls in flight per worker

    cdef Py_ssize_t slot(self, str scope, str id) except -1
    cdef Py_ssize_t find_slot(self, int64_t key0, int64_t key1, Py_ssize_t home) noexcept nogil
    cdef int64_t give_back(self, Py_ssize_t worker) noexcept nogil
    cdef int check_open(self) except -1


cdef inline member_t *slot_record(HealthSegment segment, Py_ssize_t slot) noexcept nogil:
    return <member_t *>(segment.records + slot * segment.stride)
