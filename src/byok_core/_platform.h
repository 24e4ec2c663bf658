/*
 * Portable primitives for byok_core: 64-bit atomics, a spinlock and the
 * monotonic clock.
 *
 * The health table must be safe under free-threaded CPython and must be able
 * to live in shared memory later, so it cannot rely on the GIL or on
 * PyMutex (process-local).  Everything here works on plain int64/int32 words
 * inside a C struct.
 *
 * GCC and Clang get the __atomic builtins.  MSVC gets the Interlocked
 * intrinsics; its plain loads and stores are made acquire/release with
 * explicit barriers so that the same code is right on ARM64 as on x64.
 */
#ifndef BYOK_PLATFORM_H
#define BYOK_PLATFORM_H

#include <stdint.h>
#include <string.h>

#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <windows.h>
#else
#  include <errno.h>
#  include <sched.h>
#  include <signal.h>
#  include <time.h>
#  include <unistd.h>
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#  include <intrin.h>
#  define BYOK_MSVC 1
#endif

/* No fused multiply-add: floating-point results (latency EWMA, sampling
 * keys) must match the pure-Python twin bit for bit.  GCC takes
 * -ffp-contract=off from setup.py; these cover clang and MSVC. */
#if defined(__clang__)
#  pragma STDC FP_CONTRACT OFF
#elif defined(_MSC_VER)
#  pragma fp_contract(off)
#endif

/* ---- 64-bit atomics --------------------------------------------------- */

#ifdef BYOK_MSVC

static inline int64_t byok_load(const int64_t *p) {
    int64_t v = *(volatile const int64_t *)p;
#  if defined(_M_ARM64)
    __dmb(_ARM64_BARRIER_ISH);
#  else
    _ReadWriteBarrier();
#  endif
    return v;
}

static inline void byok_store(int64_t *p, int64_t v) {
#  if defined(_M_ARM64)
    __dmb(_ARM64_BARRIER_ISH);
#  else
    _ReadWriteBarrier();
#  endif
    *(volatile int64_t *)p = v;
}

static inline int64_t byok_fetch_add(int64_t *p, int64_t d) {
    return _InterlockedExchangeAdd64((volatile __int64 *)p, d);
}

/* Compare-and-swap: on success *p was `expected` and is now `desired`. */
static inline int byok_cas(int64_t *p, int64_t expected, int64_t desired) {
    return _InterlockedCompareExchange64((volatile __int64 *)p, desired, expected) == expected;
}

static inline void byok_cpu_relax(void) {
#  if defined(_M_ARM64)
    __yield();
#  else
    _mm_pause();
#  endif
}

#else /* GCC / Clang */

