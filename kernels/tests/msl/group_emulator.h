// Threadgroups on the host, for tests/msl_group_check.rs: the stand-in
// <metal_stdlib> includes this when WB_MSL_GROUPS is defined.
//
// The threads of one threadgroup run as cooperative fibers on one host
// thread, threadgroups one after another, so a run is deterministic. Fiber
// t runs thread t of every threadgroup; it starts once on its own stack
// (64 KiB above a guard page) through ucontext, then switches with
// _setjmp/_longjmp, which unlike swapcontext make no system call. A fiber
// runs until it waits at a threadgroup_barrier or a simd function, or
// returns; when none can run, the scheduler releases
//   - each simdgroup (32 consecutive thread indices, Apple's width) whose
//     threads all wait at the same simd function call, as many simd calls
//     in (the values go through a slot per thread, two sets by parity);
//   - otherwise the threadgroup, when every thread waits at the same
//     threadgroup_barrier call.
// Anything else ends the program with a message (exit status 3) instead of
// hanging: a thread that returned, or waits elsewhere, while others wait at
// a barrier (undefined in Metal), or at a simd function. The latter is
// stricter than Metal, which reduces over the active lanes: the kernels
// here make every simd call from uniform control flow, so a divergent one
// is taken as a bug. simd_shuffle_down's delta must be the same in every
// lane, as Metal requires. Threads become ready in index order, or reversed
// (the script's `S 1`), so that a race between barriers changes the result
// under one of the two orders.
//
// Threadgroup memory is poisoned (all bytes 0xff: NaN as float) when a
// threadgroup starts: the dynamic block ([[threadgroup(0)]]) and the
// threadgroup variables declared in kernel bodies, which the test rewrites
// to static storage registered through threadgroup_variable(). Their total
// must fit Metal's 32 KiB. Not modelled: memory ordering (every access is
// sequentially consistent here, so a barrier with the wrong mem_flags is not
// caught), simdgroups that run ahead of each other between barriers, and
// the per-pipeline thread limit (maxTotalThreadsPerThreadgroup may be below
// 1024 on a GPU).
#pragma once

