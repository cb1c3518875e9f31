/*
 * What waking a sleeping thread costs, by where it sleeps and for how long:
 * two C threads, no Python, no loop.
 *
 * A hands B a turn with sem_post; B, asleep in sem_wait, answers. Per
 * placement (both threads pinned to one CPU, or one to each of two) and per
 * "work" (A busy-waits that long before each hand-over, so B has slept at
 * least that long when it is woken), two shapes:
 *
 *   block  B answers with sem_post and A sleeps in sem_wait for it: two
 *          wakes per round trip, as a loop that blocks while a thread works.
 *   spin   B answers by storing a flag that A spins on: one wake, B's, as a
 *          loop that spins for the answer.
 *
 * Printed per line: placement, shape, work_us, round-trip p50 and p99 us
 * with the work taken off, and A's sem_post p50 us (the waker's own cost of
 * the wake). Run: wake_across_cpus [ROUND_TRIPS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static sem_t to_b, to_a;
static _Atomic int answered, spin_shape, quit;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void pin(pthread_t t, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(t, sizeof set, &set);
}

static void *b_main(void *arg)
{
    (void)arg;
    for (;;) {
        sem_wait(&to_b);
        if (atomic_load(&quit))
            return NULL;
        if (atomic_load(&spin_shape))
            atomic_store_explicit(&answered, 1, memory_order_release);
        else
            sem_post(&to_a);
    }
}

static int cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000, p, shape, w, i;
    static const uint64_t work_ns[] = {0, 10000, 20000, 40000};
    uint64_t *rt = malloc(sizeof(uint64_t) * n), *post = malloc(sizeof(uint64_t) * n);
    cpu_set_t allowed;
    int cpus[2], found = 0;
    pthread_t b;

    CPU_ZERO(&allowed);
    sched_getaffinity(0, sizeof allowed, &allowed);
    for (i = 0; i < CPU_SETSIZE && found < 2; i++)
        if (CPU_ISSET(i, &allowed))
            cpus[found++] = i;
    if (found < 2) {
        fprintf(stderr, "wake_across_cpus: needs two CPUs\n");
        return 1;
    }
    sem_init(&to_b, 0, 0);
    sem_init(&to_a, 0, 0);
    pthread_create(&b, NULL, b_main, NULL);
    for (p = 0; p < 2; p++) {
        pin(pthread_self(), cpus[0]);
        pin(b, p == 0 ? cpus[0] : cpus[1]);
        for (shape = 0; shape < 2; shape++) {
            if (p == 0 && shape == 1)
                continue;           /* one CPU: a spinning A would starve B */
            atomic_store(&spin_shape, shape);
            for (w = 0; w < 4; w++) {
                for (i = -100; i < n; i++) {
                    uint64_t t0 = now_ns(), a, c;
                    while (now_ns() - t0 < work_ns[w])
                        ;
                    atomic_store(&answered, 0);
                    a = now_ns();
                    sem_post(&to_b);
                    c = now_ns();
                    if (shape)
                        while (!atomic_load_explicit(&answered, memory_order_acquire))
                            __builtin_ia32_pause();
                    else
                        sem_wait(&to_a);
                    if (i >= 0) {
                        rt[i] = now_ns() - a;
                        post[i] = c - a;
                    }
                }
                qsort(rt, n, sizeof *rt, cmp);
                qsort(post, n, sizeof *post, cmp);
                printf("%s %s %llu %.1f %.1f %.1f\n", p == 0 ? "one-cpu" : "two-cpus",
                       shape ? "spin" : "block", (unsigned long long)(work_ns[w] / 1000),
                       rt[n / 2] / 1e3, rt[n * 99 / 100] / 1e3, post[n / 2] / 1e3);
            }
        }
    }
    atomic_store(&quit, 1);
    sem_post(&to_b);
    pthread_join(b, NULL);
    return 0;
}
