"""Where a shared health segment lives and how it is laid out: one Python
implementation for the compiled HealthSegment and its pure-Python twin, so
that the files, the checks and the error messages are the same in both.

A segment is a file mapped into every process that attaches it (in /dev/shm
where it exists, so it never touches a disk; else in the temp dir), holding
64-bit words:

    header     HEADER_WORDS words: magic, layout version, the words of a
               member record, the stride between records, capacity, workers,
               which implementation made it, the registry's lock, slots used
    registry   capacity entries of two words: the 128-bit key of (scope,
               member id) that owns the slot, 0 in the first word if free;
               open addressing from the scope's home slot (slot_key())
    records    capacity member records, each `stride` words (a multiple of a
               64-byte cache line, so that members do not share one)
    counted    workers x capacity words: the calls in flight that worker
               counted on each slot, so that reclaim(worker) can give back
               those of a worker that died

A fresh file is all zero: every slot free, every record a ready member with
no history.  Slots are never freed (a key that leaves the configuration keeps
its slot, and its health if it comes back); the capacity bounds how many
distinct (scope, id) pairs a segment ever sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
import tempfile
from collections.abc import Iterable
from typing import Optional, Protocol

MAGIC = int.from_bytes(b"byokhtab", "little")
VERSION = 2
HEADER_WORDS = 16
# header word indexes
H_MAGIC, H_VERSION, H_MEMBER_WORDS, H_STRIDE, H_CAPACITY, H_WORKERS = range(6)
H_IMPLEMENTATION, H_LOCK, H_USED = range(6, 9)
IMPLEMENTATIONS = {1: "the compiled engine", 2: "the pure-Python twin (BYOK_NO_EXTENSIONS=1)"}
COMPILED, PURE = 1, 2

LINE_WORDS = 8  # a 64-byte cache line
MAX_CAPACITY = 1 << 24
MAX_WORKERS = 4096
WORD = 8


class Segment(Protocol):
    """What shared= takes, as type checkers see it: a HealthSegment (at run
    time, of the same implementation as the Selector or HealthTable)."""

    @property
    def name(self) -> str: ...
    @property
    def worker(self) -> int: ...
    def reclaim(self, worker: int) -> int: ...


def stride_of(member_words: int) -> int:
    """Words from one record to the next: whole cache lines."""
    return -(-member_words // LINE_WORDS) * LINE_WORDS


class Layout:
    """Word offsets of a segment's parts."""

    __slots__ = ("capacity", "counted", "records", "registry", "stride", "words", "workers")

    def __init__(self, capacity: int, workers: int, member_words: int) -> None:
        self.capacity = capacity
        self.workers = workers
        self.stride = stride_of(member_words)
        self.registry = HEADER_WORDS
        self.records = -(-(self.registry + 2 * capacity) // LINE_WORDS) * LINE_WORDS
        self.counted = self.records + capacity * self.stride
        self.words = self.counted + workers * capacity

    @property
    def size(self) -> int:
        return self.words * WORD


def directory() -> str:
    """/dev/shm where it exists (memory, never a disk), else the temp dir."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


def path_of(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a segment name is a str (HealthSegment.name), got {name!r}")
    if not name or name in (".", "..") or any(sep and sep in name for sep in (os.sep, os.altsep)):
        raise ValueError(
            f"{name!r} is not a segment name: pass HealthSegment.name, a file name without "
            f"a directory (segments live in {directory()})"
        )
    return os.path.join(directory(), name)


def check_capacity(capacity: object) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, got {capacity!r}")
    if not 1 <= capacity <= MAX_CAPACITY:
        raise ValueError(f"capacity must be from 1 to {MAX_CAPACITY}, got {capacity}")
    return capacity


def check_worker(worker: object, workers: int) -> int:
    if isinstance(worker, bool) or not isinstance(worker, int):
        raise TypeError(f"worker must be an int, got {worker!r}")
    if not 0 <= worker < workers:
        raise ValueError(
            f"worker must be from 0 to {workers - 1}: the segment counts calls in flight "
            f"for {workers} workers; got {worker}"
        )
    return worker


def check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"workers must be an int, got {workers!r}")
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be from 1 to {MAX_WORKERS}, got {workers}")
    return workers


def _open_flags() -> int:
    return os.O_RDWR | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def create_file(size: int) -> tuple[str, int]:
    """A new zero-filled file of `size` bytes under a fresh name: (name, fd).
    Only this user may open it (0o600)."""
    while True:
        name = f"byok-health-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            fd = os.open(path_of(name), _open_flags() | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        try:
            os.ftruncate(fd, size)
        except BaseException:
            os.close(fd)
            os.unlink(path_of(name))
            raise
        return name, fd


def open_file(name: str) -> tuple[int, int]:
    """(fd, size in bytes) of an existing segment's file."""
    path = path_of(name)
    try:
        fd = os.open(path, _open_flags())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no byok health segment named {name!r} in {directory()}: its creator made "
            "none by that name, or removed it (unlink) when it stopped"
        ) from None
    return fd, os.fstat(fd).st_size


def unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path_of(name))


def check_header(
    name: str, words: tuple[int, ...], size: int, implementation: int, member_words: int
) -> Layout:
    """The layout a segment's header describes, or a ValueError that says
    why this process cannot use it."""
    if size < HEADER_WORDS * WORD or words[H_MAGIC] != MAGIC:
        raise not_byok(name)
    if words[H_VERSION] != VERSION:
        raise ValueError(
            f"the health segment {name!r} has layout version {words[H_VERSION]}; this "
            f"byok_core reads version {VERSION}: every process sharing it must run the "
            "same byok_core"
        )
    if words[H_IMPLEMENTATION] != implementation:
        made = IMPLEMENTATIONS.get(words[H_IMPLEMENTATION], "an unknown implementation")
        raise ValueError(
            f"the health segment {name!r} was made by {made}; this process runs "
            f"{IMPLEMENTATIONS[implementation]}: the two do not mix, every process sharing "
            "a segment must run the same one"
        )
    if words[H_MEMBER_WORDS] != member_words or words[H_STRIDE] != stride_of(member_words):
        raise ValueError(
            f"the health segment {name!r} holds member records of {words[H_MEMBER_WORDS]} "
            f"words; this byok_core's have {member_words}: every process sharing it must "
            "run the same byok_core"
        )
    try:
        capacity = check_capacity(words[H_CAPACITY])
        workers = check_workers(words[H_WORKERS])
    except ValueError:
        raise ValueError(f"the health segment {name!r} has a damaged header") from None
    layout = Layout(capacity, workers, member_words)
    if size < layout.size:
        raise ValueError(
            f"the health segment {name!r} is {size} bytes, short of the {layout.size} "
            "its header describes: it is damaged"
        )
    return layout


def header(layout: Layout, member_words: int, implementation: int) -> list[int]:
    """A new segment's header words; the magic goes in last (word 0)."""
    words = [0] * HEADER_WORDS
    words[H_VERSION] = VERSION
    words[H_MEMBER_WORDS] = member_words
    words[H_STRIDE] = layout.stride
    words[H_CAPACITY] = layout.capacity
    words[H_WORKERS] = layout.workers
    words[H_IMPLEMENTATION] = implementation
    words[H_MAGIC] = MAGIC
    return words


def slot_key(scope: str, member: str, capacity: int) -> tuple[int, int, int]:
    """(key word 0, key word 1, home slot) of (scope, member id): the 128-bit
    key as two signed 64-bit words, the first never 0 (a registry entry
    whose first word is 0 is free; distinct pairs collide with a chance of
    about 2**-128 per pair), and the slot its search starts from.  The home
    is the scope's, so that a pool's records lie side by side in a few pages
    (a pick reads them all) rather than strewn over the segment."""
    s, m = scope.encode("utf-8"), member.encode("utf-8")
    digest = hashlib.blake2b(struct.pack("<Q", len(s)) + s + m, digest_size=16).digest()
    first, second = struct.unpack("<qq", digest)
    home = int.from_bytes(hashlib.blake2b(s, digest_size=8).digest(), "little") % capacity
    return first or 1, second, home


def check_sharing(
    shared: object, scope: object, size: int, ids: Optional[Iterable[str]]
) -> tuple[str, ...]:
    """The member ids under which a shared table files its members (the
    table's `ids`, or "0", "1", ...), after checking scope= and ids=."""
    from ._args import member_ids

    if shared is None:
        if scope is not None:
            raise ValueError("scope= names the members' slots in a shared segment: pass shared=")
        if ids is not None:
            raise ValueError("ids= names the members' slots in a shared segment: pass shared=")
        return ()
    if scope is None:
        raise ValueError(
            "a shared table needs scope=, the name its members' slots are filed under "
            "(the pool's name): selectors of one scope share the records of their ids"
        )
    if not isinstance(scope, str):
        raise TypeError(f"scope must be a str, got {scope!r}")
    names = member_ids(ids) if ids is not None else tuple(str(i) for i in range(size))
    if len(names) != size:
        raise ValueError(f"ids has {len(names)} entries but the table has {size} members")
    return names


def not_byok(name: str) -> ValueError:
    return ValueError(f"{name!r} is not a byok health segment")


def full(name: str, capacity: int) -> ValueError:
    return ValueError(
        f"the health segment {name!r} is full: its {capacity} slots are taken by distinct "
        "(scope, member id) pairs; create it with a larger capacity"
    )


def not_a_segment(shared: object, implementation: int) -> TypeError:
    module = "byok_core._segment" if implementation == COMPILED else "byok_core._segment_py"
    return TypeError(
        f"shared must be a {module}.HealthSegment, got "
        f"{type(shared).__module__}.{type(shared).__qualname__}"
        " (the compiled engine and its pure-Python twin do not mix)"
    )


def closed(name: str) -> ValueError:
    return ValueError(f"the health segment {name!r} is closed")
