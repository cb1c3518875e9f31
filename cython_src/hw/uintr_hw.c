/*
 * uintr_hw.c - the hardware backend: SENDUIPI, STUI/CLUI, the kernel ABI
 * (both published numberings) and the user-interrupt handler.
 *
 * Built with -muintr -mgeneral-regs-only, only where setup.py's test compile
 * says the compiler takes them. The whole file is general-registers-only:
 * the handler below must not touch x87/SSE/AVX state (UIRET restores only
 * what the interrupt frame holds), and the functions it calls must not
 * either. Built again with -DUINTR_FAKE_ABI (no -muintr) into the test-only
 * module: then the instructions and syscalls come from tests/_testcore/fake_abi.h, which
 * records and simulates them. The logic in between is the same text.
 *
 * How a blocked loop is woken (the essay)
 * ---------------------------------------
 * The loop is an fd-waiting loop: it sleeps in epoll_wait, never in
 * uintr_wait() (which watches no fds). So the question is what ends that
 * epoll_wait when a user interrupt arrives.
 *
 *  - Later branch (471..479): the handler is registered with
 *    WAITING_RECEIVER. When the loop thread sleeps interruptibly the kernel
 *    points the UPID's NV at a kernel vector; a SENDUIPI then wakes the
 *    thread, epoll_wait returns -EINTR and the interrupt is delivered to our
 *    handler on the way back to user space. But CPython retries epoll_wait
 *    after EINTR (PEP 475), so EINTR alone would put the loop back to sleep.
 *    Hence the handler's second job: if the loop has published `blocked`,
 *    it takes the flag (exchange 1 -> 0) and writes the loop's eventfd with a
 *    raw `syscall` instruction (GPR-only, async-safe, errno untouched). The
 *    retried epoll_wait returns at once.
 *  - RFC v1 (449..454): the kernel wakes a receiver only inside uintr_wait;
 *    an interrupt posted while the loop sleeps in epoll_wait stays in the
 *    PIR until the thread runs again. So the sender pays, the way the later
 *    branch's WAITING_SENDER/BLKD design does in the kernel, but in user
 *    memory: after SENDUIPI the sender looks at `blocked`, and if it takes
 *    the flag it writes the eventfd. The loop's run back to user space then
 *    re-posts the PIR (switch_uintr_return) and the handler records it.
 *
 * Same-thread ordering. `blocked` and `pending` are written by the loop and
 * by its own handler, which can run between any two instructions of the
 * loop thread but never concurrently with it. The loop stores blocked = 1
 * and then loads pending: a handler that ran before the load left its bit
 * in pending (the loop polls instead of blocking); one that runs after the
 * load sees blocked = 1 and writes the eventfd. Either way epoll_wait does
 * not sleep on a recorded interrupt. Exchanges make "write once per blocked
 * period" hold against the RFC's remote senders too.
 *
 * What no user-space protocol closes: an interrupt whose notification
 * reaches the CPU after the loop entered the kernel but before the kernel
 * marked the thread as sleeping lands in UIRR and waits for the next return
 * to user space (the later branch says as much in switch_uintr_prepare:
 * "need synchronization in schedule()"). The Python side therefore caps a
 * hardware loop's sleep (Port.max_sleep), so such an interrupt is late by at
 * most that cap, never lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uintr_hw.h"

/* write(fd, buf, n) as one `syscall` instruction: no libc, no errno, only
 * general registers (rcx and r11 are clobbered by the instruction). Safe in
 * the interrupt handler, as in a signal handler. */
static inline long uintr_raw_write(int fd, const void *buf, unsigned long n)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"((long)SYS_write), "D"((long)fd), "S"(buf), "d"(n)
                     : "rcx", "r11", "memory");
    return ret;
}

#ifdef UINTR_FAKE_ABI
#include "fake_abi.h"
#else
#include <x86gprintrin.h>

static long uintr_syscall(long nr, long a0, long a1)
{
    long r = syscall(nr, a0, a1);
    return r < 0 ? -errno : r;
}
#define UINTR_SYSCALL(nr, a0, a1) uintr_syscall((nr), (long)(a0), (long)(a1))
#define UINTR_SENDUIPI(index) _senduipi((unsigned long long)(index))
#define UINTR_STUI() _stui()
#define UINTR_CLUI() _clui()

/* The receiver of the thread the handler interrupts. initial-exec TLS: one
 * %fs-relative load, no __tls_get_addr call (which would not be safe here). */
static __thread uintr_hw_receiver_t *uintr_hw_current
    __attribute__((tls_model("initial-exec")));
#define UINTR_SET_CURRENT(rx) (uintr_hw_current = (rx))

static inline __attribute__((always_inline)) void
uintr_hw_record_body(uintr_hw_receiver_t *rx, uint64_t vector);

/* The user-interrupt handler: entered by the CPU with UIF cleared, left by
 * UIRET, which sets UIF again; so it never nests. It records and returns.
 * The CPU pushes its frame below the interrupted code's red zone (the
 * kernel programs a 128-byte stack adjust); the handler's own red-zone use
 * is safe because nothing nests on it (UIF = 0, and signal frames skip the
 * red zone too). tests/test_hardware_build.py checks the compiled code: no
 * call, no vector register, one syscall, UIRET. */
