/*
 * backend_harness: level 3. The project's hardware backend
 * (cython_src/hw/uintr_hw.c, unchanged, the v6.0-branch ABI) linked into a
 * static program that runs as /init under the level-2 kernel, in Bochs with
 * 2 CPUs. Each check goes through the backend's functions, and through them
 * through the kernel's syscalls and the CPU's instructions.
 *
 * Output as uintr_selftest.c's: CHECK lines, CPUS online=N, SUMMARY, on
 * port 0xe9 and the console.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <x86gprintrin.h>

#include "guest.h"
#include "uintr_hw.h"

static uintr_hw_receiver_t rx;
static uintr_hw_sender_t senders[64];
static int wake_fd;

/* Wait until the receiver's pending word has all of `bits`; yield between looks. */
static int wait_pending(uint64_t bits, double seconds)
{
    double end = now() + seconds;
    while ((uintr_hw_pending(&rx) & bits) != bits)
        if (now() > end)
            return 0;
    return 1;
}

/* A sender thread: pinned to `cpu`, waits `delay_us`, sends vector `v`. */
struct send_job { int cpu, vector, delay_us, result, ran_on; };

static void *sender_main(void *arg)
{
    struct send_job *j = arg;
    pin(j->cpu);
    j->ran_on = sched_getcpu();
    if (j->delay_us)
        usleep(j->delay_us);
    j->result = uintr_hw_send(&senders[j->vector]);
    return NULL;
}

static pthread_t send_from(struct send_job *j, int cpu, int vector, int delay_us)
{
    pthread_t t;
    memset(j, 0, sizeof *j);
    j->cpu = cpu;
    j->vector = vector;
    j->delay_us = delay_us;
    j->result = 1;
    pthread_create(&t, NULL, sender_main, j);
    return t;
}

