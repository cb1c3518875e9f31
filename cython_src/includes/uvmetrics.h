/*
 * uvmetrics.h - libuv's own measure of a loop's idle time, for the uvloop
 * base's statistics (loopstats.h).
 *
 * libuv knows when epoll_wait returned, before it runs the I/O callbacks of
 * the poll phase (which are busy time); our prepare and check hooks only see
 * the phase as a whole. With UV_METRICS_IDLE_TIME configured, libuv adds up
 * the time it blocks in the event provider and uv_metrics_idle_time() reads
 * the sum (a mutex inside; libuv >= 1.39). Resolved like uvapi.h's calls,
 * from the loaded uvloop module; both are optional: without them the loop's
 * statistics do without time.
 *
 * Cost: with the option on, libuv first polls with a zero timeout and
 * blocks only if nothing was ready (so it can tell waiting from working), one
 * more epoll_wait in an iteration that blocks. make bench measures it
 * (benchmarks/metrics_overhead.py).
 */
#ifndef UINTR_LOOP_UVMETRICS_H
#define UINTR_LOOP_UVMETRICS_H

#include <dlfcn.h>
#include <stdint.h>

#include "loopstats.h"

enum { UINTR_UV_METRICS_IDLE_TIME = 1 };   /* uv_loop_option, libuv 1.39+ */

typedef uint64_t (*uintr_uv_idle_time_fn)(void *loop);

/* Turn libuv's idle-time measure on for `uvloop`; its reader, or NULL
 * (timing then stays off for this loop). */
static inline uintr_uv_idle_time_fn uintr_uv_metrics_enable(const char *path, void *uvloop)
{
    int (*configure)(void *loop, int option, ...);
    uintr_uv_idle_time_fn idle_time;
    void *so = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (so == NULL)
        return NULL;
    *(void **)&configure = dlsym(so, "uv_loop_configure");
    *(void **)&idle_time = dlsym(so, "uv_metrics_idle_time");
    dlclose(so);           /* uvloop keeps the module loaded (see uvapi.h) */
    if (configure == NULL || idle_time == NULL)
        return NULL;
    if (configure(uvloop, UINTR_UV_METRICS_IDLE_TIME) != 0)
        return NULL;
    return idle_time;
}

/* The check hook: count the iteration; if it waited, take libuv's total
 * (read only then: it takes a mutex). */
static inline void uintr_loopstats_iteration_uv(uintr_loopstats_t *s,
                                                uintr_uv_idle_time_fn idle_time,
                                                void *uvloop)
{
    if (idle_time != NULL && uintr_ls_get(&s->wait_start) != 0)
        uintr_loopstats_iteration_measured(s, idle_time(uvloop));
    else
        uintr_loopstats_iteration(s);
}

#endif
