/* threads.h - a pthread that sends through a nogil send function, for the
 * native-sender tests and benchmarks. It never touches Python. */
#ifndef UINTR_LOOP_THREADS_H
#define UINTR_LOOP_THREADS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

typedef struct {
    const void *handle;
    int (*send)(const void *);
    uint64_t count;
    uint64_t pause_ns;
    uint64_t pause_every; /* pause after every Nth send (0 or 1: after each) */
    _Atomic uint64_t published; /* bumped before each send: what a handler may observe */
    uint64_t sent;
    int error;
    pthread_t thread;
} native_sender_job;

static void *native_sender_main(void *arg)
{
    native_sender_job *job = (native_sender_job *)arg;
    struct timespec pause = {(time_t)(job->pause_ns / 1000000000u),
                             (long)(job->pause_ns % 1000000000u)};
    for (uint64_t i = 0; i < job->count; i++) {
        atomic_store(&job->published, i + 1);
        int rc = job->send(job->handle);
        if (rc != 0) {
            job->error = rc;
            break;
        }
        job->sent++;
        if (job->pause_ns && (job->pause_every <= 1 || (i + 1) % job->pause_every == 0))
            nanosleep(&pause, NULL);
    }
    return NULL;
}

static inline int native_sender_start(native_sender_job *job)
{
    return pthread_create(&job->thread, NULL, native_sender_main, job);
}

static inline uint64_t native_sender_published(native_sender_job *job)
{
    return atomic_load(&job->published);
}

static inline void native_sender_join(native_sender_job *job)
{
    pthread_join(job->thread, NULL);
}

#endif
