/* stamp.h - a pthread that stamps CLOCK_MONOTONIC and sends, one wakeup at a
 * time, for the native-sender latency benchmark. It never touches Python:
 * the loop's handler reads the stamp and acknowledges with stamp_ack(), an
 * eventfd write the sender blocks on (polling for the ack would take CPU
 * from the loop on a 2-core machine and distort what is measured). */
#ifndef UINTR_LOOP_STAMP_H
#define UINTR_LOOP_STAMP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const void *handle;
    int (*send)(const void *);
    uint64_t count;
    uint64_t pause_ns;            /* sleep after each acknowledged wakeup */
    _Atomic uint64_t stamp_ns;    /* CLOCK_MONOTONIC just before the send */
    _Atomic int stop;             /* stamp_stop(): leave before the next send */
    int ack_fd;                   /* eventfd: the handler took the wakeup */
    uint64_t sent;
    int error;
    pthread_t thread;
} stamp_job;

static inline uint64_t stamp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *stamp_main(void *arg)
{
    stamp_job *job = (stamp_job *)arg;
    struct timespec pause = {(time_t)(job->pause_ns / 1000000000u),
                             (long)(job->pause_ns % 1000000000u)};
    uint64_t v;
    for (uint64_t i = 0; i < job->count; i++) {
        nanosleep(&pause, NULL);                 /* the loop blocks meanwhile */
        if (atomic_load(&job->stop))
            break;
        atomic_store(&job->stamp_ns, stamp_now_ns());
        int rc = job->send(job->handle);
        if (rc != 0) {
            job->error = rc;
            break;
        }
        job->sent++;
        while (read(job->ack_fd, &v, sizeof v) < 0)   /* one wakeup in flight */
            ;
    }
    return NULL;
}

static inline uint64_t stamp_load(stamp_job *job) { return atomic_load(&job->stamp_ns); }
static inline void stamp_ack(stamp_job *job)
{
    uint64_t one = 1;
    (void)!write(job->ack_fd, &one, sizeof one);
}
static inline int stamp_start(stamp_job *job)
{
    job->ack_fd = eventfd(0, EFD_CLOEXEC);
    if (job->ack_fd < 0)
        return -1;
    if (pthread_create(&job->thread, NULL, stamp_main, job) != 0) {
        close(job->ack_fd);
        job->ack_fd = -1;
        return -1;
    }
    return 0;
}
/* Make the thread leave early: it checks before each send, and an ack
 * releases it if it is waiting for one. Then stamp_join(). */
static inline void stamp_stop(stamp_job *job)
{
    atomic_store(&job->stop, 1);
    stamp_ack(job);
}
static inline void stamp_join(stamp_job *job)
{
    pthread_join(job->thread, NULL);
    close(job->ack_fd);
}

#endif
