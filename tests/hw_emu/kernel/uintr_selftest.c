/*
 * uintr_selftest: the level-2 checks, run as /init of the test kernel's
 * initramfs in Bochs (sapphire_rapids, 2 CPUs). The cross-CPU checks need
 * CPU 1 online; two_cpus_online fails, and says so, when it is not.
 *
 * Written for this project. What it checks is modelled on the selftests of
 * Intel's uintr-linux-kernel branch (tools/testing/selftests/uintr:
 * syscall_handler, syscall_vector, syscall_sender, senduipi_self_ipi,
 * senduipi_instr, ipc_base, context_switch_ipc, syscall_blocking), read
 * there, not copied, plus what the branch's kernel promises and its tests
 * leave out (delivery order, masking, suppress/restore across a context
 * switch, uintr_wait, the ESHUTDOWN and fault paths). docs/design/hardware-emulated.md lists
 * each check with the branch test it follows.
 *
 * Output: one "CHECK <name> PASS|FAIL <detail>" line per check and a final
 * "SUMMARY passed=N failed=M", on the console (ttyS0) and on Bochs's port
 * 0xe9 (tests/hw_emu/hw_emu.py reads the latter); then "Shutdown" on port
 * 0x8900 ends the simulation.
 *
 * Built with gcc -static -muintr (the handler in handler.c, with
 * -mgeneral-regs-only). Times are emulated time: Bochs's clock follows its
 * instruction count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "uintr_test.h"

/* The branch's numbering (../shared/UINTR.md). */
#define NR_REGISTER_HANDLER 471
#define NR_UNREGISTER_HANDLER 472
#define NR_VECTOR_FD 473
#define NR_REGISTER_SENDER 474
#define NR_UNREGISTER_SENDER 475
#define NR_WAIT 476
#define FLAG_WAITING_RECEIVER 0x1000

#define register_handler(h, f) syscall(NR_REGISTER_HANDLER, (h), (f))
#define unregister_handler(f) syscall(NR_UNREGISTER_HANDLER, (f))
#define vector_fd(v, f) syscall(NR_VECTOR_FD, (v), (f))
#define register_sender(fd, f) syscall(NR_REGISTER_SENDER, (fd), (f))
#define unregister_sender(i, f) syscall(NR_UNREGISTER_SENDER, (i), (f))
#define uintr_wait(us, f) syscall(NR_WAIT, (us), (f))

/* ---- output ---------------------------------------------------------- */

static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    strcat(buf, "\n");
    emit(buf);
}

/* ---- helpers ----------------------------------------------------------- */

static unsigned deliveries(int id)
{
    return __atomic_load_n(&uintr_test_log[id].count, __ATOMIC_ACQUIRE);
}

/* Wait (spinning, UIF as it is) until receiver id has n deliveries. */
static int wait_deliveries(int id, unsigned n, double seconds)
{
    double end = now() + seconds;
    while (deliveries(id) < n)
        if (now() > end)
            return 0;
    return 1;
}

static void reset_log(int id)
{
    memset(&uintr_test_log[id], 0, sizeof uintr_test_log[id]);
}

static int become_receiver(int id, unsigned flags)
{
    uintr_test_receiver_id = id;
    reset_log(id);
    if (register_handler(uintr_test_handler, flags) < 0)
        return -errno;
    _stui();
    return 0;
}

static sigjmp_buf fault_jmp;
static volatile int faults;

static void on_segv(int sig)
{
    (void)sig;
    faults++;
    siglongjmp(fault_jmp, 1);
}

/* SENDUIPI that survives a fault: 1 if it faulted. */
static int send_may_fault(int index)
{
    struct sigaction sa = {0}, old;
    int faulted = 0;
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, &old);
    if (sigsetjmp(fault_jmp, 1) == 0)
        _senduipi(index);
    else
        faulted = 1;
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

/* ---- a receiver thread ------------------------------------------------ */

enum mode { SPIN, BLOCK_READ, EPOLL, UWAIT, EXIT_AFTER_SETUP, UNREGISTER_AFTER_SETUP };

struct receiver {
    int id, cpu;
    int ran_on, resumed_on; /* sched_getcpu() before and after its blocking call */
    unsigned flags;
    enum mode mode;
    long wait_usec;
    int pipe[2];
    int fd;                 /* its vector fd, for the main thread */
    volatile int ready, stop, returned;
    long result;            /* read/epoll_wait/uintr_wait's return */
    int result_errno;
    double seconds;         /* how long the blocking call took */
    pthread_t thread;
};