int main(void)
{
    struct send_job job;
    pthread_t t;
    const uintr_abi_t *abi = uintr_abi_find("v6.0-branch");
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", 0, NULL);
    have_ports = ioperm(0xe9, 1, 1) == 0;
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char line[64];
    snprintf(line, sizeof line, "CPUS online=%d\n", cpus);
    emit(line);
    pin(0);

    /* bind: register the handler (471 with WAITING_RECEIVER), STUI */
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uintr_hw_receiver_init(&rx, abi, wake_fd);
    int b = uintr_hw_bind(&rx);
    unsigned char uif = _testui();
    check("backend_bind", b == 0 && uif == 1, "uintr_hw_bind -> %d (471, flags WAITING_RECEIVER), UIF %u", b, uif);

    int ok = 1, first_bad = -1;
    for (int v = 0; v < 64; v++) {
        int fd = uintr_hw_vector_fd(&rx, (unsigned)v);
        int s = fd >= 0 ? uintr_hw_sender_init(&senders[v], &rx, fd) : fd;
        if ((fd < 0 || s != 0) && first_bad < 0)
            first_bad = v;
        ok &= fd >= 0 && s == 0;
    }
    check("backend_vector_fds_and_senders", ok,
          "uintr_hw_vector_fd (473) and uintr_hw_sender_init (474) for vectors 0..63: %s (first failure %d)",
          ok ? "all" : "not all", first_bad);

    /* a receiver running in user space (spinning on CPU 0), the sender on CPU 1 */
    t = send_from(&job, 1, 5, 0);
    int got = wait_pending(1ULL << 5, 5.0);
    pthread_join(t, NULL);
    uint64_t p = uintr_hw_after_block(&rx);
    check("backend_send_to_running_receiver", job.result == 0 && got && p == 1ULL << 5 && job.ran_on == 1 &&
          cpus == 2, "uintr_hw_send on CPU %d -> %d; the handler recorded pending %#llx on CPU 0 (%d CPUs online)",
          job.ran_on, job.result, (unsigned long long)p, cpus);

    /* switched out: the sender runs on the receiver's CPU while the receiver yields */
    t = send_from(&job, 0, 9, 0);
    double end = now() + 5.0;
    while (!(uintr_hw_pending(&rx) & (1ULL << 9)) && now() < end)
        sched_yield();
    pthread_join(t, NULL);
    p = uintr_hw_after_block(&rx);
    check("backend_send_to_switched_out_receiver", job.result == 0 && p == 1ULL << 9 && job.ran_on == 0,
          "sender on the receiver's CPU %d, receiver switched out in sched_yield: pending %#llx once it ran",
          job.ran_on, (unsigned long long)p);

    /* blocked in epoll_wait: before_block, then the kernel wakes it (EINTR), the handler writes the wake fd */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev);
    int bb = uintr_hw_before_block(&rx);
    t = send_from(&job, 1, 17, 20000);
    double t0 = now();
    int n, eintr = 0;
    do {
        n = epoll_wait(ep, &out, 1, 20000);
        if (n < 0 && errno == EINTR)
            eintr++;                       /* what CPython does: retry (PEP 475) */
    } while (n < 0 && errno == EINTR);
    double took = now() - t0;
    pthread_join(t, NULL);
    p = uintr_hw_after_block(&rx);
    uint64_t drained;
    if (read(wake_fd, &drained, sizeof drained) < 0)
        drained = 0;
    check("backend_send_to_receiver_in_epoll_wait", bb == 0 && n == 1 && p == 1ULL << 17 &&
          uintr_hw_counter(&rx, 1) >= 1,
          "before_block -> %d; epoll_wait(20 s) -> %d after %.3f s (%d EINTR retried), pending %#llx, handler wake "
          "writes %llu", bb, n, took, eintr, (unsigned long long)p, (unsigned long long)uintr_hw_counter(&rx, 1));
    close(ep);

    /* blocked in uintr_wait */
    t = send_from(&job, 1, 33, 20000);
    t0 = now();
    long w = uintr_hw_wait(abi, 20000000);
    took = now() - t0;
    pthread_join(t, NULL);
    wait_pending(1ULL << 33, 2.0);
    p = uintr_hw_after_block(&rx);
    check("backend_send_to_receiver_in_uintr_wait", w == -EINTR && p == 1ULL << 33,
          "uintr_hw_wait(20 s) -> %ld after %.3f s, post from CPU 1; pending %#llx", w, took, (unsigned long long)p);
    w = uintr_hw_wait(abi, 2000);
    check("backend_uintr_wait_times_out", w == 0, "uintr_hw_wait(2000 us) with no post -> %ld", w);

    /* masking, and all 64 vectors (the handler runs once per vector, highest first) */
    uint64_t before = uintr_hw_counter(&rx, 0);
    uintr_hw_mask();
    for (int v = 0; v < 64; v++)
        uintr_hw_send(&senders[(v * 37) % 64]);
    for (volatile long spin = 0; spin < 200000; spin++)
        ;
    uint64_t masked = uintr_hw_pending(&rx);
    uintr_hw_unmask();
    wait_pending(~0ULL, 5.0);
    p = uintr_hw_after_block(&rx);
    uint64_t entries = uintr_hw_counter(&rx, 0) - before;
    check("backend_mask_and_sixty_four_vectors", masked == 0 && p == ~0ULL && entries == 64,
          "uintr_hw_mask: 64 sends recorded %#llx; uintr_hw_unmask: pending %#llx in %llu handler entries",
          (unsigned long long)masked, (unsigned long long)p, (unsigned long long)entries);

    /* unregister a sender: 475 */
    int sc = uintr_hw_sender_close(&senders[63]);
    check("backend_sender_close", sc == 0, "uintr_hw_sender_close -> %d (475 by index)", sc);

    /* receiver exit: the kernel says ESHUTDOWN to a new sender, the backend to a send */
    int keep = fcntl(rx.vector_fd[2], F_DUPFD_CLOEXEC, 0);
    int c = uintr_hw_close(&rx);
    uif = _testui();
    uintr_hw_sender_t late;
    int li = uintr_hw_sender_init(&late, &rx, keep);
    int ls = uintr_hw_send(&senders[2]);
    check("backend_close_eshutdown", c == 0 && uif == 0 && li == -ESHUTDOWN && ls == -ESHUTDOWN,
          "uintr_hw_close -> %d (472), UIF %u; a new sender on its fd -> %d (kernel), a send -> %d (-ESHUTDOWN = %d)",
          c, uif, li, ls, -ESHUTDOWN);

    finish();
}