void __attribute__((interrupt))
uintr_hw_handler(struct __uintr_frame *frame, unsigned long long vector)
{
    uintr_hw_receiver_t *rx = uintr_hw_current;
    (void)frame;
    if (rx != NULL)
        uintr_hw_record_body(rx, vector);
}
#define UINTR_HANDLER_ADDRESS ((long)&uintr_hw_handler)
#endif

static long uintr_gettid(void)
{
    return syscall(SYS_gettid);
}

/* The handler's body. static inline, so the handler reaches it without a
 * PLT call: lazy binding would run the dynamic linker's resolver, which
 * saves vector registers, inside the interrupt. */
static inline __attribute__((always_inline)) void
uintr_hw_record_body(uintr_hw_receiver_t *rx, uint64_t vector)
{
    atomic_fetch_or(&rx->pending, (uint64_t)1 << (vector & 63));
    atomic_fetch_add_explicit(&rx->interrupts, 1, memory_order_relaxed);
    if (atomic_load_explicit(&rx->blocked, memory_order_relaxed) &&
        atomic_exchange(&rx->blocked, 0)) {
        uint64_t one = 1;
        uintr_raw_write(rx->wake_fd, &one, sizeof one);   /* EAGAIN: already woken */
        atomic_fetch_add_explicit(&rx->handler_wakes, 1, memory_order_relaxed);
    }
}

void uintr_hw_record(uintr_hw_receiver_t *rx, uint64_t vector)
{
    uintr_hw_record_body(rx, vector);
}

int uintr_hw_receiver_init(uintr_hw_receiver_t *rx, const uintr_abi_t *abi, int wake_fd)
{
    memset(rx, 0, sizeof *rx);
    for (int i = 0; i < 64; i++)
        rx->vector_fd[i] = -1;
    rx->abi = abi;
    rx->wake_fd = wake_fd;
    return 0;
}

int uintr_hw_bind(uintr_hw_receiver_t *rx)
{
    long r;
    if (atomic_load(&rx->closed))
        return -ESHUTDOWN;
    if (rx->bound)
        return rx->tid == uintr_gettid() ? 0 : -EXDEV;
    r = UINTR_SYSCALL(rx->abi->nr[UINTR_OP_REGISTER_HANDLER], UINTR_HANDLER_ADDRESS,
                      rx->abi->handler_flags);
    if (r < 0)
        return (int)r;
    UINTR_SET_CURRENT(rx);
    rx->bound = 1;
    rx->tid = uintr_gettid();
    rx->owner = (unsigned long)pthread_self();
    UINTR_STUI();          /* UIF starts at 0: enable delivery */
    return 0;
}

int uintr_hw_vector_fd(uintr_hw_receiver_t *rx, unsigned vector)
{
    long r;
    if (vector >= 64)
        return -EINVAL;
    if (rx->vector_fd[vector] >= 0)
        return rx->vector_fd[vector];
    r = uintr_hw_bind(rx);          /* vector fds belong to the calling thread's UPID */
    if (r < 0)
        return (int)r;
    r = UINTR_SYSCALL(rx->abi->nr[UINTR_OP_VECTOR_FD], vector, 0);
    if (r < 0)
        return (int)r;
    rx->vector_fd[vector] = (int)r;
    rx->vectors_used |= (uint64_t)1 << vector;
    return (int)r;
}

int uintr_hw_before_block(uintr_hw_receiver_t *rx)
{
    if ((unsigned long)pthread_self() != rx->owner)
        return -EXDEV;   /* this thread's handler would never record anything */
    atomic_store(&rx->blocked, 1);
    if (atomic_load(&rx->pending) != 0) {
        atomic_store(&rx->blocked, 0);
        return 1;
    }
    return 0;
}

uint64_t uintr_hw_after_block(uintr_hw_receiver_t *rx)
{
    atomic_store(&rx->blocked, 0);
    return atomic_exchange(&rx->pending, 0);
}

void uintr_hw_mask(void)
{
    UINTR_CLUI();
}

void uintr_hw_unmask(void)
{
    UINTR_STUI();
}

int uintr_hw_close(uintr_hw_receiver_t *rx)
{
    long r = 0;
    atomic_store(&rx->closed, 1);
    if (rx->bound && rx->tid != uintr_gettid())
        return -EXDEV;   /* the handler stays registered: rx must stay allocated */
    if (rx->bound)
        UINTR_CLUI();    /* no handler entry from here on */
    for (int i = 0; i < 64; i++) {
        if (rx->vector_fd[i] >= 0)
            close(rx->vector_fd[i]);
        rx->vector_fd[i] = -1;
    }
    if (rx->bound) {
        r = UINTR_SYSCALL(rx->abi->nr[UINTR_OP_UNREGISTER_HANDLER], 0, 0);
        UINTR_SET_CURRENT(NULL);
        rx->bound = 0;
    }
    return r < 0 ? (int)r : 0;
}