static void *receiver_main(void *arg)
{
    struct receiver *r = arg;
    double t0;
    char c;
    pin(r->cpu);
    r->ran_on = sched_getcpu();
    if (become_receiver(r->id, r->flags) < 0) {
        r->fd = -1;
        r->ready = 1;
        return NULL;
    }
    r->fd = (int)vector_fd(r->id + 1, 0);
    if (r->mode == UNREGISTER_AFTER_SETUP) {
        r->ready = 1;
        while (!r->stop)
            sched_yield();
        r->result = unregister_handler(0);
        r->returned = 1;
        return NULL;
    }
    r->ready = 1;
    t0 = now();
    switch (r->mode) {
    case SPIN:
        while (!r->stop)
            __asm__ volatile("pause");
        break;
    case BLOCK_READ:
        r->result = read(r->pipe[0], &c, 1);
        break;
    case EPOLL: {
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN}, out;
        epoll_ctl(ep, EPOLL_CTL_ADD, r->pipe[0], &ev);
        r->result = epoll_wait(ep, &out, 1, 20000);
        r->result_errno = errno;
        close(ep);
        break;
    }
    case UWAIT:
        r->result = uintr_wait(r->wait_usec, 0);
        r->result_errno = errno;
        break;
    default:
        break;
    }
    r->seconds = now() - t0;
    r->resumed_on = sched_getcpu();
    r->returned = 1;
    if (r->mode != EXIT_AFTER_SETUP)
        while (!r->stop)
            sched_yield();
    return NULL;
}

static void start_receiver(struct receiver *r, int id, int cpu, unsigned flags, enum mode mode)
{
    memset(r, 0, sizeof *r);
    r->id = id;
    r->cpu = cpu;
    r->flags = flags;
    r->mode = mode;
    r->fd = -1;
    r->wait_usec = 20000000;
    if (pipe(r->pipe) < 0)
        r->pipe[0] = r->pipe[1] = -1;
    pthread_create(&r->thread, NULL, receiver_main, r);
    while (!r->ready)
        sched_yield();
}

static void stop_receiver(struct receiver *r)
{
    r->stop = 1;
    if (r->pipe[1] >= 0 && write(r->pipe[1], "x", 1) < 0)
        (void)0;
    pthread_join(r->thread, NULL);
    close(r->pipe[0]);
    close(r->pipe[1]);
}

/* ---- the checks -------------------------------------------------------- */

static void check_cpuid(void)
{
    unsigned a, b, c, d;
    char buf[8192];
    int fd, n = 0, flag = 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    fd = open("/proc/cpuinfo", O_RDONLY);
    if (fd >= 0) {
        n = (int)read(fd, buf, sizeof buf - 1);
        close(fd);
    }
    if (n > 0) {
        buf[n] = 0;
        flag = strstr(buf, " uintr") != NULL;
    }
    check("cpuid_and_cpuinfo_uintr", (d >> 5 & 1) && flag,
          "CPUID.(7,0):EDX[5] = %u; /proc/cpuinfo flag 'uintr' %s", d >> 5 & 1, flag ? "present" : "absent");
}

/* The cross-CPU checks below mean what they say only with CPU 1 online. */
static int cpus_online;

static void check_cpus(void)
{
    pin(1);
    int on1 = sched_getcpu();
    pin(0);
    int on0 = sched_getcpu();
    check("two_cpus_online", cpus_online == 2 && on1 == 1 && on0 == 0,
          "%d CPUs online; a thread pinned to CPU 1 ran on CPU %d, pinned to CPU 0 on CPU %d", cpus_online, on1, on0);
}

