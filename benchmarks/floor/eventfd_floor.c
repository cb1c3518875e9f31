/*
 * The C floor: the same wakeup as the loop benchmarks, with nothing but the
 * kernel path. A sender thread sleeps, stamps CLOCK_MONOTONIC and writes an
 * eventfd; a receiver thread blocked in epoll_wait wakes, reads the eventfd,
 * takes the time and acknowledges on a second eventfd the sender blocks on.
 * One wakeup in flight, like the Python
 * benchmarks. Prints one latency in nanoseconds per line.
 *
 *   eventfd_floor WAKEUPS PAUSE_NS [spin]
 *
 * With "spin" the receiver does not block: it spins on the stamp word, the
 * way a busy-polling loop spins on PIR, and the sender writes no eventfd.
 * That is the hardware's floor for a busy-poll wakeup (one cache line moving
 * between cores).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int efd, epfd, ackfd;
static uint64_t wakeups, pause_ns;
static int spin;
static _Atomic uint64_t stamp;
static uint64_t *lat;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *sender(void *arg)
{
    struct timespec pause = {(time_t)(pause_ns / 1000000000u), (long)(pause_ns % 1000000000u)};
    uint64_t one = 1, v;
    (void)arg;
    for (uint64_t i = 0; i < wakeups; i++) {
        nanosleep(&pause, NULL);
        atomic_store(&stamp, now_ns());
        if (!spin && write(efd, &one, sizeof one) != sizeof one)
            abort();
        if (read(ackfd, &v, sizeof v) != sizeof v)     /* blocks: one in flight */
            abort();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t;
    struct epoll_event ev = {.events = EPOLLIN}, out;
    uint64_t v;
    if (argc != 3 && argc != 4)
        return 2;
    spin = argc == 4;
    wakeups = strtoull(argv[1], NULL, 10);
    pause_ns = strtoull(argv[2], NULL, 10);
    lat = calloc(wakeups, sizeof *lat);
    efd = eventfd(0, EFD_NONBLOCK);
    ackfd = eventfd(0, 0);
    epfd = epoll_create1(0);
    epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev);
    pthread_create(&t, NULL, sender, NULL);
    for (uint64_t i = 0; i < wakeups; i++) {
        if (spin) {
            uint64_t s;
            while ((s = atomic_exchange(&stamp, 0)) == 0)
                __builtin_ia32_pause();
            lat[i] = now_ns() - s;
            v = 1;
        } else {
            while (epoll_wait(epfd, &out, 1, -1) != 1)
                ;
            if (read(efd, &v, sizeof v) != sizeof v)
                abort();
            lat[i] = now_ns() - atomic_load(&stamp);
        }
        if (write(ackfd, &v, sizeof v) != sizeof v)
            abort();
    }
    pthread_join(t, NULL);
    for (uint64_t i = 0; i < wakeups; i++)
        printf("%llu\n", (unsigned long long)lat[i]);
    return 0;
}