long uintr_hw_wait(const uintr_abi_t *abi, uint64_t usec)
{
    if (abi->wait_takes_usec)
        return UINTR_SYSCALL(abi->nr[UINTR_OP_WAIT], usec, 0);
    return UINTR_SYSCALL(abi->nr[UINTR_OP_WAIT], 0, 0);
}

/* ---- senders ---------------------------------------------------------- */

static _Atomic uint64_t uintr_next_sender_id = 1;

/* RFC: the UITT is per thread, so each sending thread registers the fd once
 * and remembers its index here (a small direct-mapped cache; an evicted
 * entry is registered again, the kernel keeps the old one until the thread
 * exits). Not used by the handler, so ordinary TLS is fine. */
#define UINTR_UITT_CACHE 16
static __thread struct {
    uint64_t id;
    int index;
} uintr_uitt_cache[UINTR_UITT_CACHE];

static int uintr_sender_index(uintr_hw_sender_t *s)
{
    unsigned slot;
    long r;
    if (!s->abi->uitt_per_thread)
        return s->index;
    slot = (unsigned)(s->id % UINTR_UITT_CACHE);
    if (uintr_uitt_cache[slot].id == s->id)
        return uintr_uitt_cache[slot].index;
    r = UINTR_SYSCALL(s->abi->nr[UINTR_OP_REGISTER_SENDER], s->fd, 0);
    if (r < 0)
        return (int)r;
    uintr_uitt_cache[slot].id = s->id;
    uintr_uitt_cache[slot].index = (int)r;
    return (int)r;
}

int uintr_hw_sender_init(uintr_hw_sender_t *s, uintr_hw_receiver_t *rx, int vector_fd)
{
    long r;
    memset(s, 0, sizeof *s);
    s->rx = rx;
    s->abi = rx->abi;
    s->index = -1;
    s->id = atomic_fetch_add(&uintr_next_sender_id, 1);
    s->fd = fcntl(vector_fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0)
        return -errno;
    if (!s->abi->uitt_per_thread) {
        r = UINTR_SYSCALL(s->abi->nr[UINTR_OP_REGISTER_SENDER], s->fd, 0);
        if (r < 0) {
            close(s->fd);
            s->fd = -1;
            return (int)r;
        }
        s->index = (int)r;
    }
    return 0;
}

int uintr_hw_send(void *sender)
{
    uintr_hw_sender_t *s = sender;
    uintr_hw_receiver_t *rx = s->rx;
    int index;
    if (atomic_load_explicit(&s->closed, memory_order_relaxed))
        return -EBADF;
    if (atomic_load_explicit(&rx->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    index = uintr_sender_index(s);
    if (index < 0)
        return index;
    UINTR_SENDUIPI(index);
    atomic_fetch_add_explicit(&s->sent, 1, memory_order_relaxed);
    if (!s->abi->kernel_wakes_blocked && atomic_load(&rx->blocked) &&
        atomic_exchange(&rx->blocked, 0)) {
        uint64_t one = 1;
        ssize_t n;
        do {
            n = write(rx->wake_fd, &one, sizeof one);
        } while (n < 0 && errno == EINTR);
        atomic_fetch_add_explicit(&rx->sender_wakes, 1, memory_order_relaxed);
    }
    return 0;
}

int uintr_hw_sender_close(uintr_hw_sender_t *s)
{
    long r = 0;
    if (atomic_exchange(&s->closed, 1))
        return 0;
    if (s->abi->unregister_sender_by_index) {
        if (s->index >= 0)
            r = UINTR_SYSCALL(s->abi->nr[UINTR_OP_UNREGISTER_SENDER], s->index, 0);
    } else {
        /* RFC: by fd, in the calling thread's UITT, if this thread sent;
         * other threads' entries go when those threads exit. */
        unsigned slot = (unsigned)(s->id % UINTR_UITT_CACHE);
        if (uintr_uitt_cache[slot].id == s->id) {
            r = UINTR_SYSCALL(s->abi->nr[UINTR_OP_UNREGISTER_SENDER], s->fd, 0);
            uintr_uitt_cache[slot].id = 0;
        }
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    return r < 0 ? (int)r : 0;
}

/* ---- read-outs for statistics and tests (relaxed loads) ---------------- */

uint64_t uintr_hw_counter(uintr_hw_receiver_t *rx, int which)
{
    switch (which) {
    case 0: return atomic_load_explicit(&rx->interrupts, memory_order_relaxed);
    case 1: return atomic_load_explicit(&rx->handler_wakes, memory_order_relaxed);
    case 2: return atomic_load_explicit(&rx->sender_wakes, memory_order_relaxed);
    }
    return 0;
}

uint64_t uintr_hw_sender_sent(uintr_hw_sender_t *s)
{
    return atomic_load_explicit(&s->sent, memory_order_relaxed);
}

int uintr_hw_blocked(uintr_hw_receiver_t *rx)
{
    return atomic_load(&rx->blocked);
}

uint64_t uintr_hw_pending(uintr_hw_receiver_t *rx)
{
    return atomic_load(&rx->pending);
}