/* syscall_handler.c / syscall_vector.c: the error paths, no handler yet. */
static void check_errors_before_register(void)
{
    long r1 = unregister_handler(0);
    int e1 = errno;
    long r2 = vector_fd(0, 0);
    int e2 = errno;
    long r3 = uintr_wait(1000, 0);
    int e3 = errno;
    check("unregister_without_handler", r1 == -1 && e1 == EINVAL, "472 -> %ld errno %d (EINVAL expected)", r1, e1);
    check("vector_fd_without_handler", r2 == -1 && e2 == EINVAL, "473 -> %ld errno %d (EINVAL expected)", r2, e2);
    check("uintr_wait_without_handler", r3 == -1 && e3 == EOPNOTSUPP, "476 -> %ld errno %d (EOPNOTSUPP expected)", r3, e3);
    long r4 = register_handler(0xffffffff00000000UL, 0);
    int e4 = errno;
    long r5 = register_handler(uintr_test_handler, 0x1);
    int e5 = errno;
    check("register_handler_bad_arguments", r4 == -1 && e4 == EFAULT && r5 == -1 && e5 == EINVAL,
          "kernel address -> errno %d (EFAULT), unknown flag -> errno %d (EINVAL)", e4, e5);
}

static int self_fd[64], self_index[64];

static void check_register(void)
{
    long r = become_receiver(0, 0);
    long r2 = register_handler(uintr_test_handler, 0);
    int e2 = errno;
    unsigned char uif = _testui();
    check("register_handler", r == 0 && uif == 1, "471 -> %ld, then STUI: UIF = %u", r, uif);
    check("register_twice_ebusy", r2 == -1 && e2 == EBUSY, "second 471 -> errno %d (EBUSY expected)", e2);
}