static inline int64_t byok_load(const int64_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void byok_store(int64_t *p, int64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline int64_t byok_fetch_add(int64_t *p, int64_t d) {
    return __atomic_fetch_add(p, d, __ATOMIC_ACQ_REL);
}

static inline int byok_cas(int64_t *p, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline void byok_cpu_relax(void) {
#  if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#  elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#  endif
}

#endif

static inline void byok_thread_yield(void) {
#if defined(_WIN32)
    SwitchToThread();
#else
    sched_yield();
#endif
}

/* Doubles travel through the same 64-bit words, bit for bit. */
static inline double byok_load_f64(const int64_t *p) {
    int64_t bits = byok_load(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline void byok_store_f64(int64_t *p, double v) {
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    byok_store(p, bits);
}

/* ---- spinlock ----------------------------------------------------------
 * Guards multi-field updates that must look atomic (a state change with its
 * deadline).  Held for a few dozen instructions, never across a call into
 * Python, so contention is short; after a while of spinning the waiter
 * yields its core in case the holder was preempted.
 *
 * The lock word holds the holder's process id, not just 1, because a health
 * table may live in shared memory: a worker killed (kill -9) in the few
 * nanoseconds it holds a member's lock would otherwise leave that member
 * locked for every other process forever.  A waiter that has yielded for a
 * long while (a live holder lets go in nanoseconds) asks the OS whether the
 * holder still exists and, if not, frees the lock with a compare-and-swap
 * and competes for it again.  What the dead holder half wrote stays as it
 * was: every field is a whole word, and the next transition rewrites them.
 * Threads of one process share its id, so they never free each other's
 * lock.  Processes in different pid namespaces must not share a segment
 * (they would see each other as dead).
 */
#define BYOK_YIELDS_BEFORE_CHECK 4096   /* about a millisecond or more */
#define BYOK_YIELDS_BETWEEN_CHECKS 1024

/* This process's lock word, read from the OS once (getpid() is a syscall). */
static inline int64_t *byok_process_id(void) {
    static int64_t id = 0;
    return &id;
}

static inline int64_t byok_self(void) {
    int64_t *id = byok_process_id();
    if (*id == 0) {
#if defined(_WIN32)
        *id = (int64_t)GetCurrentProcessId();
#else
        *id = (int64_t)getpid();
#endif
    }
    return *id;
}

/* A child made by fork() must not lock in its parent's name. */
static inline void byok_forget_self(void) { *byok_process_id() = 0; }

/* True only if the OS says no process `pid` runs (an error says nothing). */
static inline int byok_process_gone(int64_t pid) {
#if defined(_WIN32)
    DWORD code = 0;
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (h == NULL) {
        return GetLastError() == ERROR_INVALID_PARAMETER;
    }
    int gone = GetExitCodeProcess(h, &code) && code != STILL_ACTIVE;
    CloseHandle(h);
    return gone;
#else
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
#endif
}

static inline void byok_lock(int64_t *lock) {
    int64_t self = byok_self();
    int64_t holder;
    unsigned spins = 0;
    for (;;) {
        holder = byok_load(lock);
        if (holder == 0) {
            if (byok_cas(lock, 0, self)) {
                return;
            }
        } else if (spins >= 64 + BYOK_YIELDS_BEFORE_CHECK
                   && spins % BYOK_YIELDS_BETWEEN_CHECKS == 0
                   && holder != self && byok_process_gone(holder)) {
            byok_cas(lock, holder, 0);
            continue;
        }
        if (++spins < 64) {
            byok_cpu_relax();
        } else {
            byok_thread_yield();
        }
    }
}

static inline void byok_unlock(int64_t *lock) { byok_store(lock, 0); }

/* ---- monotonic clock ---------------------------------------------------
 * BYOK_NOW_UNSET stands for "the caller gave no time": the engine reads the
 * clock only once it meets a member whose state depends on the time, so a
 * pick over ready members never pays for a clock read.
 */
#define BYOK_NOW_UNSET INT64_MIN

/*
 * Nanoseconds on the same clock as Python's time.monotonic(), so that a
 * caller may mix `now=time.monotonic()` with the engine's own readings.
 */
static inline int64_t byok_monotonic_ns(void) {
#if defined(_WIN32) && PY_VERSION_HEX < 0x030D0000
    /* CPython before 3.13 reads time.monotonic() from GetTickCount64 */
    return (int64_t)GetTickCount64() * 1000000LL;
#elif defined(_WIN32)
    LARGE_INTEGER freq, counter;
    QueryPerformanceFrequency(&freq);  /* fixed at boot; a cheap read */
    QueryPerformanceCounter(&counter);
    /* split to avoid overflow of counter * 1e9 */
    int64_t secs = counter.QuadPart / freq.QuadPart;
    int64_t rest = counter.QuadPart % freq.QuadPart;
    return secs * 1000000000LL + rest * 1000000000LL / freq.QuadPart;
#elif defined(__APPLE__)
    return (int64_t)clock_gettime_nsec_np(CLOCK_UPTIME_RAW);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
#endif
}

#endif /* BYOK_PLATFORM_H */
