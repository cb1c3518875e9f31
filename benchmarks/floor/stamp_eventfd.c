/*
 * The peers' native sender: the nearest equivalent, on a loop without
 * user-interrupt receivers, of uintr_loop's no-GIL NativeSender/StampSender.
 * A pthread that never touches Python sleeps, stamps CLOCK_MONOTONIC and
 * writes an eventfd that the loop watches with add_reader; the reader
 * callback reads the eventfd, takes the time (stamp_eventfd_latency) and
 * acknowledges (stamp_eventfd_ack) on a second eventfd the sender blocks on,
 * so one wakeup is in flight, as in every wake benchmark here. Built as a
 * shared library and loaded with ctypes by benchmarks/native_eventfd.py.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int efd;                     /* the loop watches this one */
    int ack_fd;                  /* the sender blocks on this one */
    uint64_t count;
    uint64_t pause_ns;
    _Atomic uint64_t stamp_ns;
    _Atomic int stop;
    uint64_t sent;
    pthread_t thread;
} stamp_eventfd_job;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *sender_main(void *arg)
{
    stamp_eventfd_job *job = arg;
    struct timespec pause = {(time_t)(job->pause_ns / 1000000000u), (long)(job->pause_ns % 1000000000u)};
    uint64_t one = 1, v;
    for (uint64_t i = 0; i < job->count; i++) {
        nanosleep(&pause, NULL);
        if (atomic_load(&job->stop))
            break;
        atomic_store(&job->stamp_ns, now_ns());
        if (write(job->efd, &one, sizeof one) != sizeof one)
            break;
        job->sent++;
        while (read(job->ack_fd, &v, sizeof v) < 0)
            ;
        if (atomic_load(&job->stop))
            break;
    }
    return NULL;
}

stamp_eventfd_job *stamp_eventfd_start(int efd, uint64_t count, uint64_t pause_ns)
{
    stamp_eventfd_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->efd = efd;
    job->count = count;
    job->pause_ns = pause_ns;
    job->ack_fd = eventfd(0, EFD_CLOEXEC);
    if (job->ack_fd < 0 || pthread_create(&job->thread, NULL, sender_main, job) != 0) {
        if (job->ack_fd >= 0)
            close(job->ack_fd);
        free(job);
        return NULL;
    }
    return job;
}

uint64_t stamp_eventfd_latency(stamp_eventfd_job *job) { return now_ns() - atomic_load(&job->stamp_ns); }

void stamp_eventfd_ack(stamp_eventfd_job *job)
{
    uint64_t one = 1;
    (void)!write(job->ack_fd, &one, sizeof one);
}

/* Waits for the thread (stopping it first if asked), frees the job and
 * returns how many wakeups it sent. */
uint64_t stamp_eventfd_join(stamp_eventfd_job *job, int stop)
{
    uint64_t sent;
    if (stop) {
        atomic_store(&job->stop, 1);
        stamp_eventfd_ack(job);
    }
    pthread_join(job->thread, NULL);
    sent = job->sent;
    close(job->ack_fd);
    free(job);
    return sent;
}
