/* clock.h - the one monotonic clock the core reads (CLOCK_MONOTONIC, the
 * clock time.perf_counter_ns() and time.monotonic_ns() read on Linux). */
#ifndef UINTR_LOOP_CLOCK_H
#define UINTR_LOOP_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t uintr_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