namespace wb_emu {

using metal::uint;
using metal::uint2;

inline const char* kernel_name = "";  // of the running dispatch

[[noreturn]] inline void fail(const char* fmt, ...) {
    std::fflush(stdout);
    std::fprintf(stderr, "msl emulator (%s): ", kernel_name);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::exit(3);
}

constexpr uint SIMD_WIDTH = 32;
constexpr uint MAX_THREADS = 1024;
constexpr size_t MAX_THREADGROUP_MEMORY = 32768;

// What a kernel's thread attributes and bindings are made of.
struct Thread {
    uint2 group;  // threadgroup_position_in_grid
    uint2 pos;    // thread_position_in_threadgroup
    uint2 size;   // threads_per_threadgroup
    uint index;   // thread_index_in_threadgroup
    void* const* slots;
    size_t nslots;
    unsigned char* tg_memory;
    void* buffer(uint i) const {
        if (i >= nslots || slots[i] == nullptr) fail("buffer(%u) is not bound", i);
        return slots[i];
    }
    void* threadgroup_memory(uint i) const {
        if (i != 0 || tg_memory == nullptr) fail("threadgroup(%u) has no memory length set", i);
        return tg_memory;
    }
    uint2 grid_position() const { return uint2(group.x * size.x + pos.x, group.y * size.y + pos.y); }
};

// An attribute declared as uint takes the x component, as in Metal.
template <typename T>
inline T attr(uint2 v) {
    if constexpr (std::is_same<T, uint2>::value)
        return v;
    else
        return T(v.x);
}

enum class State { ready, barrier, simd, done };

struct Fiber {
    ucontext_t start;
    jmp_buf env;
    bool started;
    State state;
    const char* file;
    int line;        // the barrier or simd call it waits at
    uint simd_calls;  // simd calls completed
};

struct StaticVar {
    void* p;
    size_t bytes;
    unsigned long group;  // the threadgroup that last poisoned it
};

struct Scheduler {
    void (*launch)(const Thread&) = nullptr;
    bool cooperative = false;
    bool reverse = false;
    const Thread* threads = nullptr;  // of the running threadgroup
    uint count = 0;                   // its threads
    std::vector<Fiber> fibers;        // MAX_THREADS, never moved (ucontext)
    std::vector<unsigned long long> exchange[2];  // simd values, by parity of the call
    std::vector<uint> deltas[2];                  // simd_shuffle_down's, likewise
    unsigned char* stacks = nullptr;
    jmp_buf env;  // the scheduler's, while a fiber runs
    uint current = 0;
    unsigned long group = 0;  // threadgroups started so far
    size_t dynamic_bytes = 0;
    std::vector<StaticVar> statics;
};

inline Scheduler sched;

constexpr size_t STACK = 64 * 1024, GUARD = 4096;

// Back to the scheduler until it resumes this fiber.
inline void suspend(Fiber& f) {
    if (_setjmp(f.env) == 0) _longjmp(sched.env, 1);
}

[[noreturn]] inline void entry() {
    for (;;) {
        const uint t = sched.current;
        sched.launch(sched.threads[t]);
        sched.fibers[t].state = State::done;
        suspend(sched.fibers[t]);  // until thread t of a later threadgroup
    }
}

inline void require_groups(const char* file, int line) {
    if (!sched.cooperative)
        fail("%s:%d: a threadgroup_barrier or simd function in a kernel dispatched without threadgroup emulation",
             file, line);
}

inline void wait(State s, const char* file, int line) {
    require_groups(file, line);
    Fiber& f = sched.fibers[sched.current];
    f.state = s;
    f.file = file;
    f.line = line;
    suspend(f);
}

inline const char* describe(const Fiber& f, char* buf, size_t n) {
    if (f.state == State::done)
        std::snprintf(buf, n, "returned");
    else
        std::snprintf(buf, n, "waits at the %s at %s:%d", f.state == State::barrier ? "threadgroup_barrier" : "simd function",
                      f.file, f.line);
    return buf;
}

// Releases what can go on; false when every thread has returned.
inline bool release() {
    const uint n = sched.count;
    char a[128], b[128];
    bool any = false;
    for (uint base = 0; base < n; base += SIMD_WIDTH) {
        const uint end = base + SIMD_WIDTH < n ? base + SIMD_WIDTH : n;
        uint first = end;
        for (uint l = base; l < end && first == end; ++l)
            if (sched.fibers[l].state == State::simd) first = l;
        if (first == end) continue;
        const Fiber& f0 = sched.fibers[first];
        for (uint l = base; l < end; ++l) {
            const Fiber& f = sched.fibers[l];
            if (f.state != State::simd || f.line != f0.line || f.simd_calls != f0.simd_calls)
                fail("simdgroup divergence in threadgroup (%u, %u): thread %u %s (simd call %u), thread %u %s (simd "
                     "call %u)",
                     sched.threads[0].group.x, sched.threads[0].group.y, first, describe(f0, a, sizeof a),
                     f0.simd_calls, l, describe(f, b, sizeof b), f.simd_calls);
        }
        for (uint l = base; l < end; ++l) sched.fibers[l].state = State::ready;
        any = true;
    }
    if (any) return true;
    uint first = n;
    for (uint t = 0; t < n && first == n; ++t)
        if (sched.fibers[t].state == State::barrier) first = t;
    if (first == n) return false;
    const Fiber& f0 = sched.fibers[first];
    for (uint t = 0; t < n; ++t) {
        const Fiber& f = sched.fibers[t];
        if (f.state != State::barrier || f.line != f0.line)
            fail("barrier divergence in threadgroup (%u, %u): thread %u %s, thread %u %s", sched.threads[0].group.x,
                 sched.threads[0].group.y, first, describe(f0, a, sizeof a), t, describe(f, b, sizeof b));
    }
    for (uint t = 0; t < n; ++t) sched.fibers[t].state = State::ready;
    return true;
}

#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"  // ucontext on macOS
#endif
// Runs fiber t until it waits or returns.
inline void resume(uint t) {
    Fiber& f = sched.fibers[t];
    sched.current = t;
    if (_setjmp(sched.env) != 0) return;  // it came back
    if (f.started) _longjmp(f.env, 1);
    f.started = true;
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = sched.stacks + t * (STACK + GUARD) + GUARD;
    f.start.uc_stack.ss_size = STACK;
    f.start.uc_link = nullptr;
    makecontext(&f.start, entry, 0);
    ucontext_t here;
    swapcontext(&here, &f.start);  // never resumed: the fiber comes back through env
}
#ifdef __clang__
#pragma clang diagnostic pop
#endif

// Runs the threads of one threadgroup to completion.
inline void run_group(const std::vector<Thread>& threads) {
    ++sched.group;
    const uint n = uint(threads.size());
    sched.threads = threads.data();
    sched.count = n;
    if (!sched.cooperative) {
        for (uint t = 0; t < n; ++t) {
            sched.current = t;
            sched.launch(threads[t]);
        }
        return;
    }
    if (sched.stacks == nullptr) {
        // Stacks for MAX_THREADS fibers, each above an inaccessible guard page.
        void* p = mmap(nullptr, MAX_THREADS * (STACK + GUARD), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (p == MAP_FAILED) fail("mmap of the fiber stacks failed");
        sched.stacks = static_cast<unsigned char*>(p);
        for (uint t = 0; t < MAX_THREADS; ++t) mprotect(sched.stacks + t * (STACK + GUARD), GUARD, PROT_NONE);
        sched.fibers.resize(MAX_THREADS);
    }
    for (int p = 0; p < 2; ++p) {
        sched.exchange[p].assign(n, 0);
        sched.deltas[p].assign(n, 0);
    }
    for (uint t = 0; t < n; ++t) {
        sched.fibers[t].state = State::ready;
        sched.fibers[t].simd_calls = 0;
    }
    do {
        for (uint k = 0; k < n; ++k) {
            const uint t = sched.reverse ? n - 1 - k : k;
            if (sched.fibers[t].state == State::ready) resume(t);
        }
    } while (release());
}

inline void barrier(metal::mem_flags, const char* file, int line) { wait(State::barrier, file, line); }

// Puts v (and a delta) in this thread's slot, waits for the simdgroup, and
// returns the slots of its lanes (lane 0 first); `lane` and `width`
// describe them.
template <typename T>
inline const unsigned long long* simd_exchange(T v, uint delta, const char* file, int line, uint& lane,
                                               uint& width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "a simd value fits a slot");
    require_groups(file, line);
    const uint t = sched.current, parity = sched.fibers[t].simd_calls & 1;
    unsigned long long w = 0;
    std::memcpy(&w, &v, sizeof(T));
    sched.exchange[parity][t] = w;
    sched.deltas[parity][t] = delta;
    wait(State::simd, file, line);
    ++sched.fibers[t].simd_calls;
    lane = t % SIMD_WIDTH;
    const uint n = sched.count;
    width = n - (t - lane) < SIMD_WIDTH ? n - (t - lane) : SIMD_WIDTH;
    if (sched.deltas[parity][t - lane] != delta)
        fail("%s:%d: thread %u's delta %u differs from its simdgroup's lane 0's %u", file, line, t, delta,
             sched.deltas[parity][t - lane]);
    return &sched.exchange[parity][t - lane];
}

template <typename T, typename D>
inline T simd_shuffle_down(T v, D delta, const char* file, int line) {
    uint lane, width;
    const unsigned long long* s = simd_exchange(v, uint(delta), file, line, lane, width);
    // Lanes with no lane `delta` above them keep their value (Metal: "the
    // upper delta lanes" are not modified; it does not wrap around).
    if (lane + uint(delta) >= width) return v;
    T r;
    std::memcpy(&r, &s[lane + uint(delta)], sizeof(T));
    return r;
}

template <typename T>
inline T simd_max(T v, const char* file, int line) {
    uint lane, width;
    const unsigned long long* s = simd_exchange(v, 0, file, line, lane, width);
    T m;
    std::memcpy(&m, &s[0], sizeof(T));
    for (uint l = 1; l < width; ++l) {
        T x;
        std::memcpy(&x, &s[l], sizeof(T));
        m = metal::max(m, x);
    }
    return m;
}

// A threadgroup variable of a kernel body, now static storage: poisoned
// when the first thread of a threadgroup reaches its declaration.
inline void threadgroup_variable(void* p, size_t bytes) {
    StaticVar* v = nullptr;
    for (StaticVar& s : sched.statics)
        if (s.p == p) v = &s;
    if (v == nullptr) {
        sched.statics.push_back(StaticVar{p, bytes, 0});
        v = &sched.statics.back();
    }
    if (v->group == sched.group) return;
    v->group = sched.group;
    std::memset(p, 0xff, bytes);
    size_t total = sched.dynamic_bytes;
    for (const StaticVar& s : sched.statics)
        if (s.group == sched.group) total += s.bytes;
    if (total > MAX_THREADGROUP_MEMORY)
        fail("threadgroup memory %zu bytes exceeds Metal's %zu", total, MAX_THREADGROUP_MEMORY);
}

}  // namespace wb_emu

// The sources' calls, with their place for the divergence messages.
#define threadgroup_barrier(flags) ::wb_emu::barrier((flags), __FILE__, __LINE__)
#define simd_shuffle_down(v, delta) ::wb_emu::simd_shuffle_down((v), (delta), __FILE__, __LINE__)
#define simd_max(v) ::wb_emu::simd_max((v), __FILE__, __LINE__)