static void check_vector_fds(void)
{
    long bad[3] = {vector_fd(64, 0), vector_fd(100, 0), vector_fd(-1L, 0)};
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok &= bad[i] < 0;
    check("vector_fd_out_of_range", ok, "vectors 64, 100, -1 -> %ld %ld %ld", bad[0], bad[1], bad[2]);
    ok = 1;
    for (int v = 0; v < 64; v++) {
        self_fd[v] = (int)vector_fd(v, 0);
        ok &= self_fd[v] >= 0;
    }
    int fdflags = fcntl(self_fd[5], F_GETFD);
    char path[64], buf[512] = "";
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", self_fd[5]);
    int f = open(path, O_RDONLY);
    if (f >= 0) {
        int n = (int)read(f, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        close(f);
    }
    check("vector_fds", ok && (fdflags & FD_CLOEXEC) && strstr(buf, "uintr_vector:\t5"),
          "64 vector fds; close-on-exec %s; fdinfo of vector 5 %s", (fdflags & FD_CLOEXEC) ? "yes" : "no",
          strstr(buf, "uintr_vector:\t5") ? "names it" : "does not name it");
}

/* syscall_sender.c */
static void check_senders(void)
{
    long r1 = register_sender(-1, 0);
    int e1 = errno;
    int efd = eventfd(0, 0);
    long r2 = register_sender(efd, 0);
    int e2 = errno;
    close(efd);
    check("register_sender_bad_fds", r1 == -1 && e1 == EBADF && r2 == -1 && e2 == EINVAL,
          "fd -1 -> errno %d (EBADF), an eventfd -> errno %d (EINVAL)", e1, e2);
    int ok = 1;
    for (int v = 0; v < 64; v++) {
        self_index[v] = (int)register_sender(self_fd[v], 0);
        ok &= self_index[v] == v;
    }
    check("register_sender", ok, "64 senders: UITT indices 0..63 in order (first %d, last %d)", self_index[0],
          self_index[63]);
}

/* senduipi_self_ipi.c */
static void check_self_ipi(void)
{
    reset_log(0);
    _senduipi(self_index[7]);
    int ok = wait_deliveries(0, 1, 2.0);
    check("senduipi_self", ok && uintr_test_log[0].count == 1 && uintr_test_log[0].vector[0] == 7,
          "SENDUIPI to itself: %u handler entries, vector %d", uintr_test_log[0].count, uintr_test_log[0].vector[0]);
}

static void check_masking_and_order(void)
{
    volatile long spin;
    reset_log(0);
    _clui();
    _senduipi(self_index[3]);
    for (spin = 0; spin < 200000; spin++)
        ;
    unsigned while_masked = deliveries(0);
    _stui();
    wait_deliveries(0, 1, 2.0);
    check("clui_masks_stui_delivers", while_masked == 0 && deliveries(0) == 1,
          "after CLUI: %u entries; after STUI: %u", while_masked, deliveries(0));

    reset_log(0);
    _clui();
    static const int order[] = {3, 40, 63, 10};
    for (int i = 0; i < 4; i++)
        _senduipi(self_index[order[i]]);
    _stui();
    wait_deliveries(0, 4, 2.0);
    struct delivery_log *l = &uintr_test_log[0];
    check("delivery_highest_first", l->count == 4 && l->vector[0] == 63 && l->vector[1] == 40 &&
          l->vector[2] == 10 && l->vector[3] == 3,
          "posted 3, 40, 63, 10 while masked: delivered %u: %d %d %d %d", l->count, l->vector[0], l->vector[1],
          l->vector[2], l->vector[3]);

    reset_log(0);
    _clui();
    for (int i = 0; i < 64; i++)
        _senduipi(self_index[(i * 37) % 64]);
    for (int i = 0; i < 3; i++)
        _senduipi(self_index[20]);
    _stui();
    wait_deliveries(0, 64, 4.0);
    int ok = l->count == 64;
    for (int i = 0; ok && i < 64; i++)
        ok = l->vector[i] == 63 - i;
    check("sixty_four_vectors_coalesced", ok, "64 vectors (20 posted 4 times) while masked: %u entries, 63 down to 0: %s",
          l->count, ok ? "yes" : "no");
}

/* ipc_base.c, threads: the receiver runs in user space on the other CPU. */
static void check_cross_cpu_running(void)
{
    struct receiver r;
    start_receiver(&r, 1, 1, 0, SPIN);
    int idx = (int)register_sender(r.fd, 0);
    int sender_cpu = sched_getcpu();
    _senduipi(idx);
    int ok = wait_deliveries(1, 1, 2.0);
    check("cross_cpu_running_receiver", idx >= 0 && ok && uintr_test_log[1].vector[0] == 2 && sender_cpu == 0 &&
          r.ran_on == 1,
          "sender on CPU %d -> receiver spinning on CPU %d: %u entries, vector %d", sender_cpu, r.ran_on, deliveries(1),
          uintr_test_log[1].vector[0]);
    stop_receiver(&r);
    unregister_sender(idx, 0);
}

/*
 * The suppress/restore path: a receiver blocked in read() (flags 0) is
 * switched out with SN set; a post only sets PIR; it is delivered when the
 * thread runs again.
 */
static void check_switched_out_receiver(void)
{
    struct receiver r;
    start_receiver(&r, 2, 1, 0, BLOCK_READ);
    int idx = (int)register_sender(r.fd, 0);
    usleep(20000);                              /* let it block */
    _senduipi(idx);
    usleep(50000);
    unsigned while_blocked = deliveries(2);
    if (write(r.pipe[1], "x", 1) < 0)
        (void)0;
    int ok = wait_deliveries(2, 1, 2.0);
    check("switched_out_receiver_gets_it_when_run", idx >= 0 && while_blocked == 0 && ok && r.ran_on == 1 &&
          sched_getcpu() == 0,
          "posted from CPU %d while blocked in read() on CPU %d: %u entries while blocked, %u after the read returned",
          sched_getcpu(), r.ran_on, while_blocked, deliveries(2));
    stop_receiver(&r);
    unregister_sender(idx, 0);
}

/*
 * Switched out on CPU 1, run again on CPU 0: the post made while it slept
 * is delivered on the new CPU, and the next post finds it there (NDST
 * follows the thread).
 */
static void check_switched_out_receiver_migrates(void)
{
    struct receiver r;
    cpu_set_t set;
    start_receiver(&r, 2, 1, 0, BLOCK_READ);
    int idx = (int)register_sender(r.fd, 0);
    usleep(20000);
    _senduipi(idx);                             /* from CPU 0, to a receiver asleep on CPU 1 */
    usleep(50000);
    unsigned while_blocked = deliveries(2);
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    pthread_setaffinity_np(r.thread, sizeof set, &set);
    if (write(r.pipe[1], "x", 1) < 0)
        (void)0;
    int first = wait_deliveries(2, 1, 2.0);
    unsigned after_first = deliveries(2);
    while (!r.returned)
        sched_yield();
    /* the receiver now yields in a loop on CPU 0; post again from CPU 1 */
    pin(1);
    _senduipi(idx);
    int second = wait_deliveries(2, 2, 2.0);
    pin(0);
    check("switched_out_receiver_migrates", idx >= 0 && while_blocked == 0 && first && second && r.ran_on == 1 &&
          r.resumed_on == 0,
          "blocked on CPU %d, posted, moved to CPU %d: %u entries while blocked, %u after it ran there, %u after "
          "a post from CPU 1", r.ran_on, r.resumed_on, while_blocked, after_first, deliveries(2));
    stop_receiver(&r);
    unregister_sender(idx, 0);
}

/* context_switch_ipc.c: receiver and sender share one CPU. */
static void check_same_cpu_switches(void)
{
    struct receiver r;
    pin(0);
    start_receiver(&r, 3, 0, 0, SPIN);
    int idx = (int)register_sender(r.fd, 0);
    int rounds = 0;
    for (int i = 0; i < 20; i++) {
        _senduipi(idx);
        double end = now() + 2.0;
        while (deliveries(3) < (unsigned)(i + 1) && now() < end)
            sched_yield();
        if (deliveries(3) == (unsigned)(i + 1))
            rounds++;
    }
    check("same_cpu_context_switches", rounds == 20,
          "20 posts to a receiver switched out on the sender's CPU: %d delivered one by one", rounds);
    stop_receiver(&r);
    unregister_sender(idx, 0);
}

/* syscall_blocking.c, WAITING_RECEIVER: a post wakes a receiver sleeping in the kernel. */
static void check_waiting_receiver(void)
{
    struct receiver r;
    start_receiver(&r, 4, 1, FLAG_WAITING_RECEIVER, BLOCK_READ);
    int idx = (int)register_sender(r.fd, 0);
    usleep(20000);
    _senduipi(idx);
    int ok = wait_deliveries(4, 1, 2.0);
    int still_in_read = !r.returned;
    check("waiting_receiver_woken_in_read", idx >= 0 && ok && still_in_read && r.ran_on == 1,
          "WAITING_RECEIVER blocked in read() on CPU %d: %u entries; read() %s (restarted after the handler)",
          r.ran_on, deliveries(4), still_in_read ? "still blocked" : "returned");
    stop_receiver(&r);
    unregister_sender(idx, 0);

    start_receiver(&r, 5, 1, FLAG_WAITING_RECEIVER, EPOLL);
    idx = (int)register_sender(r.fd, 0);
    usleep(20000);
    double t0 = now();
    _senduipi(idx);
    while (!r.returned && now() - t0 < 5.0)
        sched_yield();
    check("waiting_receiver_epoll_wait_eintr", r.returned && r.result == -1 && r.result_errno == EINTR &&
          deliveries(5) == 1,
          "epoll_wait(20 s) -> %ld errno %d after %.3f s; %u entries", r.result, r.result_errno, r.seconds,
          deliveries(5));
    stop_receiver(&r);
    unregister_sender(idx, 0);
}

static void check_uintr_wait(void)
{
    struct receiver r;
    start_receiver(&r, 6, 1, 0, UWAIT);
    int idx = (int)register_sender(r.fd, 0);
    usleep(20000);
    double t0 = now();
    _senduipi(idx);
    while (!r.returned && now() - t0 < 5.0)
        sched_yield();
    check("uintr_wait_woken_by_post", r.returned && r.result == -1 && r.result_errno == EINTR && deliveries(6) == 1 &&
          r.ran_on == 1,
          "uintr_wait(20 s) on CPU %d, post from CPU %d -> %ld errno %d after %.3f s; %u entries", r.ran_on,
          sched_getcpu(), r.result, r.result_errno, r.seconds, deliveries(6));
    stop_receiver(&r);
    unregister_sender(idx, 0);

    double t1 = now();
    long w = uintr_wait(2000, 0);
    double took = now() - t1;
    check("uintr_wait_times_out", w == 0 && took >= 0.0015, "uintr_wait(2000 us) with no post -> %ld after %.4f s", w,
          took);

    reset_log(0);
    _clui();
    _senduipi(self_index[9]);
    long w2 = uintr_wait(2000000, 0);
    int e2 = errno;
    _stui();
    wait_deliveries(0, 1, 2.0);
    check("uintr_wait_with_pending_returns", w2 == -1 && e2 == EINTR && deliveries(0) == 1,
          "a post pending in UIRR: uintr_wait -> %ld errno %d at once; delivered after STUI: %u", w2, e2, deliveries(0));
}

/* ipc_base.c, processes: a forked child inherits the vector fd and sends. */
static void check_fork(void)
{
    reset_log(0);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child has no receiver state of its own; its entry goes into the table it shares. */
        long u = unregister_handler(0);
        int idx = (int)register_sender(self_fd[12], 0);
        if (u != -1 || idx < 0)
            _exit(1);
        _senduipi(idx);
        _exit(unregister_sender(idx, 0) == 0 ? 0 : 2);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    int ok = wait_deliveries(0, 1, 2.0);
    check("fork_child_sends", WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok && uintr_test_log[0].vector[0] == 12,
          "child (no inherited handler) registered the inherited fd, sent, unregistered: exit %d, parent got %u "
          "entries, vector %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1, deliveries(0), uintr_test_log[0].vector[0]);
}

/* ipc_base.c / senduipi_instr.c: fork shares the UITT, so the child sends through the parent's entry. */
static void check_fork_parent_entry(void)
{
    reset_log(0);
    pid_t pid = fork();
    if (pid == 0) {
        _senduipi(self_index[13]);
        _exit(0);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    int ok = wait_deliveries(0, 1, 2.0);
    check("fork_child_sends_through_parent_entry",
          WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok && uintr_test_log[0].vector[0] == 13,
          "a forked child, registering nothing, SENDUIPI with the parent's index %d: %s, parent got %u entries, "
          "vector %d", self_index[13],
          WIFSIGNALED(status) ? (WTERMSIG(status) == SIGILL ? "child killed by SIGILL (no UITT)" : "child killed")
                              : "child exit 0",
          deliveries(0), uintr_test_log[0].vector[0]);
}

/* A thread that was already running when the process's UITT was created. */
#define UITT_SHARED_CHILD "uitt-shared-child"
static volatile int late_go, late_done;
static int late_index;
static void *late_sender(void *arg)
{
    (void)arg;
    pin(1);
    while (!late_go)
        __asm__ volatile("pause");
    _senduipi(late_index);
    late_done = 1;
    return NULL;
}

/* Run in a process with no UITT: forked (which shares the parent's table), then exec'd. */
static int uitt_shared_child(void)
{
    pthread_t t;
    uintr_test_receiver_id = 7;
    reset_log(7);
    if (register_handler(uintr_test_handler, 0) < 0)
        return 2;
    _stui();
    int fd = (int)vector_fd(33, 0);
    pthread_create(&t, NULL, late_sender, NULL);
    usleep(20000);                          /* it spins on CPU 1 */
    late_index = (int)register_sender(fd, 0);  /* the process's first UITT */
    late_go = 1;
    pthread_join(t, NULL);
    return wait_deliveries(7, 1, 2.0) && uintr_test_log[7].vector[0] == 33 ? 0 : 3;
}

static void check_uitt_shared(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "uintr_selftest", UITT_SHARED_CHILD, (char *)NULL);
        _exit(4);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    check("uitt_shared_with_running_thread", WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a new process (fork + exec: no UITT), a thread spinning on CPU 1 before its UITT existed sends through "
          "it: exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void check_unregister_sender(void)
{
    int idx = (int)register_sender(self_fd[1], 0);
    long u = unregister_sender(idx, 0);
    long u2 = unregister_sender(idx, 0);
    int e2 = errno;
    faults = 0;
    int faulted = send_may_fault(idx);
    check("unregistered_sender_faults", u == 0 && u2 == -1 && e2 == EINVAL && faulted,
          "475 -> %ld, again -> errno %d; SENDUIPI on the entry %s", u, e2, faulted ? "faults (SIGSEGV)" : "did not fault");
}

/* The receiver leaves: senders get ESHUTDOWN, old entries only post. */
static void check_receiver_gone(void)
{
    struct receiver r;
    start_receiver(&r, 6, 1, 0, UNREGISTER_AFTER_SETUP);
    int idx = (int)register_sender(r.fd, 0);
    r.stop = 1;
    while (!r.returned)
        sched_yield();
    long again = register_sender(r.fd, 0);
    int e = errno;
    int faulted = send_may_fault(idx);
    check("unregistered_receiver_eshutdown", r.result == 0 && again == -1 && e == ESHUTDOWN && !faulted,
          "receiver's 472 -> %ld; register_sender -> errno %d (ESHUTDOWN); SENDUIPI on the old entry %s", r.result, e,
          faulted ? "faulted" : "posts without fault");
    pthread_join(r.thread, NULL);
    unregister_sender(idx, 0);

    start_receiver(&r, 6, 1, 0, EXIT_AFTER_SETUP);
    pthread_join(r.thread, NULL);
    again = register_sender(r.fd, 0);
    e = errno;
    check("exited_receiver_eshutdown", again == -1 && e == ESHUTDOWN,
          "the receiver thread exited: register_sender on its fd -> errno %d (ESHUTDOWN)", e);
    close(r.fd);
}

/*
 * syscall_sender.c test_out_of_uitte, with fork's sharing: a forked child
 * draws on the parent's 256-entry table, where the parent holds 64 (indices
 * 0..63, check_senders), so it gets 192 (64..255) and then ENOSPC; while it
 * holds them the parent gets ENOSPC too; once it unregisters them the
 * parent's next sender takes index 64 again.
 */
static void check_uitt_full(void)
{
    int to_child[2], to_parent[2];
    char c = 0;
    if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
        check("uitt_full_enospc", 0, "pipe: errno %d", errno);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int got[256], n = 0;
        long r = 0;
        while (n < 256 && (r = register_sender(self_fd[2], 0)) >= 0)
            got[n++] = (int)r;
        int e = errno;
        int report[3] = {n, n ? got[0] : -1, n ? got[n - 1] : -1};
        int ok = r == -1 && e == ENOSPC;
        if (write(to_parent[1], report, sizeof report) != sizeof report || read(to_child[0], &c, 1) != 1)
            _exit(2);
        for (int i = 0; i < n; i++)
            ok &= unregister_sender(got[i], 0) == 0;
        _exit(ok ? 0 : 1);
    }
    int report[3] = {-1, -1, -1};
    int got = (int)read(to_parent[0], report, sizeof report);
    long pr = register_sender(self_fd[3], 0);
    int pe = errno;
    if (pr >= 0)
        unregister_sender((int)pr, 0);
    if (write(to_child[1], &c, 1) != 1)
        kill(pid, SIGKILL);
    int status = -1;
    waitpid(pid, &status, 0);
    long after = register_sender(self_fd[3], 0);
    if (after >= 0)
        unregister_sender((int)after, 0);
    for (int i = 0; i < 2; i++) {
        close(to_child[i]);
        close(to_parent[i]);
    }
    check("uitt_full_enospc",
          got == sizeof report && report[0] == 192 && report[1] == 64 && report[2] == 255 && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0 && pr == -1 && pe == ENOSPC && after == 64,
          "a forked child shares the parent's 256-entry UITT (64 in use): it registers %d (indices %d..%d), then "
          "ENOSPC (child exit %d); meanwhile the parent's own -> %ld errno %d (ENOSPC); after the child unregisters "
          "them the parent's next -> index %ld",
          report[0], report[1], report[2], WIFEXITED(status) ? WEXITSTATUS(status) : -1, pr, pr == -1 ? pe : 0, after);
}

static void check_unregister_handler(void)
{
    reset_log(0);
    long u = unregister_handler(0);
    unsigned char uif = _testui();
    long again = register_sender(self_fd[4], 0);
    int e = errno;
    check("unregister_handler", u == 0 && uif == 0 && again == -1 && e == ESHUTDOWN && deliveries(0) == 0,
          "472 -> %ld, UIF %u; its own fds now -> errno %d (ESHUTDOWN)", u, uif, e);
}

int main(int argc, char **argv)
{
    double t0;
    if (argc > 1 && strcmp(argv[1], UITT_SHARED_CHILD) == 0)
        return uitt_shared_child();
    mkdir("/proc", 0555);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    have_ports = ioperm(0xe9, 1, 1) == 0;
    t0 = now();
    cpus_online = (int)sysconf(_SC_NPROCESSORS_ONLN);
    say("uintr_selftest: start (pid %d, %d CPUs online)", getpid(), cpus_online);
    say("CPUS online=%d", cpus_online);
    pin(0);
    check_cpus();
    check_cpuid();
    check_errors_before_register();
    check_register();
    check_vector_fds();
    check_senders();
    check_self_ipi();
    check_masking_and_order();
    check_cross_cpu_running();
    check_switched_out_receiver();
    check_switched_out_receiver_migrates();
    check_same_cpu_switches();
    check_waiting_receiver();
    check_uintr_wait();
    check_fork();
    check_fork_parent_entry();
    check_uitt_shared();
    check_unregister_sender();
    check_receiver_gone();
    check_uitt_full();
    check_unregister_handler();
    say("uintr_selftest: %.2f s of emulated time", now() - t0);
    finish();
}
